"""The fault matrix: every scenario in tests/lab/scenarios, the doctor run inside the lab, its verdict asserted.

Each scenario file records what the doctor must conclude ([expect]): the exit code, the root causes (check id and
cause code) and any other statuses or codes. The report must be schema-valid whatever happened.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import validate_report
from tests.lab.aws import ADMIN_KEY, ADMIN_SECRET
from tests.lab.scenario import load

SCENARIOS = sorted(Path(__file__).parent.joinpath("scenarios").glob("*.toml"))
REPO = Path(__file__).parents[2]
DOCTOR = str(REPO / ".venv" / "bin" / "vpce-doctor")
# The same verdicts with the oldest dependencies pyproject.toml admits (boto3 1.33, Amazon Linux 2023's own), from
# .venv-oldest (`make oldest`, part of `make test`): a layer of each kind, healthy and broken.
OLDEST = str(REPO / ".venv-oldest" / "bin" / "vpce-doctor")
ON_OLDEST = ("healthy", "endpoint-sg-missing-443", "tls-intercepted", "clock-skew", "role-lacks-s3-put",
             "gateway-policy-get-put-only", "session-logs-bucket-unreachable", "agent-stopped")


def run_doctor(lab, scenario: dict, *extra: str, doctor: str = DOCTOR):
    env = dict(scenario["doctor"]["env"])
    if doctor == OLDEST:  # as distro botocore does: the system trust store (the lab puts its CA there)
        env.setdefault("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    argv = [doctor, "--output", "json", *scenario["doctor"]["args"], *extra]
    if scenario["doctor"]["mode"] == "remote":  # from a "workstation": an operator's keys; IAM is global, so the
        # lab's front takes it on the ec2 listener (AWS_ENDPOINT_URL_IAM: botocore >= 1.31)
        env.update(REMOTE_ENV)
        argv = [doctor, "remote", "--instance-id", lab.facts["instance_id"], "--region", lab.facts["region"],
                "--output", "json", *scenario["doctor"]["args"], *extra]
    done = lab.run(argv, env=env, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout, f"no report; stderr: {done.stderr}"
    return done.returncode, validate_report(json.loads(done.stdout))


REMOTE_ENV = {"AWS_ACCESS_KEY_ID": ADMIN_KEY, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
              "AWS_ENDPOINT_URL_IAM": "https://ec2.ap-northeast-1.amazonaws.com"}
CASES = [(p, DOCTOR) for p in SCENARIOS] + [(p, OLDEST) for p in SCENARIOS if p.stem in ON_OLDEST]


@pytest.mark.parametrize("path, doctor", CASES,
                         ids=[p.stem + ("" if d == DOCTOR else "-oldest-deps") for p, d in CASES])
def test_scenario_verdict(lab, path, doctor):
    scenario = load(path)
    lab.switch(path)
    code, report = run_doctor(lab, scenario, doctor=doctor)
    expect = scenario["expect"]
    found = {f["id"]: f for f in report["findings"]}
    causes = [(c["id"], c["code"]) for c in report["summary"]["root_causes"]]
    context = json.dumps(report["summary"], indent=1)
    for wanted in expect["root_causes"]:
        assert (wanted["check"], wanted["code"]) in causes, context
    if not expect["root_causes"]:
        assert causes == [], context
    for check_id, status in expect["statuses"].items():
        assert found[check_id]["status"] == status, (check_id, found[check_id]["summary"])
    for check_id, text in expect.get("remedies", {}).items():  # what the remedy leads with
        assert text in (found[check_id]["remedy"] or {}).get("text", ""), (check_id, found[check_id]["remedy"])
    for check_id, by in expect.get("explained", {}).items():  # the control plane named the resource, with its ids
        explained = next(c for c in report["summary"]["root_causes"] if c["id"] == check_id).get("explained_by")
        assert explained and explained["id"] == by and "<" not in explained["command"], context
    for check_id, cause_code in expect.get("codes", {}).items():
        assert found[check_id]["code"] == cause_code, (check_id, found[check_id]["summary"])
    said = {c: f"{f['summary']} {f['cause']}" for c, f in found.items()}  # what the operator reads
    for check_id, words in expect["mentions"].items():
        assert all(w in said[check_id] for w in words), (check_id, said[check_id])
    for check_id, words in expect["absent"].items():
        assert not any(w in said[check_id] for w in words), (check_id, said[check_id])
    assert code == report["exit_code"] == expect["exit_code"], context


def test_a_scenario_file_from_anywhere_and_text_output(lab, tmp_path):
    scenario_file = tmp_path / "elsewhere.toml"
    scenario_file.write_text('description = "ssmmessages answers NXDOMAIN"\n[dns]\nssmmessages = "nxdomain"\n')
    lab.switch(scenario_file)
    done = lab.run([DOCTOR], timeout=60)
    assert done.returncode == 1
    assert "[FAIL] dns:ssmmessages" in done.stdout and "NXDOMAIN" in done.stdout
    assert "problem to fix:" in done.stdout and "\033[" not in done.stdout
