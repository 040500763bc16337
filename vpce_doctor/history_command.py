"""vpce-doctor history: an instance's runs read back from the reports it shipped (--ship, the timer) to CloudWatch
Logs: its timeline (one line per change of state), its last healthy and first broken run, what changed between them,
and, when CloudTrail's event history may be read, who changed the resources those runs named in between.

On the instance it finds its own id and Region in IMDS and dials the regional names (through the VPC's endpoints);
with --instance-id it runs from a workstation, like `vpce-doctor remote`. One deadline bounds everything: the log
stream is read newest first (GetLogEvents, startFromHead false) in paced pages, capped in events and bytes.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from . import changes, timeline, trail
from .arguments import Parser
from .aws import Call
from .settings import REGION_RE, UsageError

SCHEMA = "vpce-doctor/history/1"
DEFAULT_TIMEOUT, CONNECT_TIMEOUT, MAX_TIMEOUT = 30.0, 5.0, 600.0
MAX_HOURS = 90 * 24       # CloudTrail's event history keeps 90 days (LookupEvents API reference)
MAX_REPORTS = 3000        # a month of runs every 15 minutes
MAX_BYTES = 48 * 1024 * 1024
MAX_PAGES = 60
# GetLogEvents: 25 requests per second per account and Region (CloudWatch Logs quotas,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html); paced well below it, as the
# fleet paces FilterLogEvents (fleet_api.FILTER_RATE), so the timer's PutLogEvents on the fleet are never starved.
LOGS_RATE = 5.0


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="vpce-doctor history", description="Read an instance's shipped reports back from CloudWatch "
               "Logs: when it broke, what changed, and (with cloudtrail:LookupEvents) who changed it.",
               epilog="Exit codes: 0 the newest run was healthy, 1 it was broken, 2 no verdict (no run found, the "
                      "reports could not be read), 64 usage error.")
    p.add_argument("--instance-id", help="the instance (default: this one, from IMDS); from a workstation, like "
                   "`vpce-doctor remote`")
    p.add_argument("--region", help="Region (default: IMDS on the instance; else AWS_REGION, the profile's)")
    p.add_argument("--log-group", help="the reports' log group (default: the configured one, /vpce-doctor/reports)")
    p.add_argument("--hours", type=float, default=24.0, help="how far back to read (default: 24)")
    p.add_argument("--since", metavar="TIME", help="read from this UTC time instead (2026-11-28T09:00:00Z)")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="deadline in seconds (default: 30)")
    return p


def main(argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    try:
        args = parser().parse_args(list(argv))
        start = _start(args)
        if not 0 < args.timeout <= MAX_TIMEOUT:
            raise UsageError("--timeout must be between 0 and 600 seconds")
    except UsageError as error:
        stderr.write(f"vpce-doctor history: {error}\n")
        return 64
    deadline = time.monotonic() + args.timeout
    try:
        where = _where(args, environ, deadline)
    except UsageError as error:
        stderr.write(f"vpce-doctor history: {error}\n")
        return 64
    doc = history(where, start, deadline)
    made = doc["requests"]
    stderr.write(f"vpce-doctor history: {made['logs'] + made['cloudtrail']} requests ({made['logs']} CloudWatch "
                 f"Logs, {made['cloudtrail']} CloudTrail), {made['throttled']} throttled\n")
    from .redact import line, tree
    doc = tree(doc)  # every value came from outside (the stream, CloudTrail): shown through the one redaction
    stdout.write(json.dumps(doc, indent=2) + "\n" if args.output == "json" else
                 "".join(line(x) + "\n" for x in text(doc)))
    stdout.flush()
    return int(doc["exit_code"])


def _start(args) -> datetime:
    if args.since:
        try:
            start = datetime.strptime(args.since.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        except ValueError:
            raise UsageError(f"--since {args.since!r} is not a UTC time like 2026-11-28T09:00:00Z") from None
        if start < datetime.now(timezone.utc) - timedelta(hours=MAX_HOURS):
            raise UsageError("--since: at most 90 days back")
        return start
    if not 0 < args.hours <= MAX_HOURS:
        raise UsageError(f"--hours must be between 0 and {MAX_HOURS} (90 days)")
    return datetime.now(timezone.utc) - timedelta(hours=args.hours)


def _where(args, environ: Mapping[str, str], deadline: float) -> Dict[str, Any]:
    """Instance, Region, log group and clients: from the arguments (a workstation) or IMDS (on the instance)."""
    from .arguments import instance_id, operator_region
    from .aws import Clients
    remaining = lambda: deadline - time.monotonic()  # noqa: E731
    group = args.log_group
    if args.instance_id:
        instance, region = instance_id(args.instance_id), operator_region(args.region, environ)
        endpoints: Dict[str, Optional[str]] = {"logs": None, "cloudtrail": None}  # botocore's choice, as remote's
    else:
        from .facts import gather
        facts = gather(environ, remaining)
        if not facts.instance_id:
            raise UsageError("this is not an EC2 instance whose IMDS answers: pass --instance-id (and --region)")
        instance, region, endpoints = facts.instance_id, args.region or facts.region, {}
    if not region or not REGION_RE.fullmatch(region):
        raise UsageError(f"--region {region!r} is not a Region name" if region else "no Region: use --region")
    if not group:
        from .settings import load
        group = load({}, environ).log_group
    clients = Clients(region, endpoints, min(CONNECT_TIMEOUT, args.timeout), remaining)
    return {"instance_id": instance, "region": region, "log_group": group, "clients": clients,
            "remaining": remaining}


def history(where: Mapping[str, Any], start: datetime, deadline: float) -> Dict[str, Any]:
    """The history document: the runs' timeline, the break, the change, and CloudTrail's calls in between."""
    from .fleet_api import Paced
    instance, group = where["instance_id"], where["log_group"]
    logs_pace, trail_pace = Paced(LOGS_RATE, deadline), Paced(trail.RATE, deadline)
    messages, problem, capped = read(logs_pace, where["clients"].client("logs"), group, instance, start)
    found, notes = timeline.runs(messages, instance)
    notes = ([problem] if problem else []) + ([capped] if capped else []) + notes
    good, bad = timeline.break_point(found)
    change = timeline.what_changed(good, bad)
    doc: Dict[str, Any] = {
        "schema": SCHEMA, "instance_id": instance, "region": where["region"], "log_group": group,
        "since": trail.iso(start), "runs": len(found), "timeline": timeline.segments(found),
        "last_healthy_at": good["at"] if good else None, "first_broken_at": bad["at"] if bad else None,
        "change": change, "cloudtrail": None, "notes": notes,
        "exit_code": found[-1]["exit_code"] if found and found[-1]["exit_code"] in (0, 1) else 2}
    if good is not None and bad is not None:
        doc["cloudtrail"] = _cloudtrail(where, good, bad, change, trail_pace)
    doc["requests"] = {"logs": logs_pace.requests, "cloudtrail": trail_pace.requests,
                       "throttled": logs_pace.throttled + trail_pace.throttled}
    return doc


def read(paced, logs, group: str, stream: str, start: datetime) -> Tuple[List[str], str, str]:
    """The stream's messages since `start`, newest pages first, within the caps: (messages oldest first, a
    problem that stopped the reading, a note when a cap stopped it)."""
    pages: List[List[str]] = []
    size, token, count = 0, None, 0
    for _ in range(MAX_PAGES):
        got = paced(logs, "get_log_events", logGroupName=group, logStreamName=stream, startFromHead=False,
                    startTime=int(start.timestamp() * 1000), **({"nextToken": token} if token else {}))
        if not got.ok:
            return [m for page in reversed(pages) for m in page], _logs_problem(got, group, stream), ""
        response = got.response
        page = [str(e.get("message", "")) for e in response.get("events") or () if isinstance(e, dict)]
        pages.append(page)
        size, count = size + sum(len(m) for m in page), count + len(page)
        previous, token = token, response.get("nextBackwardToken")
        if not page or not token or token == previous:  # GetLogEvents: the same token back means the end
            break
        if count >= MAX_REPORTS or size >= MAX_BYTES:
            return [m for page in reversed(pages) for m in page], "", (
                f"stopped reading after the newest {count} events ({size // 1024} KiB): use --hours to look less "
                "far back")
    return [m for page in reversed(pages) for m in page], "", ""


def _logs_problem(got: Call, group: str, stream: str) -> str:
    code = got.code
    if code == "ResourceNotFoundException":
        return (f"no log stream {stream} in {group}: this instance never shipped a report there (the timer runs "
                "`vpce-doctor --ship`; is it enabled, and is --log-group the one it ships to?)")
    if code in ("AccessDeniedException", "AccessDenied"):
        return (f"logs:GetLogEvents on {group} was refused ({str(got.message)[:300]}): allow it (the "
                "ReadReports statement of packaging/iam/vpce-doctor-policy.json)")
    return f"the reports could not be read from {group}: {code or got.kind}: {str(got.message)[:300]}"


def _cloudtrail(where, good, bad, change, paced) -> Dict[str, Any]:
    names = trail.names(change, good["record"], bad["record"])
    start, end = trail.window(good["at"], bad["at"])
    found = trail.lookup(paced, where["clients"].client("cloudtrail"), names, start, end,
                         where["remaining"])
    return {**found, "from": trail.iso(start), "to": trail.iso(end)}


def text(doc: Mapping[str, Any]) -> List[str]:
    out = [f"vpce-doctor history {doc['instance_id']} · {doc['region']} · {doc['log_group']} since {doc['since']}: "
           f"{doc['runs']} run(s)"]
    out += [timeline.line(s) for s in doc["timeline"]] or ["  no report of this instance in the window"]
    if doc.get("first_broken_at"):
        out.append(f"last healthy run {doc.get('last_healthy_at') or '(none in the window)'}; first broken run "
                   f"{doc['first_broken_at']}")
    if doc.get("change"):
        out += changes.lines(doc["change"], limit=8)
    if doc.get("cloudtrail"):
        found = doc["cloudtrail"]
        out += trail.lines(found, doc["region"], found["from"], found["to"])
    out += [f"note: {n}" for n in doc.get("notes") or ()]
    return out
