"""vpce-doctor history, pure: shipped events -> runs -> timeline, break point and change; CloudTrail events -> who
changed what. Literal inputs in the shapes the doctor ships (ship.py) and LookupEvents answers (API reference)."""
import json
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from vpce_doctor import history_command, timeline, trail
from vpce_doctor.aws import Call

IID = "i-0123456789abcdef0"
SG = "sg-0abc1234def567890"
INSTANCE = {"instance_id": IID, "region": "eu-west-1", "vpc_id": "vpc-0abc1234def567890", "vpc_cidrs": ["10.0.0.0/16"],
            "subnet_id": "subnet-0abc1234def567890", "security_groups": [SG]}


def report(started, code, probe="open", causes=()):
    """A shipped report event (ship.events' first message: the report with its EMF fields)."""
    return json.dumps({
        "schema": "vpce-doctor/report/1", "started_at": started, "exit_code": code, "instance": INSTANCE,
        "summary": {"root_causes": [{"id": i, "code": c, "summary": "s"} for i, c in causes]},
        "findings": [{"id": "tcp:ssm", "status": "pass" if probe == "open" else "fail",
                      "code": "" if probe == "open" else "timeout", "needs": ["dns:ssm"], "summary": "",
                      "evidence": {"port": 443, "probes": {"10.0.1.10": {"result": probe, "ms": 0.4}}}},
                     {"id": "vpc:endpoints", "status": "pass" if probe == "open" else "fail", "code": "", "needs": [],
                      "summary": "", "evidence": {"instance_groups": [SG], "egress": "all" if probe == "open"
                                                  else "none"}}],
        "_aws": {"Timestamp": 1}, "Failures": 0})


# the per-check EMF event ship.events adds after a failing report: no report, no note
METRIC = json.dumps({"_aws": {"Timestamp": 1}, "Check": "tcp:ssm", "Code": "timeout", "CheckFailed": 1,
                     "InstanceId": IID, "Summary": "s"})
RUNS = [report("2026-11-28T11:30:00.000Z", 0), report("2026-11-28T11:45:00.000Z", 0), METRIC,
        report("2026-11-28T12:00:00.000Z", 1, "timeout", [("tcp:ssm", "timeout")]), METRIC,
        report("2026-11-28T12:15:00.000Z", 1, "timeout", [("tcp:ssm", "timeout")])]


def test_one_timeline_line_per_change_of_state_not_per_run():
    found, notes = timeline.runs(RUNS, IID)
    assert notes == [] and len(found) == 4
    segments = timeline.segments(found)
    assert [(s["verdict"], s["runs"], s["from"], s["to"]) for s in segments] == [
        ("healthy", 2, "2026-11-28T11:30:00.000Z", "2026-11-28T11:45:00.000Z"),
        ("broken", 2, "2026-11-28T12:00:00.000Z", "2026-11-28T12:15:00.000Z")]
    assert timeline.line(segments[1]) == \
        "  2026-11-28T12:00:00.000Z .. 2026-11-28T12:15:00.000Z  broken: tcp:ssm [timeout] (2 runs)"


def test_the_last_healthy_and_first_broken_run_and_what_changed_between_them():
    found, _ = timeline.runs(list(reversed(RUNS)), IID)  # a spooled report shipped late goes where it ran
    good, bad = timeline.break_point(found)
    assert (good["at"], bad["at"]) == ("2026-11-28T11:45:00.000Z", "2026-11-28T12:00:00.000Z")
    change = timeline.what_changed(good, bad)
    assert change["new_failures"] == ["tcp:ssm", "vpc:endpoints"]
    assert {"id": "tcp:ssm", "what": "probes.10.0.1.10.result", "was": "open", "now": "timeout"} in change["changed"]
    assert change["first_broken_at"] == "2026-11-28T12:00:00.000Z"


def test_no_break_point_when_the_newest_run_is_healthy_again_or_nothing_broke():
    healed = RUNS + [report("2026-11-28T12:30:00.000Z", 0)]
    assert timeline.break_point(timeline.runs(healed, IID)[0]) == (None, None)
    assert timeline.break_point(timeline.runs(RUNS[:2], IID)[0]) == (None, None)
    good, bad = timeline.break_point(timeline.runs(RUNS[3:], IID)[0])  # broken all window long
    assert good is None and bad["at"] == "2026-11-28T12:00:00.000Z"


def test_incomplete_runs_neither_end_nor_start_the_broken_streak():
    runs = [report("2026-11-28T11:45:00.000Z", 0), report("2026-11-28T11:50:00.000Z", 2),
            report("2026-11-28T12:00:00.000Z", 1, "timeout"), report("2026-11-28T12:05:00.000Z", 2),
            report("2026-11-28T12:15:00.000Z", 1, "timeout")]
    good, bad = timeline.break_point(timeline.runs(runs, IID)[0])
    assert (good["at"], bad["at"]) == ("2026-11-28T11:45:00.000Z", "2026-11-28T12:00:00.000Z")


def test_hostile_or_corrupt_events_are_set_aside_with_a_note_never_a_crash():
    other = report("2026-11-28T12:00:00.000Z", 1).replace(IID, "i-0fffffffffffffff0")
    hostile = ["not json", "[" * 100000 + "]" * 100000, '{"schema": "vpce-doctor/report/1", "exit_code": true}',
               '{"schema": "vpce-doctor/report/1", "started_at": "yesterday", "exit_code": 1, "instance": {"instance_id":'
               f' "{IID}"}}}}', other, "x" * (1024 * 1024 + 1), "1e999", '{"a": NaN}', "[]"]
    found, notes = timeline.runs(hostile + RUNS[:1], IID)
    assert len(found) == 1
    assert notes == ["1 event(s) in the stream were set aside: a report without a time or verdict",
                     "2 event(s) in the stream were set aside: another instance's report",
                     "1 event(s) in the stream were set aside: larger than 1 MB",
                     "4 event(s) in the stream were set aside: not JSON",
                     "1 event(s) in the stream were set aside: not a report"], notes


def test_the_resources_to_look_up_start_with_what_changed_and_what_failed():
    found, _ = timeline.runs(RUNS, IID)
    good, bad = timeline.break_point(found)
    names = trail.names(timeline.what_changed(good, bad), good["record"], bad["record"])
    assert names == [SG]  # the instance's group, in vpc:endpoints' changed evidence


# A LookupEvents Event as botocore parses it (EventTime a datetime), its CloudTrailEvent in CloudTrail's record
# format (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html;
# EC2's RevokeSecurityGroupEgress requestParameters as EC2 records them: groupId, ipPermissions.items).
REVOKE = {"EventId": "0f3e1b0c-1111-2222-3333-444455556666", "EventName": "RevokeSecurityGroupEgress",
          "ReadOnly": "false", "EventTime": datetime(2026, 11, 28, 11, 52, 10, tzinfo=timezone.utc),
          "EventSource": "ec2.amazonaws.com", "Username": "alice",
          "Resources": [{"ResourceType": "AWS::EC2::SecurityGroup", "ResourceName": SG}],
          "CloudTrailEvent": json.dumps({"eventVersion": "1.09", "userIdentity": {
              "type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/NetworkAdmin/alice",
              "accountId": "123456789012"}, "eventSource": "ec2.amazonaws.com",
              "eventName": "RevokeSecurityGroupEgress", "sourceIPAddress": "198.51.100.23", "readOnly": False,
              "requestParameters": {"groupId": SG, "ipPermissions": {"items": [{"ipProtocol": "-1"}]}}})}
DESCRIBE = {**REVOKE, "EventId": "read-1", "EventName": "DescribeSecurityGroups", "ReadOnly": "true"}


class Paced:
    """The seam trail.lookup calls through (fleet_api.Paced's signature): the answers LookupEvents gave."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, client, operation, **params):
        self.calls.append((operation, params))
        return self.answers.pop(0)


WINDOW = trail.window("2026-11-28T11:45:00.000Z", "2026-11-28T12:00:00.000Z")


def test_who_changed_the_security_group_and_when():
    paced = Paced(Call(ok=True, response={"Events": [REVOKE, DESCRIBE]}))
    found = trail.lookup(paced, None, [SG], *WINDOW, lambda: 20.0)
    assert found["status"] == "ok" and [e["name"] for e in found["events"]] == ["RevokeSecurityGroupEgress"]
    event = found["events"][0]
    assert (event["who"], event["time"], event["resources"]) == (
        "arn:aws:sts::123456789012:assumed-role/NetworkAdmin/alice", "2026-11-28T11:52:10Z", [SG])
    assert paced.calls[0][1]["LookupAttributes"] == [{"AttributeKey": "ResourceName", "AttributeValue": SG}]
    assert paced.calls[0][1]["MaxResults"] == 50
    said = trail.lines(found, "eu-west-1", "2026-11-28T11:45:00Z", "2026-11-28T12:01:00Z")
    assert said[1] == f"  2026-11-28T11:52:10Z  RevokeSecurityGroupEgress on {SG} by " \
                      "arn:aws:sts::123456789012:assumed-role/NetworkAdmin/alice"


def test_a_denied_or_unreachable_cloudtrail_is_said_and_the_rest_stays():
    denied = Paced(Call(ok=False, kind="api", code="AccessDeniedException", message="User: arn:aws:sts::1:"
                    "assumed-role/r/i is not authorized to perform: cloudtrail:LookupEvents"))
    found = trail.lookup(denied, None, [SG, "rtb-0abc1234def567890"], *WINDOW, lambda: 20.0)
    assert found["status"] == "denied" and found["events"] == []
    assert "cloudtrail:LookupEvents was refused" in trail.lines(found, "eu-west-1", "a", "b")[-1]
    gone = Paced(Call(ok=False, kind="timeout", code="ConnectTimeoutError", message="Connect timeout"))
    found = trail.lookup(gone, None, [SG], *WINDOW, lambda: 20.0)
    assert found["status"] == "unreachable"
    assert "com.amazonaws.eu-west-1.cloudtrail" in trail.lines(found, "eu-west-1", "a", "b")[-1]
    # China's partition domain (botocore's endpoints.json: cn partition dnsSuffix amazonaws.com.cn)
    assert "cloudtrail.cn-north-1.amazonaws.com.cn cannot be reached" in trail.lines(found, "cn-north-1", "a", "b")[-1]


def test_lookups_stop_at_the_deadline_and_say_so():
    found = trail.lookup(Paced(), None, [SG], *WINDOW, lambda: 0.5)
    assert found["status"] == "partial" and "time ran out" in found["problem"]


def test_hostile_lookup_events_are_dropped():
    bad = [None, {"EventId": 1}, {**REVOKE, "EventName": "x y\n"}, {**REVOKE, "EventTime": "soon"},
           {**REVOKE, "CloudTrailEvent": "[" * 5000}]
    found = trail.lookup(Paced(Call(ok=True, response={"Events": bad})), None, [SG], *WINDOW, lambda: 20.0)
    assert [e["who"] for e in found["events"]] == ["alice"]  # the record unreadable: LookupEvents' Username


def test_the_log_stream_is_read_newest_first_until_the_same_token_comes_back():
    events = [{"timestamp": 1, "message": m} for m in RUNS]
    paced = Paced(Call(ok=True, response={"events": events[3:], "nextBackwardToken": "b/2"}),
                  Call(ok=True, response={"events": events[:3], "nextBackwardToken": "b/1"}),
                  Call(ok=True, response={"events": [], "nextBackwardToken": "b/1"}))
    start = datetime(2026, 11, 28, tzinfo=timezone.utc)
    messages, problem, capped = history_command.read(paced, None, "/vpce-doctor/reports", IID, start)
    assert messages == RUNS and problem == capped == ""
    assert paced.calls[0][1] == {"logGroupName": "/vpce-doctor/reports", "logStreamName": IID,
                                 "startFromHead": False, "startTime": int(start.timestamp() * 1000)}
    assert paced.calls[1][1]["nextToken"] == "b/2"


def test_a_missing_stream_or_a_denial_is_one_clear_line():
    missing = Paced(Call(ok=False, kind="api", code="ResourceNotFoundException",
                         message="The specified log stream does not exist."))
    _, problem, _ = history_command.read(missing, None, "/vpce-doctor/reports", IID, datetime.now(timezone.utc))
    assert problem.startswith(f"no log stream {IID} in /vpce-doctor/reports")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=200), st.sampled_from(RUNS),
                          st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                          max_size=4),
                                       max_leaves=20).map(json.dumps)), max_size=12))
def test_any_stream_gives_runs_and_notes_never_a_crash(messages):
    found, notes = timeline.runs(messages, IID)
    assert [r["at"] for r in found] == sorted(r["at"] for r in found)
    assert len(found) <= len(messages) and all(isinstance(n, str) for n in notes)
    good, bad = timeline.break_point(found)
    assert (good is None or good["exit_code"] == 0) and (bad is None or bad["exit_code"] == 1)
    for segment in timeline.segments(found):
        assert timeline.line(segment).startswith("  ")
