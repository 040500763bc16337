"""CloudTrail in the lab: the changes an operator makes to a running lab (labd's "change" command), recorded as
CloudTrail records them, and LookupEvents over them, which moto lacks (moto 5.2.5's cloudtrail backend has trails
but no event history).

A change keeps the world (same instance, same log group and its shipped reports) and makes its API calls in moto as
the named operator; the data plane then follows the merged scenario (labd.apply with keep_world). Each call is one
record in CloudTrail's record format (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
cloudtrail-event-reference-record-contents.html; EC2's requestParameters in its lower-camel "items" form, as EC2's
CloudTrail records show them), and LookupEvents answers with them as the API reference describes
(https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html): one lookup attribute, at most
50 results a page, newest first, StartTime/EndTime inclusive, two requests per second per account and Region beyond
which it throttles. Written apart from vpce_doctor (never imports it).
"""
from __future__ import annotations

import json
import threading
import time
import uuid

from tests.lab import scenario as scenarios

OPERATOR = "network-admin"
ATTRIBUTES = ("EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource",
              "AccessKeyId")
RATE = 2.0  # LookupEvents per second (API reference above)
PAGE = 50  # its MaxResults: at most 50 (ibid.)
_lock = threading.Lock()


def reset(world) -> None:
    """A new world has no history (apply() resets moto)."""
    world.__dict__["trail"] = []
    world.__dict__["trail_calls"] = {"LookupEvents": 0, "throttled": 0}


def change(world, current: dict, overrides: dict, actor: str = OPERATOR) -> dict:
    """Make the change in moto as `actor` would with the EC2 API, record each call, return the merged scenario.
    Only changes the lab can make in place (the world stays): [instance] egress, [endpoints.s3] route, an
    endpoint's policy."""
    merged = scenarios.merge(current, overrides, where="change")
    ec2, facts = world.client("ec2"), world.facts
    unsupported = _unsupported(overrides)
    if unsupported:
        raise ValueError(f"the lab cannot change {', '.join(unsupported)} in place (switch to a scenario instead)")
    before, after = current["instance"]["egress"], merged["instance"]["egress"]
    if before != after:
        _egress(world, ec2, facts["security_group_ids"][0], before, after, actor)
    for svc, spec in (overrides.get("endpoints") or {}).items():
        endpoint = facts["endpoints"][svc]["id"]
        if "route" in spec and spec["route"] != current["endpoints"][svc].get("route", True):
            table = {"AddRouteTableIds" if spec["route"] else "RemoveRouteTableIds": [facts["route_table_id"]]}
            ec2.modify_vpc_endpoint(VpcEndpointId=endpoint, **table)
            record(world, actor, "ModifyVpcEndpoint", {"ModifyVpcEndpointRequest": {
                "VpcEndpointId": endpoint, **{k: {"item": v} for k, v in table.items()}}},
                [("AWS::EC2::VPCEndpoint", endpoint), ("AWS::EC2::RouteTable", facts["route_table_id"])])
        if "policy" in spec:
            ec2.modify_vpc_endpoint(VpcEndpointId=endpoint, PolicyDocument=spec["policy"])
            record(world, actor, "ModifyVpcEndpoint", {"ModifyVpcEndpointRequest": {
                "VpcEndpointId": endpoint, "PolicyDocument": spec["policy"]}}, [("AWS::EC2::VPCEndpoint", endpoint)])
    merged["name"] = f"{current.get('name')}+change"
    return merged


def _unsupported(overrides: dict) -> list:
    out = [f"[{k}]" for k in overrides if k not in ("instance", "endpoints")]
    out += [f"[instance] {k}" for k in overrides.get("instance", {}) if k != "egress"]
    out += [f"[endpoints.{s}] {k}" for s, spec in overrides.get("endpoints", {}).items() for k in spec
            if k not in ("policy",) + (("route",) if s == "s3" else ())]
    return out


def _egress(world, ec2, group: str, before: str, after: str, actor: str) -> None:
    """The instance's security group from one [instance] egress mode to another, rule by rule."""
    rules = {"all": {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
             "vpc-only": {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}}
    if before in rules:
        ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[rules[before]])
        record(world, actor, "RevokeSecurityGroupEgress", _permissions(group, rules[before]),
               [("AWS::EC2::SecurityGroup", group)])
    if after in rules:
        ec2.authorize_security_group_egress(GroupId=group, IpPermissions=[rules[after]])
        record(world, actor, "AuthorizeSecurityGroupEgress", _permissions(group, rules[after]),
               [("AWS::EC2::SecurityGroup", group)])


def _permissions(group: str, rule: dict) -> dict:
    item = {"ipProtocol": rule["IpProtocol"], "ipRanges": {"items": [{"cidrIp": r["CidrIp"]} for r in
                                                                      rule["IpRanges"]]}}
    item.update({k: rule[K] for k, K in (("fromPort", "FromPort"), ("toPort", "ToPort")) if K in rule})
    return {"groupId": group, "ipPermissions": {"items": [item]}}


def record(world, actor: str, name: str, parameters: dict, resources: list, source: str = "ec2.amazonaws.com"):
    """One management event, as an IAM user's console or CLI call is recorded."""
    now = time.time() + world.clock_offset
    key = "AKIA" + uuid.uuid4().hex[:16].upper()
    entry = {
        "eventVersion": "1.10",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA" + uuid.uuid5(uuid.NAMESPACE_DNS, actor).hex[:17]
                         .upper(), "arn": f"arn:aws:iam::{world.account}:user/{actor}", "accountId": world.account,
                         "accessKeyId": key, "userName": actor},
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "eventSource": source,
        "eventName": name, "awsRegion": world.region, "sourceIPAddress": "198.51.100.23",
        "userAgent": "aws-cli/2.22.0 md/Botocore#1.35.0 os/linux", "requestParameters": parameters,
        "responseElements": {"_return": True}, "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()),
        "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": world.account,
        "eventCategory": "Management"}
    with _lock:
        world.__dict__.setdefault("trail", []).append(
            {"time": now, "record": entry, "resources": [{"ResourceType": t, "ResourceName": n} for t, n in resources]})


def lookup_events(world, params: dict):
    """LookupEvents over the recorded changes: (status, error code, message) on a bad request, else the answer."""
    calls = world.__dict__.setdefault("trail_calls", {"LookupEvents": 0, "throttled": 0})
    calls["LookupEvents"] += 1
    if _throttled(world):
        calls["throttled"] += 1
        return 400, "ThrottlingException", "Rate exceeded"
    attributes = params.get("LookupAttributes") or []
    if len(attributes) > 1 or any(a.get("AttributeKey") not in ATTRIBUTES for a in attributes):
        return 400, "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute."
    size = int(params.get("MaxResults") or PAGE)
    if not 1 <= size <= PAGE:
        return 400, "InvalidMaxResultsException", "MaxResults must be between 1 and 50."
    start, end = float(params.get("StartTime") or 0), float(params.get("EndTime") or time.time() + 1e9)
    with _lock:
        found = [e for e in world.__dict__.get("trail", []) if start <= e["time"] <= end and _matches(e, attributes)]
    found.sort(key=lambda e: -e["time"])  # newest first
    first = int(params.get("NextToken") or 0)
    page = [_event(e) for e in found[first:first + size]]
    return {"Events": page, **({"NextToken": str(first + size)} if first + size < len(found) else {})}


def _matches(entry: dict, attributes: list) -> bool:
    if not attributes:
        return True
    key, value = attributes[0]["AttributeKey"], attributes[0].get("AttributeValue")
    rec = entry["record"]
    have = {"EventId": [rec["eventID"]], "EventName": [rec["eventName"]], "ReadOnly": [str(rec["readOnly"]).lower()],
            "Username": [rec["userIdentity"]["userName"]], "EventSource": [rec["eventSource"]],
            "AccessKeyId": [rec["userIdentity"]["accessKeyId"]],
            "ResourceType": [r["ResourceType"] for r in entry["resources"]],
            "ResourceName": [r["ResourceName"] for r in entry["resources"]]}[key]
    return value in have


def _event(entry: dict) -> dict:
    rec = entry["record"]
    return {"EventId": rec["eventID"], "EventName": rec["eventName"], "ReadOnly": str(rec["readOnly"]).lower(),
            "AccessKeyId": rec["userIdentity"]["accessKeyId"], "EventTime": entry["time"],
            "EventSource": rec["eventSource"], "Username": rec["userIdentity"]["userName"],
            "Resources": entry["resources"], "CloudTrailEvent": json.dumps(rec)}


def _throttled(world) -> bool:
    """A token bucket at RATE with one second's burst."""
    now = time.monotonic()
    with _lock:
        tokens, last = world.__dict__.get("trail_bucket", (RATE, now))
        tokens = min(RATE, tokens + (now - last) * RATE)
        world.__dict__["trail_bucket"] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens < 1
