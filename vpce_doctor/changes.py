"""What changed between two runs: new failures, fixed ones, and the evidence that moved. Pure: no I/O.

Runs are compared through their records: a compact form of a report (when, the verdict, and per check its status,
code and fingerprint values) that is what the doctor keeps beside the spool and what any JSON report reduces to.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import fingerprint

RECORD = "vpce-doctor/record/1"
BROKEN = ("fail",)
LOOKED = ("pass", "warn", "fail")  # a skipped or interrupted check saw nothing: its empty evidence is no change
MAX_CHANGED = 24  # evidence changes listed per comparison: the ones behind new failures first
SHORT = 128  # a --since FILE's time, ids and codes: longer ones are not the doctor's (check ids are < 90)


def record(report: Mapping[str, Any]) -> Dict[str, Any]:
    """The compact record of a JSON report (this version's or an earlier one's: fingerprints come from evidence)."""
    instance = found if isinstance(found := report.get("instance"), Mapping) else {}
    code, checks = report.get("exit_code"), {}
    for finding in _list(report.get("findings")):
        if not (isinstance(finding, Mapping) and isinstance(finding.get("id"), str) and len(finding["id"]) <= SHORT):
            continue
        evidence = found if isinstance(found := finding.get("evidence"), Mapping) else {}
        causes = [c[:SHORT] for c in _list(finding.get("caused_by")) if isinstance(c, str)][:SHORT]
        checks[finding["id"]] = {"status": str(finding.get("status"))[:SHORT],
                                 "code": _short(finding.get("code") or ""),
                                 "needs": [n for n in _list(finding.get("needs")) if isinstance(n, str)][:SHORT],
                                 "summary": str(finding.get("summary") or "")[:300],
                                 "seen": fingerprint.seen(finding["id"], evidence, instance, causes)}
    return {"schema": RECORD, "started_at": _short(report.get("started_at") or ""),
            "exit_code": code if type(code) is int else None, "instance_id": _short(instance.get("instance_id")),
            "checks": checks}


def _short(value: Any) -> Any:
    """A value a report holds as a short word (a time, a status, a code, an id): an odd one is cut to SHORT."""
    return value if value is None or (isinstance(value, str) and len(value) <= SHORT) else str(value)[:SHORT]


def _list(value: Any) -> Sequence[Any]:
    """A list from a report that may be any version's or hand-edited (--since FILE): anything else is empty."""
    return value if isinstance(value, list) else ()


def healthy(rec: Mapping[str, Any]) -> bool:
    return rec.get("exit_code") == 0


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Dict[str, Any]:
    """New failures, fixed failures, and changed evidence (for the new failures and what they need, first)."""
    old, new = before.get("checks") or {}, after.get("checks") or {}
    failing = [i for i, c in new.items() if c.get("status") in BROKEN]
    new_failures = [i for i in failing if (old.get(i) or {}).get("status") not in BROKEN]
    fixed = [i for i, c in old.items() if c.get("status") in BROKEN and (new.get(i) or {}).get("status") in
             ("pass", "warn")]
    behind = _behind(new_failures, new)
    changed = []
    looked = [i for i in set(old) & set(new) if {old[i].get("status"), new[i].get("status")} <= set(LOOKED)]
    for check_id in sorted(looked, key=lambda i: (i not in behind, i)):
        for path, was, now in _moved(old[check_id].get("seen") or {}, new[check_id].get("seen") or {}):
            changed.append({"id": check_id, "what": path, "was": was, "now": now})
    return {"new_failures": new_failures, "fixed": fixed, "changed": changed[:MAX_CHANGED],
            "changed_total": len(changed)}


def empty(change: Mapping[str, Any]) -> bool:
    return not (change.get("new_failures") or change.get("fixed") or change.get("changed"))


def compare(against: str, before: Mapping[str, Any], after: Mapping[str, Any],
            first_broken: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """One comparison for the report: against the last run, the last healthy one, or a file."""
    out = {"against": against, "at": before.get("started_at"), "exit_code": before.get("exit_code"),
           **diff(before, after)}
    if first_broken is not None:
        out["first_broken_at"] = first_broken.get("started_at")
    return out


def _behind(failures: Sequence[str], checks: Mapping[str, Any]) -> set:
    """The new failures and every check they need, transitively: where the change that broke them is."""
    seen, stack = set(), list(failures)
    while stack:
        check_id = stack.pop()
        if check_id not in seen:
            seen.add(check_id)
            stack.extend((checks.get(check_id) or {}).get("needs") or ())
    return seen


def _moved(was: Any, now: Any, path: str = "") -> List[Tuple[str, Any, Any]]:
    """(path, was, now) for every value that differs; lists of scalars compare as wholes."""
    if isinstance(was, Mapping) and isinstance(now, Mapping):
        out = []
        for key in sorted(set(was) | set(now)):
            out += _moved(was.get(key), now.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if was == now else [(path or "(all)", was, now)]


def lines(change: Mapping[str, Any], limit: int = 6) -> List[str]:
    """The comparison for people: one line each for new failures, fixed ones, and the changes behind them."""
    label = {"last": "the last run", "healthy": "the last healthy run", "file": "the given report"}.get(
        str(change.get("against")), "an earlier run")
    head = f"since {label} ({change.get('at') or 'time unknown'}, exit {change.get('exit_code')})"
    if empty(change):
        return [f"{head}: nothing changed"]
    out = [f"{head}:"]
    if change.get("first_broken_at"):
        out.append(f"  first broken run {change['first_broken_at']}")
    if change.get("new_failures"):
        out.append("  now failing: " + ", ".join(change["new_failures"]))
    if change.get("fixed"):
        out.append("  fixed: " + ", ".join(change["fixed"]))
    for item in list(change.get("changed") or ())[:limit]:
        out.append(f"  {item['id']} {item['what']}: now {_show(item['now'])} (was {_show(item['was'])})")
    more = int(change.get("changed_total") or 0) - min(limit, len(change.get("changed") or ()))
    if more > 0:
        out.append(f"  … {more} more change(s) (--output json)")
    return out


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)
