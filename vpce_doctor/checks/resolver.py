"""dns:resolver: the resolver this instance uses is known and answers at all (one finding, not one per name)."""
from __future__ import annotations

import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

from ..addresses import AMAZON_DNS_V6
from ..model import Check, Remedy, Result, Severity, Status
from ..resolv_conf import read_resolv_conf  # noqa: F401 - checks read it here, tests too

STUB = "127.0.0.53"  # systemd-resolved's stub: the real upstream is in /run/systemd/resolve/resolv.conf
AMAZON_DNS = ("169.254.169.253", AMAZON_DNS_V6)
VPC_DNS_DOC = "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-dns.html"
DNS_SUPPORT = Remedy(
    "Turn on DNS support for the VPC, or fix the custom DNS server named in the DHCP option set; it must forward "
    "amazonaws.com to the VPC resolver (the VPC CIDR base + 2, or 169.254.169.253).",
    ("aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-support '{{\"Value\":true}}'",), (VPC_DNS_DOC,))


def checks():
    return (Check("dns:resolver", "the DNS resolver in use answers", Severity.CRITICAL, run),)


def run(ctx, prior) -> Result:
    servers: Tuple[str, ...]
    if ctx.settings.resolver:
        servers, source, problem = (ctx.resolver().nameservers[0],), "--resolver", ""
    else:
        servers, problem = read_resolv_conf(ctx.path("/etc/resolv.conf"))
        source = "/etc/resolv.conf"
    upstream: Tuple[str, ...] = ()
    if STUB in servers:
        upstream = read_resolv_conf(ctx.path("/run/systemd/resolve/resolv.conf"))[0]
    port = ctx.resolver().port
    probe = f"{ctx.region}.{ctx.domain}" if ctx.region else ctx.domain
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        answers = dict(zip(servers, pool.map(lambda s: _ask(s, port, probe, ctx.io_timeout()), servers)))
    return assess(servers, source, problem, upstream, answers, list(ctx.facts.vpc_cidrs), ctx.facts.vpc_id)


def _ask(server: str, port: int, name: str, timeout: float) -> Dict[str, object]:
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    started = time.monotonic()
    try:
        response = dns.query.udp(dns.message.make_query(name, "SOA"), server, timeout=timeout, port=port)
        return {"rcode": dns.rcode.to_text(response.rcode()), "ms": _ms(started)}
    except dns.exception.Timeout:
        return {"rcode": None, "error": "timeout", "ms": _ms(started)}
    except (OSError, dns.exception.DNSException) as error:
        return {"rcode": None, "error": f"{error.__class__.__name__}: {error}", "ms": _ms(started)}


def assess(servers: Sequence[str], source: str, problem: str, upstream: Sequence[str],
           answers: Dict[str, Dict[str, object]], vpc_cidrs: List[str], vpc_id: Optional[str]) -> Result:
    evidence = {"source": source, "nameservers": list(servers), "upstream": list(upstream), "answers": answers}
    remedy = DNS_SUPPORT.filled(vpc=vpc_id or "<vpc-id>")
    if not servers:
        return Result(Status.FAIL, f"no resolver configured: {problem}", code="no-resolver", evidence=evidence,
                      cause="Without a nameserver no AWS name resolves; the agent logs 'no such host'.",
                      remedy=remedy)
    alive = {s: a for s, a in answers.items() if a.get("rcode") in ("NOERROR", "NXDOMAIN", "SERVFAIL")}
    shown = ", ".join(f"{s} ({_kind(s, upstream, vpc_cidrs)})" for s in servers)
    if not alive:
        refused = [s for s, a in answers.items() if a.get("rcode") == "REFUSED"]
        code, seen = ("refused", "refused every query") if refused else ("timeout", "did not answer")
        return Result(Status.FAIL, f"resolver {shown} from {source} {seen}", code=code, evidence=evidence,
                      cause="Every name lookup fails, so every endpoint looks broken: DNS support is off in the VPC, "
                            "or the custom DNS server is down or refuses this instance.", remedy=remedy)
    dead = [s for s in servers if s not in alive]
    times = ", ".join(f"{s} in {a['ms']:.0f} ms" for s, a in alive.items())
    if dead:
        return Result(Status.WARN, f"resolver {', '.join(dead)} from {source} does not answer; {times}",
                      code="partial", evidence=evidence,
                      cause="glibc tries nameservers in order and waits 5 s on each dead one, so lookups by the "
                            "agent are slow even though they succeed.",
                      remedy=Remedy(f"Remove {', '.join(dead)} from the resolver configuration."))
    return Result(Status.PASS, f"resolver {shown} answers: {times}", evidence=evidence)


def in_use(result) -> List[str]:
    """The servers a dns:resolver finding saw answering lookups: systemd-resolved's upstream, else resolv.conf's."""
    return [str(s) for s in (result.evidence.get("upstream") or result.evidence.get("nameservers") or ())]


def vpc_resolver(vpc_cidrs: Sequence[str]) -> Optional[str]:
    """The Amazon DNS server's address in this VPC: the primary CIDR's base + 2 (VPC_DNS_DOC)."""
    try:
        return str(ipaddress.ip_network(vpc_cidrs[0]).network_address + 2) if vpc_cidrs else None
    except ValueError:
        return None


def custom(server: str, vpc_cidrs: Sequence[str]) -> bool:
    """A DNS server of the customer's own: neither Amazon DNS (base + 2, 169.254.169.253) nor the local stub."""
    return bool(vpc_cidrs) and _kind(server, (), list(vpc_cidrs)) == "custom DNS server"


def _kind(server: str, upstream: Sequence[str], vpc_cidrs: List[str]) -> str:
    if server == STUB:
        return "systemd-resolved stub → " + (", ".join(upstream) or "upstream unknown")
    if server in AMAZON_DNS:
        return "Amazon DNS"
    try:
        address = ipaddress.ip_address(server)
        if any(address == ipaddress.ip_network(c).network_address + 2 for c in vpc_cidrs):
            return "VPC resolver"
    except ValueError:
        pass
    return "custom DNS server" if vpc_cidrs else "resolver"


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
