"""No credential, session token, proxy password or presigned-URL part in anything the doctor prints or writes.

Known secrets are planted: the lab's IMDS role credentials (what the doctor signs with), fake keys in the
environment, and a proxy URL with a password. The real console script runs in the lab, text and JSON, healthy
and denied; then stdout, stderr, every file it opened for writing (recorded by a Python audit hook loaded through
sitecustomize, so the console script runs unchanged), what --ship sent to CloudWatch Logs and the probe objects it
left in S3 are searched for them.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.conftest import validate_report
from tests.lab.aws import baseline_role_policy

DOCTOR = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "vpce-doctor")
SPOOL = "/var/lib/vpce-doctor/spool"
SHIP_DIR = "/var/lib/vpce-doctor"  # --ship makes the spool directory and takes its lock even when sending works
FAKE = {"AWS_ACCESS_KEY_ID": "AKIAVPCEDOCTORFAKE01", "AWS_SECRET_ACCESS_KEY": "vpceDoctorFakeSecret/0123456789+abcdefKLMN",
        "AWS_SESSION_TOKEN": "vpceDoctorFakeSessionToken//" + "Zm9vYmFyYmF6" * 8}
PROXY_URL = "http://user:hunter2@10.0.9.9:3128"
PROXY = {"HTTPS_PROXY": PROXY_URL, "HTTP_PROXY": PROXY_URL,
         "NO_PROXY": "169.254.169.254,.amazonaws.com,amazonaws.com,localhost,127.0.0.1"}  # covers every name used
MARKERS = ("hunter2", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "AWS4-HMAC-SHA256")
# The baseline role without s3:DeleteObject: the probe objects stay behind, so their content can be read.
def _without_delete() -> str:
    """The lab's baseline role minus s3:DeleteObject."""
    policy = json.loads(baseline_role_policy())
    for statement in policy["Statement"]:
        if isinstance(statement["Action"], list):
            statement["Action"] = [a for a in statement["Action"] if a != "s3:DeleteObject"]
    return json.dumps(policy)


NO_DELETE = {"iam": {"role_policies": {"vpclab-no-delete": _without_delete()}}}

# Loaded by the doctor's interpreter through PYTHONPATH: every open() for writing, rename, mkdir and subprocess of
# the process (and of any Python child) is appended to $VPCE_TEST_AUDIT, one JSON line each.
SITECUSTOMIZE = r'''
import json, os, sys
_path = os.environ.get("VPCE_TEST_AUDIT")
if _path:
    _fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _audit(event, args):
        try:
            if event == "open":
                path, mode, flags = args
                if isinstance(path, int) or not (
                        (isinstance(mode, str) and any(c in mode for c in "wax+"))
                        or (isinstance(flags, int) and flags & _WRITING)):
                    return
                record = {"event": "write", "path": os.fsdecode(path)}
            elif event in ("os.rename", "os.replace", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"):
                record = {"event": event, "path": os.fsdecode(args[1])}  # the destination
            elif event in ("os.mkdir", "os.truncate") and isinstance(args[0], (str, bytes)):
                record = {"event": event, "path": os.fsdecode(args[0])}
            elif event == "subprocess.Popen":
                record = {"event": "exec", "argv": [os.fsdecode(a) for a in (args[1] or [])]}
            else:
                return
            os.write(_fd, (json.dumps({"pid": os.getpid(), **record}) + "\n").encode())
        except Exception:
            pass

    sys.addaudithook(_audit)
'''


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secrets-audit")
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory


def imds_secrets(lab) -> Dict[str, str]:
    creds = lab.facts["credentials"]
    key, secret, token = creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"]
    assert len(key) >= 16 and len(secret) >= 30 and len(token) >= 100  # real-looking values, so a match means it
    # Whole values, and windows of them: a message cut at N characters would still carry a fragment.
    return {"AccessKeyId": key, "SecretAccessKey": secret, "Token": token, "secret fragment": secret[8:28],
            "token fragment": token[40:72], "token tail": token[-24:]}


def fake_secrets() -> Dict[str, str]:
    return {**FAKE, "fake secret fragment": FAKE["AWS_SECRET_ACCESS_KEY"][4:24],
            "fake token fragment": FAKE["AWS_SESSION_TOKEN"][30:60]}


def leaks(text: str, secrets: Dict[str, str]) -> List[str]:
    lowered = text.lower()
    return ([name for name, value in secrets.items() if value.lower() in lowered]
            + [marker for marker in MARKERS if marker.lower() in lowered])


def run_doctor(lab, hook_dir: Path, tag: str, args=(), env=None) -> Tuple[object, List[dict]]:
    """The console script in the lab, with the audit hook; returns (CompletedProcess, audit records)."""
    audit = hook_dir / f"{tag}.jsonl"
    audit.unlink(missing_ok=True)
    done = lab.run([DOCTOR, *args], timeout=60, env={
        **(env or {}), "PYTHONPATH": str(hook_dir), "VPCE_TEST_AUDIT": str(audit), "PYTHONDONTWRITEBYTECODE": "1"})
    records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    # The hook was loaded: it saw the agent checks run `amazon-ssm-agent -version` and friends.
    assert any(r["event"] == "exec" for r in records), (records, done.stderr)
    return done, records


def run_pair(lab, hook_dir: Path, tag: str, json_args=(), env=None):
    """The text and the JSON report at the same time (concurrent runs on one instance are supported)."""
    results: Dict[str, Tuple[object, List[dict]]] = {}
    threads = [threading.Thread(target=lambda out, extra: results.__setitem__(out, run_doctor(
        lab, hook_dir, f"{tag}-{out}", ("--output", out, *extra), env)), args=(out, extra))
        for out, extra in (("text", ()), ("json", tuple(json_args)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results["text"], results["json"]


def written(records: List[dict]) -> List[str]:
    return sorted({_absolute(r["path"]) for r in records if r["event"] != "exec" and not r["path"].startswith("/dev/")})


def _absolute(path: str) -> str:
    """The spool opens its files relative to its directory descriptor (dir_fd), so the audit sees bare names."""
    from vpce_doctor import spool
    # ".vpce-doctor.*": the lock, the counter and the kept runs (history.py); "..vpce-doctor.*": their temporaries
    own = path.startswith((".vpce-doctor.", "..vpce-doctor.")) or any(p.match(path) for p in (
        spool.REPORT_RE, spool.SET_ASIDE_RE, spool.TEMPORARY_RE))
    return f"{SPOOL}/{path}" if own and "/" not in path else path


def read_written(lab, paths: List[str]) -> str:
    """The content of every file the run wrote that still exists (read inside the lab: /var is the lab's)."""
    if not paths:
        return ""
    done = lab.run(["sh", "-c", 'for f in "$@"; do [ -f "$f" ] && cat "$f"; done; true', "sh", *paths])
    return done.stdout


def assert_clean(lab, done, records, secrets, allowed_prefixes=()) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    for name, stream in (("stdout", done.stdout), ("stderr", done.stderr)):
        assert leaks(stream, secrets) == [], f"{name} leaks {leaks(stream, secrets)}"
    paths = written(records)
    assert [p for p in paths if not any(p.startswith(prefix) for prefix in allowed_prefixes)] == [], paths
    content = read_written(lab, paths)
    assert leaks(content, secrets) == [], f"files {paths} leak {leaks(content, secrets)}"


def test_healthy_runs_print_and_ship_no_credentials(lab, hook_dir):
    lab.switch("healthy")
    secrets = {**imds_secrets(lab), **fake_secrets()}
    (text, text_audit), (js, js_audit) = run_pair(lab, hook_dir, "healthy", json_args=("--ship",))
    assert text.returncode == 0 and "healthy:" in text.stdout, text.stdout[-2000:]
    report = validate_report(json.loads(js.stdout))
    assert js.returncode == report["exit_code"] == 0
    assert next(f for f in report["findings"] if f["id"] == "s3:get_put")["status"] == "pass"
    assert "report shipped" in js.stderr, js.stderr
    assert_clean(lab, text, text_audit, secrets)
    assert_clean(lab, js, js_audit, secrets, allowed_prefixes=(SHIP_DIR,))  # --ship: the spool and kept runs
    shipped = lab.aws("logs", "get_log_events", logGroupName="/vpce-doctor/reports",
                      logStreamName=lab.facts["instance_id"], startFromHead=True)["events"]
    assert shipped and leaks(json.dumps(shipped), secrets) == []


def test_a_denied_probe_prints_the_denial_but_no_credentials(lab, hook_dir):
    lab.switch("role-lacks-s3-put")
    secrets = {**imds_secrets(lab), **fake_secrets()}
    (text, text_audit), (js, js_audit) = run_pair(lab, hook_dir, "denied")
    report = validate_report(json.loads(js.stdout))
    assert text.returncode == js.returncode == report["exit_code"] == 1
    assert ("s3:get_put", "identity-policy") in [(c["id"], c["code"]) for c in report["summary"]["root_causes"]]
    assert "[FAIL] s3:get_put" in text.stdout and "s3:PutObject" in text.stdout
    assert_clean(lab, text, text_audit, secrets)
    assert_clean(lab, js, js_audit, secrets)


def test_environment_keys_and_a_proxy_password_stay_hidden(lab, hook_dir):
    lab.switch("healthy")
    secrets = {**imds_secrets(lab), **fake_secrets()}
    env = {**FAKE, **PROXY}
    try:
        (text, text_audit), (js, js_audit) = run_pair(lab, hook_dir, "environment", json_args=("--ship",), env=env)
        report = validate_report(json.loads(js.stdout))
        found = {f["id"]: f for f in report["findings"]}
        # The variables were seen: the keys shadow the instance profile (and AWS rejects them) ...
        assert (found["creds:source"]["status"], found["creds:source"]["code"]) == ("warn", "shadowed")
        assert found["sts:identity"]["code"] == "invalid-credentials"
        # ... and the proxy is reported with its password masked, NO_PROXY covering everything.
        assert found["local:proxy"]["status"] == "pass"
        assert found["local:proxy"]["evidence"]["proxies"] == {"HTTPS_PROXY": "http://***@10.0.9.9:3128",
                                                               "HTTP_PROXY": "http://***@10.0.9.9:3128"}
        assert text.returncode == js.returncode == report["exit_code"] == 1
        assert "report not shipped" in js.stderr and f"spooled in {SPOOL}" in js.stderr, js.stderr
        spooled = [p for p in written(js_audit) if p.endswith(".json")]
        assert spooled, written(js_audit)  # the spooled report is a file it wrote: searched below
        assert_clean(lab, text, text_audit, secrets)
        assert_clean(lab, js, js_audit, secrets, allowed_prefixes=(SHIP_DIR,))
    finally:
        lab.run(["rm", "-rf", SPOOL])  # the spooled report would otherwise go out with a later --ship run


READ_PROBES = r'''
import json
import boto3
from botocore.config import Config
config = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
session = boto3.session.Session(region_name="ap-northeast-1")  # credentials: the instance profile, from IMDS
s3 = session.client("s3", config=config)
objects = {}
for bucket in ("vpclab-probe", "vpclab-session-logs"):
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        objects[bucket + "/" + item["Key"]] = body.decode("utf-8", "replace")
print(json.dumps({"provider": session.get_credentials().method, "objects": objects}))
'''


def test_the_probe_objects_left_behind_hold_no_secret(lab, hook_dir):
    lab.switch(NO_DELETE)
    secrets = {**imds_secrets(lab), **fake_secrets()}
    instance = lab.facts["instance_id"]
    done, audit = run_doctor(lab, hook_dir, "probes", ("--output", "json"))
    report = validate_report(json.loads(done.stdout))
    get_put = next(f for f in report["findings"] if f["id"] == "s3:get_put")
    assert get_put["status"] == "pass" and "delete denied" in get_put["summary"], get_put["summary"]
    assert_clean(lab, done, audit, secrets)

    read = lab.python(READ_PROBES, timeout=60)
    assert read.returncode == 0, read.stderr
    seen = json.loads(read.stdout)
    assert seen["provider"] == "iam-role"
    objects = seen["objects"]
    assert sorted(objects) == [f"vpclab-probe/vpce-doctor/{instance}.probe",
                               f"vpclab-session-logs/sessions/vpce-doctor/{instance}.probe"]
    assert objects[f"vpclab-probe/vpce-doctor/{instance}.probe"].startswith(f"vpce-doctor probe {instance}")
    assert objects[f"vpclab-session-logs/sessions/vpce-doctor/{instance}.probe"] == "vpce-doctor session-log probe\n"
    events = lab.aws("logs", "get_log_events", logGroupName="/vpclab/sessions",
                     logStreamName=f"vpce-doctor-{instance}", startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["vpce-doctor session-log probe"]
    assert leaks(json.dumps(objects) + json.dumps(events), secrets) == []
