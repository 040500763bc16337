"""The versioned JSON report: what machines, CloudWatch and the fleet view read."""
from __future__ import annotations

import json
from typing import Any, Dict

from .. import fingerprint, redact
from ..model import Finding, Report, Status

SCHEMA = "vpce-doctor/report/1"


def to_dict(report: Report) -> Dict[str, Any]:
    """The report as JSON-safe data, every string through redact.tree: what prints is what ships."""
    return redact.tree(_document(report))


def _document(report: Report) -> Dict[str, Any]:
    counts = {status.value: 0 for status in Status}
    for finding in report.findings:
        counts[finding.status.value] += 1
    return {
        "schema": SCHEMA,
        "tool_version": report.tool_version,
        "started_at": report.started_at,
        "duration_s": report.duration_s,
        "exit_code": int(report.exit_code),
        "mode": report.mode,
        **({"not_seen_from_outside": list(report.not_seen)} if report.mode == "remote" else {}),
        "instance": report.instance,
        "summary": {
            "counts": counts,
            "root_causes": [_root_cause(report, f) for f in report.root_causes],
            "warnings": [f.check.id for f in report.findings if f.status is Status.WARN],
        },
        "findings": [{**finding_dict(f), "fingerprint": fingerprint.of(f.check.id, f.result.evidence,
                                                                       report.instance, f.result.caused_by)}
                     for f in report.findings],
    }


def _root_cause(report: Report, finding: Finding) -> Dict[str, Any]:
    cause: Dict[str, Any] = {"id": finding.check.id, "code": finding.result.code, "summary": finding.result.summary,
             "blocked": [b.check.id for b in report.blocked_by(finding.check.id)]}
    explained = report.explained_by(finding.check.id)
    if explained:
        cause["explained_by"] = {"id": explained[0].check.id, "problem": str(explained[1].get("problem", "")),
                                 "command": str(explained[1].get("command", ""))}
    return cause


def finding_dict(finding: Finding) -> Dict[str, Any]:
    check, result = finding.check, finding.result
    remedy = result.remedy
    return {
        "id": check.id,
        "title": check.title,
        "severity": check.severity.value,
        "needs": list(check.needs),
        "status": result.status.value,
        "code": result.code,
        "summary": result.summary,
        "cause": result.cause,
        "remedy": {"text": remedy.text, "commands": list(remedy.commands), "links": list(remedy.links)}
        if remedy else None,
        "evidence": dict(result.evidence),
        **({"caused_by": list(result.caused_by)} if result.caused_by else {}),
        "duration_s": finding.duration_s,
    }


def render(report: Report) -> str:
    return dumps(to_dict(report))


def dumps(document: Dict[str, Any]) -> str:
    # default=str: evidence is meant to be JSON-safe; a stray object must not cost the operator the report.
    return json.dumps(document, indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n"
