"""The instance's side of the path, as the control plane describes it: its route table (explicit or the main one),
its security groups' egress, and the network ACLs of its subnet and the endpoints' subnets. Pure functions of
Describe* answers; checks/vpc.py observes and phrases the findings."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from http.client import HTTPS_PORT
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .vpc_observe import PrefixList

# Linux's default ip_local_port_range: the source ports the return traffic comes back to. AWS's NACL guide
# ("Ephemeral ports", https://docs.aws.amazon.com/vpc/latest/userguide/nacl-ephemeral-ports.html) says Linux kernels
# use 32768-61000 and recommends allowing 1024-65535 inbound.
EPHEMERAL = (32768, 60999)
EPHEMERAL_RULE = (1024, 65535)
DEFAULT_RULE = 32767  # the "*" entry every network ACL ends with: deny all (DescribeNetworkAcls shows it as 32767)


GATEWAY = ("s3", "dynamodb")


@dataclass(frozen=True)
class Problem:
    text: str
    command: str
    code: str
    explains: Tuple[str, ...] = ()  # the data-plane checks whose failure this explains


@dataclass
class View:
    """What the Describe* answers say, parsed once for the problem finders."""
    services: Sequence[str]
    region: str
    domain: str
    vpc_id: Optional[str]
    vpc_cidrs: List[str]
    instance_groups: List[str]
    private_ip: Optional[str]
    az: Optional[str]
    subnet: Optional[str]
    subnet_cidr: Optional[str]
    addresses: Mapping[str, Sequence[str]]      # service -> what its name resolved to
    endpoints: Dict[str, dict] = field(default_factory=dict)
    groups: Dict[str, dict] = field(default_factory=dict)        # group id -> the group
    zone_of: Dict[str, str] = field(default_factory=dict)
    table: Optional[Mapping] = None
    implicit: bool = False
    acls: List[Mapping] = field(default_factory=list)
    prefix_list: Optional[PrefixList] = None

    @property
    def table_id(self) -> str:
        return (self.table or {}).get("RouteTableId") or "<rtb-id>"


def route_table(tables: Sequence[Mapping], subnet: Optional[str]) -> Tuple[Optional[Mapping], bool]:
    """(the table that routes this subnet, implicit): an explicit association wins, else the VPC's main route
    table. A subnet without an explicit association uses the main table, and an association.subnet-id filter
    never returns it (https://docs.aws.amazon.com/vpc/latest/userguide/subnet-route-tables.html)."""
    for table in tables:
        if any(a.get("SubnetId") == subnet for a in table.get("Associations", [])):
            return table, False
    for table in tables:
        if any(a.get("Main") for a in table.get("Associations", [])):
            return table, True
    return (tables[0], False) if len(tables) == 1 else (None, False)


def covers(rule: Mapping, port: int) -> bool:
    """Does a security-group permission cover TCP on this port?"""
    protocol = str(rule.get("IpProtocol"))
    return protocol == "-1" or (protocol in ("tcp", "6") and rule.get("FromPort", 0) <= port <= rule.get("ToPort", 0))


def within(address: str, cidr: Optional[str]) -> bool:
    try:
        return bool(cidr) and ipaddress.ip_address(address) in ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return False


def egress_admits(permissions: Iterable[Mapping], addresses: Sequence[str], groups: Sequence[str] = (),
                  prefix_list: Optional[str] = None) -> bool:
    """Does an egress permission let TCP 443 out to every one of these addresses, the endpoint's security groups,
    or the S3 prefix list? (An instance's egress must allow 443 to the endpoint and, for a gateway endpoint, to
    the service's prefix list: gchq/sleeper#6564.)"""
    rules = [r for r in permissions if covers(r, 443)]
    for rule in rules:
        if any(p.get("GroupId") in groups for p in rule.get("UserIdGroupPairs", [])):
            return True
        if prefix_list and any(p.get("PrefixListId") == prefix_list for p in rule.get("PrefixListIds", [])):
            return True
    cidrs = [ip_range.get("CidrIp") for rule in rules for ip_range in rule.get("IpRanges", [])]
    return bool(addresses) and all(any(within(a, c) for c in cidrs) for a in addresses)


def ingress_admits(permissions: Iterable[Mapping], instance_groups: Sequence[str], vpc_cidrs: Sequence[str],
                   private_ip: Optional[str]) -> bool:
    """Does any rule let TCP 443 in from this instance's groups or its address? A VPC CIDR counts only when it holds
    the instance's address: an instance in a secondary CIDR is not admitted by a rule for the primary one."""
    for rule in (r for r in permissions if covers(r, 443)):
        if any(pair.get("GroupId") in instance_groups for pair in rule.get("UserIdGroupPairs", [])):
            return True
        for cidr in (r.get("CidrIp") for r in rule.get("IpRanges", [])):
            if private_ip and within(private_ip, cidr):
                return True
            if not private_ip and cidr and any(_subnet_of(v, cidr) for v in vpc_cidrs):
                return True
    return False


def _subnet_of(inner: str, outer: str) -> bool:
    try:
        return ipaddress.ip_network(inner).subnet_of(ipaddress.ip_network(outer, strict=False))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def nacl_decision(entries: Sequence[Mapping], egress: bool, address: str, port: int) -> Tuple[str, int]:
    """(allow|deny, the rule number that decided) for one TCP packet: NACLs are stateless and evaluated in rule
    number order, the first match decides (https://docs.aws.amazon.com/vpc/latest/userguide/nacl-rules.html)."""
    for entry in sorted((e for e in entries if bool(e.get("Egress")) == egress), key=lambda e: e.get("RuleNumber", 0)):
        protocol = str(entry.get("Protocol"))
        ports = entry.get("PortRange") or {}
        if protocol not in ("-1", "6"):
            continue
        if protocol == "6" and ports and not ports.get("From", 0) <= port <= ports.get("To", 65535):
            continue
        if within(address, entry.get("CidrBlock")):
            return str(entry.get("RuleAction")), int(entry.get("RuleNumber", DEFAULT_RULE))
    return "deny", DEFAULT_RULE


def nacl_blocks(acl: Mapping, outbound_port_side: str, peer: str, egress_port: int = 443) -> List[Tuple[str, int]]:
    """The directions in which this ACL drops one side of a TCP 443 flow with peer: ("outbound"|"inbound", rule).
    outbound_port_side "client": this subnet holds the instance (443 out, ephemeral ports back in); "server": it
    holds the endpoint (443 in, ephemeral ports back out)."""
    entries = acl.get("Entries", [])
    client = outbound_port_side == "client"
    blocked = []
    action, rule = nacl_decision(entries, egress=client, address=peer, port=egress_port)
    if action != "allow":
        blocked.append(("outbound" if client else "inbound", rule))
    for port in EPHEMERAL:
        action, rule = nacl_decision(entries, egress=not client, address=peer, port=port)
        if action != "allow":
            blocked.append(("inbound" if client else "outbound", rule))
            break
    return blocked


def free_rule_number(entries: Sequence[Mapping], egress: bool, below: int) -> int:
    """A rule number for a new allow entry that is evaluated before the deny that decided."""
    used = {e.get("RuleNumber") for e in entries if bool(e.get("Egress")) == egress}
    if below == DEFAULT_RULE:
        top = max((n for n in used if isinstance(n, int) and n < DEFAULT_RULE), default=90)
        return min(top + 10, DEFAULT_RULE - 1)
    return next((n for n in range(below - 1, 0, -1) if n not in used), 1)


def acl_for(acls: Sequence[Mapping], subnet: Optional[str]) -> Optional[Mapping]:
    for acl in acls:
        if any(a.get("SubnetId") == subnet for a in acl.get("Associations", [])):
            return acl
    return None


def takes_gateway(found: Mapping, service: str) -> bool:
    """Does the path to this service go through a gateway endpoint? S3 may be reached through an interface
    endpoint instead (checks/s3_paths.py); with no endpoint read, the service's kind decides."""
    return str(found.get("type") or "").lower() == "gateway" if found else service in GATEWAY


def egress_problems(view: View, service: str) -> List[Problem]:
    """The instance's own security groups must let 443 out to the endpoint (or the S3 prefix list)."""
    mine = [view.groups[g] for g in view.instance_groups if g in view.groups]
    if not mine or len(mine) < len(view.instance_groups):
        return []  # not all of them readable: no verdict
    found = view.endpoints.get(service) or {}
    gateway = takes_gateway(found, service)
    targets = list(view.addresses.get(service, ()))
    prefix = view.prefix_list.id if gateway and view.prefix_list else None
    permissions = [r for g in mine for r in g.get("IpPermissionsEgress", [])]
    if not targets or egress_admits(permissions, targets, found.get("groups", []), prefix):
        return []
    if gateway:
        to = f"the S3 prefix list {prefix or ''}".rstrip()
        spec = f"PrefixListIds=[{{PrefixListId={prefix or '<pl-id>'}}}]"
    elif found.get("groups"):
        to, spec = f"{found['id']}'s {found['groups'][0]}", f"UserIdGroupPairs=[{{GroupId={found['groups'][0]}}}]"
    else:
        to, spec = ", ".join(targets), f"IpRanges=[{{CidrIp={targets[0]}/32}}]"
    return [Problem(f"this instance's {', '.join(view.instance_groups)} allow no outbound TCP 443 to {to} "
                    f"({service}, {', '.join(targets)})",
                    f"aws ec2 authorize-security-group-egress --group-id {view.instance_groups[0]} --ip-permissions "
                    f"'IpProtocol=tcp,FromPort=443,ToPort=443,{spec}'", "sg-no-egress", (f"tcp:{service}",))]


def acl_problems(view: View, service: str) -> List[Problem]:
    """Stateless ACLs on the subnets the flow crosses: 443 one way, the ephemeral ports back. Traffic between two
    addresses of one subnet never crosses its ACL."""
    found = view.endpoints.get(service) or {}
    mine = acl_for(view.acls, view.subnet)
    problems = []
    for peer in view.addresses.get(service, ()):
        if mine and not within(peer, view.subnet_cidr):
            problems += [acl_problem(mine, view.subnet, d, r, peer, service, True)
                         for d, r in nacl_blocks(mine, "client", peer)]
    for subnet in found.get("subnets", []) if not takes_gateway(found, service) else ():
        theirs = acl_for(view.acls, subnet)
        if theirs and view.private_ip and subnet != view.subnet:
            problems += [acl_problem(theirs, subnet, d, r, view.private_ip, service, False, found["id"])
                         for d, r in nacl_blocks(theirs, "server", view.private_ip)]
    return unique(problems)


def acl_problem(acl: Mapping, subnet: Optional[str], direction: str, rule: int, peer: str, service: str,
                client: bool, endpoint: str = "") -> Problem:
    """client: the ACL of the instance's subnet (443 out, ephemeral back in); else of the endpoint's subnet."""
    egress = direction == "outbound"
    low, high = (443, 443) if egress == client else EPHEMERAL_RULE
    ports = "443" if low == HTTPS_PORT else f"{low}-{high} (the return traffic)"
    number = free_rule_number(acl.get("Entries", []), egress, rule)
    whose = "this instance's subnet" if client else f"{endpoint}'s subnet"
    return Problem(
        f"{acl.get('NetworkAclId')} ({whose} {subnet}) denies {direction} TCP {ports} "
        f"{'to' if egress else 'from'} {peer} ({service}) by rule {'*' if rule == DEFAULT_RULE else rule}",
        f"aws ec2 create-network-acl-entry --network-acl-id {acl.get('NetworkAclId')} "
        f"{'--egress' if egress else '--ingress'} --rule-number {number} --protocol tcp --port-range "
        f"From={low},To={high} --cidr-block {peer}/32 --rule-action allow", "nacl-deny", (f"tcp:{service}",))


def unique(problems: List[Problem]) -> List[Problem]:
    seen, kept = set(), []
    for problem in problems:
        if problem.text not in seen:
            seen.add(problem.text)
            kept.append(problem)
    return kept
