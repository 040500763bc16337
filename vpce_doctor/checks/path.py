"""Is a service reachable (DNS, TCP 443, TLS)? From the network checks when they ran, else probed here.

Session preferences are read at run time, so the log destinations they name (logs, kms, s3) may not be in the
plan; their checks then walk the same three layers with the same probe functions.
"""
from __future__ import annotations

from typing import Dict, Mapping

from ..model import MET
from ..runner import blocker
from . import dns, dns_query, tcp, tls


def layers(service: str):
    return tuple(f"{layer}:{service}" for layer in ("dns", "tcp", "tls"))


def reach(ctx, prior: Mapping, service: str) -> Dict[str, object]:
    """{"ok": bool, "check": the failing check id, "code": its cause code, "summary": what it saw, "planned": True
    when that check is in the report (so a failure here follows from it)}."""
    planned = [prior[i] for i in layers(service) if i in prior]
    if len(planned) == len(layers(service)):
        for check_id, result in zip(layers(service), planned):
            if result.status not in MET:
                return {"ok": False, "check": blocker(result) or check_id, "code": result.code,
                        "summary": result.summary, "planned": True}
        return {"ok": True, "check": layers(service)[2], "code": "", "summary": planned[2].summary}
    return probe(ctx, service)


def probe(ctx, service: str) -> Dict[str, object]:
    from ..plan import Target
    gateway = service in ("s3", "dynamodb")
    name = ctx.service_name(service)
    target = Target(service, name, gateway, "session preferences")
    timeout = ctx.io_timeout()
    resolver = ctx.resolver()
    found = dns.assess(name, gateway, dns_query.lookup(resolver, name, "A", timeout), {"addresses": []},
                       list(ctx.facts.vpc_cidrs))
    if found.status not in MET:
        return {"ok": False, "check": f"dns:{service}", "code": found.code, "summary": found.summary}
    addresses = dns.addresses(found)
    port = ctx.port
    probes = {ip: tcp.connect(ip, port, ctx.io_timeout()) for ip in addresses[:4]}
    opened = tcp.assess(service, port, gateway, probes)
    if opened.status not in MET:
        return {"ok": False, "check": f"tcp:{service}", "code": opened.code, "summary": opened.summary}
    ip = next(ip for ip, p in probes.items() if p["result"] == "open")
    shaken = tls.assess(name, port, {ip: tls.handshake(ctx.ssl_context(), ip, port, target.name, ctx.io_timeout())})
    if shaken.status not in MET:
        return {"ok": False, "check": f"tls:{service}", "code": shaken.code, "summary": shaken.summary}
    return {"ok": True, "check": f"tls:{service}", "code": "", "summary": shaken.summary}
