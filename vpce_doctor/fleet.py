"""vpce-doctor fleet: run the doctor on many instances through SSM Run Command, and show one matrix.

Run Command is the fleet engine (targets, rate control, delivery, timeouts): this sends one command, follows its
counts, lists its invocations once with their output, then reads each instance's verdict from the report the doctor
shipped to CloudWatch Logs (one paginated FilterLogEvents for the fleet), else from the compact summary in the
invocation's output, else from the invocation's status alone (fleet_api.py: pacing, backoff, paging).

What another instance wrote is hostile data: fleet_read.py reads it bounded and believes it only when it agrees
with what Systems Manager recorded.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from . import __version__
from .arguments import Parser
from .fleet_read import MAX_CAUSES, VERDICTS, believed, collect, parse_report, parse_summary  # noqa: F401 - tests
from .redact import line as shown
from .settings import REGION_RE, UsageError

SCHEMA = "vpce-doctor/fleet/1"
TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")  # an invocation's Status (StatusDetails is finer)
NOT_RUN = ("Undeliverable", "Delivery Timed Out", "Invalid Platform", "Access Denied")  # the doctor never started
ORDER = ("broken", "failed", "timed out", "not delivered", "incomplete", "not run", "pending", "healthy")
FAILING = ("broken", "failed", "timed out", "not delivered")  # any of these: the fleet exits 1
MAX_COLUMNS = 24  # root-cause columns across the fleet: the matrix stays readable
TARGET_RE = re.compile(r"^(?:Key=)?(tag:[^=,]+|instanceids|resource-groups:Name)(?:=|,Values=)(.+)$")


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


def judge(status: str, details: str, exit_code: Optional[int]) -> str:
    """One instance's verdict from its invocation's Status, StatusDetails and the doctor's exit code."""
    if status not in TERMINAL:
        return "pending"
    if details in ("Undeliverable", "Delivery Timed Out") or status == "TimedOut":
        return "not delivered" if details != "Execution Timed Out" else "timed out"
    if exit_code in VERDICTS:
        return VERDICTS[exit_code]
    return "healthy" if status == "Success" else "failed" if details == "Failed" else "not run"


def summarize(command_id: str, invocations: Sequence[Mapping], found: Mapping[str, Mapping]) -> Dict[str, Any]:
    """The fleet document (schema vpce-doctor/fleet/1) from the invocations and what was read for each."""
    rows = [_row(inv, found.get(inv["InstanceId"]) or {}) for inv in invocations]
    # grouped by the change that broke them: instances broken by one change sit together
    rows.sort(key=lambda r: (ORDER.index(r["verdict"]), r.get("changed") or "~", r["instance_id"]))
    verdicts = {r["verdict"] for r in rows}
    totals = {"instances": len(rows), **{v.replace(" ", "_"): sum(r["verdict"] == v for r in rows) for v in ORDER},
              "invocations": dict(Counter(r["invocation_status"] for r in rows)),
              "root_causes": dict(Counter(c["id"] for r in rows for c in r["root_causes"])),
              "changes": dict(Counter(r["changed"] for r in rows if r.get("changed")))}
    return {"schema": SCHEMA, "tool_version": __version__, "command_id": command_id, "instances": rows,
            "totals": totals, "exit_code": 1 if verdicts & set(FAILING) else 2 if verdicts != {"healthy"} else 0}


def _row(inv: Mapping, got: Mapping) -> Dict[str, Any]:
    """One instance's row: its invocation's status, and what was read for it (see fleet_read.believed)."""
    status = inv.get("Status", "")
    details, code = inv.get("StatusDetails") or status, got.get("exit_code")
    return {"instance_id": inv["InstanceId"], "invocation_status": details, "status": status,
            "exit_code": code, "verdict": judge(status, details, code),
            "root_causes": list(got.get("root_causes") or [])[:MAX_CAUSES], "source": got.get("source", "none"),
            **({"conflict": got["conflict"]} if got.get("conflict") else {}),
            **({"changed": got["changed"]} if got.get("changed") else {}),
            **({"first_broken": got["first_broken"]} if got.get("first_broken") else {}),
            **({"remote_exit_code": got["remote_exit_code"]} if "remote_exit_code" in got else {})}


def matrix(doc: Mapping) -> str:
    """Rows: instances; columns: root-cause checks seen across the fleet (cell: the cause's code, or ·)."""
    t = doc["totals"]
    ranked = [c for c, _ in sorted(t["root_causes"].items(), key=lambda kv: (-kv[1], kv[0]))]
    columns, rest = ranked[:MAX_COLUMNS], len(ranked) - MAX_COLUMNS
    changed = any(r.get("changed") for r in doc["instances"])
    broke = any(r.get("first_broken") for r in doc["instances"])
    table = [["instance", "invocation", "exit", "verdict"] + columns + (["more"] if rest > 0 else [])
             + (["first broken"] if broke else []) + (["changed since healthy"] if changed else [])]
    table.extend(_matrix_row(r, columns, rest > 0, (broke, changed)) for r in doc["instances"])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    counts = ", ".join(f"{t[v.replace(' ', '_')]} {v}" for v in ORDER if t[v.replace(" ", "_")])
    out.append(f"\n{t['instances']} instance(s): {counts or 'none matched the targets'} "
               f"(command {doc['command_id']}, exit {doc['exit_code']})")
    return "\n".join(out) + "\n"


def _matrix_row(r: Mapping, columns: Sequence[str], more: bool, shown_when: Tuple[bool, bool]) -> List[str]:
    """One instance: a cell per column (blank where the doctor did not run), how many causes did not fit, and the
    first-broken and changed-since-healthy cells when the matrix has those columns."""
    codes, ran = {c["id"]: c["code"] or "fail" for c in r["root_causes"]}, r["verdict"] in VERDICTS.values()
    verdict = r["verdict"] + (" (conflict)" if r.get("conflict") else "")
    broke, changed = shown_when
    return ([shown(r["instance_id"]), shown(r["invocation_status"]),
             "-" if r["exit_code"] is None else str(r["exit_code"]), verdict]
            + [codes.get(c, "·" if ran else "") for c in columns]
            + ([str(len(set(codes) - set(columns)) or "·")] if more else [])
            + ([r.get("first_broken") or ""] if broke else [])
            + ([r.get("changed") or ""] if changed else []))


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
    sent = call(ssm, "send_command", DocumentName=args.document, Targets=wanted, Parameters=_parameters(args),
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
    logs_pace = fleet_api.Paced(fleet_api.FILTER_RATE, deadline + 120)
    found = _verdicts(args, invocations, (logs, logs_pace, since_ms), region, stderr)
    stderr.write(f"vpce-doctor fleet: {ssm_pace.requests + logs_pace.requests + 1} requests "
                 f"({ssm_pace.requests} Systems Manager, {logs_pace.requests} CloudWatch Logs), "
                 f"{ssm_pace.throttled + logs_pace.throttled} throttled\n")
    doc = summarize(command_id, invocations, found)
    stdout.write(json.dumps(doc, indent=2) + "\n" if args.output == "json" else matrix(doc))
    stdout.flush()
    return int(doc["exit_code"])


def _parameters(args) -> Dict[str, List[str]]:
    """The Run Command document's parameters: only those given, so the document's defaults stand for the rest."""
    parameters = {k: [v] for k, v in (("bucket", args.bucket), ("services", args.services),
                                      ("timeoutSeconds", args.doctor_timeout)) if v}
    parameters.update({"ship": ["true"], "logGroup": [args.log_group]} if args.ship else {})
    return parameters


def _verdicts(args, invocations: Sequence[Mapping], shipping: Tuple[Any, Any, int], region: str,
              stderr: TextIO) -> Dict[str, Dict[str, object]]:
    """instance id -> its verdict, for the instances the doctor ran on (and, with --remote, those it never reached).
    shipping: the CloudWatch Logs client, its pace, and when the command was sent (ms)."""
    from . import fleet_api
    ran = {i["InstanceId"] for i in invocations if i.get("Status") in TERMINAL and i.get("StatusDetails") not in
           NOT_RUN}
    reports: Mapping[str, Mapping] = {}
    if args.ship and ran:
        logs, logs_pace, since_ms = shipping
        reports, error = fleet_api.shipped(logs_pace, logs, args.log_group, since_ms, parse_report, ran)
        if error:
            stderr.write(f"vpce-doctor fleet: {error}; the instances' own output is used instead\n")
    found = {i["InstanceId"]: collect(i, reports.get(i["InstanceId"])) for i in invocations if i["InstanceId"] in ran}
    if args.remote:  # the doctor never ran there: the control plane's view from this workstation (remote.py)
        from .remote import fleet_verdicts
        found.update(fleet_verdicts([i["InstanceId"] for i in invocations if undelivered(i)], region, {}))
    return found


def undelivered(invocation: Mapping) -> bool:
    """The doctor never ran there: the command was not delivered, or timed out (so nothing came back)."""
    return invocation.get("StatusDetails") in ("Undeliverable", "Delivery Timed Out") or \
        invocation.get("Status") == "TimedOut"
