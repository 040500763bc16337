"""vpce-doctor fleet in the lab: SendCommand to tag:Fleet=web, the [fleet] instances' outcomes, one matrix.

The reports and summaries the fleet instances "return" are made here by running the real doctor in the lab (healthy,
and with the ssm endpoint's security group missing 443) and validated against the report schema first.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import validate_report
from tests.lab.aws import ADMIN_KEY, ADMIN_SECRET

DOCTOR = str(Path(__file__).parents[2] / ".venv" / "bin" / "vpce-doctor")
GROUP = "/vpce-doctor/reports"
OPERATOR = {"AWS_ACCESS_KEY_ID": ADMIN_KEY, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET}  # an operator's, not the role's
FLEET = ["fleet", "--targets", "tag:Fleet=web", "--region", "ap-northeast-1", "--poll-interval", "0.1",
         "--timeout", "20"]
HEALTHY, BROKEN, BROKEN_TOO, UNDELIVERABLE, NOT_DELIVERED, OTHER = (
    "i-0f1ee70000000000a", "i-0f1ee70000000000b", "i-0f1ee70000000000c", "i-0f1ee70000000000d",
    "i-0f1ee70000000000e", "i-0f1ee70000000000f")


def doctor_run(lab, scenario, path: Path):
    """(stdout of --output summary, the JSON report it shipped, written to path) from a real run in scenario."""
    lab.switch(scenario)
    done = lab.run([DOCTOR, "--ship", "--output", "summary"], timeout=60)
    assert "report shipped" in done.stderr, done.stderr
    events = lab.aws("logs", "get_log_events", logGroupName=GROUP, logStreamName=lab.facts["instance_id"])["events"]
    report = validate_report(next(json.loads(e["message"]) for e in events if '"schema"' in e["message"]))
    path.write_text(json.dumps(report))
    return done.stdout, str(path)


@pytest.fixture(scope="module")
def fleet_lab(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    healthy_summary, healthy_report = doctor_run(lab, "healthy", tmp / "healthy.json")
    broken_summary, broken_report = doctor_run(lab, "endpoint-sg-missing-443", tmp / "broken.json")
    assert "tcp:ssm [timeout]" in broken_summary
    web = {"Fleet": "web"}
    me = lab.facts["instance_id"]

    def said_by(summary: str, iid: str) -> str:  # each instance's own run names itself in its summary
        return summary.replace(f" {me} ", f" {iid} ", 1)
    lab.fleet_scenario = {"name": "fleet", "fleet": {"instances": [
        {"id": HEALTHY, "tags": web, "outcome": "Success", "exit_code": 0, "report": healthy_report,
         "output": said_by(healthy_summary, HEALTHY)},
        {"id": BROKEN, "tags": web, "outcome": "Failed", "exit_code": 1, "output": said_by(broken_summary, BROKEN),
         "seconds": 0.5},
        {"id": BROKEN_TOO, "tags": web, "outcome": "Failed", "exit_code": 1, "report": broken_report,
         "output": said_by(broken_summary, BROKEN_TOO)},
        {"id": UNDELIVERABLE, "tags": web, "outcome": "Undeliverable"},
        {"id": NOT_DELIVERED, "tags": web, "outcome": "Delivery Timed Out", "seconds": 0.3},
        {"id": OTHER, "tags": {"Fleet": "db"}, "outcome": "Success", "report": healthy_report}]}}
    lab.switch(lab.fleet_scenario)
    return lab


def test_matrix_of_a_fleet_with_a_failure_and_two_undelivered(fleet_lab):
    done = fleet_lab.run([DOCTOR] + FLEET, env=OPERATOR, timeout=30)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["instance", "invocation", "exit", "verdict", "tcp:ssm"]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:] if line.startswith("i-")}
    assert set(rows) == {HEALTHY, BROKEN, BROKEN_TOO, UNDELIVERABLE, NOT_DELIVERED}  # tag:Fleet=db is not targeted
    assert rows[BROKEN].split() == ["Failed", "1", "broken", "timeout"] == rows[BROKEN_TOO].split()
    assert rows[HEALTHY].split() == ["Success", "0", "healthy", "·"]
    assert rows[UNDELIVERABLE].split() == ["Undeliverable", "-", "not", "delivered"]
    assert rows[NOT_DELIVERED].split() == ["Delivery", "Timed", "Out", "-", "not", "delivered"]
    assert [line for line in lines if line.startswith("i-")][-1].startswith(HEALTHY)  # problems first
    assert lines[-1].startswith("5 instance(s): 2 broken, 2 not delivered, 1 healthy (command ")
    progress, requests = done.stderr.splitlines()[:-1], done.stderr.splitlines()[-1]
    assert progress[0].startswith("vpce-doctor fleet: command ") and "tag:Fleet=web" in progress[0]
    assert len(progress) >= 3 and progress[-1].startswith("5/5 done: ")  # polled through InProgress/Pending
    # followed by the command's counts, then the invocations listed once (one page of 5): a handful of requests
    assert re.fullmatch(r"vpce-doctor fleet: \d+ requests \(\d+ Systems Manager, 0 CloudWatch Logs\), 0 throttled",
                        requests), requests
    assert "2 Failed" in progress[-1] and "1 Delivery Timed Out" in progress[-1] and "1 Undeliverable" in progress[-1]


def test_json_with_shipped_reports(fleet_lab):
    done = fleet_lab.run([DOCTOR] + FLEET + ["--ship", "--output", "json"], env=OPERATOR, timeout=30)
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema"] == "vpce-doctor/fleet/1" and doc["exit_code"] == 1 and doc["command_id"]
    rows = {r["instance_id"]: r for r in doc["instances"]}
    assert set(rows) == {HEALTHY, BROKEN, BROKEN_TOO, UNDELIVERABLE, NOT_DELIVERED}
    assert rows[HEALTHY] == {"instance_id": HEALTHY, "invocation_status": "Success", "status": "Success",
                             "exit_code": 0, "verdict": "healthy", "root_causes": [], "source": "logs"}
    assert rows[BROKEN_TOO]["source"] == "logs" and rows[BROKEN]["source"] == "output"  # no report: its stdout
    for iid in (BROKEN, BROKEN_TOO):
        assert {"id": "tcp:ssm", "code": "timeout"} in rows[iid]["root_causes"] and rows[iid]["exit_code"] == 1
    assert rows[UNDELIVERABLE]["source"] == rows[NOT_DELIVERED]["source"] == "none"
    assert (rows[NOT_DELIVERED]["status"], rows[NOT_DELIVERED]["invocation_status"]) == ("TimedOut",
                                                                                         "Delivery Timed Out")
    totals = doc["totals"]
    assert (totals["instances"], totals["healthy"], totals["broken"], totals["not_delivered"]) == (5, 1, 2, 2)
    assert totals["root_causes"]["tcp:ssm"] == 2
    command = fleet_lab.aws("ssm", "list_commands", CommandId=doc["command_id"])["Commands"][0]
    assert command["DocumentName"] == "VpceDoctor-Run" and command["MaxErrors"] == "100%"
    assert command["Parameters"] == {"ship": ["true"], "logGroup": [GROUP]}
    assert command["Targets"] == [{"Key": "tag:Fleet", "Values": ["web"]}]


def test_a_healthy_fleet_exits_0_and_no_match_exits_2(fleet_lab):
    healthy = fleet_lab.run([DOCTOR] + FLEET[:2] + ["tag:Fleet=db"] + FLEET[3:] + ["--ship"], env=OPERATOR,
                            timeout=30)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.splitlines()[1].split() == [OTHER, "Success", "0", "healthy"]
    nobody = fleet_lab.run([DOCTOR] + FLEET[:2] + ["tag:Fleet=nobody"] + FLEET[3:], env=OPERATOR, timeout=30)
    assert nobody.returncode == 2 and "none matched the targets" in nobody.stdout


def test_a_bad_fleet_entry_fails_the_switch_and_keeps_the_world(fleet_lab):
    from tests.lab.fixture import LabError
    with pytest.raises(LabError, match=r"\[fleet\] instance"):
        fleet_lab.switch({"fleet": {"instances": [{"id": "web-1", "outcome": "Success"}]}})
    done = fleet_lab.run([DOCTOR] + FLEET, env=OPERATOR, timeout=30)
    assert done.returncode == 1 and "5 instance(s)" in done.stdout


def test_over_the_rates_the_fleet_backs_off_and_still_reads_every_instance(fleet_lab):
    """The front refuses calls beyond [fleet] rates with ThrottlingException, as AWS does (its 'Rate exceeded')."""
    slow = {**fleet_lab.fleet_scenario, "fleet": {**fleet_lab.fleet_scenario["fleet"], "rates": {
        "ListCommands": 1, "ListCommandInvocations": 1, "FilterLogEvents": 1}}}
    fleet_lab.switch(slow)
    try:
        done = fleet_lab.run([DOCTOR] + FLEET + ["--ship", "--output", "json", "--poll-interval", "0.05"],
                             env=OPERATOR, timeout=60)
    finally:
        fleet_lab.switch(fleet_lab.fleet_scenario)
    assert done.returncode == 1, done.stderr
    rows = {r["instance_id"]: r for r in json.loads(done.stdout)["instances"]}
    assert rows[BROKEN_TOO]["source"] == "logs" and rows[HEALTHY]["verdict"] == "healthy"
    requests = done.stderr.splitlines()[-1]
    throttled = int(re.search(r"(\d+) throttled", requests).group(1))
    assert throttled > 0, requests  # polled every 0.05 s against 1 a second: refused, waited, asked again
    assert "ThrottlingException" not in done.stderr  # a throttle is waited out, never shown as a failure


def test_remote_for_the_undelivered(fleet_lab):
    """The [fleet] instances exist only in Run Command's simulation, not in EC2: remote says so, for exactly the two
    the command never reached."""
    done = fleet_lab.run([DOCTOR] + FLEET + ["--remote", "--output", "json"], env=OPERATOR, timeout=60)
    assert done.returncode == 1, done.stderr
    rows = {r["instance_id"]: r for r in json.loads(done.stdout)["instances"]}
    for iid in (UNDELIVERABLE, NOT_DELIVERED):
        assert rows[iid]["source"] == "remote" and rows[iid]["verdict"] == "not delivered"
        assert rows[iid]["root_causes"] == [{"id": "remote:instance", "code": "instance-not-found"}]
    assert rows[BROKEN]["source"] == "output" and "remote_exit_code" not in rows[HEALTHY]
