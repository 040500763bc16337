"""ssm:diagnostics: `ssm-cli get-diagnostics`, the agent's own checks, read as ssm-cli really behaves.

Sources (aws/amazon-ssm-agent at 1c217c89): agent/cli/diagnostics/connectivity_check.go `init` always tests the
ssm, ec2messages, ssmmessages, s3, kms, logs and monitoring endpoints ("Connectivity to %s endpoint"), whatever the
instance uses; credentials_check.go ("AWS Credentials") makes a 2-second STS GetCallerIdentity ("STS call timed
out", "Failed call sts endpoint: %v"); agent/cli/cli.go:63 answers an unknown command with "Invalid command" and exit
code 2 (cliutil.CLI_PARSE_FAIL_EXITCODE). ssm-cli ships with agent 2.x; get-diagnostics came with 3.1.501.0.
"""
from __future__ import annotations

import json
import re
from typing import Dict, List, Optional, Sequence, Tuple

from ..model import Check, Result, Severity, Status
from ..processes import Ran, run_command  # noqa: F401 - Ran is part of this module's contract for tests
from .agent_files import is_file

SSM_CLIS = ("/usr/bin/ssm-cli", "/snap/amazon-ssm-agent/current/ssm-cli")
DIAGNOSTICS_LIMIT_S = 15.0
SINCE = "3.1.501.0"
SECRET_RE = re.compile(r"(://)[^/\s]+@")
CONNECTIVITY_RE = re.compile(r"^Connectivity to (\S+) endpoint$")
STS_NOTE_RE = re.compile(r"STS call timed out|Failed call sts endpoint", re.I)
# ssm-cli rows -> the check of ours that looks at the same thing
DIAGNOSTIC_IDS: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple((re.compile(p), i) for p, i in (
    (r"^EC2 IMDS$", "imds:token"),
    (r"^DNS", "dns:resolver"),
    (r"^Connectivity to (\S+) endpoint$", "tcp:{0}"),
    (r"^Agent service$", "ssm:agent"),
    (r"^SSM Agent version$", "ssm:agent"),
    (r"^Proxy configuration$", "local:proxy"),
))


def check(after: Sequence[str] = ()) -> Check:
    return Check("ssm:diagnostics", "ssm-cli get-diagnostics reports no failed check for what this run uses",
                 Severity.LOW, run_diagnostics, after=tuple(after))


def run_diagnostics(ctx, prior) -> Result:
    cli = next((p for p in SSM_CLIS if is_file(ctx.path(p))), None)
    planned = tuple(t.service for t in ctx.targets)
    if cli is None:
        return assess_diagnostics(None, None, planned=planned)
    timeout = max(0.05, min(DIAGNOSTICS_LIMIT_S, ctx.remaining() - 0.3))
    ran = run_command([str(ctx.path(cli)), "get-diagnostics", "--output", "json"], timeout,
                      env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    return assess_diagnostics(cli, ran, timeout, planned)


def ours(check: str, note: str = "") -> Optional[str]:
    if check == "AWS Credentials":  # an STS call (credentials_check.go), unless it never got credentials
        return "sts:identity" if STS_NOTE_RE.search(note) or note.startswith("Credentials are for") \
            else "imds:profile"
    for pattern, our_id in DIAGNOSTIC_IDS:
        found = pattern.match(check)
        if found:
            return our_id.format(*found.groups())
    return None


def parse_diagnostics(text: str) -> Optional[List[Dict[str, str]]]:
    """The rows of `get-diagnostics --output json`, found wherever the JSON object starts; None if there is none."""
    start = text.find("{")
    while start != -1:
        try:
            data, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        rows = data.get("DiagnosticsOutput") if isinstance(data, dict) else None
        if isinstance(rows, list):
            return [{k: SECRET_RE.sub(r"\1***@", str(row.get(k, "")))[:500] for k in ("Check", "Status", "Note")}
                    for row in rows if isinstance(row, dict)]
        start = text.find("{", start + 1)
    return None


def relevance(row: Dict[str, str], planned: Optional[Sequence[str]]) -> str:
    """"counts", or why a row does not: ssm-cli tests endpoints and STS whether this instance uses them or not."""
    if planned is None:
        return "counts"
    found = CONNECTIVITY_RE.match(row["Check"])
    if found and found.group(1) not in planned:
        return f"{found.group(1)} is not among this run's services"
    if row["Check"] == "AWS Credentials" and STS_NOTE_RE.search(row["Note"]) and "sts" not in planned:
        return "an STS call, and this run plans no sts endpoint: says nothing about the agent's credentials"
    return "counts"


def assess_diagnostics(cli: Optional[str], ran: Optional[Ran], timeout: float = 0.0,
                       planned: Optional[Sequence[str]] = None) -> Result:
    if cli is None or ran is None:
        return Result(Status.PASS, "ssm-cli not present (agent not installed, or installed elsewhere)")
    evidence: Dict[str, object] = {"command": f"{cli} get-diagnostics --output json", "exit_code": ran.code}
    if ran.error:
        return Result(Status.WARN, f"{cli} could not be run: {ran.error}", code="unrunnable", evidence=evidence,
                      cause="The agent's own diagnostics are unavailable; the other checks do not depend on them.")
    if ran.timed_out:
        return Result(Status.WARN, f"ssm-cli get-diagnostics did not finish within {timeout:.1f} s and was killed",
                      code="timeout", evidence=evidence,
                      cause="Its checks wait on IMDS, the endpoints and STS; one of them hangs. See the other "
                            "checks for which.")
    rows = parse_diagnostics(ran.out)
    if not rows:
        return _no_rows(ran, evidence)
    evidence["rows"] = [{"check": r["Check"], "status": r["Status"], "note": r["Note"],
                         "ours": ours(r["Check"], r["Note"]), "counts": relevance(r, planned)} for r in rows]
    failed = [r for r in rows if r["Status"].lower() in ("failed", "fail", "failure")]
    counted = [r for r in failed if relevance(r, planned) == "counts"]
    ignored = [f"{r['Check']} ({relevance(r, planned)})" for r in failed if r not in counted]
    aside = f"; not counted: {', '.join(ignored)}" if ignored else ""
    if not counted:
        return Result(Status.PASS, f"ssm-cli get-diagnostics: {len(rows)} checks, none failed for what this run "
                      f"uses{aside}"[:400], evidence=evidence)
    first = counted[0]
    listed = "; ".join(f"{r['Check']}: {r['Note']}" + (f" (see {ours(r['Check'], r['Note'])})"
                                                        if ours(r["Check"], r["Note"]) else "") for r in counted)
    return Result(Status.WARN, f"ssm-cli: {len(counted)} of {len(rows)} checks failed; {first['Check']}: "
                  f"{first['Note']}"[:300], code="diagnostics-failed", evidence=evidence,
                  cause=f"The agent's own diagnostics report: {listed}{aside}. It tests only TCP connects and one "
                        "STS call from the agent's point of view; the matching checks here say which layer breaks.")


def _no_rows(ran: Ran, evidence: Dict[str, object]) -> Result:
    shown = (ran.out.strip() or ran.err.strip())[:200]
    if "Invalid command" in shown:
        return Result(Status.PASS, f"ssm-cli get-diagnostics is not available on this agent (it answered "
                      f"'Invalid command'; get-diagnostics came with agent {SINCE})", code="unavailable",
                      evidence=evidence)
    needs_root = "root" in shown.lower()
    return Result(Status.WARN, f"ssm-cli get-diagnostics gave no rows: {shown or '(no output)'}",
                  code="needs-root" if needs_root else "garbage", evidence=evidence,
                  cause="ssm-cli runs its checks only as root." if needs_root else
                        "Its output is not the JSON it documents; the other checks do not depend on it.")
