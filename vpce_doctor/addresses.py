"""IP addresses as the doctor reads and prints them, in both families: one parser for every answer it judges, and
one way to write an address beside a port or in a URL."""
from __future__ import annotations

import ipaddress
from typing import Iterable, Optional, Tuple, Union

IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# The well-known prefix DNS64 synthesises AAAA records in (RFC 6052 §2.1); Amazon's DNS64 uses it and a NAT gateway
# translates it (NAT64) only when the subnet's route table sends 64:ff9b::/96 to one
# (https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-nat64-dns64.html).
DNS64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
# IMDS and the Amazon DNS server on Nitro instances, over IPv6
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html: http://[fd00:ec2::254];
# https://docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html: fd00:ec2::253).
IMDS_V6 = "fd00:ec2::254"
AMAZON_DNS_V6 = "fd00:ec2::253"
# Longer than any address written as text (the longest, an IPv6 address ending in dotted IPv4, has 45 characters:
# RFC 4291 §2.2); anything longer is not parsed at all.
MAX_TEXT = 64


def parse(text: object) -> Tuple[Optional[IP], str]:
    """(address, "") for a plain IPv4 or IPv6 address; (None, why) for anything an answer must not be: garbage, a
    scope id (fe80::1%eth0: meaningful only on one host), an IPv4-mapped IPv6 address (::ffff:10.0.1.10, never a
    DNS answer of an endpoint: it is a socket API artefact)."""
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        return None, "not an IP address"
    if "%" in text:
        return None, "an IPv6 address with a scope id"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None, "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None, f"an IPv4-mapped IPv6 address (of {ip.ipv4_mapped})"
    return ip, ""


def family(address: str) -> str:
    """"IPv4" or "IPv6" (the words the reports use)."""
    return "IPv6" if ":" in address else "IPv4"


def host(address: str) -> str:
    """An address as a URL's host or before ":port": [2001:db8::1] for IPv6 (RFC 3986 §3.2.2)."""
    return f"[{address}]" if ":" in address else address


def hostport(address: str, port: int) -> str:
    return f"{host(address)}:{port}"


def dns64_source(address: str) -> Optional[str]:
    """The IPv4 address a DNS64 AAAA answer was synthesised from (64:ff9b::a00:10a → 10.0.1.10), else None."""
    ip, _ = parse(address)
    if not isinstance(ip, ipaddress.IPv6Address) or ip not in DNS64_PREFIX:
        return None
    return str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))


def inside(address: str, cidrs: Iterable[str]) -> bool:
    """In one of these CIDRs (of its own family); False for anything parse() refuses."""
    ip, _ = parse(address)
    if ip is None:
        return False
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if network.version == ip.version and ip in network:
            return True
    return False
