"""vpce-doctor history in the lab: a healthy instance ships a report, an operator revokes its security group's egress
through the EC2 API (recorded by the lab's CloudTrail, tests/lab/trail.py), the next run ships a broken report; then
history, on the instance and from a workstation, names the first broken run, the change behind it and who made it."""
from __future__ import annotations

import json

import pytest

from tests.lab.aws import baseline_role_policy
from tests.lab.scenario import ALLOW_ALL
from tests.lab.test_permissions import statements
from tests.lab.test_scenarios import DOCTOR, REMOTE_ENV

# An interface endpoint for CloudTrail (com.amazonaws.<region>.cloudtrail): from a private subnet LookupEvents needs
# one, as every other API does.
CLOUDTRAIL = {"cloudtrail": {"present": True, "private_dns": True, "addresses": ["10.0.1.18"], "sg_ingress_443": True,
                             "policy": ALLOW_ALL, "ip_type": "ipv4"}}


def role(*sids: str) -> dict:
    """The lab's baseline role plus these statements of packaging/iam/vpce-doctor-policy.json."""
    extra = [st for st in statements() if st["Sid"] in sids]
    return {"baseline": baseline_role_policy(), "history": json.dumps({"Version": "2012-10-17", "Statement": extra})}


def ship_then_break(lab, endpoints: dict, policies: dict) -> dict:
    lab.switch({"endpoints": endpoints, "iam": {"role_policies": policies}})
    healthy = lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    assert json.loads(healthy.stdout)["exit_code"] == 0, healthy.stdout[-2000:]
    assert "report shipped" in healthy.stderr, healthy.stderr
    # RevokeSecurityGroupEgress (all traffic) and AuthorizeSecurityGroupEgress (443 to the VPC only), as network-admin:
    # S3 through the gateway endpoint breaks (the scenario instance-sg-egress-vpc-only), CloudWatch Logs still works
    lab.change({"instance": {"egress": "vpc-only"}})
    broken = lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    assert json.loads(broken.stdout)["exit_code"] == 1 and "report shipped" in broken.stderr, broken.stderr
    return {"healthy": json.loads(healthy.stdout), "broken": json.loads(broken.stdout)}


def history(lab, *args: str, env=None):
    done = lab.run([DOCTOR, "history", *args], env=env, timeout=90)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture(scope="module")
def runs(lab):
    return ship_then_break(lab, CLOUDTRAIL, role("ReadReports", "CloudTrailLookup"))


def test_history_on_the_instance_names_the_break_the_change_and_who_made_it(lab, runs):
    done = history(lab, "--output", "json")
    doc = json.loads(done.stdout)
    group = lab.facts["security_group_ids"][0]
    assert done.returncode == doc["exit_code"] == 1, doc
    assert [s["verdict"] for s in doc["timeline"]] == ["healthy", "broken"]
    assert doc["last_healthy_at"] == runs["healthy"]["started_at"]
    assert doc["first_broken_at"] == runs["broken"]["started_at"]
    assert "tcp:s3" in doc["change"]["new_failures"]
    trail = doc["cloudtrail"]
    assert trail["status"] == "ok" and group in trail["looked_up"], trail
    revoked = [e for e in trail["events"] if e["name"] == "RevokeSecurityGroupEgress"]
    assert revoked and revoked[0]["resources"] == [group], trail
    assert revoked[0]["who"] == f"arn:aws:iam::{lab.facts['account']}:user/network-admin"
    assert lab.status()["iam_denied"] == ["s3:ListAllMyBuckets * (implicit: identity-based policy)"]
    text = history(lab).stdout
    assert f"RevokeSecurityGroupEgress on {group} by arn:aws:iam::" in text
    assert f"first broken run {runs['broken']['started_at']}" in text and "now failing: " in text


def test_history_from_a_workstation_reads_the_same(lab, runs):
    done = history(lab, "--instance-id", lab.facts["instance_id"], "--region", lab.facts["region"], "--output",
                   "json", env=REMOTE_ENV)
    doc = json.loads(done.stdout)
    assert doc["first_broken_at"] == runs["broken"]["started_at"]
    assert any(e["name"] == "RevokeSecurityGroupEgress" for e in doc["cloudtrail"]["events"]), doc["cloudtrail"]


def test_lookups_are_paced_to_cloudtrails_rate(lab, runs):
    """2 LookupEvents a second (API reference): the lab throttles beyond it, the doctor never gets there."""
    before = lab.status()["cloudtrail"]["LookupEvents"]
    done = history(lab, "--output", "json")
    made = json.loads(done.stdout)["requests"]
    assert lab.status()["cloudtrail"]["throttled"] == 0 and made["throttled"] == 0
    assert made["cloudtrail"] == lab.status()["cloudtrail"]["LookupEvents"] - before == len(
        json.loads(done.stdout)["cloudtrail"]["looked_up"])  # one lookup per resource, each one page here
    assert f"{made['logs'] + made['cloudtrail']} requests" in done.stderr


def test_without_cloudtrail_it_says_why_and_the_rest_still_shows(lab):
    ship_then_break(lab, {}, role("ReadReports", "CloudTrailLookup"))  # no cloudtrail endpoint: public name
    doc = json.loads(history(lab, "--output", "json", "--timeout", "20").stdout)
    assert doc["first_broken_at"] and doc["change"]["new_failures"]
    assert doc["cloudtrail"]["status"] == "unreachable", doc["cloudtrail"]
    ship_then_break(lab, CLOUDTRAIL, role("ReadReports"))  # the endpoint, not the permission
    done = history(lab)
    assert "cloudtrail:LookupEvents was refused" in done.stdout and "first broken run" in done.stdout
    assert done.returncode == 1


def test_without_reading_the_reports_one_clear_line(lab):
    lab.switch({})
    lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    done = history(lab)
    assert done.returncode == 2 and "logs:GetLogEvents" in done.stdout and "ReadReports" in done.stdout


# Other changes an operator makes through the EC2 API, each recorded by CloudTrail on the resources it names:
# change -> (the event, the resource kind it names, a new failure of the broken run)
DENY_PROBE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
    {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::vpclab-probe/*"}]})
CHANGES = {
    "gateway-route-removed": ({"endpoints": {"s3": {"route": False}}}, "ModifyVpcEndpoint", "rtb-", "tcp:s3"),
    "gateway-policy-denies-the-probe": ({"endpoints": {"s3": {"policy": DENY_PROBE}}}, "ModifyVpcEndpoint", "vpce-",
                                        "s3:get_put"),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_history_names_other_changes_and_who_made_them(lab, name):
    change, event, kind, failure = CHANGES[name]
    lab.switch({"endpoints": CLOUDTRAIL, "iam": {"role_policies": role("ReadReports", "CloudTrailLookup")}})
    assert json.loads(lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60).stdout)["exit_code"] == 0
    lab.change(change, actor="alice")
    lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    doc = json.loads(history(lab, "--output", "json").stdout)
    assert failure in doc["change"]["new_failures"], doc["change"]
    found = [e for e in doc["cloudtrail"]["events"] if e["name"] == event]
    assert found and found[0]["who"].endswith(":user/alice"), doc["cloudtrail"]
    assert any(r.startswith(kind) for r in found[0]["resources"]), found


def test_a_break_that_cuts_cloudwatch_logs_shows_once_the_spool_drains(lab):
    """With no egress at all the broken run cannot ship: its report waits in the spool (spool.py) and history sees
    only the healthy run. Once egress is back, the next run ships both, and the timeline puts the late report where
    it ran."""
    lab.switch({"endpoints": CLOUDTRAIL, "iam": {"role_policies": role("ReadReports", "CloudTrailLookup")}})
    lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    lab.change({"instance": {"egress": "none"}})
    cut = lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    assert "report not shipped" in cut.stderr and "spooled" in cut.stderr, cut.stderr
    lab.change({"instance": {"egress": "all"}})
    healed = lab.run([DOCTOR, "--output", "json", "--ship"], timeout=60)
    assert "with 1 spooled report(s)" in healed.stderr, healed.stderr
    doc = json.loads(history(lab, "--output", "json").stdout)
    assert [s["verdict"] for s in doc["timeline"]] == ["healthy", "broken", "healthy"], doc["timeline"]
    assert doc["timeline"][1]["from"] == json.loads(cut.stdout)["started_at"]
    assert doc["exit_code"] == 0 and doc["first_broken_at"] is None  # healed: no break to explain
