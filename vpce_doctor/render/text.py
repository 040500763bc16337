"""The report for people: a pass takes one line; a problem shows its cause and remedy. Root causes first."""
from __future__ import annotations

import textwrap
from typing import Any, Dict, List, Mapping

from ..model import Finding, Report, Status
from ..redact import line as shown

TAGS = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP", Status.ERROR: "ERR "}
COLORS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31;1", Status.SKIP: "2", Status.ERROR: "35;1"}
WIDTH = 100
ID_WIDTH = 18


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def header(tool_version: str, instance: Mapping[str, Any]) -> str:
    parts = [f"vpce-doctor {tool_version}", str(instance.get("instance_id") or "instance unknown"),
             str(instance.get("availability_zone") or instance.get("region") or "region unknown")]
    if instance.get("vpc_id"):
        parts.append(f"{instance['vpc_id']} {' '.join(instance.get('vpc_cidrs') or [])}".strip())
    return shown(" · ".join(parts)) + "\n\n"


def finding(f: Finding, color: bool = False) -> str:
    status = f.status
    tag = _paint(f"[{TAGS[status]}]", COLORS[status], color)
    line = f"{tag} {f.check.id:<{ID_WIDTH}} {shown(f.result.summary)}"
    if status in (Status.PASS, Status.SKIP):
        return line + "\n"
    lines = [line]
    lines += _block("cause", f.result.cause)
    remedy = f.result.remedy
    if remedy:
        lines += _block("remedy", remedy.text)
        lines += [" " * 14 + "$ " + shown(command) for command in remedy.commands]
        lines += [" " * 14 + shown(link) for link in remedy.links]
    return "\n".join(lines) + "\n"


def _block(label: str, text: str) -> List[str]:
    if not text:
        return []
    wrapped = textwrap.wrap(shown(text), WIDTH - 14) or [""]
    return [f"      {label:<8}{wrapped[0]}"] + [" " * 14 + rest for rest in wrapped[1:]]


def footer(report: Report, color: bool = False) -> str:
    counts = {s: sum(1 for f in report.findings if f.status is s) for s in Status}
    causes = report.root_causes
    lines = [""]
    groups = _group(causes)
    if groups:
        lines.append(_paint(f"{len(groups)} problem{'s' if len(groups) != 1 else ''} to fix:", "1", color))
        for group in groups:
            first, ids = group[0], {f.check.id for f in group}
            follow = {f.check.id for cause in group for f in report.blocked_by(cause.check.id)} - ids
            extra = f" ({len(follow)} more finding{'s' if len(follow) != 1 else ''} follow from it)" if follow else ""
            label = first.check.id if len(group) == 1 else \
                f"{first.check.id} and {len(group) - 1} more ({', '.join(f.check.id for f in group[1:])})"
            lines.append(f"  {label}: {shown(first.result.summary)}{extra}")
            explained = report.explained_by(first.check.id)
            if explained:
                lines.append(f"    because ({explained[0].check.id}): {shown(str(explained[1].get('problem')))}")
                lines.append(f"    $ {shown(str(explained[1].get('command')))}")
    warnings = [f for f in report.findings if f.status is Status.WARN]
    if warnings:
        lines.append(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}: "
                     + ", ".join(f.check.id for f in warnings))
    verdict = {0: "healthy", 1: "broken", 2: "incomplete"}.get(int(report.exit_code), "")
    lines.append(f"{verdict}: {counts[Status.PASS]} passed, {counts[Status.WARN]} warned, "
                 f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} not run, {counts[Status.ERROR]} errors "
                 f"in {report.duration_s:.2f} s (exit {int(report.exit_code)})")
    return "\n".join(lines) + "\n"


def _group(causes) -> List[List[Finding]]:
    """Root causes of one layer with one cause code read as one problem (private DNS off for every name)."""
    groups: Dict[tuple, List[Finding]] = {}
    for cause in causes:
        key = (cause.check.id.split(":")[0], cause.result.code) if cause.result.code else (cause.check.id,)
        groups.setdefault(key, []).append(cause)
    return list(groups.values())


def render(report: Report, color: bool = False) -> str:
    return header(report.tool_version, report.instance) + "".join(
        finding(f, color) for f in report.findings) + footer(report, color)


def summary(report: Report, limit: int = 2400) -> str:
    """A compact verdict for Run Command's console view (2,500 characters): root causes with their first fix."""
    counts = {s: sum(1 for f in report.findings if f.status is s) for s in Status}
    instance = report.instance
    lines = [f"vpce-doctor {report.tool_version} {shown(instance.get('instance_id') or '?')} "
             f"{shown(instance.get('region') or '?')}: "
             f"{ {0: 'healthy', 1: 'broken', 2: 'incomplete'}.get(int(report.exit_code), '?') } "
             f"(exit {int(report.exit_code)}; {counts[Status.PASS]} pass, {counts[Status.WARN]} warn, "
             f"{counts[Status.FAIL]} fail, {counts[Status.SKIP]} skip, {counts[Status.ERROR]} error)"]
    for cause in report.root_causes:
        remedy, explained = cause.result.remedy, report.explained_by(cause.check.id)
        fix = f" | fix: {shown(remedy.commands[0] if remedy.commands else remedy.text)}" if remedy else ""
        if explained:  # the control plane named the resource: its command, with real ids, comes first
            fix = f" | {shown(str(explained[1].get('problem')))} | fix: {shown(str(explained[1].get('command')))}"
        lines.append(f"{cause.check.id} [{shown(cause.result.code)}] {shown(cause.result.summary)}{fix}")
    warnings = [f.check.id for f in report.findings if f.status is Status.WARN]
    if warnings:
        lines.append("warnings: " + ", ".join(warnings))
    text = "\n".join(line[:400] for line in lines) + "\n"
    return text if len(text) <= limit else text[:limit - 40] + "\n... (full report: --output json)\n"


def changes(document: Mapping[str, Any]) -> str:
    """What changed since the last run, the last healthy one and --since FILE, after the verdict."""
    from ..changes import lines
    found = document.get("changes") or {}
    out = [line for comparison in found.get("comparisons") or () for line in lines(comparison)]
    out += [f"note: {note}" for note in found.get("notes") or ()]
    return "".join(shown(line) + "\n" for line in out)


def summary_changes(document: Mapping[str, Any], limit: int = 3) -> str:
    """The summary's view: the first comparison that found something, in a few lines."""
    from ..changes import empty, lines
    found = [c for c in (document.get("changes") or {}).get("comparisons") or () if not empty(c)]
    return "".join(shown(line.strip())[:400] + "\n" for line in lines(found[0], limit)) if found else ""
