"""Shipping's pure parts and the spool on a real directory: sizes, trimming, bounds, order, concurrency."""
import json
import threading
import time

from vpce_doctor import ship
from vpce_doctor import spool as spool_mod


def report(findings=3, evidence_bytes=10):
    return {"schema": "vpce-doctor/report/1", "instance": {"instance_id": "i-1", "region": "eu-west-1"},
            "summary": {"counts": {"pass": findings - 1, "warn": 0, "fail": 1, "skip": 0, "error": 0},
                        "root_causes": [{"id": "tcp:ssm", "code": "timeout", "summary": "443 not reachable",
                                         "blocked": []}], "warnings": []},
            "findings": [{"id": f"c:{i}", "status": "fail" if i == 0 else "pass", "summary": f"seen {i}",
                          "cause": "because", "remedy": None, "evidence": {"blob": "x" * evidence_bytes}}
                         for i in range(findings)]}


def test_one_report_event_with_run_metrics_and_one_event_per_root_cause():
    out = ship.events(report(), now_ms=1_700_000_000_000)
    document, per_check = json.loads(out[0][1]), json.loads(out[1][1])
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "VpceDoctor"
    assert (document["Failures"], document["Warnings"], document["Errors"]) == (1, 0, 0)
    assert (per_check["Check"], per_check["Code"], per_check["CheckFailed"]) == ("tcp:ssm", "timeout", 1)
    assert [ts for ts, _ in out] == [1_700_000_000_000] * 2


def test_oversized_reports_lose_evidence_first_and_never_verdicts():
    big = report(findings=40, evidence_bytes=20_000)
    text = ship.fit(json.loads(json.dumps(big)))
    assert len(text.encode()) <= ship.MAX_EVENT
    kept = json.loads(text)
    assert [f["status"] for f in kept["findings"]] == [f["status"] for f in big["findings"]]
    assert kept["findings"][0]["evidence"] != {"trimmed": True}  # the failure's evidence is trimmed last


def test_the_spool_is_bounded_and_drains_oldest_first(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "SPOOL_FILES", 3)
    spool = spool_mod.Spool(str(tmp_path / "spool"))
    now = int(time.time() * 1000)
    dropped = [spool.add([(now + i, f"report {i}")])[1] for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    sent = []

    def send(events):
        sent.append(events)
        return spool_mod.Rejected()
    drained = spool.drain(send, lambda: 10.0)
    assert (drained.count("accepted"), drained.dropped) == (3, 2)
    assert [message for _, message in sent[0]] == ["report 2", "report 3", "report 4"]  # one call for all three
    assert spool.drain(send, lambda: 10.0).outcome == {}


def test_a_failed_send_keeps_the_batch_and_a_corrupt_file_is_set_aside(tmp_path):
    spool = spool_mod.Spool(str(tmp_path))
    spool.add([(int(time.time() * 1000), "kept")])
    (tmp_path / "report-000000000000001-0-0.json").write_text("{not json")

    def fail(batch):
        raise ship.ShipError("logs endpoint timed out")

    try:
        spool.drain(fail, lambda: 10.0)
    except ship.ShipError:
        pass
    assert len(list(tmp_path.glob("*.json"))) == 1 and len(list(tmp_path.glob("*.bad"))) == 1


def test_concurrent_runs_do_not_corrupt_the_spool(tmp_path):
    spool = spool_mod.Spool(str(tmp_path))
    threads = [threading.Thread(target=spool.add, args=([(10**12 + i, "x" * 1000)],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 20 and all(json.loads(f.read_text())[0][1] == "x" * 1000 for f in files)


# PutLogEvents' rejectedLogEventsInfo: indices into the batch
# (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html).
def test_rejected_log_events_info_names_each_events_fate():
    rejected = spool_mod.Rejected({"tooOldLogEventEndIndex": 1, "expiredLogEventEndIndex": 0,
                                   "tooNewLogEventStartIndex": 4})
    assert [rejected.verdict(i) for i in range(6)] == ["expired", "too-old", "accepted", "accepted", "too-new",
                                                       "too-new"]
    assert not spool_mod.Rejected({}) and not spool_mod.Rejected(None)
    assert not spool_mod.Rejected({"tooNewLogEventStartIndex": True, "tooOldLogEventEndIndex": -1})



def test_a_run_broken_since_its_last_healthy_one_ships_changed_since_healthy():
    change = {"comparisons": [{"against": "last", "at": "2026-11-28T12:00:00.000Z", "exit_code": 0,
                               "first_broken_at": "2026-11-28T12:15:00.000Z", "new_failures": ["tcp:ssm"],
                               "fixed": [], "changed_total": 1, "changed": [
                                   {"id": "tcp:ssm", "what": "probes.10.0.1.10.result", "was": "open",
                                    "now": "timeout"}]}], "notes": []}
    out = ship.events({**report(), "changes": change}, now_ms=1_700_000_000_000)
    run = json.loads(out[-1][1])
    assert run["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "ChangedSinceHealthy", "Unit": "Count"}]
    assert (run["ChangedSinceHealthy"], run["NewFailures"], run["FirstBrokenAt"]) == (
        1, ["tcp:ssm"], "2026-11-28T12:15:00.000Z")
    assert run["Change"] == "tcp:ssm probes.10.0.1.10.result: now timeout (was open)"
    steady = {"comparisons": [{**change["comparisons"][0], "exit_code": 1, "new_failures": [], "changed": []}],
              "notes": []}
    assert json.loads(ship.events({**report(), "changes": steady})[-1][1])["ChangedSinceHealthy"] == 0
    assert all("ChangedSinceHealthy" not in m for _, m in ship.events(report()))  # nothing kept: no such event
