"""Ship the JSON report to CloudWatch Logs (with EMF metrics), after local output; spool it when that fails.

One event per run carries the whole report and the run's metrics; one small event per failed check carries the
per-check metric, since an EMF event has one value per dimension. The spool (spool.py) holds every report until
CloudWatch accepted it.
"""
from __future__ import annotations

import json
import time
from typing import Dict, List, Optional, Tuple

from .spool import Rejected

NAMESPACE = "VpceDoctor"
MAX_EVENT = 256 * 1024           # the older, stricter PutLogEvents event limit


def events(report: Dict, now_ms: Optional[int] = None) -> List[Tuple[int, str]]:
    """(timestamp ms, message) events for one report: the report with its metrics, then one per failed check."""
    now_ms = now_ms or int(time.time() * 1000)
    counts = report["summary"]["counts"]
    document = {**report, "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
        "Namespace": NAMESPACE, "Dimensions": [[], ["Region"]],
        "Metrics": [{"Name": n, "Unit": "Count"} for n in ("Failures", "Warnings", "Errors")]}]},
        "Region": report["instance"].get("region") or "unknown",
        "Failures": counts["fail"], "Warnings": counts["warn"], "Errors": counts["error"]}
    out = [(now_ms, fit(document))]
    for cause in report["summary"]["root_causes"]:
        out.append((now_ms, json.dumps({
            "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
                "Namespace": NAMESPACE, "Dimensions": [["Check"], ["Check", "Code"]],
                "Metrics": [{"Name": "CheckFailed", "Unit": "Count"}]}]},
            "Check": cause["id"], "Code": cause["code"] or "none", "CheckFailed": 1,
            "InstanceId": report["instance"].get("instance_id"), "Summary": cause["summary"][:500]})))
    return out + run_change(report, now_ms)


def run_change(report: Dict, now_ms: int) -> List[Tuple[int, str]]:
    """A small event per run compared with kept runs: the ChangedSinceHealthy metric (1 when this run has a failure
    the last healthy run had not) and the change behind it, for the fleet's Logs Insights queries (a report event is
    too wide for Insights to discover its deep fields)."""
    from .changes import lines
    kept = [c for c in (report.get("changes") or {}).get("comparisons") or () if c.get("against") in ("last",
                                                                                                       "healthy")]
    if not kept:
        return []
    broke = next((c for c in kept if c.get("exit_code") == 0 and c.get("new_failures")), None)
    said = [x.strip() for x in lines({**broke, "first_broken_at": None}, limit=1)][-1:] if broke and broke.get(
        "changed") else []
    healthy = next((c.get("at") for c in kept if c.get("exit_code") == 0), None)
    return [(now_ms, json.dumps({
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [[]],
            "Metrics": [{"Name": "ChangedSinceHealthy", "Unit": "Count"}]}]},
        "ChangedSinceHealthy": int(broke is not None), "InstanceId": report["instance"].get("instance_id"),
        "ExitCode": report.get("exit_code"), "HealthyAt": healthy,
        "FirstBrokenAt": next((c.get("first_broken_at") for c in kept if c.get("first_broken_at")), None),
        "NewFailures": list(broke.get("new_failures") or [])[:20] if broke else [],
        "Change": said[0][:500] if said and "now" in said[0] else None}))]


def fit(document: Dict) -> str:
    """The document as JSON within MAX_EVENT: evidence is trimmed first (passing findings' first), never verdicts."""
    text = json.dumps(document, default=str)
    findings = document.get("findings", [])
    for finding in sorted(findings, key=lambda f: f["status"] != "pass"):
        if len(text.encode()) <= MAX_EVENT:
            break
        finding["evidence"] = {"trimmed": True}
        text = json.dumps(document, default=str)
    if len(text.encode()) > MAX_EVENT:  # still too big: drop remedies' links and causes, keep status and summary
        for finding in findings:
            finding["cause"], finding["remedy"] = finding["cause"][:200], None
        text = json.dumps(document, default=str)
    return text


def put(client, group: str, stream: str, batch: List[Tuple[int, str]]) -> Rejected:
    """One PutLogEvents call for a batch that fits one (the spool groups them); raises ShipError on failure.

    What CloudWatch did not store comes back in rejectedLogEventsInfo, not as an error: the caller decides, per
    event, whether it was shipped. The stream is created only when PutLogEvents says it does not exist, so a
    healthy run makes one call.
    """
    from .aws import call
    events = [{"timestamp": ts, "message": msg} for ts, msg in sorted(batch)]  # CloudWatch wants them in order
    put_ = call(client, "put_log_events", logGroupName=group, logStreamName=stream, logEvents=events)
    if not put_.ok and put_.code == "ResourceNotFoundException":
        created = call(client, "create_log_stream", logGroupName=group, logStreamName=stream)
        if not created.ok and created.code != "ResourceAlreadyExistsException":
            raise ShipError(f"CreateLogStream {group}/{stream}: {created.code}: "
                            f"{str(created.message)[:200]}")
        put_ = call(client, "put_log_events", logGroupName=group, logStreamName=stream, logEvents=events)
    if not put_.ok:
        raise ShipError(f"PutLogEvents {group}/{stream}: {put_.code}: {str(put_.message)[:200]}")
    return Rejected(put_.response.get("rejectedLogEventsInfo"))


class ShipError(Exception):
    pass
