"""What the doctor leaves behind on AWS, and runs that overlap: repeated runs on one instance leave at most one
probe object per bucket and one session-log stream, all named for the instance; two runs started at the same time
both pass."""
from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

from tests.conftest import validate_report
from tests.lab.test_secrets import NO_DELETE
from vpce_doctor.aws import Call
from vpce_doctor.checks import s3

DOCTOR = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "vpce-doctor")
GROUP = "/vpclab/sessions"

# Inside the lab, with the instance profile's credentials from IMDS (the role may ListBucket the lab buckets and
# DescribeLogStreams): every key in both lab buckets with its content, and every stream of the session log group.
LIST = r'''
import json
import boto3
from botocore.config import Config
config = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
session = boto3.session.Session(region_name="ap-northeast-1")
s3, logs = session.client("s3", config=config), session.client("logs", config=config)
objects = {}
for bucket in ("vpclab-probe", "vpclab-session-logs"):
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        objects[bucket + "/" + item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName="%s")["logStreams"]]
print(json.dumps({"provider": session.get_credentials().method, "objects": objects, "streams": streams}))
''' % GROUP


def run_json(lab):
    done = lab.run([DOCTOR, "--output", "json"], timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    report = validate_report(json.loads(done.stdout))
    assert done.returncode == report["exit_code"]
    return done, report


def findings(report) -> dict:
    return {f["id"]: f for f in report["findings"]}


def listing(lab) -> dict:
    done = lab.python(LIST, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["provider"] == "iam-role"  # what the instance itself can see, with its own credentials
    return seen


def test_repeated_runs_leave_one_probe_object_per_bucket_and_one_stream(lab):
    lab.switch(NO_DELETE)  # the role cannot delete: every probe object the doctor writes stays
    instance = lab.facts["instance_id"]
    for _ in range(2):
        done, report = run_json(lab)
        assert done.returncode == 0, json.dumps(report["summary"])
        assert "delete denied" in findings(report)["s3:get_put"]["summary"]
        assert findings(report)["session:logs"]["status"] == "pass"
    seen = listing(lab)
    # Exactly the documented keys, once each, whatever the number of runs: <prefix>vpce-doctor/<instance-id>.probe.
    assert seen["objects"] == {f"vpclab-probe/vpce-doctor/{instance}.probe": f"vpce-doctor probe {instance}\n",
                               f"vpclab-session-logs/sessions/vpce-doctor/{instance}.probe":
                                   "vpce-doctor session-log probe\n"}
    assert seen["streams"] == [f"vpce-doctor-{instance}"]
    events = lab.aws("logs", "get_log_events", logGroupName=GROUP, logStreamName=f"vpce-doctor-{instance}",
                     startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["vpce-doctor session-log probe"] * 2  # one event per run


def test_two_runs_started_together_both_pass_and_clean_up(lab):
    lab.switch("healthy")
    instance = lab.facts["instance_id"]
    results = [None, None]
    start = threading.Barrier(2)

    def run(index):
        start.wait()
        results[index] = run_json(lab)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for done, report in results:
        assert done.returncode == 0, json.dumps([(f["id"], f["status"], f["summary"]) for f in report["findings"]
                                                 if f["status"] != "pass"])
        assert findings(report)["s3:get_put"]["status"] == "pass"
    # Seen by an administrator, past every policy: both runs deleted what they wrote; one stream between them.
    keys = [o["Key"] for bucket in ("vpclab-probe", "vpclab-session-logs")
            for o in lab.aws("s3", "list_objects_v2", Bucket=bucket).get("Contents", [])]
    assert keys == []
    streams = lab.aws("logs", "describe_log_streams", logGroupName=GROUP)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [f"vpce-doctor-{instance}"]


def test_an_overlapping_run_that_removed_the_probe_is_not_a_failure():
    """The race the concurrent test can hit: run A puts, run B deletes, A's read-back finds no key. S3 answers
    NoSuchKey only to a caller allowed to read, so A's put and read both worked."""
    ok = Call(ok=True, ms=10.0)
    gone = Call(ok=False, kind="api", code="NoSuchKey", message="The specified key does not exist.", status=404,
                ms=10.0)
    endpoint = {"id": None, "policy": None}
    result = s3.assess_get_put("b", "vpce-doctor/i-0abc.probe", {"put": ok, "get": gone, "delete": ok}, False,
                               endpoint)
    assert result.status.value == "pass" and "gone before the read-back" in result.summary
    denied = replace(gone, code="AccessDenied", message="Access Denied", status=403)
    result = s3.assess_get_put("b", "vpce-doctor/i-0abc.probe", {"put": ok, "get": denied}, False, endpoint)
    assert result.status.value == "fail"
