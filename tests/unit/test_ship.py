"""Shipping's pure parts and the spool on a real directory: sizes, trimming, bounds, order, concurrency."""
import json
import threading
import time

from vpce_doctor import ship


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
    monkeypatch.setattr(ship, "SPOOL_FILES", 3)
    spool = ship.Spool(str(tmp_path / "spool"))
    now = 1_700_000_000_000
    dropped = [spool.add([(now + i, f"report {i}")]) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    sent = []
    monkeypatch.setattr(ship.time, "time", lambda: now / 1000)
    assert spool.drain(sent.append) == (3, 2)
    assert [batch[0][1] for batch in sent] == ["report 2", "report 3", "report 4"]
    assert spool.drain(sent.append) == (0, 0)


def test_a_failed_send_keeps_the_batch_and_a_corrupt_file_is_set_aside(tmp_path):
    spool = ship.Spool(str(tmp_path))
    spool.add([(int(time.time() * 1000), "kept")])
    (tmp_path / "000000000000001-0-0.json").write_text("{not json")

    def fail(batch):
        raise ship.ShipError("logs endpoint timed out")

    try:
        spool.drain(fail)
    except ship.ShipError:
        pass
    assert len(list(tmp_path.glob("*.json"))) == 1 and len(list(tmp_path.glob("*.bad"))) == 1


def test_concurrent_runs_do_not_corrupt_the_spool(tmp_path):
    spool = ship.Spool(str(tmp_path))
    threads = [threading.Thread(target=spool.add, args=([(10**12 + i, "x" * 1000)],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 20 and all(json.loads(f.read_text())[0][1] == "x" * 1000 for f in files)
