"""Who changed what between the last healthy and the first broken run: CloudTrail's event history (LookupEvents) on
the resources the two runs named (security groups, route tables, endpoints, network ACLs, subnets, the VPC).

LookupEvents takes one lookup attribute per call ("Currently the list can contain only one item") and answers at
most 50 events a page; "the rate of lookup requests is limited to two per second, per account, per Region. If this
limit is exceeded, a throttling error occurs" (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/
API_LookupEvents.html). So one ResourceName lookup per resource, paced at 2/s (fleet_api.Paced, which also waits
out a throttle), the resources capped, all within the command's deadline. A denial or an unreachable endpoint is
said, and the rest of the history still shows.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import plan
from .aws import Call

RATE = 2.0           # LookupEvents requests per second (API reference above)
PAGE = 50            # LookupEvents' MaxResults: "The default number of results returned is 50, with a maximum of 50"
MAX_NAMES = 12       # resources looked up: 6 s of the deadline at 2/s
MAX_PAGES = 2        # per resource: 100 events on one resource between two runs is a deployment, not a clue
SHOWN = 4            # resources named in the text's heading
MAX_EVENT = 100 * 1024  # a CloudTrailEvent document (the record JSON) read at most this long
# Resource ids as EC2 writes them (8 or 17 hex digits): the kinds whose changes break an instance's path.
ID_RE = re.compile(r"\b(?:sg|rtb|vpce|acl|subnet|vpc|pl|eni)-[0-9a-f]{8}(?:[0-9a-f]{9})?\b", re.ASCII)
KIND_ORDER = ("sg", "vpce", "rtb", "acl", "pl", "subnet", "eni", "vpc")
EVENT_RE = re.compile(r"^[A-Za-z0-9]{1,64}\Z", re.ASCII)


def names(changed: Optional[Mapping[str, Any]], *records: Optional[Mapping[str, Any]]) -> List[str]:
    """The resources to look up: ids in the evidence that changed first, then in the failing checks' evidence,
    then anywhere in the two runs' evidence (their instance facts included), by kind; at most MAX_NAMES."""
    first: List[str] = []
    for item in (changed or {}).get("changed") or ():
        first += ID_RE.findall(json.dumps([item.get("was"), item.get("now")], default=str))
    failing: List[str] = []
    rest: List[str] = []
    for rec in records:
        for check in ((rec or {}).get("checks") or {}).values():
            found = ID_RE.findall(json.dumps(check.get("seen") or {}, default=str))
            (failing if check.get("status") == "fail" else rest).extend(found)
    ordered = list(dict.fromkeys(first + sorted(failing, key=_kind) + sorted(rest, key=_kind)))
    return ordered[:MAX_NAMES]


def _kind(resource: str) -> int:
    return KIND_ORDER.index(resource.split("-", 1)[0])


def lookup(paced: Callable[..., Call], client, resources: Sequence[str], start: datetime, end: datetime,
           remaining: Callable[[], float]) -> Dict[str, Any]:
    """The write events on each resource in [start, end]: {"status": ok | denied | unreachable | error | partial,
    "events": [...], "looked_up": [...], "problem": str}. Stops early, saying so, when the deadline comes."""
    events: Dict[str, Dict[str, Any]] = {}
    looked: List[str] = []
    for name in resources:
        if remaining() < 1.0:
            return _result("partial", events, looked, f"time ran out after {len(looked)} of {len(resources)} "
                                                      "resources")
        token: Optional[str] = None
        for _ in range(MAX_PAGES):
            got = paced(client, "lookup_events", LookupAttributes=[{"AttributeKey": "ResourceName",
                                                                   "AttributeValue": name}],
                        StartTime=start, EndTime=end, MaxResults=PAGE, **({"NextToken": token} if token else {}))
            if not got.ok:
                return _result(_failure(got), events, looked, _problem(got))
            response = got.response or {}
            for event in response.get("Events") or ():
                one = event_of(event)
                if one is not None and one["read_only"] is not True:
                    events.setdefault(one["id"], one)
            token = response.get("NextToken")
            if not token:
                break
        looked.append(name)
    return _result("ok", events, looked, "")


def _result(status: str, events: Mapping[str, Dict[str, Any]], looked: List[str], problem: str) -> Dict[str, Any]:
    ordered = sorted(events.values(), key=lambda e: e["at"])
    return {"status": status, "events": ordered, "looked_up": looked, "problem": problem}


def _failure(got: Call) -> str:
    if got.code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        return "denied"
    return "unreachable" if got.kind in ("timeout", "unreachable", "tls") else "error"


def _problem(got: Call) -> str:
    return f"{got.code or got.kind}: {str(got.message or '')[:300]}"


def event_of(event: Any) -> Optional[Dict[str, Any]]:
    """One LookupEvents Event (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_Event.html) as
    who, what, when, on what; its CloudTrailEvent (the record: https://docs.aws.amazon.com/awscloudtrail/latest/
    userguide/cloudtrail-event-reference-record-contents.html) read for userIdentity.arn, sourceIPAddress and
    errorCode. None when it is not one."""
    if not isinstance(event, Mapping) or not isinstance(event.get("EventId"), str):
        return None
    name = str(event.get("EventName") or "")
    when = event.get("EventTime")
    if not EVENT_RE.match(name) or not isinstance(when, datetime):
        return None
    record = _record(event.get("CloudTrailEvent"))
    identity: Dict[str, Any] = record["userIdentity"] if isinstance(record.get("userIdentity"), dict) else {}
    resources = [str(r.get("ResourceName")) for r in event.get("Resources") or () if isinstance(r, Mapping)
                 and r.get("ResourceName")]
    read_only = {"true": True, "false": False}.get(str(event.get("ReadOnly") or record.get("readOnly")).lower())
    return {"id": event["EventId"][:64], "name": name, "time": iso(when), "at": when.timestamp(),
            "who": str(identity.get("arn") or event.get("Username") or identity.get("invokedBy") or "unknown")[:200],
            "source": str(record.get("eventSource") or event.get("EventSource") or "")[:64],
            "from": str(record.get("sourceIPAddress") or "")[:64], "resources": resources[:8],
            "error": str(record.get("errorCode") or "")[:64], "read_only": read_only}


def _record(text: Any) -> Dict[str, Any]:
    from .instance_files import parse_json
    if not isinstance(text, str) or len(text) > MAX_EVENT:
        return {}
    try:
        found = parse_json(text, max_depth=16)
    except (ValueError, RecursionError):
        return {}
    return found if isinstance(found, dict) else {}


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lines(found: Mapping[str, Any], region: str, start: str, end: str) -> List[str]:
    """CloudTrail's part of the history for people: one line per write call, or why there are none."""
    looked = list(found.get("looked_up") or ())
    named = ", ".join(looked[:SHOWN]) + (f" and {len(looked) - SHOWN} more" if len(looked) > SHOWN else "")
    head = f"CloudTrail, {start} .. {end}, on {named or 'no resource'}:"
    out = [head]
    for event in found.get("events") or ():
        on = ", ".join(event["resources"]) or "?"
        failed = f" (failed: {event['error']})" if event["error"] else ""
        out.append(f"  {event['time']}  {event['name']} on {on} by {event['who']}{failed}")
    status = found.get("status")
    if status == "ok" and not found.get("events"):
        out.append("  no write call on these resources in the window (CloudTrail's event history shows a call "
                   "after a delay of minutes; IAM's calls are in us-east-1's)")
    for problem in _explained(status, found.get("problem") or "", region):
        out.append(f"  {problem}")
    return out


def _explained(status: Optional[str], problem: str, region: str) -> Iterable[str]:
    if status == "denied":
        yield (f"cloudtrail:LookupEvents was refused ({problem}); allow it to see who changed what (the "
               "CloudTrailLookup statement of packaging/iam/vpce-doctor-policy.json)")
    elif status == "unreachable":
        domain = plan.domain_for(region)  # the partition's names, as every remedy (amazonaws.com.cn in China)
        yield (f"CloudTrail's endpoint {plan.service_name('cloudtrail', region, domain)} cannot be reached "
               f"({problem}): from a private subnet that needs an interface endpoint "
               f"{plan.endpoint_service_name('cloudtrail', region, domain)}, or run "
               "`vpce-doctor history --instance-id ID` from a workstation")
    elif status in ("error", "partial"):
        yield f"CloudTrail's lookups stopped: {problem}"


def window(good_at: str, bad_at: str, margin_s: int = 60) -> Tuple[datetime, datetime]:
    """[the last healthy run's start, the first broken run's start + margin]: the broken run's probes ran after
    its start, so a change made while it ran still broke it."""
    from datetime import timedelta
    start = datetime.strptime(good_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    end = datetime.strptime(bad_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return start, end + timedelta(seconds=margin_s)
