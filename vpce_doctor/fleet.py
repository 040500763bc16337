"""vpce-doctor fleet: run the doctor on many instances through SSM Run Command, and show one matrix.

Run Command is the fleet engine (targets, rate control, delivery, timeouts): this sends one command, follows its
counts, lists its invocations once with their output, then reads each instance's verdict from the report the doctor
shipped to CloudWatch Logs (one paginated FilterLogEvents for the fleet), else from the compact summary in the
invocation's output, else from the invocation's status alone (fleet_api.py: pacing, backoff, paging).

What another instance wrote (its output, its shipped report) is hostile data: parsed bounded (size, depth, finite
numbers), its ids and codes checked against the doctor's own patterns, capped in number, shown with control
characters escaped, and believed only when it names that instance and agrees with the exit status Systems Manager
recorded for the invocation; otherwise the row says "conflict" and keeps SSM's status.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence, TextIO

from . import __version__
from .arguments import Parser
from .redact import line as shown
from .settings import REGION_RE, UsageError

SCHEMA, REPORT_SCHEMA = "vpce-doctor/fleet/1", "vpce-doctor/report/1"
TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")  # an invocation's Status (StatusDetails is finer)
NOT_RUN = ("Undeliverable", "Delivery Timed Out", "Invalid Platform", "Access Denied")  # the doctor never started
VERDICTS = {0: "healthy", 1: "broken", 2: "incomplete"}
ORDER = ("broken", "failed", "timed out", "not delivered", "incomplete", "not run", "pending", "healthy")
FAILING = ("broken", "failed", "timed out", "not delivered")  # any of these: the fleet exits 1
TARGET_RE = re.compile(r"^(?:Key=)?(tag:[^=,]+|instanceids|resource-groups:Name)(?:=|,Values=)(.+)$")
FIRST_RE = re.compile(r"^vpce-doctor \S+ (\S+) \S+: (?:healthy|broken|incomplete) \(exit ([0-2]);", re.ASCII)
CAUSE_RE = re.compile(r"^([a-z0-9_-]{1,24}:[a-z0-9_.:-]{1,64}) \[([a-z0-9_.-]{0,48})\] ", re.ASCII)
CODE_RE = re.compile(r"^[a-z0-9_.-]{0,48}$", re.ASCII)
MAX_CAUSES, MAX_COLUMNS = 20, 24        # per instance, and across the fleet: the matrix stays readable
MAX_OUTPUT, MAX_EVENT = 64 * 1024, 1024 * 1024
# A change line of the doctor's summary or report (changes.lines): "<check> <what>: now <value> (was <value>)".
CHANGE_RE = re.compile(r"^\s*([a-z0-9_-]{1,24}:[a-z0-9_.:-]{1,64} \S{1,120}: now .{0,200} \(was .{0,200}\))$",
                       re.ASCII)
MAX_CHANGE = 120
# The first broken run of an instance as its report or summary says it (changes.lines: "first broken run <time>").
FIRST_BROKEN_RE = re.compile(r"^\s*first broken run (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z)$", re.ASCII)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="vpce-doctor fleet", description="Run vpce-doctor with SSM Run Command on the instances that "
                "match --targets and show one matrix: instances by root causes.",
                epilog="Exit codes: 0 every instance healthy, 1 an instance has a failure or its invocation failed, "
                       "timed out or was not delivered, 2 some instances could not be assessed, 64 usage error.")
    p.add_argument("--targets", action="append", required=True, metavar="tag:KEY=VALUE[,VALUE]",
                   help="instances to run on (repeat to AND; also instanceids=ID,... and resource-groups:Name=G)")
    p.add_argument("--document", default="VpceDoctor-Run", help="the Command document (default: VpceDoctor-Run)")
    p.add_argument("--max-concurrency", default="50", help="N or N%% of the targets at once (default: 50)")
    p.add_argument("--max-errors", default="100%", help="stop sending after N or N%% errors (default: 100%%: "
                   "broken instances are what a doctor run is for)")
    p.add_argument("--region", help="Region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the fleet (default: 600)")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text", help="a matrix (text) or JSON")
    p.add_argument("--ship", action="store_true", help="the doctor ships its report; read it from --log-group")
    p.add_argument("--log-group", default="/vpce-doctor/reports", help="the reports' log group (with --ship)")
    for name, what in (("bucket", "bucket"), ("services", "services"), ("doctor-timeout", "timeoutSeconds")):
        p.add_argument(f"--{name}", help=f"the document's {what} parameter")
    p.add_argument("--remote", action="store_true", help="for instances the command never reached (Undeliverable, "
                   "timed out), run `vpce-doctor remote` on each and show its root causes")
    p.add_argument("--poll-interval", type=float, default=0.5, help=argparse.SUPPRESS)
    return p


def targets(values: Sequence[str]) -> List[Dict[str, object]]:
    """Run Command Targets: one Key per name (keys AND-ed), values of a repeated key merged (OR-ed)."""
    merged: Dict[str, List[str]] = {}
    for value in values:
        match = TARGET_RE.match(value)
        if not match or not all(match.group(2).split(",")):
            raise UsageError(f"--targets {value!r}: expected tag:KEY=VALUE[,VALUE...] or instanceids=ID[,ID...]")
        key = merged.setdefault(match.group(1), [])
        key += [v for v in match.group(2).split(",") if v not in key]
    if len(merged) > 5:
        raise UsageError("--targets: Run Command takes at most 5 target keys")
    return [{"Key": key, "Values": vals} for key, vals in merged.items()]


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


def judge(status: str, details: str, exit_code: Optional[int]) -> str:
    """One instance's verdict from its invocation's Status, StatusDetails and the doctor's exit code."""
    if status not in TERMINAL:
        return "pending"
    if details in ("Undeliverable", "Delivery Timed Out") or status == "TimedOut":
        return "not delivered" if details != "Execution Timed Out" else "timed out"
    if exit_code in VERDICTS:
        return VERDICTS[exit_code]  # type: ignore[index]
    return "healthy" if status == "Success" else "failed" if details == "Failed" else "not run"


def summarize(command_id: str, invocations: Sequence[Mapping], found: Mapping[str, Mapping]) -> Dict[str, object]:
    """The fleet document (schema vpce-doctor/fleet/1) from the invocations and what was read for each."""
    rows = []
    for inv in invocations:
        got, status = found.get(inv["InstanceId"]) or {}, inv.get("Status", "")
        details, code = inv.get("StatusDetails") or status, got.get("exit_code")
        rows.append({"instance_id": inv["InstanceId"], "invocation_status": details, "status": status,
                     "exit_code": code, "verdict": judge(status, details, code),
                     "root_causes": list(got.get("root_causes") or [])[:MAX_CAUSES], "source": got.get("source", "none"),
                     **({"conflict": got["conflict"]} if got.get("conflict") else {}),
                     **({"changed": got["changed"]} if got.get("changed") else {}),
                     **({"first_broken": got["first_broken"]} if got.get("first_broken") else {}),
                     **({"remote_exit_code": got["remote_exit_code"]} if "remote_exit_code" in got else {})})
    # grouped by the change that broke them: instances broken by one change sit together
    rows.sort(key=lambda r: (ORDER.index(r["verdict"]), r.get("changed") or "~", r["instance_id"]))
    verdicts = {r["verdict"] for r in rows}
    totals = {"instances": len(rows), **{v.replace(" ", "_"): sum(r["verdict"] == v for r in rows) for v in ORDER},
              "invocations": dict(Counter(r["invocation_status"] for r in rows)),
              "root_causes": dict(Counter(c["id"] for r in rows for c in r["root_causes"])),
              "changes": dict(Counter(r["changed"] for r in rows if r.get("changed")))}
    return {"schema": SCHEMA, "tool_version": __version__, "command_id": command_id, "instances": rows,
            "totals": totals, "exit_code": 1 if verdicts & set(FAILING) else 2 if verdicts != {"healthy"} else 0}


def matrix(doc: Mapping) -> str:
    """Rows: instances; columns: root-cause checks seen across the fleet (cell: the cause's code, or ·)."""
    t = doc["totals"]
    ranked = [c for c, _ in sorted(t["root_causes"].items(), key=lambda kv: (-kv[1], kv[0]))]
    columns, rest = ranked[:MAX_COLUMNS], len(ranked) - MAX_COLUMNS
    changed = any(r.get("changed") for r in doc["instances"])
    broke = any(r.get("first_broken") for r in doc["instances"])
    table = [["instance", "invocation", "exit", "verdict"] + columns + (["more"] if rest > 0 else [])
             + (["first broken"] if broke else []) + (["changed since healthy"] if changed else [])]
    for r in doc["instances"]:
        codes, ran = {c["id"]: c["code"] or "fail" for c in r["root_causes"]}, r["verdict"] in VERDICTS.values()
        more = [str(len(set(codes) - set(columns)) or "·")] if rest > 0 else []
        verdict = r["verdict"] + (" (conflict)" if r.get("conflict") else "")
        table.append([shown(r["instance_id"]), shown(r["invocation_status"]),
                      "-" if r["exit_code"] is None else str(r["exit_code"]), verdict]
                     + [codes.get(c, "·" if ran else "") for c in columns] + more
                     + ([r.get("first_broken") or ""] if broke else []) + ([r.get("changed") or ""] if changed else []))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    counts = ", ".join(f"{t[v.replace(' ', '_')]} {v}" for v in ORDER if t[v.replace(" ", "_")])
    out.append(f"\n{t['instances']} instance(s): {counts or 'none matched the targets'} "
               f"(command {doc['command_id']}, exit {doc['exit_code']})")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    try:
        args = parser().parse_args(list(argv))
        for name, pattern in (("max_concurrency", r"[1-9][0-9]*|[1-9][0-9]?%|100%"),
                              ("max_errors", r"[0-9]+|[0-9][0-9]?%|100%")):
            if not re.fullmatch(pattern, getattr(args, name)):
                raise UsageError(f"--{name.replace('_', '-')} must be N or N% (up to 100%)")
        if not 0 < args.timeout <= 172800:
            raise UsageError("--timeout must be between 0 and 172800 seconds")
        wanted = targets(args.targets)
        region = args.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if region is not None and not REGION_RE.match(region):
            raise UsageError(f"--region {region!r} is not a Region name")
    except UsageError as error:
        stderr.write(f"vpce-doctor fleet: {error}\n")
        return 64
    return run(args, wanted, region, stdout, stderr)


def run(args, wanted, region: Optional[str], stdout: TextIO, stderr: TextIO) -> int:
    import botocore.session
    from botocore.config import Config

    from . import fleet_api
    from .aws import call
    session = botocore.session.Session()
    region = region or session.get_config_variable("region")
    if not region:
        stderr.write("vpce-doctor fleet: no Region: use --region or AWS_REGION\n")
        return 64
    # One attempt per call: fleet_api paces each API and backs off on throttling itself, and counts what it sent.
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20,
                    user_agent_extra=f"vpce-doctor/{__version__}")
    ssm, logs = (session.create_client(s, region_name=region, config=config) for s in ("ssm", "logs"))
    parameters = {k: [v] for k, v in (("bucket", args.bucket), ("services", args.services),
                                      ("timeoutSeconds", args.doctor_timeout)) if v}
    parameters.update({"ship": ["true"], "logGroup": [args.log_group]} if args.ship else {})
    sent = call(ssm, "send_command", DocumentName=args.document, Targets=wanted, Parameters=parameters,
                MaxConcurrency=args.max_concurrency, MaxErrors=args.max_errors,
                TimeoutSeconds=max(30, int(args.timeout)), Comment="vpce-doctor fleet")
    if not sent.ok:
        stderr.write(f"vpce-doctor fleet: SendCommand failed: {sent.code}: {sent.message}\n")
        return 2
    command_id, requested = (sent.response["Command"].get(k) for k in ("CommandId", "RequestedDateTime"))
    since_ms = int(requested.timestamp() * 1000) if hasattr(requested, "timestamp") else int(time.time() * 1000)
    stderr.write(f"vpce-doctor fleet: command {command_id} ({args.document}) sent to "
                 + " and ".join(f"{t['Key']}={','.join(t['Values'])}" for t in wanted) + "\n")
    deadline = time.monotonic() + args.timeout
    ssm_pace = fleet_api.Paced(fleet_api.SSM_RATE, deadline + 120)  # listing after the deadline still ends
    invocations = fleet_api.poll(ssm, command_id, deadline, args.poll_interval, stderr, ssm_pace)
    ran = {i["InstanceId"] for i in invocations if i.get("Status") in TERMINAL and i.get("StatusDetails") not in
           NOT_RUN}
    reports, logs_pace = {}, fleet_api.Paced(fleet_api.FILTER_RATE, deadline + 120)
    if args.ship and ran:
        reports, error = fleet_api.shipped(logs_pace, logs, args.log_group, since_ms, parse_report, ran)
        if error:
            stderr.write(f"vpce-doctor fleet: {error}; the instances' own output is used instead\n")
    found = {i["InstanceId"]: collect(i, reports.get(i["InstanceId"])) for i in invocations if i["InstanceId"] in ran}
    if args.remote:  # the doctor never ran there: the control plane's view from this workstation (remote.py)
        from .remote import fleet_verdicts
        found.update(fleet_verdicts([i["InstanceId"] for i in invocations if undelivered(i)], region, {}))
    stderr.write(f"vpce-doctor fleet: {ssm_pace.requests + logs_pace.requests + 1} requests "
                 f"({ssm_pace.requests} Systems Manager, {logs_pace.requests} CloudWatch Logs), "
                 f"{ssm_pace.throttled + logs_pace.throttled} throttled\n")
    doc = summarize(command_id, invocations, found)
    stdout.write(json.dumps(doc, indent=2) + "\n" if args.output == "json" else matrix(doc))
    stdout.flush()
    return int(doc["exit_code"])


def undelivered(invocation: Mapping) -> bool:
    """The doctor never ran there: the command was not delivered, or timed out (so nothing came back)."""
    return invocation.get("StatusDetails") in ("Undeliverable", "Delivery Timed Out") or \
        invocation.get("Status") == "TimedOut"


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
