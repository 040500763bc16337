"""vpce-doctor fleet without AWS: targets, the summary parser, verdicts, the exit policy, the matrix, polling."""
import json
import io

import pytest

from vpce_doctor import cli, fleet, fleet_api
from vpce_doctor.model import Check, Finding, Remedy, Report, Result, Severity, Status
from vpce_doctor.render import text
from vpce_doctor.settings import UsageError


def inv(iid, status, details=None):
    return {"InstanceId": iid, "Status": status, "StatusDetails": details or status}


FLEET = [inv("i-0000000000000000a", "Success"), inv("i-0000000000000000b", "Failed"),
         inv("i-0000000000000000c", "Failed", "Undeliverable"),
         inv("i-0000000000000000d", "TimedOut", "Delivery Timed Out"),
         inv("i-0000000000000000e", "Failed")]
FOUND = {"i-0000000000000000a": {"source": "logs", "exit_code": 0, "root_causes": []},
         "i-0000000000000000b": {"source": "output", "exit_code": 1,
                                 "root_causes": [{"id": "tcp:ssm", "code": "timeout"}]},
         "i-0000000000000000e": {"source": "logs", "exit_code": 1,
                                 "root_causes": [{"id": "tcp:ssm", "code": "timeout"},
                                                 {"id": "dns:resolver", "code": "down"}]}}


def test_targets_merge_values_of_one_key_and_and_different_keys():
    assert fleet.targets(["tag:Fleet=web", "tag:Fleet=api,web", "Key=tag:Env,Values=prod"]) == [
        {"Key": "tag:Fleet", "Values": ["web", "api"]}, {"Key": "tag:Env", "Values": ["prod"]}]
    assert fleet.targets(["instanceids=i-1,i-2"]) == [{"Key": "instanceids", "Values": ["i-1", "i-2"]}]
    for bad in ("Fleet=web", "tag:Fleet=", "tag:Fleet=a,,b", "name=x"):
        with pytest.raises(UsageError):
            fleet.targets([bad])


def test_the_real_summary_is_parsed_back():
    tcp = Check("tcp:ssm", "t", Severity.CRITICAL, lambda c, p: None)
    dns = Check("dns:ssm", "d", Severity.CRITICAL, lambda c, p: None)
    report = Report("0.1.0", "2026-11-28T00:00:00Z", 0.2, {"instance_id": "i-0abc", "region": "ap-northeast-1"}, (
        Finding(dns, Result(Status.PASS, "ok")),
        Finding(tcp, Result(Status.FAIL, "443 not reachable", code="timeout",
                            remedy=Remedy("open 443", ("aws ec2 authorize-security-group-ingress ...",)))),
        Finding(Check("tls:ssm", "s", Severity.CRITICAL, lambda c, p: None, ("tcp:ssm",)),
                Result(Status.SKIP, "blocked")),
        Finding(Check("clock:skew", "c", Severity.LOW, lambda c, p: None), Result(Status.WARN, "drift", code="x"))))
    assert fleet.parse_summary(text.summary(report)) == {
        "exit_code": 1, "root_causes": [{"id": "tcp:ssm", "code": "timeout"}]}
    healthy = Report("0.1.0", "t", 0.1, {}, (Finding(dns, Result(Status.PASS, "ok")),))
    assert fleet.parse_summary("agent noise\n" + text.summary(healthy)) == {"exit_code": 0, "root_causes": []}
    assert fleet.parse_summary("vpce-doctor-run: vpce-doctor is not installed\n") is None
    assert fleet.parse_summary("") is None


@pytest.mark.parametrize("status,details,code,verdict", [
    ("Success", "Success", 0, "healthy"), ("Success", "Success", None, "healthy"),
    ("Failed", "Failed", 1, "broken"), ("Failed", "Failed", 2, "incomplete"),
    ("Failed", "Failed", 127, "failed"), ("Failed", "Failed", None, "failed"),
    ("Failed", "Undeliverable", None, "not delivered"), ("TimedOut", "Delivery Timed Out", None, "not delivered"),
    ("TimedOut", "Execution Timed Out", 2, "timed out"), ("Failed", "Terminated", None, "not run"),
    ("Cancelled", "Cancelled", None, "not run"), ("Failed", "Access Denied", None, "not run"),
    ("InProgress", "InProgress", None, "pending"), ("Pending", "Pending", None, "pending")])
def test_verdicts(status, details, code, verdict):
    assert fleet.judge(status, details, code) == verdict


def test_exit_policy():
    def code(*rows):
        return fleet.summarize("c", [inv(f"i-{n}", s, d) for n, (s, d, _) in enumerate(rows)],
                               {f"i-{n}": {"exit_code": e} for n, (_, _, e) in enumerate(rows)})["exit_code"]
    ok, broken, incomplete = ("Success", None, 0), ("Failed", None, 1), ("Failed", None, 2)
    assert code(ok, ok) == 0
    assert code(ok, broken) == 1 and code(incomplete, broken) == 1
    assert code(ok, incomplete) == 2 and code(ok, ("InProgress", None, None)) == 2
    assert code(ok, ("Cancelled", None, None)) == 2
    assert code() == 2  # nothing matched the targets: nothing was assessed
    for failed in (("Failed", "Undeliverable", None), ("TimedOut", "Delivery Timed Out", None),
                   ("TimedOut", "Execution Timed Out", None), ("Failed", None, 127)):
        assert code(ok, incomplete, failed) == 1


def test_summary_document():
    doc = fleet.summarize("cmd-1", FLEET, FOUND)
    assert doc["schema"] == "vpce-doctor/fleet/1" and doc["command_id"] == "cmd-1" and doc["exit_code"] == 1
    rows = {r["instance_id"]: r for r in doc["instances"]}
    assert rows["i-0000000000000000a"] == {
        "instance_id": "i-0000000000000000a", "invocation_status": "Success", "status": "Success", "exit_code": 0,
        "verdict": "healthy", "root_causes": [], "source": "logs"}
    assert rows["i-0000000000000000c"]["source"] == "none" and rows["i-0000000000000000c"]["exit_code"] is None
    assert rows["i-0000000000000000d"]["invocation_status"] == "Delivery Timed Out"
    totals = doc["totals"]
    assert (totals["instances"], totals["healthy"], totals["broken"], totals["not_delivered"]) == (5, 1, 2, 2)
    assert totals["root_causes"] == {"tcp:ssm": 2, "dns:resolver": 1}
    assert totals["invocations"] == {"Success": 1, "Failed": 2, "Undeliverable": 1, "Delivery Timed Out": 1}
    # problems first, healthy last
    assert [r["verdict"] for r in doc["instances"]] == ["broken", "broken", "not delivered", "not delivered",
                                                        "healthy"]


def test_matrix():
    out = fleet.matrix(fleet.summarize("cmd-1", FLEET, FOUND))
    lines = out.splitlines()
    assert lines[0].split() == ["instance", "invocation", "exit", "verdict", "tcp:ssm", "dns:resolver"]
    cells = {line.split()[0]: line.split()[1:] for line in lines[1:6]}
    assert cells["i-0000000000000000e"] == ["Failed", "1", "broken", "timeout", "down"]
    assert cells["i-0000000000000000b"] == ["Failed", "1", "broken", "timeout", "·"]
    assert cells["i-0000000000000000a"] == ["Success", "0", "healthy", "·", "·"]
    assert cells["i-0000000000000000c"] == ["Undeliverable", "-", "not", "delivered"]  # no cells: never ran
    assert "Delivery Timed Out" in next(line for line in lines if line.startswith("i-0000000000000000d"))
    assert lines[-1] == "5 instance(s): 2 broken, 2 not delivered, 1 healthy (command cmd-1, exit 1)"
    assert "none matched the targets" in fleet.matrix(fleet.summarize("cmd-2", [], {}))


class FakeSsm:
    """ListCommands' counts, each poll one step further; ListCommandInvocations in pages of MaxResults."""

    def __init__(self, steps, invocations, throttle=0):
        self.steps, self.invocations, self.polls, self.throttle = steps, invocations, 0, throttle
        self.calls = []

    def _throttled(self, operation):
        from botocore.exceptions import ClientError
        self.calls.append(operation)
        if self.throttle:
            self.throttle -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)

    def list_commands(self, CommandId):
        self._throttled("ListCommands")
        step = self.steps[min(self.polls, len(self.steps) - 1)]
        self.polls += 1
        return {"Commands": [step]}

    def list_command_invocations(self, CommandId, Details, MaxResults, NextToken=None):
        self._throttled("ListCommandInvocations")
        assert Details is True and 1 <= MaxResults <= 50  # the API's range (botocore's ssm model)
        start = int(NextToken or 0)
        page = self.invocations[start:start + MaxResults]
        more = {"NextToken": str(start + MaxResults)} if start + MaxResults < len(self.invocations) else {}
        return {"CommandInvocations": page, **more}


def counts(status, target, completed, errors=0, timed_out=0):
    return {"Status": status, "TargetCount": target, "CompletedCount": completed, "ErrorCount": errors,
            "DeliveryTimedOutCount": timed_out}


def paced():
    """A pacer on a fake clock: every wait is recorded, nothing sleeps."""
    clock = [0.0]
    pace = fleet_api.Paced(5.0, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                           jitter=lambda: 1.0)
    return pace, clock


def test_poll_follows_the_counts_then_lists_every_invocation_once():
    steps = [counts("InProgress", 3, 0), counts("InProgress", 3, 0), counts("InProgress", 3, 1),
             counts("Failed", 3, 3, errors=1, timed_out=1)]
    listed = [inv("i-1", "Success"), inv("i-2", "Failed"), inv("i-3", "TimedOut", "Delivery Timed Out")]
    ssm, err = FakeSsm(steps, listed), io.StringIO()
    pace, _ = paced()
    got = fleet_api.poll(ssm, "c", deadline=float("inf"), interval=0.001, stderr=err, paced=pace)
    assert got == listed and ssm.calls == ["ListCommands"] * 4 + ["ListCommandInvocations"]
    assert err.getvalue().splitlines() == [
        "0/3 done", "1/3 done", "3/3 done: 1 failed or timed out, 1 delivery timed out",
        "3/3 done: 1 Success, 1 Failed, 1 Delivery Timed Out"]


def test_ten_thousand_invocations_are_two_hundred_pages_at_the_paced_rate():
    listed = [inv(f"i-{n:017x}", "Success") for n in range(10_000)]
    ssm = FakeSsm([counts("Success", 10_000, 10_000)], listed)
    pace, clock = paced()
    got = fleet_api.poll(ssm, "c", deadline=float("inf"), interval=0.5, stderr=io.StringIO(), paced=pace)
    assert len(got) == 10_000 and ssm.calls.count("ListCommandInvocations") == 200  # 50 a page (MaxResults' max)
    assert pace.requests == 201 and clock[0] >= 200 / 5.0  # never faster than 5 a second


def test_a_throttled_call_backs_off_and_is_made_again_once_said():
    ssm, err = FakeSsm([counts("Success", 1, 1)], [inv("i-1", "Success")], throttle=2), io.StringIO()
    pace, clock = paced()
    got = fleet_api.poll(ssm, "c", deadline=float("inf"), interval=0.001, stderr=err, paced=pace)
    assert got == [inv("i-1", "Success")] and pace.throttled == 2 and pace.requests == 4
    assert clock[0] >= 1.0 + 2.0  # full jitter at its top: 0.5 * 2, then 0.5 * 4 seconds
    assert err.getvalue().splitlines() == ["1/1 done", "1/1 done: 1 Success"]  # throttles are not failures


def test_poll_stops_at_the_deadline_and_lists_what_is_known():
    ssm = FakeSsm([counts("InProgress", 1, 0)], [inv("i-1", "InProgress")])
    got = fleet_api.poll(ssm, "c", deadline=0.0, interval=0.5, stderr=io.StringIO())
    assert got == [inv("i-1", "InProgress")] and ssm.calls == ["ListCommands", "ListCommandInvocations"]


def test_poll_on_a_terminal_rewrites_one_line_and_says_a_failing_poll_once():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    class Denied(FakeSsm):
        def list_commands(self, CommandId):
            from botocore.exceptions import ClientError
            if self.polls < 2:
                self.polls += 1
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListCommands")
            return super().list_commands(CommandId)

    err = Tty()
    got = fleet_api.poll(Denied([counts("Success", 1, 1)], [inv("i-1", "Success")]), "c", deadline=float("inf"),
                         interval=0.001, stderr=err, paced=paced()[0])
    assert got == [inv("i-1", "Success")]
    assert err.getvalue() == ("vpce-doctor fleet: ListCommands: AccessDeniedException: no\n"
                              "\r0/0 done\033[K\r1/1 done\033[K\r1/1 done: 1 Success\033[K\n")


def test_the_exit_code_and_summary_come_from_the_listed_plugin():
    listed = {**inv("i-1", "Failed"), "CommandPlugins": [{"Name": "runVpceDoctor", "ResponseCode": 1,
                                                          "Output": "x"}]}
    assert fleet_api.plugin(listed) == (1, "x")
    assert fleet_api.plugin(inv("i-1", "Pending")) == (None, "")
    assert fleet_api.plugin({**listed, "CommandPlugins": [{"Name": "runVpceDoctor", "ResponseCode": -1}]})[0] is None


@pytest.mark.parametrize("argv,message", [
    ([], "required: --targets"), (["--targets", "web"], "expected tag:KEY=VALUE"),
    (["--targets", "tag:a=b", "--max-concurrency", "0"], "--max-concurrency"),
    (["--targets", "tag:a=b", "--max-errors", "150%"], "--max-errors"),
    (["--targets", "tag:a=b", "--timeout", "0"], "--timeout"),
    (["--targets", "tag:a=b", "--region", "Tokyo"], "not a Region")])
def test_usage_errors_are_one_line_and_exit_64(argv, message):
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["fleet"] + argv, {}, out, err) == 64
    assert message in err.getvalue() and err.getvalue().count("\n") == 1 and not out.getvalue()


# Issue 12 item 16 and the trust boundary: another instance's output and shipped report are hostile data.
IID = "i-0123456789abcdef0"


def shipped_report(**changes):
    report = {"schema": "vpce-doctor/report/1", "exit_code": 1, "instance": {"instance_id": IID},
              "summary": {"root_causes": [{"id": "tcp:ssm", "code": "timeout"}]}}
    report.update(changes)
    return json.dumps(report)


@pytest.mark.parametrize("message", [
    "[" * 100_000, '{"schema": "vpce-doctor/report/1", "exit_code": Infinity}', "1e999", "not json", "",
    shipped_report(instance={"instance_id": "i-0ffffffffffffffff"}),  # another instance's report in this stream
    shipped_report(exit_code=7), shipped_report(exit_code=True), shipped_report(summary={"root_causes": "x"}),
    shipped_report(schema="other/1"), shipped_report(instance=None)])
def test_a_hostile_shipped_report_is_not_believed(message):
    assert fleet.parse_report(message, IID) is None


def test_forged_or_unbounded_root_causes_are_dropped_or_capped():
    causes = [{"id": "tcp:ssm", "code": "timeout"}, {"id": "x\x1b[2J:y", "code": "a"}, {"id": "dns:ssm",
                                                                                          "code": "\u202eevil"}]
    causes += [{"id": f"c:n{i}", "code": ""} for i in range(500)]
    parsed = fleet.parse_report(shipped_report(summary={"root_causes": causes}), IID)
    assert parsed["root_causes"][0] == {"id": "tcp:ssm", "code": "timeout"}
    assert len(parsed["root_causes"]) <= fleet.MAX_CAUSES
    assert all("\x1b" not in c["id"] and "\u202e" not in c["code"] for c in parsed["root_causes"])


# Issue 12 round 3: a root cause whose code was a number (or whose id was a list) passed the cause pattern once
# formatted, and the matrix then raised TypeError: one instance's shipped report cost the whole fleet view.
def test_a_root_cause_that_is_not_text_is_dropped_and_the_fleet_view_stands():
    causes = [{"id": "tcp:ssm", "code": 1}, {"id": ["dns:ssm"], "code": "x"}, {"id": "dns:ssm", "code": "nxdomain"}]
    parsed = fleet.parse_report(shipped_report(summary={"root_causes": causes}), IID)
    assert parsed["root_causes"] == [{"id": "dns:ssm", "code": "nxdomain"}]
    found = {IID: {"source": "logs", **parsed}}
    row = fleet.matrix(fleet.summarize("cmd-1", [inv(IID, "Failed")], found)).splitlines()[1]
    assert row.split()[-1] == "nxdomain"


def test_a_report_or_summary_that_disagrees_with_run_command_is_a_conflict():
    said = {"exit_code": 0, "root_causes": []}
    assert fleet.believed(1, said, None) == {"source": "conflict", "exit_code": 1, "root_causes": [],
                                            "conflict": "its logs says exit 0, Run Command recorded 1"}
    assert fleet.believed(0, said, None)["source"] == "logs"
    assert fleet.believed(None, said, said)["source"] == "conflict"  # no status from SSM: nothing to agree with
    assert fleet.believed(2, None, {"exit_code": 2, "root_causes": []})["source"] == "output"


def test_a_summary_line_for_another_instance_or_a_forged_cause_is_ignored():
    forged = ("vpce-doctor 0.1.0 i-0ffffffffffffffff eu-west-1: healthy (exit 0; 1 pass)\n"
              f"vpce-doctor 0.1.0 {IID} eu-west-1: broken (exit 1; 0 pass, 0 warn, 1 fail, 0 skip, 0 error)\n"
              "tcp:ssm [timeout] 443 not reachable\nnoise\nforged:cause [x] after the summary\n")
    assert fleet.parse_summary(forged, IID) == {"exit_code": 1, "root_causes": [{"id": "tcp:ssm", "code": "timeout"}]}


def test_the_matrix_is_bounded_and_shows_no_escape_characters():
    invocations = [{"InstanceId": f"i-{n:017x}", "Status": "Success", "StatusDetails": "Success\x1b[2J"}
                   for n in range(3)]
    found = {i["InstanceId"]: {"source": "logs", "exit_code": 1, "root_causes": [
        {"id": f"c:n{n}-{k}", "code": "x"} for k in range(fleet.MAX_CAUSES)]} for n, i in enumerate(invocations)}
    out = fleet.matrix(fleet.summarize("cmd-1", invocations, found))
    header = out.splitlines()[0].split()
    assert len(header) == 4 + fleet.MAX_COLUMNS + 1 and header[-1] == "more"
    assert "\x1b" not in out


def test_the_change_that_broke_an_instance_is_its_column_and_its_group():
    """The change comes from the instance's own report (changes.comparisons) or its summary's change line."""
    change = {"comparisons": [{"against": "healthy", "at": "2026-11-28T12:00:00.000Z", "exit_code": 0,
                               "new_failures": ["dns:ssmmessages"], "fixed": [], "changed_total": 1,
                               "changed": [{"id": "dns:ssmmessages", "what": "addresses", "was": ["10.0.1.11"],
                                            "now": ["203.0.113.10"]}]}], "notes": []}
    parsed = fleet.parse_report(shipped_report(changes=change), IID)
    assert parsed["changed"] == "dns:ssmmessages addresses: now 203.0.113.10 (was 10.0.1.11)"
    summary = (f"vpce-doctor 0.2.0 {IID} eu-west-1: broken (exit 1; 1 pass, 0 warn, 1 fail, 0 skip, 0 error)\n"
               "dns:ssmmessages [public-answer] ssmmessages.eu-west-1.amazonaws.com → 203.0.113.10\n"
               "since the last healthy run (2026-11-28T12:00:00.000Z, exit 0):\nnow failing: dns:ssmmessages\n"
               "dns:ssmmessages addresses: now 203.0.113.10 (was 10.0.1.11)\n")
    assert fleet.parse_summary(summary, IID)["changed"] == parsed["changed"]
    invocations = [inv(f"i-{n}", "Failed") for n in range(3)]
    found = {"i-0": {"exit_code": 1, "root_causes": [], "changed": "tcp:ssm probes.10.0.1.10.result: now timeout "
                                                                   "(was open)"},
             "i-1": {"exit_code": 1, "root_causes": [], "changed": parsed["changed"]},
             "i-2": {"exit_code": 1, "root_causes": [], "changed": parsed["changed"]}}
    doc = fleet.summarize("c", invocations, found)
    assert [r["instance_id"] for r in doc["instances"]] == ["i-1", "i-2", "i-0"]  # grouped by change
    assert doc["totals"]["changes"] == {parsed["changed"]: 2, found["i-0"]["changed"]: 1}
    lines = fleet.matrix(doc).splitlines()
    assert lines[0].endswith("changed since healthy") and lines[1].endswith(parsed["changed"])


def test_the_first_broken_run_per_instance_from_its_report_or_summary():
    """A report's comparison with its last healthy run carries first_broken_at (history.comparisons); a summary
    says "first broken run <time>" (changes.lines). The matrix shows it beside the change."""
    change = {"comparisons": [{"against": "healthy", "at": "2026-11-28T12:00:00.000Z", "exit_code": 0,
                               "first_broken_at": "2026-11-28T12:15:00.000Z", "new_failures": ["tcp:ssm"],
                               "fixed": [], "changed_total": 1, "changed": [
                                   {"id": "tcp:ssm", "what": "probes.10.0.1.10.result", "was": "open",
                                    "now": "timeout"}]}], "notes": []}
    parsed = fleet.parse_report(shipped_report(changes=change), IID)
    assert parsed["first_broken"] == "2026-11-28T12:15:00.000Z"
    hostile = {"comparisons": [{**change["comparisons"][0], "first_broken_at": "soon\x1b[2J"}]}
    assert "first_broken" not in fleet.parse_report(shipped_report(changes=hostile), IID)
    summary = (f"vpce-doctor 0.2.0 {IID} eu-west-1: broken (exit 1; 1 pass, 0 warn, 1 fail, 0 skip, 0 error)\n"
               "tcp:ssm [timeout] 10.0.1.10:443 timed out\n"
               "since the last healthy run (2026-11-28T12:00:00.000Z, exit 0):\n"
               "first broken run 2026-11-28T12:15:00.000Z\nnow failing: tcp:ssm\n")
    assert fleet.parse_summary(summary, IID)["first_broken"] == parsed["first_broken"]
    doc = fleet.summarize("c", [inv(IID, "Failed")], {IID: parsed})
    assert doc["instances"][0]["first_broken"] == parsed["first_broken"]
    lines = fleet.matrix(doc).splitlines()
    assert "first broken" in lines[0] and parsed["first_broken"] in lines[1]


def test_remote_verdicts_for_the_instances_the_command_never_reached():
    from vpce_doctor import fleet as fleet_mod
    from vpce_doctor.checks import remote as judge
    from vpce_doctor.model import Check, Finding, Report, Severity
    role = Check("iam:role", "", Severity.CRITICAL, lambda c, p: None)
    asked = []

    def diagnose(iid, settings, environ):  # the seam: remote.diagnose, whose judges have their own tests
        asked.append((iid, settings.region))
        return Report("0.1.0", "2026-11-29T00:00:00Z", 1.0, {}, (Finding(role, judge.assess_role(None, None, None,
                                                                                                   iid)),), "remote")
    invocations = [{"InstanceId": "i-0aaaaaaaaaaaaaaa1", "Status": "Failed", "StatusDetails": "Undeliverable"},
                   {"InstanceId": "i-0aaaaaaaaaaaaaaa2", "Status": "TimedOut", "StatusDetails": "Delivery Timed Out"},
                   {"InstanceId": "i-0aaaaaaaaaaaaaaa3", "Status": "Success", "StatusDetails": "Success"}]
    wanted = [i["InstanceId"] for i in invocations if fleet_mod.undelivered(i)]
    from vpce_doctor import remote as remote_mod
    found = remote_mod.fleet_verdicts(wanted, "eu-west-1", {}, diagnose)
    assert sorted(asked) == [("i-0aaaaaaaaaaaaaaa1", "eu-west-1"), ("i-0aaaaaaaaaaaaaaa2", "eu-west-1")]
    doc = fleet_mod.summarize("cmd-1", invocations, found)
    row = next(r for r in doc["instances"] if r["instance_id"] == "i-0aaaaaaaaaaaaaaa1")
    assert row["verdict"] == "not delivered" and row["source"] == "remote" and row["remote_exit_code"] == 1
    assert row["root_causes"] == [{"id": "iam:role", "code": "no-instance-profile"}]
    assert "no-instance-profile" in fleet_mod.matrix(doc).splitlines()[1]
