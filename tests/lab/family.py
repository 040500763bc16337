"""The lab in both address families: what a scenario's IPv6 knobs mean for addresses, DNS answers, IMDS and nft.

AWS's behaviour imitated here (independent of the doctor's code):
* a VPC gets an Amazon-provided /56, each subnet a /64 of it; the documentation prefix 2001:db8::/32 (RFC 3849)
  stands in for it (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html);
* an interface endpoint's IP address type / DnsRecordIpType decides which records its private DNS name gets:
  ipv4 → A, dualstack → A and AAAA, ipv6 → AAAA (https://docs.aws.amazon.com/vpc/latest/privatelink/
  create-interface-endpoint.html, "IP address types" and "DNS record IP type");
* IMDS answers at [fd00:ec2::254] only when HttpProtocolIpv6 is enabled (off by default), and the Amazon DNS server
  at fd00:ec2::253 (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html);
* in an IPv6-only subnet the instance has no IPv4 address: nothing IPv4 is reachable, IMDS's local-ipv4 is absent;
* DNS64 (a subnet option) synthesises AAAA records in 64:ff9b::/96 for names that have only A records, and only a
  NAT gateway (NAT64) behind a 64:ff9b::/96 route answers them
  (https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-nat64-dns64.html); the lab has no NAT gateway;
* S3's dual-stack name s3.dualstack.<region>.amazonaws.com has A and AAAA records
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ipv6-access.html); the *.api.aws dual-stack names are public.
"""
from __future__ import annotations

import ipaddress

VPC6 = "2001:db8:1200::/56"
SUBNETS6 = {"10.0.1.0/24": "2001:db8:1200:1::/64", "10.0.2.0/24": "2001:db8:1200:2::/64"}
INSTANCE6 = "2001:db8:1200:1::100"
AMAZON_DNS6, IMDS6 = "fd00:ec2::253", "fd00:ec2::254"
S3_IP6 = "2001:db8:5300::10"      # stands in for S3's public IPv6 (outside the VPC: reached like its IPv4)
PUBLIC_IP6 = "2001:db8:ffff::10"  # a public IPv6 answer: unroutable from the lab, so connections time out
DNS64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
IP_TYPES = ("ipv4", "dualstack", "ipv6")


def is_v6(address: str) -> bool:
    return ":" in address


def v6_of(address: str) -> str:
    """The lab's IPv6 twin of an ENI address: 10.0.1.10 → 2001:db8:1200:1::10 (same subnet, same host part)."""
    octets = address.split(".")
    return f"2001:db8:1200:{octets[2]}::{octets[3]}"


def endpoint_addresses(spec: dict, v4: list) -> list:
    """The addresses an interface endpoint's private DNS answers with, by its ip_type."""
    kind = spec.get("ip_type", "ipv4")
    v6 = list(spec.get("addresses6") or [v6_of(a) for a in v4])
    return {"ipv4": list(v4), "dualstack": list(v4) + v6, "ipv6": v6}[kind]


def dns64(answers: dict) -> dict:
    """DNS64: every answer of addresses with no IPv6 one also gets the synthesised AAAA records."""
    synthesised = {}
    for name, value in answers.items():
        found = [value] if isinstance(value, str) else list(value)
        if found and all(_ip(a) and not is_v6(a) for a in found):
            value = found + [str(DNS64_PREFIX[int(ipaddress.IPv4Address(a))]) for a in found]
        synthesised[name] = value
    return synthesised


def _ip(text) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def daddr(address: str) -> str:
    return f"{'ip6' if is_v6(address) else 'ip'} daddr {address}"


def saddr(address: str) -> str:
    return f"{'ip6' if is_v6(address) else 'ip'} saddr {address}"


def nft_rules(sc: dict) -> list:
    """Per-family rules that come before the others: an IPv6-only subnet has no IPv4 path at all (a route lookup
    failure: ENETUNREACH at once); IMDS's IPv6 endpoint is silent unless enabled."""
    rules = []
    if sc.get("subnet", {}).get("ipv6_only"):
        rules.append("ip daddr != 127.0.0.0/8 reject with icmp type net-unreachable")
    if not sc.get("imds", {}).get("ipv6", False):
        rules.append(f"ip6 daddr {IMDS6} tcp dport 80 drop")
    return rules


def imds_paths(sc: dict, metadata: dict, mac: str) -> dict:
    """IMDS's IPv6 paths for a VPC with an IPv6 CIDR; local-ipv4 gone in an IPv6-only subnet."""
    data = dict(metadata)
    if sc.get("vpc", {}).get("ipv6_cidr"):
        net = f"meta-data/network/interfaces/macs/{mac}/"
        data[net + "vpc-ipv6-cidr-blocks"] = sc["vpc"]["ipv6_cidr"]
        data[net + "subnet-ipv6-cidr-blocks"] = SUBNETS6["10.0.1.0/24"]
        data[net + "ipv6s"] = INSTANCE6
    if sc.get("subnet", {}).get("ipv6_only"):
        for path in [p for p in data if p.endswith("local-ipv4") or p.endswith("local-ipv4s")]:
            del data[path]
    return data


def resolv_conf(sc: dict) -> str:
    # [dhcp] dns_server: the DHCP option set's DNS server (the VPC resolver unless a scenario names its own)
    server = AMAZON_DNS6 if sc.get("subnet", {}).get("ipv6_only") else sc.get("dhcp", {}).get("dns_server", "10.0.0.2")
    return f"nameserver {server}\nsearch ap-northeast-1.compute.internal\n"


def validate(sc: dict) -> None:
    for svc, spec in sc.get("endpoints", {}).items():
        if spec.get("ip_type", "ipv4") not in IP_TYPES:
            raise ValueError(f"[endpoints.{svc}] ip_type must be one of {', '.join(IP_TYPES)}")
    if sc.get("subnet", {}).get("ipv6_only") and not sc.get("vpc", {}).get("ipv6_cidr"):
        raise ValueError("[subnet] ipv6_only needs [vpc] ipv6_cidr")
