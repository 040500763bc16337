"""tcp:<service>: port 443 accepts connections on every address the name resolved to."""
from __future__ import annotations

import errno
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Dict, List, Mapping, Optional, Sequence

from ..addresses import dns64_source, family
from ..model import Check, Remedy, Result, Severity, Status
from . import dns

SG_DOC = "https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html"
GATEWAY_DOC = "https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html"
ENDPOINT_SG = Remedy(
    "Let the endpoint's security group accept TCP 443 from this instance (its security group or the VPC CIDR); "
    "check that the instance's security group allows 443 out and that the network ACLs of both subnets allow "
    "443 out and the ephemeral ports (1024-65535) back.",
    ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} Name=service-name,Values={endpoint_service} "
     "--query 'VpcEndpoints[].Groups'",
     "aws ec2 authorize-security-group-ingress --group-id <endpoint-sg-id> --protocol tcp --port 443 --cidr {cidr}"),
    (SG_DOC,))
GATEWAY_ROUTE = Remedy(
    "Associate this subnet's route table with the gateway endpoint so it gets the prefix-list route; check that "
    "the instance's security group allows 443 out to the prefix list and that the network ACL allows the "
    "service's CIDRs.",
    ("aws ec2 describe-route-tables --filters Name=association.subnet-id,Values={subnet}",
     "aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --add-route-table-ids <rtb-id>"),
    (GATEWAY_DOC,))
SHARED_SG = Remedy(
    "The endpoint lives in another VPC (a shared endpoint, hub and spoke): in that VPC, let the endpoint's "
    "security group accept TCP 443 from this VPC's CIDR, and check the transit gateway or peering routes both "
    "ways and the network ACLs on the path.",
    ("aws ec2 describe-network-interfaces --filters Name=addresses.private-ip-address,Values={address} "
     "--query 'NetworkInterfaces[].[VpcId,Groups,SubnetId]'   # with the hub account's credentials",
     "aws ec2 authorize-security-group-ingress --group-id <hub-endpoint-sg-id> --protocol tcp --port 443 "
     "--cidr {cidr}",
     "aws ec2 search-transit-gateway-routes --transit-gateway-route-table-id <tgw-rtb-id> "
     "--filters Name=route-search.exact-match,Values={cidr}"),
    ("https://docs.aws.amazon.com/whitepapers/latest/building-scalable-secure-multi-vpc-network-infrastructure/"
     "centralized-access-to-vpc-private-endpoints.html",))
LOCAL_FIREWALL = Remedy(
    "Look for a local firewall rule or a proxy on the instance that rejects the connection.",
    ("sudo nft list ruleset", "sudo iptables -S"))

NAT64 = Remedy(
    "Give the subnet a NAT64 path (a route for 64:ff9b::/96 to a NAT gateway), or, better for endpoints, make the "
    "endpoint dual-stack so its name has real IPv6 addresses and DNS64 is not involved.",
    ("aws ec2 describe-route-tables --filters Name=association.subnet-id,Values={subnet} "
     "--query 'RouteTables[].Routes[?DestinationIpv6CidrBlock==`64:ff9b::/96`]'",
     "aws ec2 create-route --route-table-id <rtb-id> --destination-ipv6-cidr-block 64:ff9b::/96 "
     "--nat-gateway-id <nat-id>"),
    ("https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-nat64-dns64.html",))

IPV6_INGRESS = Remedy(
    "Allow TCP 443 over IPv6 to the endpoint: its security group needs an IPv6 rule (the VPC's IPv6 CIDR or this "
    "instance's group), the network ACLs an IPv6 entry, for 443 out and the ephemeral ports back.",
    ("aws ec2 authorize-security-group-ingress --group-id <endpoint-sg-id> --ip-permissions "
     "'IpProtocol=tcp,FromPort=443,ToPort=443,Ipv6Ranges=[{{CidrIpv6={cidr6}}}]'",),
    (SG_DOC,))

CAUSES = {
    ("timeout", False): ("Packets to the endpoint are silently dropped: its security group does not admit TCP 443 "
                         "from this instance, the instance's egress rules or a network ACL block it.", ENDPOINT_SG),
    ("timeout", True): ("The public addresses are not routed: this subnet's route table has no gateway endpoint "
                        "route, the security group's egress lacks the prefix list, or a network ACL blocks it.",
                        GATEWAY_ROUTE),
    ("refused", False): ("Something answered with a reset. Security groups and NACLs drop silently, so this is a "
                         "local firewall, a proxy or a device in the path.", LOCAL_FIREWALL),
    ("unreachable", False): ("The instance has no route to the address, or a local rule answers with an ICMP "
                             "error.", LOCAL_FIREWALL),
    ("error", False): ("The connection failed locally.", None),
}


def check(target) -> Check:
    return Check(f"tcp:{target.service}", f"{target.service} accepts TCP 443 on every address", Severity.CRITICAL,
                 partial(run, target=target), needs=(f"dns:{target.service}",))


def run(ctx, prior, *, target) -> Result:
    addresses = usable(dns.addresses(prior[f"dns:{target.service}"]), ctx.facts.families())
    timeout = ctx.io_timeout()
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(addresses)))) as pool:
        probes = dict(zip(addresses, pool.map(lambda ip: connect(ip, ctx.port, timeout), addresses)))
    facts = ctx.facts
    context = ctx.placeholders(cidr=(facts.vpc_cidrs or ("<vpc-cidr>",))[0],
                               cidr6=(facts.vpc_ipv6_cidrs or ("<vpc-ipv6-cidr>",))[0],
                               endpoint_service=ctx.endpoint_service_name(target.service, target.gateway))
    # S3 names answered with private addresses are an S3 interface endpoint's (checks/s3_paths.py): its security
    # group, not the gateway's route, decides.
    gateway = target.gateway and not all(dns.is_private(a) for a in addresses)
    return assess(target.service, ctx.port, gateway, probes, context,
                  dns.shared(prior[f"dns:{target.service}"]))


def usable(addresses: List[str], families) -> List[str]:
    """The addresses this instance can dial: on an IPv6-only instance (IMDS: IPv6 addresses, no local-ipv4) an IPv4
    address is no path at all, and a dual-stack name's A records are not the endpoint's fault."""
    if tuple(families) != ("IPv6",):
        return list(addresses)
    return [a for a in addresses if family(a) == "IPv6"] or list(addresses)


def connect(address: str, port: int, timeout: float) -> Dict[str, object]:
    started = time.monotonic()
    try:
        with socket.create_connection((address, port), timeout=timeout):
            code = "open"
    except socket.timeout:
        code = "timeout"
    except ConnectionRefusedError:
        code = "refused"
    except OSError as error:
        code = "unreachable" if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "error"
    return {"result": code, "ms": round((time.monotonic() - started) * 1000, 1)}


def assess(service: str, port: int, gateway: bool, probes: Dict[str, Dict[str, object]],
           context: Optional[Dict[str, str]] = None, shared: Sequence[str] = ()) -> Result:
    """shared: the addresses that belong to an endpoint in another VPC (dns.shared)."""
    context = context or {"endpoint_service": f"com.amazonaws.<region>.{service}"}
    evidence = {"port": port, "probes": probes}
    open_, bad = _split(probes)
    if not probes:
        return Result(Status.ERROR, "no address to connect to", code="no-address", evidence=evidence,
                      cause="The DNS check passed without addresses; this is a bug in vpce-doctor.")
    shown = ", ".join(f"{ip} ({p['ms']:.0f} ms)" for ip, p in open_.items())
    if not bad:
        return Result(Status.PASS, f"{port} open on {shown}", evidence=evidence)
    code = next(c for c in ("timeout", "refused", "unreachable", "error") if c in {p["result"] for p in bad.values()})
    cause, remedy = CAUSES.get((code, gateway and code == "timeout"), CAUSES[("error", False)])
    if code == "timeout" and shared and set(bad) <= set(shared):
        cause = ("Packets to an endpoint in another VPC are silently dropped: its security group there does not "
                 "admit this VPC, or a transit gateway or peering route, or a network ACL on the way, is missing.")
        remedy = SHARED_SG
        context = {**context, "address": next(iter(bad))}
    failed = ", ".join(f"{ip} ({p['result']} after {p['ms']:.0f} ms)" for ip, p in bad.items())
    if open_:
        return _partial(port, open_, bad, cause, remedy, context, evidence)
    if all(dns64_source(ip) for ip in bad) and code in ("timeout", "unreachable"):
        return Result(Status.FAIL, f"{port} not reachable on {failed}: DNS64 addresses with no NAT64 path",
                      cause="These are DNS64's IPv6 stand-ins (64:ff9b::/96) for the name's IPv4 addresses; only a "
                            "NAT gateway doing NAT64, reached by a 64:ff9b::/96 route, answers for them, and there "
                            "is none on this path.", code="no-nat64", remedy=NAT64.filled(**context), evidence=evidence)
    return Result(Status.FAIL, f"{port} not reachable on {failed}", cause=cause, code=code,
                  remedy=remedy and remedy.filled(**context), evidence=evidence)


def _partial(port, open_, bad, cause, remedy, context, evidence) -> Result:
    """Some addresses answer: one bad ENI (one Availability Zone), or one whole address family of a dual-stack
    endpoint. Clients try IPv6 first (getaddrinfo's RFC 6724 order), so a dead IPv6 side stalls them although IPv4
    works."""
    shown = ", ".join(f"{ip} ({p['ms']:.0f} ms)" for ip, p in open_.items())
    failed = ", ".join(f"{ip} ({p['result']} after {p['ms']:.0f} ms)" for ip, p in bad.items())
    dead = {family(ip) for ip in bad}
    if len(dead) == 1 and not dead & {family(ip) for ip in open_}:
        lost = dead.pop()
        return Result(Status.WARN, f"{port} open on {shown} but not over {lost}: {failed}",
                      code=f"{lost.lower()}-dropped",
                      evidence=evidence, remedy=(IPV6_INGRESS if lost == "IPv6" else remedy).filled(
                          **{"cidr6": "<vpc-ipv6-cidr>", **context}) if remedy else None,
                      cause=f"The endpoint is reachable over one address family only: its {lost} addresses do not "
                            f"answer. Clients that try {lost} first (IPv6 is preferred where the instance has it) "
                            f"wait for a timeout before falling back, or fail. The endpoint's security group or the "
                            f"network ACLs lack the {lost} rules (an ::/0 or IPv6 CIDR rule is separate from "
                            f"0.0.0.0/0), or the route for {lost} is missing.")
    return Result(Status.WARN, f"{port} open on {shown}; but {failed}", code="partial", evidence=evidence,
                  cause="One endpoint network interface (one Availability Zone) is unreachable; clients that "
                        "pick it stall until they time out. " + cause, remedy=remedy and remedy.filled(**context))


def open_addresses(result) -> List[str]:
    """The addresses a tcp:<service> finding connected to on the endpoints' port (empty when it did not run)."""
    probes = result.evidence.get("probes") or {}
    return [str(ip) for ip, p in probes.items() if isinstance(p, Mapping) and p.get("result") == "open"]


def _split(probes):
    open_ = {ip: p for ip, p in probes.items() if p["result"] == "open"}
    return open_, {ip: p for ip, p in probes.items() if ip not in open_}

