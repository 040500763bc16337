"""Ship the JSON report to CloudWatch Logs (with EMF metrics), after local output; spool it when that fails.

One event per run carries the whole report and the run's metrics; one small event per failed check carries the
per-check metric, since an EMF event has one value per dimension. Reports that could not be sent wait in a
bounded spool and go first with the next run that can ship: nothing is lost while the spool has room.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

NAMESPACE = "VpceDoctor"
MAX_EVENT = 256 * 1024           # the older, stricter PutLogEvents event limit
MAX_BATCH = 1_048_576            # sum of UTF-8 sizes + 26 bytes per event
MAX_AGE_MS = 14 * 24 * 3600 * 1000 - 3600 * 1000  # CloudWatch rejects events older than 14 days
SPOOL_FILES, SPOOL_BYTES = 50, 5 * 1024 * 1024


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
    return out


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


class Spool:
    """Reports waiting to be shipped, oldest first, bounded in count and bytes; safe for concurrent runs."""

    def __init__(self, directory: str):
        self.dir = Path(directory)

    def _lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.dir / ".lock", "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def add(self, batch: List[Tuple[int, str]]) -> int:
        """Keep a batch for later; returns how many old batches had to be dropped to make room."""
        with self._lock():
            name = self.dir / f"{batch[0][0]:015d}-{os.getpid()}-{time.monotonic_ns()}.json"
            temporary = name.with_suffix(".tmp")
            temporary.write_text(json.dumps(batch))
            os.replace(temporary, name)  # a reader never sees half a file
            dropped = 0
            while True:
                files = self._files()
                if len(files) <= SPOOL_FILES and sum(f.stat().st_size for f in files) <= SPOOL_BYTES:
                    break
                files[0].unlink()
                dropped += 1
            if dropped:
                counter = self.dir / "dropped"
                total = int(counter.read_text() or 0) if counter.exists() else 0
                counter.write_text(str(total + dropped))
            return dropped

    def drain(self, send) -> Tuple[int, int]:
        """Send every spooled batch with send(batch), oldest first, removing each once sent; stop at the first
        failure. Returns (batches sent, batches dropped earlier for lack of room, now reported)."""
        sent = 0
        with self._lock():
            for path in self._files():
                try:
                    batch = [(int(ts), str(msg)) for ts, msg in json.loads(path.read_text())]
                except (OSError, ValueError, TypeError):
                    path.rename(path.with_suffix(".bad"))  # keep it for a human, never block the queue
                    continue
                fresh = [e for e in batch if e[0] >= int(time.time() * 1000) - MAX_AGE_MS]
                if fresh:
                    send(fresh)
                path.unlink()
                sent += 1
            counter = self.dir / "dropped"
            dropped = int(counter.read_text() or 0) if counter.exists() else 0
            if dropped:
                counter.unlink()
        return sent, dropped

    def _files(self) -> List[Path]:
        return sorted(self.dir.glob("*.json"))


def ship(client, group: str, stream: str, batch: List[Tuple[int, str]]) -> None:
    """One PutLogEvents call for the batch (chronological, within the batch limit); raises on failure."""
    from .aws import call
    created = call(client, "create_log_stream", logGroupName=group, logStreamName=stream)
    if not created.get("ok") and created.get("code") != "ResourceAlreadyExistsException":
        raise ShipError(f"CreateLogStream {group}/{stream}: {created.get('code')}: {created.get('message')}")
    batch = sorted(batch)
    while batch:
        chunk, size = [], 0
        while batch and size + len(batch[0][1].encode()) + 26 <= MAX_BATCH and len(chunk) < 10_000:
            size += len(batch[0][1].encode()) + 26
            chunk.append(batch.pop(0))
        if not chunk:  # one oversized event: fit() keeps events small, so this is only a safety net
            batch.pop(0)
            continue
        put = call(client, "put_log_events", logGroupName=group, logStreamName=stream,
                   logEvents=[{"timestamp": ts, "message": msg} for ts, msg in chunk])
        if not put.get("ok"):
            raise ShipError(f"PutLogEvents {group}/{stream}: {put.get('code')}: {str(put.get('message'))[:200]}")


class ShipError(Exception):
    pass
