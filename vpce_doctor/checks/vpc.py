"""vpc:endpoints: the control plane's view (endpoints, DNS attributes, security groups, network ACLs, routes) in
named resources. Each problem is found by one small function and names the data-plane check it explains."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..aws import Call
from ..model import Check, Remedy, Result, Severity, Status
from ..plan import endpoint_service_name, service_name
from . import dns, s3_paths, vpc_observe
from . import vpc_path as path
from .vpc_path import GATEWAY, Problem, View

FIX = "Fix the resources named in the summary; these commands, one per problem, do it."


def check(services: Sequence[str] = ()) -> Check:
    return Check("vpc:endpoints", "the VPC's endpoints, DNS attributes, security groups, ACLs and routes agree",
                 Severity.LOW, run, needs=("tls:ec2", "creds:source"),
                 after=tuple(f"dns:{s}" for s in services) or ("dns:s3",), clients=("ec2",))


def run(ctx, prior) -> Result:
    facts = ctx.facts
    addresses = {t.service: dns.addresses(prior[f"dns:{t.service}"]) for t in ctx.targets
                 if f"dns:{t.service}" in prior}
    seen = vpc_observe.observe(ctx.clients.client("ec2"), facts.vpc_id, facts.subnet_id, facts.security_groups,
                   ctx.endpoint_service_name("s3", gateway=True) if addresses.get("s3") else None)
    return assess(seen, [t.service for t in ctx.targets], ctx.region, facts.vpc_id, list(facts.vpc_cidrs),
                  list(facts.security_groups), facts.private_ip, facts.az, addresses.get("s3", []), facts.subnet_id,
                  domain=ctx.domain, addresses=addresses, subnet_cidr=facts.subnet_cidr)


def assess(seen: Mapping[str, Call], services: Sequence[str], region: str, vpc_id: Optional[str],
           vpc_cidrs: List[str], instance_groups: List[str], private_ip: Optional[str], az: Optional[str] = None,
           s3_addresses: Sequence[str] = (), subnet: Optional[str] = None, *, domain: str = "amazonaws.com",
           addresses: Optional[Mapping[str, Sequence[str]]] = None, subnet_cidr: Optional[str] = None) -> Result:
    if not seen["endpoints"].ok:
        return _unreadable(seen["endpoints"])
    view = _view(seen, View(services, region, domain, vpc_id, vpc_cidrs, instance_groups, private_ip, az, subnet,
                            subnet_cidr, {**(addresses or {}), **({"s3": list(s3_addresses)} if s3_addresses else {})}))
    problems = [*_attributes(seen, view), *(p for s in services for p in _endpoint(view, s)),
                *(p for s in services for p in path.egress_problems(view, s)),
                *(p for s in services for p in path.acl_problems(view, s)),
                *_s3_prefix_list(view)]
    problems.sort(key=lambda p: not p.explains)  # what breaks a path first, advice (an AZ without an ENI) after
    evidence = _evidence(view, problems)
    if problems:
        return _misconfigured(problems, evidence)
    shared = sorted(s for s in services if s not in view.endpoints and _elsewhere(view, s))
    evidence["shared"] = shared
    return Result(Status.PASS, f"{len(view.endpoints)} endpoints in {vpc_id}, consistent with this instance"
                  + (f"; {', '.join(shared)} from endpoints shared by another VPC" if shared else ""),
                  evidence=evidence)


def _evidence(view: View, problems: Sequence[Problem]) -> Dict[str, object]:
    pl = view.prefix_list
    return {"endpoints": view.endpoints, "problems": [p.text for p in problems],
            "explains": sorted({c for p in problems for c in p.explains}),
            "explained": _explained(problems),
            "route_table": {"id": view.table_id, "main": view.implicit} if view.table else None,
            "s3_prefix_list": {"id": pl.id, "cidrs": pl.cidrs, "error": None if pl.entries.ok else pl.entries.code}
            if pl else None}


def _misconfigured(problems: Sequence[Problem], evidence: Dict[str, object]) -> Result:
    """One WARN naming every problem; its code is the one problem that explains a failure, else 'misconfigured'."""
    codes = {p.code for p in problems if p.explains} or {p.code for p in problems}
    return Result(Status.WARN, "; ".join(p.text for p in problems), evidence=evidence,
                  code=codes.pop() if len(codes) == 1 else "misconfigured",
                  cause="The control plane shows why the data-plane checks above fail.",
                  remedy=Remedy(FIX, tuple(p.command for p in problems)))


def endpoint(result, service: str) -> Dict[str, Any]:
    """The id, policy and type of the endpoint a vpc:endpoints finding read for a service (all None when it did not
    run, could not read the endpoints, or found none for the service): the one on this instance's path, with the one
    it bypasses as "other" (S3's gateway and interface endpoints)."""
    endpoints = result.evidence.get("endpoints") if result is not None else None
    found = (endpoints.get(service) if isinstance(endpoints, Mapping) else None) or {}
    return {"id": found.get("id"), "policy": found.get("policy"), "type": found.get("type"),
            **({"other": found["other"]} if found.get("other") else {})}


def explains(result) -> List[str]:
    """The data-plane checks whose failure the problems of a vpc:endpoints finding explain."""
    return [str(c) for c in (result.evidence.get("explains") or ())] if result is not None else []


def _explained(problems: Sequence[Problem]) -> Dict[str, Dict[str, str]]:
    """check id -> the first problem that explains its failure, for the report's root-cause lines."""
    explained: Dict[str, Dict[str, str]] = {}
    for problem in problems:
        for check_id in problem.explains:
            explained.setdefault(check_id, {"problem": problem.text, "command": problem.command})
    return explained


def _unreadable(error: Call) -> Result:
    return Result(Status.WARN, f"the control plane cannot be read: {error.code}", code="unavailable",
                  cause="DescribeVpcEndpoints failed, so the findings above stay explanations by symptom, "
                        "without resource ids. Grant ec2:Describe* to the role to get them.",
                  evidence={"error": {"code": error.code, "message": error.message, "kind": error.kind}})


def _response(seen: Mapping[str, Call], name: str) -> Mapping:
    found = seen.get(name)
    return found.response if found else {}


def _view(seen: Mapping[str, Call], view: View) -> View:
    candidates: Dict[str, List[dict]] = {}
    for endpoint in _response(seen, "endpoints").get("VpcEndpoints", []):
        # Matched by the last label: China uses both cn.com.amazonaws and com.amazonaws prefixes (aws/aws-cdk#11140).
        candidates.setdefault(str(endpoint.get("ServiceName", "")).rsplit(".", 1)[-1], []).append({
            "id": endpoint.get("VpcEndpointId"), "type": endpoint.get("VpcEndpointType"),
            "state": endpoint.get("State"), "private_dns": endpoint.get("PrivateDnsEnabled"),
            "inbound_only": bool((endpoint.get("DnsOptions") or {}).get("PrivateDnsOnlyForInboundResolverEndpoint")),
            "groups": [g["GroupId"] for g in endpoint.get("Groups", [])],
            "route_tables": endpoint.get("RouteTableIds", []), "subnets": endpoint.get("SubnetIds", []),
            "policy": endpoint.get("PolicyDocument")})
    for service, found in candidates.items():  # S3 may have a gateway and an interface endpoint: the path decides
        chosen, others = s3_paths.on_path(found, view.addresses.get(service, ()))
        if chosen is not None:
            view.endpoints[service] = {**chosen, **s3_paths.bypassed(chosen, others)}
    view.groups = {g["GroupId"]: g for g in _response(seen, "groups").get("SecurityGroups", [])}
    view.zone_of = {s["SubnetId"]: s.get("AvailabilityZone") for s in _response(seen, "subnets").get("Subnets", [])}
    view.table, view.implicit = path.route_table(_response(seen, "routes").get("RouteTables", []), view.subnet)
    view.acls = list(_response(seen, "acls").get("NetworkAcls", []))
    view.prefix_list = vpc_observe.prefix_list(seen)
    return view


def _attributes(seen: Mapping[str, Call], view: View) -> List[Problem]:
    problems = []
    interface = tuple(f"dns:{s}" for s in view.services if s not in GATEWAY)
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        value = _response(seen, attribute).get(attribute[0].upper() + attribute[1:], {})
        if value.get("Value") is False:
            flag = "--enable-dns-" + attribute[len("enableDns"):].lower()
            problems.append(Problem(
                f"{view.vpc_id} has {attribute} off: private DNS names of interface endpoints do not resolve",
                f"aws ec2 modify-vpc-attribute --vpc-id {view.vpc_id or '<vpc-id>'} {flag} '{{\"Value\":true}}'",
                "dns-attribute-off", interface))
    return problems


def _endpoint(view: View, service: str) -> List[Problem]:
    found = view.endpoints.get(service)
    if found is None:
        return _missing(view, service)
    if found["state"] not in (None, "available", "Available"):
        return [Problem(f"{found['id']} ({service}) is {found['state']}",
                        f"aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {found['id']}", "not-available",
                        (f"dns:{service}", f"tcp:{service}"))]
    if str(found["type"]).lower() == "interface":
        return _interface(view, service, found)
    if view.table and not any(r.get("GatewayId") == found["id"] for r in view.table.get("Routes", [])):
        which = "the VPC's main route table" if view.implicit else "this subnet's route table"
        return [Problem(f"{which} {view.table_id} has no route to {found['id']} ({service} gateway endpoint)",
                        f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {found['id']} --add-route-table-ids "
                        f"{view.table_id}", "no-route", (f"tcp:{service}",))]
    return []


def _missing(view: View, service: str) -> List[Problem]:
    gateway = service in GATEWAY
    name = endpoint_service_name(service, view.region, view.domain, gateway)
    if not gateway and _elsewhere(view, service):  # a shared endpoint in another VPC answers for it: not missing
        return []
    hub = sorted(s for s in view.services if _elsewhere(view, s))
    # The group the VPC's other interface endpoints use is the one that already admits its instances.
    siblings = [g for e in view.endpoints.values() if str(e["type"]).lower() == "interface" for g in e["groups"]]
    group = max(sorted(set(siblings)), key=siblings.count) if siblings else "<sg-id>"
    where = f"--route-table-ids {view.table_id}" if gateway else f"--subnet-ids {view.subnet or '<subnet-id>'} " \
        f"--security-group-ids {group} --private-dns-enabled"
    text = f"no endpoint for {service} in {view.vpc_id} ({name})"
    if hub and not gateway:
        text += (f", and unlike {', '.join(hub)} its name has no private record shared from another VPC: create "
                 f"it where the shared endpoints live, with its private hosted zone associated with {view.vpc_id}, "
                 "or here")
    return [Problem(text,
                    f"aws ec2 create-vpc-endpoint --vpc-id {view.vpc_id or '<vpc-id>'} --vpc-endpoint-type "
                    f"{'Gateway' if gateway else 'Interface'} --service-name {name} {where}", "no-endpoint",
                    (f"dns:{service}", f"tcp:{service}"))]


def _elsewhere(view: View, service: str) -> List[str]:
    return [a for a in view.addresses.get(service, ()) if dns.is_private(a)
            and not any(path.within(a, c) for c in view.vpc_cidrs)]


def _interface(view: View, service: str, found: dict) -> List[Problem]:
    problems = []
    if not found["private_dns"]:
        problems.append(Problem(f"{found['id']} ({service}) has private DNS off",
                                f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {found['id']} --private-dns-enabled",
                                "private-dns-off", (f"dns:{service}",)))
    rules = [r for g in found["groups"] for r in view.groups.get(g, {}).get("IpPermissions", [])]
    if not path.ingress_admits(rules, view.instance_groups, view.vpc_cidrs, view.private_ip):
        group = (found["groups"] or ["<sg-id>"])[0]
        source = f"--source-group {view.instance_groups[0]}" if view.instance_groups else \
            f"--cidr {view.private_ip + '/32' if view.private_ip else (view.vpc_cidrs or ['<cidr>'])[0]}"
        problems.append(Problem(
            f"{', '.join(found['groups']) or 'no security group'} on {found['id']} ({service}) has no inbound 443 "
            f"from {', '.join(view.instance_groups) or view.private_ip or 'this instance'}",
            f"aws ec2 authorize-security-group-ingress --group-id {group} --protocol tcp --port 443 {source}",
            "sg-no-ingress", (f"tcp:{service}",)))
    zones = {view.zone_of.get(s) for s in found["subnets"]}
    if view.az and view.zone_of and view.az not in zones:
        problems.append(Problem(f"{found['id']} ({service}) has no network interface in {view.az}: traffic crosses "
                                "Availability Zones and stops if the other zone fails",
                                f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {found['id']} --add-subnet-ids "
                                f"<a subnet in {view.az}>", "no-eni-in-az"))
    return problems


def _s3_prefix_list(view: View) -> List[Problem]:
    pl = view.prefix_list
    if pl is None:
        return []
    if not pl.entries.ok:
        # A denied read must not pass as "covered": whether the gateway route carries s3's addresses is unknown.
        return [Problem(f"the S3 prefix list {pl.id}'s entries cannot be read "
                        f"({pl.entries.code}): whether the gateway route covers s3's addresses is unknown",
                        f"aws ec2 get-managed-prefix-list-entries --prefix-list-id {pl.id}  "
                        "# needs ec2:GetManagedPrefixListEntries", "prefix-list-unreadable")]
    cidrs = pl.cidrs
    # A private answer is an interface endpoint's (s3_paths): the gateway's route and prefix list are not its path.
    outside = [a for a in view.addresses.get("s3", ()) if cidrs and not dns.is_private(a)
               and not any(path.within(a, c) for c in cidrs)]
    if not outside:
        return []
    name = service_name("s3", view.region, view.domain)
    return [Problem(f"s3 resolves to {', '.join(outside)}, outside the S3 prefix list {pl.id}: "
                    "the gateway endpoint's route does not cover it (another Region's S3, or a DNS override)",
                    f"getent ahosts {name}; grep amazonaws /etc/hosts", "s3-outside-prefix-list", ("tcp:s3",))]
