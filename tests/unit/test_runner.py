"""The runner with fake checks: order, skip propagation, crash → ERROR, deadline, interruption."""
import threading
import time

import pytest

from vpce_doctor.model import Check, ExitCode, Finding, Report, Result, Severity, Status
from vpce_doctor.runner import CatalogueError, run_checks


def fixed(status, summary="seen"):
    return lambda ctx, prior: Result(status, summary, code="" if status is Status.PASS else "x")


def check(id, run, needs=(), after=()):
    return Check(id, id, Severity.CRITICAL, run, tuple(needs), tuple(after))


def run(checks, timeout=5.0, **kwargs):
    ran = run_checks(checks, None, deadline=time.monotonic() + timeout, **kwargs)
    assert not ran.interrupted
    return ran.findings


def test_findings_come_back_in_catalogue_order_whatever_finishes_first():
    slow = lambda ctx, prior: (time.sleep(0.2), Result(Status.PASS, "slow"))[1]
    findings = run([check("a:slow", slow), check("b:fast", fixed(Status.PASS))])
    assert [f.check.id for f in findings] == ["a:slow", "b:fast"]


def test_a_failed_prerequisite_skips_dependents_and_names_the_blocker():
    findings = run([check("dns:x", fixed(Status.FAIL)), check("tcp:x", fixed(Status.PASS), ["dns:x"]),
                    check("tls:x", fixed(Status.PASS), ["tcp:x"])])
    assert [f.status for f in findings] == [Status.FAIL, Status.SKIP, Status.SKIP]
    assert findings[1].result.summary == "not run: dns:x is fail"
    assert findings[2].result.summary == "not run: tcp:x is skip"


def test_a_warning_prerequisite_lets_dependents_run_and_they_see_only_what_they_need():
    seen = {}

    def spy(ctx, prior):
        seen.update(prior)
        return Result(Status.PASS, "ok")

    run([check("a:one", fixed(Status.WARN)), check("a:two", fixed(Status.PASS)), check("b:x", spy, ["a:one"])])
    assert list(seen) == ["a:one"] and seen["a:one"].status is Status.WARN


def test_a_crash_is_an_error_finding_carrying_the_exception():
    def boom(ctx, prior):
        raise ZeroDivisionError("division by zero")

    findings = run([check("a:boom", boom), check("b:after", fixed(Status.PASS), ["a:boom"])])
    assert findings[0].status is Status.ERROR and "ZeroDivisionError" in findings[0].result.summary
    assert "Traceback" in findings[0].result.evidence["traceback"]
    assert findings[1].status is Status.SKIP


def test_a_check_returning_garbage_is_an_error():
    findings = run([check("a:bad", lambda ctx, prior: "not a result")])
    assert findings[0].status is Status.ERROR and "not Result" in findings[0].result.summary


def test_the_deadline_holds_when_a_check_hangs():
    stop = threading.Event()
    hang = lambda ctx, prior: (stop.wait(10), Result(Status.PASS, "late"))[1]
    started = time.monotonic()
    findings = run([check("a:hang", hang), check("b:after", fixed(Status.PASS), ["a:hang"]),
                    check("c:free", fixed(Status.PASS))], timeout=0.3)
    elapsed = time.monotonic() - started
    stop.set()
    assert elapsed < 0.8
    assert findings[0].status is Status.ERROR and "deadline" in findings[0].result.summary
    assert findings[1].status is Status.ERROR and "not started" in findings[1].result.summary
    assert findings[2].status is Status.PASS


def test_live_output_sees_each_finding_once_in_catalogue_order():
    seen = []
    slow = lambda ctx, prior: (time.sleep(0.1), Result(Status.PASS, "slow"))[1]
    run([check("a:slow", slow), check("b:x", fixed(Status.PASS)), check("c:y", fixed(Status.FAIL))],
        on_finding=lambda f: seen.append(f.check.id))
    assert seen == ["a:slow", "b:x", "c:y"]


def test_a_cycle_or_unknown_prerequisite_is_rejected_before_anything_runs():
    with pytest.raises(CatalogueError, match="not earlier"):
        run([check("a:x", fixed(Status.PASS), ["b:y"]), check("b:y", fixed(Status.PASS), ["a:x"])])
    with pytest.raises(CatalogueError, match="duplicate"):
        run([check("a:x", fixed(Status.PASS)), check("a:x", fixed(Status.PASS))])


def test_interruption_settles_everything_and_keeps_what_finished():
    def interrupt(ctx, prior):
        raise KeyboardInterrupt  # stands for Ctrl-C arriving while the main thread waits

    first = [check("a:done", fixed(Status.PASS))]

    def on_finding(finding):
        if finding.check.id == "a:done":
            raise KeyboardInterrupt

    stopped = run_checks(first + [check("b:later", lambda ctx, prior: (time.sleep(1), Result(Status.PASS, "x"))[1])],
                         None, deadline=time.monotonic() + 5, on_finding=on_finding)
    assert stopped.interrupted  # returned, not raised: the findings are the report either way
    statuses = {f.check.id: f.status for f in stopped.findings}
    assert statuses == {"a:done": Status.PASS, "b:later": Status.ERROR}


def report(*statuses):
    checks = [check(f"c:{i}", fixed(s)) for i, s in enumerate(statuses)]
    return Report("0.1.0", "2026-11-28T00:00:00Z", 0.1, {}, tuple(
        Finding(c, Result(s, "x", code="x")) for c, s in zip(checks, statuses)))


def test_exit_code_policy():
    assert report(Status.PASS, Status.WARN).exit_code is ExitCode.OK
    assert report(Status.PASS, Status.FAIL, Status.ERROR).exit_code is ExitCode.PROBLEMS
    assert report(Status.PASS, Status.ERROR).exit_code is ExitCode.INCOMPLETE
    assert report(Status.PASS, Status.SKIP).exit_code is ExitCode.INCOMPLETE


def test_root_causes_exclude_what_they_blocked():
    findings = run([check("dns:resolver", fixed(Status.FAIL))]
                   + [check(f"dns:s{i}", fixed(Status.PASS), ["dns:resolver"]) for i in range(30)])
    rep = Report("0.1.0", "t", 0.1, {}, findings)
    assert [f.check.id for f in rep.root_causes] == ["dns:resolver"]
    assert len(rep.blocked_by("dns:resolver")) == 30


def test_after_waits_for_any_outcome_and_sees_it_without_being_blocked():
    seen = {}

    def spy(ctx, prior):
        seen.update(prior)
        return Result(Status.PASS, "ok")

    findings = run([check("a:fails", fixed(Status.FAIL)), check("b:later", spy, after=["a:fails"])])
    assert findings[1].status is Status.PASS and seen["a:fails"].status is Status.FAIL
