"""The lab's network policy: the instance's security-group egress and the subnets' network ACLs, turned into nft
drops so the data plane does what the control plane (moto, seeded by tests/lab/aws.py from the same knobs) says.

This is the lab's own reading of AWS's rules, independent of the doctor's:
* security groups are stateful: only the instance's egress decides a connection it opens; they do not filter the
  Amazon DNS server or IMDS (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-groups.html);
* network ACLs are stateless, first match in rule-number order, a final "*" deny; they apply only to traffic that
  crosses a subnet boundary, both ways: 443 towards the endpoint, the client's ephemeral port back
  (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-network-acls.html).
"""
from __future__ import annotations

import ipaddress

from tests.lab import family

INSTANCE_IP, INSTANCE_SUBNET, VPC_CIDR = "10.0.1.100", "10.0.1.0/24", "10.0.0.0/16"
LAB_SUBNETS = ("10.0.1.0/24", "10.0.2.0/24")
EPHEMERAL = (32768, 60999)  # the lab namespace's net.ipv4.ip_local_port_range (Linux's default)
EGRESS_MODES = ("all", "vpc-only", "none")
PROTOCOLS = {"tcp": "6", "all": "-1", "-1": "-1", "6": "6"}


def _in(address: str, cidr: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)


def egress_allows(mode: str, address: str) -> bool:
    """[instance] egress: all (a new group's default 0.0.0.0/0), vpc-only (443 to the VPC CIDR: no S3 prefix
    list), none (no egress rule at all)."""
    return mode == "all" or (mode == "vpc-only" and _in(address, VPC_CIDR))


def acl_entries(spec: dict) -> list:
    """[nacl."<subnet cidr>"] inbound/outbound lists as EC2 CreateNetworkAclEntry parameters."""
    entries = []
    for direction in ("inbound", "outbound"):
        for entry in spec.get(direction, []):
            ports = entry.get("ports")
            entries.append({"RuleNumber": int(entry["rule"]), "Protocol": PROTOCOLS[str(entry.get("protocol", "tcp"))],
                            "RuleAction": entry.get("action", "allow"), "Egress": direction == "outbound",
                            "CidrBlock": entry.get("cidr", "0.0.0.0/0"),
                            **({"PortRange": {"From": int(ports[0]), "To": int(ports[1])}} if ports else {})})
    return entries


def acl_allows(entries: list, egress: bool, address: str, port: int) -> bool:
    for entry in sorted((e for e in entries if e["Egress"] == egress), key=lambda e: e["RuleNumber"]):
        ports = entry.get("PortRange")
        if entry["Protocol"] == "6" and ports and not ports["From"] <= port <= ports["To"]:
            continue
        if _in(address, entry["CidrBlock"]):
            return entry["RuleAction"] == "allow"
    return False


def _subnet_of(address: str):
    return next((s for s in LAB_SUBNETS if _in(address, s)), None)


def sg_blocks(spec: dict) -> bool:
    """Does an interface endpoint's own group ([endpoints.<svc>] sg_ingress_cidr) leave out the instance's address?
    A rule for one CIDR admits only addresses in it: an instance in a secondary CIDR is not admitted by a rule for
    the primary one (what aws-cdk's InterfaceVpcEndpoint writes with open: Peer.ipv4(vpc.vpcCidrBlock), the primary
    CIDR; packages/aws-cdk-lib/aws-ec2/lib/vpc-endpoint.ts)."""
    cidr = spec.get("sg_ingress_cidr")
    return bool(cidr) and not _in(INSTANCE_IP, cidr)


def blocked(sc: dict, address: str) -> tuple:
    """(forward, back): does the policy drop the instance's SYN to address:443, or the answer coming back?"""
    acls = {cidr: acl_entries(spec) for cidr, spec in (sc.get("nacl") or {}).items()}
    forward = not egress_allows(sc.get("instance", {}).get("egress", "all"), address)
    back = False
    theirs = _subnet_of(address)
    if theirs == INSTANCE_SUBNET:
        return forward, back
    if INSTANCE_SUBNET in acls:
        forward |= not acl_allows(acls[INSTANCE_SUBNET], True, address, 443)
        back |= not all(acl_allows(acls[INSTANCE_SUBNET], False, address, p) for p in EPHEMERAL)
    if theirs in acls:
        forward |= not acl_allows(acls[theirs], False, INSTANCE_IP, 443)
        back |= not all(acl_allows(acls[theirs], True, INSTANCE_IP, p) for p in EPHEMERAL)
    return forward, back


def nft_rules(sc: dict, addresses) -> list:
    """Drops for every endpoint address the policy blocks: the SYN when 443 out (or in) is denied, the SYN-ACK when
    the return traffic is; both end in a connect() timeout, as in a VPC."""
    rules = []
    for address in sorted(addresses):
        forward, back = blocked(sc, address)
        if forward:
            rules.append(f"{family.daddr(address)} tcp dport {{ 80, 443 }} drop")
        if back:
            rules.append(f"{family.saddr(address)} tcp sport {{ 80, 443 }} drop")
    return rules


def validate(sc: dict) -> None:
    mode = sc.get("instance", {}).get("egress", "all")
    if mode not in EGRESS_MODES:
        raise ValueError(f"[instance] egress must be one of {', '.join(EGRESS_MODES)}, not {mode!r}")
    for cidr, spec in (sc.get("nacl") or {}).items():
        if cidr not in LAB_SUBNETS:
            raise ValueError(f"[nacl] {cidr!r} is not a lab subnet ({', '.join(LAB_SUBNETS)})")
        acl_entries(spec)
