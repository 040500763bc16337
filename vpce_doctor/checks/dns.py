"""dns:<service>: the service name resolves, to endpoint addresses inside the VPC (public ones for gateways)."""
from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Dict, List, Optional, Sequence

from ..addresses import dns64_source, inside, parse
from ..model import Check, Remedy, Result, Severity, Status
from . import dns_forwarding, dns_query

PRIVATE_DNS_DOC = "https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html"
PUBLIC_ANSWER = Remedy(
    "Create an interface endpoint for the service in this VPC with private DNS enabled, and turn on both "
    "enableDnsSupport and enableDnsHostnames for the VPC. With a custom DNS server, forward {domain} to "
    "the VPC resolver.",
    ("aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name {endpoint_service} "
     "--subnet-ids {subnet} --private-dns-enabled",
     "aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --private-dns-enabled",
     "aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames '{{\"Value\":true}}'"),
    (PRIVATE_DNS_DOC,))
# IpAddressType and DnsRecordIpType of an interface endpoint (PrivateLink guide, "IP address types",
# https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html#aws-service-ip-address-type);
# dual-stack needs subnets with IPv6 CIDRs, and only services that support IPv6 offer it.
DUALSTACK = Remedy(
    "Give the endpoint the dual-stack IP address type so its private DNS name gets AAAA records as well (its subnets "
    "need IPv6 CIDRs; check the service supports IPv6 in the PrivateLink guide's list).",
    ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} Name=service-name,Values={endpoint_service} "
     "--query 'VpcEndpoints[].[VpcEndpointId,IpAddressType,DnsOptions.DnsRecordIpType]'",
     "aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --ip-address-type dualstack "
     "--dns-options DnsRecordIpType=dualstack"),
    ("https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html",))
FIREWALL = Remedy(
    "Find what answers for the name instead of Amazon DNS: a private hosted zone named like it ({domain}, "
    "{region}.{domain} or the service name) without the record, or a Route 53 Resolver DNS Firewall rule. "
    "Add the record, fix the zone's association, or allow-list *.{domain}.",
    ("aws route53 list-hosted-zones-by-vpc --vpc-id {vpc} --vpc-region {region}",
     "aws route53resolver list-firewall-rule-group-associations --vpc-id {vpc}"),
    ("https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/hosted-zone-private-considerations.html",))

RESOLVER_RULES = Remedy(
    "Find the Resolver rule that forwards this name (or a parent domain) to a server that does not answer, and fix "
    "its target or disassociate it from the VPC.",
    ("aws route53resolver list-resolver-rule-associations --filters Name=VPCId,Values={vpc}",
     "aws route53resolver list-resolver-rules --filters Name=RuleType,Values=FORWARD"),
    ("https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resolver-rules-managing.html",))

# code → (summary template, cause, remedy) for lookups that did not yield addresses.
NO_ADDRESS = {
    "nxdomain": ("{name} does not exist (NXDOMAIN)", "A private hosted zone that matches the name but lacks the "
                 "record answers for it, or a DNS Firewall rule blocks it with NXDOMAIN.", FIREWALL),
    "nodata": ("{name} exists but has no A record (NODATA)", "A DNS Firewall BLOCK rule answering NODATA, or a "
               "private hosted zone record of another type.", FIREWALL),
    "servfail": ("the resolver answered SERVFAIL for {name}", "The resolver could not resolve the name: DNS support "
                 "is off in the VPC, or the custom DNS server cannot reach its upstream.", FIREWALL),
    "refused": ("the resolver refused to resolve {name}", "A custom DNS server that does not serve this client or "
                "this zone.", FIREWALL),
    "timeout": ("no answer for {name} within {timeout:.1f} s", "The resolver answers other queries but not this "
                "one: a Resolver forwarding rule to a dead server, or the 1024 packets/s per ENI limit.",
                RESOLVER_RULES),
    "cname-loop": ("{name} is a CNAME loop: {error}", "The aliases point back at each other, so no address can "
                   "ever be found; resolvers answer SERVFAIL (RFC 1034 5.2.2: alias loops are an error).", FIREWALL),
    "error": ("looking up {name} failed: {error}", "The lookup failed locally.", None),
}


def check(target) -> Check:
    return Check(f"dns:{target.service}", f"{target.name} resolves" + ("" if target.gateway else " inside the VPC"),
                 Severity.CRITICAL, partial(run, target=target), needs=("dns:resolver",))


def run(ctx, prior, *, target) -> Result:
    resolver = ctx.resolver()
    timeout = ctx.io_timeout()
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, aaaa = pool.map(lambda kind: dns_query.lookup(resolver, target.name, kind, timeout), ("A", "AAAA"))
    facts = ctx.facts
    context = {**ctx.placeholders(name=target.name, endpoint_service=ctx.endpoint_service_name(
        target.service, target.gateway)), **dns_forwarding.context(prior, list(facts.vpc_cidrs))}
    return assess(target.name, target.gateway, a, aaaa, list(facts.vpc_cidrs) + list(facts.vpc_ipv6_cidrs), context,
                  target.source, facts.families())


def assess(name: str, gateway: bool, a: Dict, aaaa: Dict, vpc_cidrs: Sequence[str],
           context: Optional[Dict[str, str]] = None, source: str = "default", families: Sequence[str] = ()) -> Result:
    """families: the instance's own address families from IMDS (("IPv6",) in an IPv6-only subnet); vpc_cidrs: the
    VPC's CIDRs of both families. context["resolver"]: a DNS server of the customer's own is in use; a failure
    then leads with forwarding."""
    context = context or {}
    result = _judge(name, gateway, a, aaaa, vpc_cidrs, context, source, families)
    return dns_forwarding.framed(result, context)


def _judge(name: str, gateway: bool, a: Dict, aaaa: Dict, vpc_cidrs: Sequence[str], context: Dict[str, str],
           source: str, families: Sequence[str]) -> Result:
    rewritten = _override(a, context.get("domain") or "amazonaws.com")
    if rewritten:
        return Result(Status.FAIL, f"{name} is rewritten by a CNAME to {rewritten} → "
                      f"{', '.join(a.get('addresses') or ()) or 'nothing'}", code="firewall-override",
                      cause="Something between this instance and Amazon DNS answers for the name with its own record: "
                            "a Route 53 Resolver DNS Firewall rule with action OVERRIDE (a CNAME to a sinkhole), or a "
                            "response policy zone on a DNS server of your own. The endpoint is not what is missing.",
                      remedy=FIREWALL.filled(**context), evidence={
                          "name": name, "name_source": source, "A": a, "AAAA": aaaa, "addresses": [],
                          "rewritten_to": rewritten})
    addresses: List[str] = list(a.get("addresses") or ()) + list(aaaa.get("addresses") or ())
    evidence = {"name": name, "name_source": source, "A": a, "AAAA": aaaa, "addresses": addresses,
                "vpc_cidrs": list(vpc_cidrs)}
    if not addresses:
        code = str(a.get("code"))
        template, cause, remedy = NO_ADDRESS.get(code, NO_ADDRESS["error"])
        summary = template.format(name=name, timeout=float(a.get("timeout_s") or 0), error=a.get("error", code))
        return Result(Status.FAIL, summary, cause=cause, code=code, remedy=remedy and remedy.filled(**context),
                      evidence=evidence)
    for judge in (_bad_answer, _one_family_missing, _dns64):
        verdict = judge(name, gateway, addresses, list(vpc_cidrs), families, context, evidence)
        if verdict is not None:
            return verdict
    return _placement(name, gateway, addresses, list(vpc_cidrs), context, evidence)


def _bad_answer(name, gateway, addresses, vpc_cidrs, families, context, evidence) -> Optional[Result]:
    bad = {address: why for address, why in ((x, parse(x)[1]) for x in addresses) if why}
    if not bad:
        return None
    evidence["addresses"] = [x for x in addresses if x not in bad]  # nothing downstream dials what cannot be dialled
    shown = "; ".join(f"{x!r} is {why}" for x, why in bad.items())
    return Result(Status.FAIL, f"{name}: the answer holds what is not a usable address: {shown}",
                  cause="Amazon DNS answers an endpoint's name with plain IPv4 and IPv6 addresses; this answer comes "
                        "from something else (a hosts entry, a custom DNS server or a private hosted zone record).",
                  code="bad-answer", remedy=FIREWALL.filled(**context), evidence=evidence)


def _one_family_missing(name, gateway, addresses, vpc_cidrs, families, context, evidence) -> Optional[Result]:
    """An IPv6-only instance cannot use an A-only answer (an endpoint whose DnsRecordIpType is ipv4)."""
    if tuple(families) != ("IPv6",) or any(":" in x for x in addresses):
        return None
    region, domain = context.get("region", "<region>"), context.get("domain", "amazonaws.com")
    what = (f"this name has no IPv6 address: IPv6 clients use the dual-stack name s3.dualstack.{region}.{domain}"
            if gateway else "the endpoint's private DNS gives only A records (DnsRecordIpType ipv4)")
    return Result(Status.FAIL, f"{name} → {', '.join(addresses)}: IPv4 only, and this instance has only IPv6",
                  cause=f"In an IPv6-only subnet the instance has no IPv4 address, so it cannot connect to these; "
                        f"{what}.",
                  code="ipv4-only", remedy=None if gateway else DUALSTACK.filled(**context), evidence=evidence)


def _dns64(name, gateway, addresses, vpc_cidrs, families, context, evidence) -> Optional[Result]:
    synthesised = {x: str(dns64_source(x)) for x in addresses if dns64_source(x)}
    if not synthesised:
        return None
    evidence["dns64"] = synthesised
    sources = ", ".join(f"{x} (from {v4})" for x, v4 in synthesised.items())
    behind = [v4 for v4 in synthesised.values() if _inside(v4, vpc_cidrs)]
    cause = ("DNS64 on this subnet made these AAAA records from the name's A records, because the name has no AAAA "
             "of its own. They work only through NAT64: a route for 64:ff9b::/96 to a NAT gateway in this "
             "subnet's route table.")
    if behind or gateway:
        return Result(Status.WARN, f"{name} → {sources}: synthesised by DNS64", code="dns64", evidence=evidence,
                      cause=cause + " A dual-stack endpoint would give real IPv6 addresses and need no NAT64.",
                      remedy=None if gateway else DUALSTACK.filled(**context))
    return Result(Status.FAIL, f"{name} → {sources}: DNS64 synthesis of a public address", code="dns64-public",
                  cause=cause + " The address is the public service's, so no endpoint answers for this name: "
                        "the traffic would leave through NAT64, which a private subnet does not have.",
                  remedy=PUBLIC_ANSWER.filled(**context), evidence=evidence)


def _placement(name, gateway, addresses, vpc_cidrs, context, evidence) -> Result:
    inside = [ip for ip in addresses if _inside(ip, vpc_cidrs)]
    outside = [ip for ip in addresses if ip not in inside]
    where = f"inside {', '.join(vpc_cidrs)}" if vpc_cidrs else "private"
    evidence["inside"], evidence["outside"] = inside, outside
    if gateway:
        kind = "public addresses, reached through a gateway endpoint route" if outside else \
            f"{where}: an interface endpoint with private DNS"
        return Result(Status.PASS, f"{name} → {', '.join(addresses)} ({kind})", evidence=evidence)
    if not outside:
        return Result(Status.PASS, f"{name} → {', '.join(addresses)} ({where})", evidence=evidence)
    if not inside and vpc_cidrs and all(is_private(ip) for ip in outside):
        # Hub-and-spoke: endpoints centralised in another VPC, their names answered by private hosted zones shared
        # with this one (ministryofjustice/modernisation-platform#13725, awslabs/landing-zone-accelerator-on-aws#1014).
        return Result(Status.PASS, f"{name} → {', '.join(outside)}: private, outside this VPC's "
                      f"{', '.join(vpc_cidrs)} (a shared endpoint in another VPC; TCP and TLS decide)",
                      code="outside-vpc", evidence=evidence)
    if inside:
        return Result(Status.FAIL, f"{name} → {', '.join(inside)} ({where}) but also {', '.join(outside)}",
                      cause="Part of the answer is not the endpoint's: a hosts entry, a custom DNS server or a "
                            "private hosted zone mixes in other addresses.", code="mixed-answer",
                      remedy=FIREWALL.filled(**context), evidence=evidence)
    return Result(Status.FAIL, f"{name} → {', '.join(outside)}, outside the VPC"
                  + (f" ({', '.join(vpc_cidrs)})" if vpc_cidrs else ""),
                  cause="Private DNS for an interface endpoint is not in effect, so traffic would go to the public "
                        "service, which a private subnet cannot reach: the endpoint is missing, its private DNS is "
                        "off, or enableDnsSupport/enableDnsHostnames is off for the VPC.",
                  code="public-answer", remedy=PUBLIC_ANSWER.filled(**context), evidence=evidence)


def addresses(result) -> List[str]:
    """What a dns:<service> finding resolved the name to (empty when it did not)."""
    return [str(a) for a in (result.evidence.get("addresses") or ())]


def inside_vpc(address: str, vpc_cidrs: Sequence[str]) -> bool:
    """Inside one of the VPC's CIDRs of its family (private, when IMDS gave none): how every answer is placed."""
    return _inside(address, vpc_cidrs)


def shared(result) -> List[str]:
    """The private addresses outside this VPC a dns:<service> finding accepted: a shared endpoint's."""
    return [str(a) for a in (result.evidence.get("outside") or ())] if result.code == "outside-vpc" else []


# The ranges a VPC (hence a hub VPC's endpoint) is numbered from: RFC 1918 and RFC 6598's 100.64.0.0/10
# ("VPC CIDR blocks", https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html), and IPv6 ULAs.
# Not ipaddress's is_private, which also counts documentation ranges such as 203.0.113.0/24.
VPC_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                         "100.64.0.0/10", "fc00::/7"))


def is_private(address: str) -> bool:
    """Could this address belong to a VPC (this one or a peered, shared one)?"""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in VPC_RANGES)


def _override(answer: Dict, domain: str) -> Optional[str]:
    """The CNAME target an answer was rewritten to, when it leaves AWS's names: the private DNS of an interface
    endpoint answers A records directly; a DNS Firewall OVERRIDE answers a CNAME to the rule's BlockOverrideDomain
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resolver-dns-firewall-rule-actions.html)."""
    if answer.get("code") not in ("answer", "nodata"):  # a loop or a failure has its own cause
        return None
    chain = [str(c).lower().rstrip(".") for c in answer.get("cnames") or ()]
    outside = [c for c in chain if not (c == domain or c.endswith("." + domain) or c.endswith(".amazonaws.com"))]
    return outside[-1] if outside else None


def _inside(address: str, vpc_cidrs: Sequence[str]) -> bool:
    if not vpc_cidrs:  # IMDS did not say: private addresses are the best evidence left
        ip, _ = parse(address)
        return ip is not None and ip.is_private and not ip.is_loopback
    return inside(address, vpc_cidrs)
