"""vpce-doctor remote from a "workstation" in the lab, with the read-only policy packaging/iam/vpce-doctor-remote-
policy.json and nothing else: it is enough for every verdict, and without one of its permissions the finding says
which call was refused instead of guessing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import validate_report
from tests.lab.aws import ADMIN_KEY, ADMIN_SECRET

REPO = Path(__file__).parents[2]
DOCTOR = str(REPO / ".venv" / "bin" / "vpce-doctor")
POLICY = REPO / "packaging" / "iam" / "vpce-doctor-remote-policy.json"
IAM_ENDPOINT = {"AWS_ENDPOINT_URL_IAM": "https://ec2.ap-northeast-1.amazonaws.com"}  # IAM is global; see test_scenarios


def remote(lab, keys: dict) -> tuple[int, dict]:
    done = lab.run([DOCTOR, "remote", "--instance-id", lab.facts["instance_id"], "--region", lab.facts["region"],
                    "--output", "json"], env={**keys, **IAM_ENDPOINT}, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, validate_report(json.loads(done.stdout))


def operator(lab, name: str, drop: str = "") -> dict:
    """An IAM user holding the remote policy (less the action `drop`); its keys as environment variables."""
    text = POLICY.read_text().replace("${PARTITION}", "aws").replace("${ACCOUNT_ID}", lab.facts["account"]) \
        .replace("${REGION}", lab.facts["region"]).replace("${SESSION_DOCUMENT}", "SSM-SessionManagerRunShell")
    document = json.loads(text)
    for statement in document["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        statement["Action"] = [a for a in actions if a != drop] or ["ec2:DescribeRegions"]
    lab.aws("iam", "create_user", UserName=name)
    lab.aws("iam", "put_user_policy", UserName=name, PolicyName="remote", PolicyDocument=json.dumps(document))
    key = lab.aws("iam", "create_access_key", UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def verdicts(report: dict) -> dict:
    return {f["id"]: (f["status"], f["code"]) for f in report["findings"]}


@pytest.fixture()
def broken(lab):
    lab.switch(REPO / "tests" / "lab" / "scenarios" / "remote-sg-egress-missing.toml")
    return lab


def test_the_remote_policy_is_enough_for_every_verdict(broken):
    admin_code, admin = remote(broken, {"AWS_ACCESS_KEY_ID": ADMIN_KEY, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET})
    code, report = remote(broken, operator(broken, "vpclab-remote"))
    assert (code, verdicts(report)) == (admin_code, verdicts(admin)) == (1, verdicts(admin))
    assert report["mode"] == "remote" and "dns:ssm" in report["not_seen_from_outside"]
    assert not [f["id"] for f in report["findings"] if f["code"] == "unavailable"]


@pytest.mark.parametrize("action, check, status, said", [
    ("iam:SimulatePrincipalPolicy", "iam:role", "warn", "unavailable"),
    ("ssm:DescribeInstanceInformation", "ssm:registration", "warn", "unavailable"),
    ("iam:GetInstanceProfile", "iam:role", "warn", "unavailable"),
    ("ssm:GetDocument", "session:preferences", "warn", "unreadable"),  # as on the instance
    ("ec2:DescribeInstances", "remote:instance", "error", "unavailable"),
])
def test_a_missing_permission_is_named_not_guessed(broken, action, check, status, said):
    code, report = remote(broken, operator(broken, "vpclab-remote-less", drop=action))
    found = {f["id"]: f for f in report["findings"]}[check]
    assert (found["status"], found["code"]) == (status, said), found["summary"]
    assert action.split(":")[1] in found["summary"] + found["cause"]
    assert code == (2 if status == "error" else 1)
