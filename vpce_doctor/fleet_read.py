"""What each instance of a fleet run said: the report its doctor shipped to CloudWatch Logs, else the compact summary
in its invocation's output, else nothing (fleet.py reads them, fleet_api.py fetches them).

What another instance wrote is hostile data: parsed bounded (size, depth, finite numbers), its ids and codes checked
against the doctor's own patterns, capped in number, shown with control characters escaped, and believed only when
it names that instance and agrees with the exit status Systems Manager recorded for the invocation; otherwise the
row says "conflict" and keeps SSM's status.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

from .redact import line as shown

REPORT_SCHEMA = "vpce-doctor/report/1"
VERDICTS = {0: "healthy", 1: "broken", 2: "incomplete"}  # the doctor's exit code -> an instance's verdict
FIRST_RE = re.compile(r"^vpce-doctor \S+ (\S+) \S+: (?:healthy|broken|incomplete) \(exit ([0-2]);", re.ASCII)
CAUSE_RE = re.compile(r"^([a-z0-9_-]{1,24}:[a-z0-9_.:-]{1,64}) \[([a-z0-9_.-]{0,48})\] ", re.ASCII)
MAX_CAUSES = 20                         # per instance
MAX_OUTPUT, MAX_EVENT = 64 * 1024, 1024 * 1024
# A change line of the doctor's summary or report (changes.lines): "<check> <what>: now <value> (was <value>)".
CHANGE_RE = re.compile(r"^\s*([a-z0-9_-]{1,24}:[a-z0-9_.:-]{1,64} \S{1,120}: now .{0,200} \(was .{0,200}\))$",
                       re.ASCII)
MAX_CHANGE = 120
# The first broken run of an instance as its report or summary says it (changes.lines: "first broken run <time>").
FIRST_BROKEN_RE = re.compile(r"^\s*first broken run (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z)$",
                             re.ASCII)


def parse_summary(text: str, instance_id: Optional[str] = None) -> Optional[Dict[str, object]]:
    """The doctor's --output summary: the verdict line (for `instance_id`, when given), then one 'check [code] ...'
    line per root cause right after it."""
    lines = (text or "")[:MAX_OUTPUT].splitlines()
    for n, line in enumerate(lines):
        first = FIRST_RE.match(line)
        if first and instance_id in (None, first.group(1)):
            causes = []
            for cause in map(CAUSE_RE.match, lines[n + 1:n + 1 + MAX_CAUSES]):
                if not cause:
                    break
                causes.append({"id": cause[1], "code": cause[2]})
            changed = next(filter(None, (CHANGE_RE.match(x) for x in lines[n + 1:n + 40])), None)
            broke = next(filter(None, (FIRST_BROKEN_RE.match(x) for x in lines[n + 1:n + 40])), None)
            return {"exit_code": int(first.group(2)), "root_causes": causes,
                    **({"changed": shown(changed.group(1))[:MAX_CHANGE]} if changed else {}),
                    **({"first_broken": broke.group(1)} if broke else {})}
    return None


def parse_report(message: str, instance_id: str) -> Optional[Dict[str, object]]:
    """A report this instance's doctor shipped, or None when it is not one (or names another instance)."""
    from .instance_files import parse_json
    try:
        report = parse_json(message[:MAX_EVENT], max_depth=32)
        if report.get("schema") != REPORT_SCHEMA or report["instance"].get("instance_id") != instance_id:
            return None
        code, causes = report.get("exit_code"), report["summary"]["root_causes"]
        if code not in VERDICTS or isinstance(code, bool) or not isinstance(causes, list):
            return None
        changed, broke = _change(report.get("changes")), _first_broken(report.get("changes"))
        return {"exit_code": code, "root_causes": [
            {"id": c["id"], "code": c.get("code") or ""} for c in causes[:MAX_CAUSES]
            if isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("code") or "", str)
            and CAUSE_RE.match(f"{c['id']} [{c.get('code') or ''}] ")],
            **({"changed": changed} if changed else {}), **({"first_broken": broke} if broke else {})}
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _change(found) -> Optional[str]:
    """The change behind a new failure, as the instance's report names it: against its last healthy run, else its
    last run (vpce_doctor/changes.py); shown escaped and bounded."""
    from .changes import lines
    comparisons = [c for c in (found or {}).get("comparisons") or () if isinstance(c, dict) and c.get("new_failures")
                   and c.get("changed")]
    best = next((c for c in comparisons if c.get("against") == "healthy"), comparisons[0] if comparisons else None)
    if best is None:
        return None
    said = [x.strip() for x in lines({**best, "first_broken_at": None}, limit=1) if CHANGE_RE.match(x.strip())]
    return shown(said[0])[:MAX_CHANGE] if said else None


def _first_broken(found) -> Optional[str]:
    """When the instance's broken streak began, as its report's comparisons with its kept runs say."""
    for comparison in (found or {}).get("comparisons") or ():
        said = f"first broken run {comparison.get('first_broken_at')}" if isinstance(comparison, dict) else ""
        match = FIRST_BROKEN_RE.match(said)
        if match:
            return match.group(1)
    return None


def collect(invocation: Mapping, shipped: Optional[Mapping]) -> Dict[str, object]:
    """One instance's verdict: the report it shipped (read for the whole fleet at once), else the summary in its
    listed output, else its exit code; a report or summary counts only when its exit code is Run Command's."""
    from .fleet_api import plugin
    code, output = plugin(dict(invocation))
    return believed(code, shipped, parse_summary(output, str(invocation.get("InstanceId"))))


def believed(code: Optional[int], shipped: Optional[Mapping], printed: Optional[Mapping]) -> Dict[str, object]:
    """What one instance's row shows: the first of its shipped report and printed summary that agrees with Run
    Command's exit code; a disagreement is shown as a conflict, with Run Command's code."""
    for source, said in (("logs", shipped), ("output", printed)):
        if said is None:
            continue
        if said["exit_code"] != code:
            return {"source": "conflict", "exit_code": code, "root_causes": [],
                    "conflict": f"its {source} says exit {said['exit_code']}, Run Command recorded {code}"}
        return {"source": source, **said}
    return {"exit_code": code} if code is not None else {}
