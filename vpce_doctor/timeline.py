"""An instance's runs read back from the reports it shipped: the timeline of its states, its last healthy and first
broken run, and what changed between them (changes.py). Pure: no I/O.

A shipped event is outside data (anyone who may write to the log group may write to the stream): each one is parsed
bounded, believed only when it is a vpce-doctor report of this instance with a time and a verdict, and otherwise
counted and named in a note, never a crash.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import changes
from .instance_files import parse_json

REPORT_SCHEMA = "vpce-doctor/report/1"
MAX_EVENT = 1024 * 1024  # CloudWatch Logs' largest event (1 MB, PutLogEvents API reference); ship.py writes <= 256 KB
MAX_DEPTH = 32
MAX_CAUSES = 6  # root causes shown per timeline line
# started_at as the doctor writes it (render/document.py): ISO 8601 UTC, milliseconds, Z
STARTED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z\Z", re.ASCII)
CAUSE_RE = re.compile(r"^[a-z0-9_-]{1,24}:[a-z0-9_.:-]{1,64}\Z", re.ASCII)  # a check id (fleet.CAUSE_RE's)
CODE_RE = re.compile(r"^[a-z0-9_.-]{0,48}\Z", re.ASCII)
VERDICTS = {0: "healthy", 1: "broken", 2: "incomplete"}
RESOURCE_RE = re.compile(r"\b(?:sg|rtb|vpce|acl|pl|subnet|vpc|eni)-[0-9a-f]{8}", re.ASCII)  # EC2 resource ids


def run(message: str, instance_id: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """One shipped event as a run (its record, verdict and root causes), or None and why it is not one; "" for the
    doctor's own small metric events, which are no report and need no note."""
    if len(message) > MAX_EVENT:
        return None, "larger than 1 MB"
    try:
        report = parse_json(message, max_depth=MAX_DEPTH)
    except (ValueError, RecursionError):
        return None, "not JSON"
    if not isinstance(report, dict):
        return None, "not a report"
    if report.get("schema") != REPORT_SCHEMA:
        return None, "" if "_aws" in report else "not a report"
    instance: Dict[str, Any] = report["instance"] if isinstance(report.get("instance"), dict) else {}
    code, started = report.get("exit_code"), report.get("started_at")
    if instance.get("instance_id") != instance_id:
        return None, "another instance's report"
    if type(code) is not int or code not in VERDICTS or not isinstance(started, str) or not STARTED_RE.match(started):
        return None, "a report without a time or verdict"
    return {"at": started, "exit_code": code, "causes": _causes(report), "record": changes.record(report)}, ""


def _causes(report: Mapping[str, Any]) -> List[Tuple[str, str]]:
    summary: Mapping[str, Any] = report["summary"] if isinstance(report.get("summary"), dict) else {}
    found: List[Any] = summary["root_causes"] if isinstance(summary.get("root_causes"), list) else []
    return sorted({(c["id"], str(c.get("code") or "")) for c in found if isinstance(c, dict)
                   and isinstance(c.get("id"), str) and CAUSE_RE.match(c["id"]) and CODE_RE.match(str(c.get("code")
                                                                                                   or ""))})


def runs(messages: Sequence[str], instance_id: str) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Every run among the events, oldest first (a report shipped late from the spool goes where it ran), and one
    note per kind of event that was not a run."""
    found: List[Dict[str, Any]] = []
    skipped: Counter = Counter()
    for message in messages:
        one, why = run(message, instance_id)
        if one is not None:
            found.append(one)
        elif why:
            skipped[why] += 1
    found.sort(key=lambda r: r["at"])
    notes = [f"{n} event(s) in the stream were set aside: {why}" for why, n in sorted(skipped.items())]
    return found, notes


def state(one: Mapping[str, Any]) -> Tuple[int, Tuple[Tuple[str, str], ...]]:
    """What a timeline line stands for: the verdict and the root causes (not the run's time or timings)."""
    return one["exit_code"], tuple(one["causes"])


def segments(found: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One entry per change of state, not per run: from, to, how many runs, the verdict and the root causes."""
    out: List[Dict[str, Any]] = []
    for one in found:
        if out and out[-1]["state"] == state(one):
            out[-1].update(to=one["at"], runs=out[-1]["runs"] + 1)
        else:
            out.append({"from": one["at"], "to": one["at"], "runs": 1, "state": state(one)})
    return [{"from": s["from"], "to": s["to"], "runs": s["runs"], "exit_code": s["state"][0],
             "verdict": VERDICTS[s["state"][0]], "root_causes": [{"id": i, "code": c} for i, c in s["state"][1]]}
            for s in out]


def break_point(found: Sequence[Mapping[str, Any]]) -> Tuple[Optional[Mapping[str, Any]], Optional[Mapping[str, Any]]]:
    """(the last healthy run before the latest broken streak, the first broken run of that streak): where the
    instance broke. Incomplete runs in between neither end nor start the streak. (None, None) when the newest
    verdict is healthy or nothing was broken; (None, first broken) when no healthy run is in the window."""
    broken = [i for i, one in enumerate(found) if one["exit_code"] == 1]
    if not broken or any(one["exit_code"] == 0 for one in found[broken[-1]:]):
        return None, None
    healthy = [i for i in range(broken[-1]) if found[i]["exit_code"] == 0]
    start = healthy[-1] + 1 if healthy else 0
    first = next(one for one in found[start:] if one["exit_code"] == 1)
    return (found[healthy[-1]] if healthy else None), first


def what_changed(good: Optional[Mapping[str, Any]], bad: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The comparison of the first broken run with the last healthy one (changes.compare's shape)."""
    if good is None or bad is None:
        return None
    change = changes.compare("healthy", good["record"], bad["record"], bad["record"])
    causes = {i for i, _ in bad["causes"]}
    # the root causes' own evidence first, then evidence that names a resource (what an operator changed), then the
    # rest (what followed from it), each in changes.diff's order
    ranked = sorted(enumerate(change["changed"]), key=lambda pair: (
        pair[1]["id"] not in causes, not RESOURCE_RE.search(f"{pair[1]['was']} {pair[1]['now']}"), pair[0]))
    change["changed"] = [item for _, item in ranked]
    return change


def line(segment: Mapping[str, Any]) -> str:
    """One timeline entry for people."""
    span = segment["from"] if segment["from"] == segment["to"] else f"{segment['from']} .. {segment['to']}"
    causes = [f"{c['id']} [{c['code']}]" if c["code"] else c["id"] for c in segment["root_causes"]]
    said = ", ".join(causes[:MAX_CAUSES]) + (f" and {len(causes) - MAX_CAUSES} more" if len(causes) > MAX_CAUSES
                                             else "")
    runs_ = f"{segment['runs']} run" + ("s" if segment["runs"] != 1 else "")
    return f"  {span}  {segment['verdict']}{': ' + said if said else ''} ({runs_})"
