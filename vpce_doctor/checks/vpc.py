"""vpc:endpoints: the control plane's view (endpoints, DNS attributes, security groups, routes) in named resources."""
from __future__ import annotations

import ipaddress
from typing import Dict, List, Mapping, Optional, Sequence

from ..aws import call
from ..model import Check, Remedy, Result, Severity, Status

FIX = Remedy("Fix the resources named above; each line says what is missing.",
             ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc}",))


def check() -> Check:
    return Check("vpc:endpoints", "the VPC's endpoints, DNS attributes, security groups and routes agree",
                 Severity.LOW, run, needs=("tls:ec2", "creds:source"))


def run(ctx, prior) -> Result:
    ec2, facts = ctx.clients.client("ec2"), ctx.facts
    vpc = [{"Name": "vpc-id", "Values": [facts.vpc_id or ""]}]
    seen = {"endpoints": call(ec2, "describe_vpc_endpoints", Filters=vpc)}
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        seen[attribute] = call(ec2, "describe_vpc_attribute", VpcId=facts.vpc_id or "", Attribute=attribute)
    seen["routes"] = call(ec2, "describe_route_tables",
                          Filters=[{"Name": "association.subnet-id", "Values": [facts.subnet_id or ""]}])
    endpoints = (seen["endpoints"].get("response") or {}).get("VpcEndpoints", [])  # type: ignore[union-attr]
    groups = sorted({g["GroupId"] for e in endpoints for g in e.get("Groups", [])})
    seen["groups"] = call(ec2, "describe_security_groups", GroupIds=groups) if groups else {"ok": True, "response": {}}
    return assess(seen, [t.service for t in ctx.targets], ctx.region, facts.vpc_id, list(facts.vpc_cidrs),
                  list(facts.security_groups), facts.private_ip)


def assess(seen: Mapping[str, Mapping], services: Sequence[str], region: str, vpc_id: Optional[str],
           vpc_cidrs: List[str], instance_groups: List[str], private_ip: Optional[str]) -> Result:
    failed = {name: r for name, r in seen.items() if not r.get("ok")}
    if "endpoints" in failed:
        error = failed["endpoints"]
        return Result(Status.WARN, f"the control plane cannot be read: {error.get('code')}", code="unavailable",
                      cause="DescribeVpcEndpoints failed, so the findings above stay explanations by symptom, "
                            "without resource ids. Grant ec2:Describe* to the role to get them.",
                      evidence={"error": {k: error.get(k) for k in ("code", "message", "kind")}})
    by_service: Dict[str, dict] = {}
    for endpoint in seen["endpoints"]["response"].get("VpcEndpoints", []):
        service = str(endpoint.get("ServiceName", "")).rsplit(".", 1)[-1]
        by_service[service] = {"id": endpoint.get("VpcEndpointId"), "type": endpoint.get("VpcEndpointType"),
                               "state": endpoint.get("State"), "private_dns": endpoint.get("PrivateDnsEnabled"),
                               "groups": [g["GroupId"] for g in endpoint.get("Groups", [])],
                               "route_tables": endpoint.get("RouteTableIds", []),
                               "policy": endpoint.get("PolicyDocument")}
    problems = []
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        value = ((seen.get(attribute) or {}).get("response") or {}).get(attribute[0].upper() + attribute[1:], {})
        if value.get("Value") is False:
            problems.append(f"{vpc_id} has {attribute} off: private DNS names of interface endpoints do not resolve")
    rules = _ingress(seen.get("groups", {}))
    routes = [r for table in (seen.get("routes", {}).get("response") or {}).get("RouteTables", [])
              for r in table.get("Routes", [])]
    for service in services:
        found = by_service.get(service)
        if found is None:
            problems.append(f"no endpoint for {service} in {vpc_id} (com.amazonaws.{region}.{service})")
        elif found["state"] not in (None, "available", "Available"):
            problems.append(f"{found['id']} ({service}) is {found['state']}")
        elif str(found["type"]).lower() == "interface":
            if not found["private_dns"]:
                problems.append(f"{found['id']} ({service}) has private DNS off")
            if not any(_admits(rules.get(g, []), instance_groups, vpc_cidrs, private_ip) for g in found["groups"]):
                problems.append(f"{', '.join(found['groups']) or 'no security group'} on {found['id']} ({service}) "
                                f"has no inbound 443 from {', '.join(instance_groups) or private_ip or 'this instance'}")
        elif not any(r.get("GatewayId") == found["id"] for r in routes):
            problems.append(f"this subnet's route table has no route to {found['id']} ({service} gateway endpoint)")
    evidence = {"endpoints": by_service, "problems": problems}
    if problems:
        return Result(Status.WARN, "; ".join(problems), code="misconfigured", evidence=evidence,
                      cause="The control plane shows why the data-plane checks above fail.",
                      remedy=FIX.filled(vpc=vpc_id or "<vpc-id>"))
    return Result(Status.PASS, f"{len(by_service)} endpoints in {vpc_id}, consistent with this instance",
                  evidence=evidence)


def _ingress(groups_call: Mapping) -> Dict[str, list]:
    groups = (groups_call.get("response") or {}).get("SecurityGroups", [])
    return {g["GroupId"]: g.get("IpPermissions", []) for g in groups}


def _admits(permissions, instance_groups, vpc_cidrs, private_ip) -> bool:
    """Does any rule let TCP 443 in from this instance's groups, its address, or the VPC's CIDRs?"""
    for rule in permissions:
        protocol = str(rule.get("IpProtocol"))
        ports = protocol == "-1" or (protocol == "tcp" and rule.get("FromPort", 0) <= 443 <= rule.get("ToPort", 0))
        if not ports:
            continue
        if any(pair.get("GroupId") in instance_groups for pair in rule.get("UserIdGroupPairs", [])):
            return True
        for cidr in (r.get("CidrIp") for r in rule.get("IpRanges", [])):
            network = ipaddress.ip_network(cidr, strict=False) if cidr else None
            if network and (any(ipaddress.ip_network(v).subnet_of(network) for v in vpc_cidrs)
                            or (private_ip and ipaddress.ip_address(private_ip) in network)):
                return True
    return False
