"""What changed between runs, end to end in-process: the same instance (real IMDSv2, DNS and TLS on loopback)
healthy, then broken, with the runs kept beside the spool (--ship) and with --since FILE."""
import json
import os

import pytest

from tests.conftest import validate_report

from .conftest import NO_LISTENER, OUTSIDE


@pytest.fixture
def kept(world, tmp_path):
    world.environ["VPCE_DOCTOR_SPOOL_DIR"] = str(tmp_path / "spool")
    world.environ["VPCE_DOCTOR_LOG_GROUP"] = "/vpce-doctor/reports"
    return tmp_path / "spool"


def comparison(run, against):
    report = validate_report(run.report)
    return next(c for c in report["changes"]["comparisons"] if c["against"] == against)


def test_a_healthy_run_then_a_public_answer_names_the_change_since_the_last_and_the_healthy_run(world, kept):
    first = world.doctor("--ship")
    assert first.code == 0 and "changes" not in first.report  # nothing kept yet: nothing to compare
    again = world.doctor("--ship")
    assert comparison(again, "last")["changed"] == [] and comparison(again, "last")["new_failures"] == []
    world.dns.set(world.name("ssmmessages"), OUTSIDE)
    broken = world.doctor("--ship")
    since_last = comparison(broken, "last")
    assert since_last["new_failures"] == ["dns:ssmmessages"]
    assert since_last["first_broken_at"] == broken.report["started_at"]
    assert {"id": "dns:ssmmessages", "what": "addresses", "was": ["127.0.0.11"], "now": [OUTSIDE]} \
        in since_last["changed"]
    assert since_last["changed"][0]["id"] == "dns:ssmmessages"  # the change behind the new failure comes first
    world.dns.set(world.name("ssm"), NO_LISTENER)
    later = world.doctor("--ship", output="text")
    assert "since the last run" in later.out and "now failing: tcp:ssm" in later.out
    assert "since the last healthy run" in later.out
    assert f"first broken run {broken.report['started_at']}" in later.out
    assert f"dns:ssmmessages addresses: now {OUTSIDE} (was 127.0.0.11)" in later.out
    assert sorted(os.listdir(kept)) == sorted([".vpce-doctor.lock", ".vpce-doctor.last.json",
                                               ".vpce-doctor.healthy.json", ".vpce-doctor.first-broken.json"]
                                              + [n for n in os.listdir(kept) if n.startswith("report-")])
    world.dns.set(world.name("ssm"), "127.0.0.10")
    world.dns.set(world.name("ssmmessages"), "127.0.0.11")
    fixed = world.doctor("--ship")
    assert fixed.code == 0 and sorted(comparison(fixed, "last")["fixed"]) == ["dns:ssmmessages", "tcp:ssm"]
    assert not (kept / ".vpce-doctor.first-broken.json").exists()  # healthy again: the next break is a new one


def test_since_file_compares_with_any_earlier_report_and_the_summary_says_it(world, tmp_path):
    earlier = tmp_path / "earlier.json"
    earlier.write_text(world.doctor().out)
    world.dns.set(world.name("ssm"), "nxdomain")
    run = world.doctor("--since", str(earlier), output="summary")
    assert run.code == 1
    assert "since the given report" in run.out and "now failing: dns:ssm" in run.out
    assert len(run.out) <= 2500
    as_json = world.doctor("--since", str(earlier))
    assert comparison(as_json, "file")["new_failures"] == ["dns:ssm"]


@pytest.mark.parametrize("content, why", [
    (b"", "not a JSON report"), (b"[" * 100_000, "nested too deep"), (b'{"schema": "other/1"}', "no vpce-doctor"),
    (b"\xff\xfe", "not a JSON report"), (b'{"schema": "vpce-doctor/report/1", "findings": 1}', "no vpce-doctor")])
def test_a_since_file_that_is_no_report_is_one_usage_line(world, tmp_path, content, why):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    run = world.doctor("--since", str(bad))
    assert run.code == 64 and run.out == "" and why in run.err and len(run.err.splitlines()) == 1


def test_a_since_fifo_or_missing_file_is_a_usage_error_not_a_hang(world, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert world.doctor("--since", str(tmp_path / "fifo")).code == 64
    assert "does not exist" in world.doctor("--since", str(tmp_path / "none.json")).err


@pytest.mark.parametrize("plant", ["garbage", "symlink", "deep", "wrong-shape", "infinity"])
def test_a_hostile_kept_run_is_a_note_set_aside_never_a_crash_or_a_loss(world, kept, tmp_path, plant):
    world.doctor("--ship")
    target = kept / ".vpce-doctor.last.json"
    secret = tmp_path / "secret"
    secret.write_text("do not read")
    target.unlink()
    if plant == "symlink":
        target.symlink_to(secret)
    else:
        target.write_text({"garbage": "\x00not json", "deep": "[" * 5000 + "]" * 5000,
                           "wrong-shape": json.dumps({"schema": "vpce-doctor/record/1", "checks": []}),
                           "infinity": '{"schema": "vpce-doctor/record/1", "started_at": "x", "exit_code": Infinity,'
                                       '"checks": {}}'}[plant])
    run = world.doctor("--ship")
    assert run.code == 0 and "Traceback" not in run.err
    notes = validate_report(run.report)["changes"]["notes"]
    assert any("the kept last run" in n and "set aside as .vpce-doctor.last.bad" in n for n in notes), notes
    assert (kept / ".vpce-doctor.last.bad").exists() or (kept / ".vpce-doctor.last.bad").is_symlink()
    assert secret.read_text() == "do not read"  # the symlink was set aside, never followed
    assert (kept / ".vpce-doctor.last.json").is_file()  # this run was kept in its place


# Issue 12 round 3: a report-shaped --since FILE with a finding's "needs" as a number gave exit 70 (TypeError).
def test_a_since_file_with_odd_finding_fields_is_compared_not_a_crash(world, tmp_path):
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"schema": "vpce-doctor/report/1", "exit_code": "x", "findings": [
        {"id": "dns:ssm", "status": "fail", "needs": 1, "evidence": []}, {"id": 5}, "text", None]}))
    run = world.doctor("--since", str(odd))
    assert run.code in (0, 1) and "Traceback" not in run.err, run.err
    assert comparison(run, "file")["fixed"] == ["dns:ssm"]
