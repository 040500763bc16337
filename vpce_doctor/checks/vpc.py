"""vpc:endpoints: the control plane's view (endpoints, DNS attributes, security groups, routes) in named resources."""
from __future__ import annotations

import ipaddress
from typing import Dict, List, Mapping, Optional, Sequence

from ..aws import call
from ..model import Check, Remedy, Result, Severity, Status

FIX = "Fix the resources named in the summary; these commands, one per problem, do it."


def check() -> Check:
    return Check("vpc:endpoints", "the VPC's endpoints, DNS attributes, security groups and routes agree",
                 Severity.LOW, run, needs=("tls:ec2", "creds:source"), after=("dns:s3",))


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
    subnets = sorted({s for e in endpoints for s in e.get("SubnetIds", [])})
    seen["subnets"] = call(ec2, "describe_subnets", SubnetIds=subnets) if subnets else {"ok": True, "response": {}}
    s3_addresses = list(prior["dns:s3"].evidence.get("addresses") or ()) if "dns:s3" in prior else []
    if s3_addresses:
        lists = call(ec2, "describe_managed_prefix_lists",
                     Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{ctx.region}.s3"]}])
        found = (lists.get("response") or {}).get("PrefixLists") or [{}]  # type: ignore[union-attr]
        if found[0].get("PrefixListId"):
            seen["s3_prefix_list"] = call(ec2, "get_managed_prefix_list_entries", PrefixListId=found[0]["PrefixListId"])
            seen["s3_prefix_list"]["id"] = found[0]["PrefixListId"]
    return assess(seen, [t.service for t in ctx.targets], ctx.region, facts.vpc_id, list(facts.vpc_cidrs),
                  list(facts.security_groups), facts.private_ip, facts.az, s3_addresses, facts.subnet_id)


def assess(seen: Mapping[str, Mapping], services: Sequence[str], region: str, vpc_id: Optional[str],
           vpc_cidrs: List[str], instance_groups: List[str], private_ip: Optional[str], az: Optional[str] = None,
           s3_addresses: Sequence[str] = (), subnet: Optional[str] = None) -> Result:
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
                               "subnets": endpoint.get("SubnetIds", []),
                               "policy": endpoint.get("PolicyDocument")}
    problems: List[str] = []
    commands: List[str] = []

    def problem(text: str, command: str) -> None:
        problems.append(text)
        commands.append(command)

    vpc = vpc_id or "<vpc-id>"
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        value = ((seen.get(attribute) or {}).get("response") or {}).get(attribute[0].upper() + attribute[1:], {})
        if value.get("Value") is False:
            flag = "--enable-dns-" + attribute[len("enableDns"):].lower()
            problem(f"{vpc_id} has {attribute} off: private DNS names of interface endpoints do not resolve",
                    f"aws ec2 modify-vpc-attribute --vpc-id {vpc} {flag} '{{\"Value\":true}}'")
    rules = _ingress(seen.get("groups", {}))
    zone_of = {sn["SubnetId"]: sn.get("AvailabilityZone") for sn in
               ((seen.get("subnets") or {}).get("response") or {}).get("Subnets", [])}
    tables = (seen.get("routes", {}).get("response") or {}).get("RouteTables", [])
    routes = [r for table in tables for r in table.get("Routes", [])]
    table = (tables[0].get("RouteTableId") if tables else None) or "<rtb-id>"
    source = f"--source-group {instance_groups[0]}" if instance_groups else f"--cidr {(vpc_cidrs or ['<cidr>'])[0]}"
    for service in services:
        found = by_service.get(service)
        gateway = service in ("s3", "dynamodb")
        if found is None:
            where = f"--route-table-ids {table}" if gateway else f"--subnet-ids {subnet or '<subnet-id>'} " \
                "--security-group-ids <sg-id> --private-dns-enabled"
            problem(f"no endpoint for {service} in {vpc_id} (com.amazonaws.{region}.{service})",
                    f"aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type "
                    f"{'Gateway' if gateway else 'Interface'} --service-name com.amazonaws.{region}.{service} {where}")
        elif found["state"] not in (None, "available", "Available"):
            problem(f"{found['id']} ({service}) is {found['state']}",
                    f"aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {found['id']}")
        elif str(found["type"]).lower() == "interface":
            if not found["private_dns"]:
                problem(f"{found['id']} ({service}) has private DNS off",
                        f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {found['id']} --private-dns-enabled")
            if not any(_admits(rules.get(g, []), instance_groups, vpc_cidrs, private_ip) for g in found["groups"]):
                group = (found["groups"] or ["<sg-id>"])[0]
                problem(f"{', '.join(found['groups']) or 'no security group'} on {found['id']} ({service}) has no "
                        f"inbound 443 from {', '.join(instance_groups) or private_ip or 'this instance'}",
                        f"aws ec2 authorize-security-group-ingress --group-id {group} --protocol tcp --port 443 "
                        f"{source}")
            zones = {zone_of.get(s) for s in found["subnets"]}
            if az and zone_of and az not in zones:
                problem(f"{found['id']} ({service}) has no network interface in {az}: traffic crosses "
                        "Availability Zones and stops if the other zone fails",
                        f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {found['id']} --add-subnet-ids "
                        f"<a subnet in {az}>")
        elif not any(r.get("GatewayId") == found["id"] for r in routes):
            problem(f"this subnet's route table {table} has no route to {found['id']} ({service} gateway endpoint)",
                    f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {found['id']} --add-route-table-ids {table}")
    prefix_list = seen.get("s3_prefix_list") or {}
    cidrs = [e.get("Cidr") for e in (prefix_list.get("response") or {}).get("Entries", []) if e.get("Cidr")]
    outside = [a for a in s3_addresses if cidrs and not any(_within(a, c) for c in cidrs)]
    if outside:
        problem(f"s3 resolves to {', '.join(outside)}, outside the S3 prefix list {prefix_list.get('id')}: the "
                "gateway endpoint's route does not cover it (another Region's S3, or a DNS override)",
                f"getent ahosts s3.{region}.amazonaws.com; grep amazonaws /etc/hosts")
    evidence = {"endpoints": by_service, "problems": problems, "s3_prefix_list": {
        "id": prefix_list.get("id"), "cidrs": cidrs, "error": prefix_list.get("code")} if prefix_list else None}
    if problems:
        return Result(Status.WARN, "; ".join(problems), code="misconfigured", evidence=evidence,
                      cause="The control plane shows why the data-plane checks above fail.",
                      remedy=Remedy(FIX, tuple(commands)))
    return Result(Status.PASS, f"{len(by_service)} endpoints in {vpc_id}, consistent with this instance",
                  evidence=evidence)


def _ingress(groups_call: Mapping) -> Dict[str, list]:
    groups = (groups_call.get("response") or {}).get("SecurityGroups", [])
    return {g["GroupId"]: g.get("IpPermissions", []) for g in groups}


def _within(address: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


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
