"""local:hosts and local:proxy: instance configuration that silently bends the path to the endpoints."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .. import redact
from ..instance_files import read_text
from ..model import Check, Remedy, Result, Severity, Status
from . import dns_query, proxy, tcp

IMDS_ADDRESS = "169.254.169.254"
PROXY_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/configure-proxy-ssm-agent.html"
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")
NO_PROXY_VARS = ("no_proxy", "NO_PROXY")
HOSTS_LIMIT = 1024 * 1024  # far more than any real hosts file; /etc/hosts -> /dev/zero must not be read for ever


def checks():
    return (
        Check("local:hosts", "/etc/hosts does not override AWS names", Severity.HIGH, run_hosts),
        Check("local:proxy", "proxy variables leave IMDS and the endpoints direct", Severity.HIGH, run_proxy),
    )


def run_hosts(ctx, prior) -> Result:
    path = ctx.path("/etc/hosts")
    try:
        text = read_text(path, HOSTS_LIMIT)
    except FileNotFoundError:
        text = ""
    except OSError as error:
        return Result(Status.WARN, f"/etc/hosts cannot be read: {error.strerror or error}", code="unreadable",
                      cause="An override there would be invisible to this check.")
    entries, names = parse_hosts(text), [t.name for t in ctx.targets]
    pinned = sorted({ip for ip, name in entries if name in names})[:8]
    # What the agent and the CLI will dial instead of DNS's answer: probe it (getaddrinfo reads /etc/hosts first).
    with ThreadPoolExecutor(max_workers=max(1, len(pinned))) as pool:
        probes = dict(zip(pinned, pool.map(lambda ip: tcp.connect(ip, ctx.port, ctx.io_timeout()), pinned)))
    return assess_hosts(entries, names, ctx.domain, probes)


def parse_hosts(text: str) -> List[Tuple[str, str]]:
    entries: List[Tuple[str, str]] = []
    for line in text.splitlines()[:10000]:
        fields = line.split("#")[0].split()
        entries.extend((fields[0], name.lower().rstrip(".")) for name in fields[1:])
    return entries


def assess_hosts(entries: Sequence[Tuple[str, str]], names: Sequence[str], domain: str,
                 probes: Optional[Mapping[str, Mapping]] = None) -> Result:
    """probes: TCP 443 to each pinned address of a planned name ({address: tcp.connect's outcome})."""
    overrides = [(ip, name) for ip, name in entries if name in names or name.endswith("." + domain)]
    evidence = {"overrides": [{"address": ip, "name": name} for ip, name in overrides], "probes": dict(probes or {})}
    if not overrides:
        return Result(Status.PASS, f"no /etc/hosts entry for *.{domain}", evidence=evidence)
    dead = [(ip, name) for ip, name in overrides if (probes or {}).get(ip, {}).get("result", "open") != "open"]
    if dead:
        shown = ", ".join(f"{name} → {ip} ({(probes or {})[ip]['result']} on 443)" for ip, name in dead)
        return Result(Status.FAIL, f"/etc/hosts pins {shown}", code="hosts-pin-dead", evidence=evidence,
                      cause="The SSM agent, the AWS CLI and every SDK resolve through /etc/hosts first, so they dial "
                            "this dead address while DNS (and the checks of the name) point at the live endpoint.",
                      remedy=Remedy("Remove the entries and let private DNS answer for the names.",
                                    tuple(f"sudo sed -i.bak '/{name.replace('.', '[.]')}/d' /etc/hosts"
                                          for _, name in dead[:3])))
    shown = ", ".join(f"{name} → {ip}" for ip, name in overrides)
    return Result(Status.WARN, f"/etc/hosts pins {shown}", code="hosts-override", evidence=evidence,
                  cause="The SSM agent and the AWS CLI use these addresses, not DNS: when the endpoint's addresses "
                        "change, they break while DNS checks stay green.",
                  remedy=Remedy("Remove the entries and let private DNS answer for the names.",
                                ("sudo sed -i.bak '/amazonaws/d' /etc/hosts",)))


def run_proxy(ctx, prior) -> Result:
    """One probe of the proxy the endpoints' requests would take: a CONNECT to the first such name."""
    names = [t.name for t in ctx.targets]
    through = [(n, proxy.proxied(ctx.environ, n, "https")) for n in names]
    first = next(((n, p[1]) for n, p in through if p), None)
    seen = None
    if first:
        host = proxy.address(first[1])[0]
        ip = host if proxy.is_ip(host) else next(iter(dns_query.lookup(ctx.resolver(), host, "A", ctx.io_timeout())
                                                      .get("addresses") or ()), None)
        seen = proxy.tunnel(first[1], ip, first[0], ctx.port, ctx.io_timeout()) if ip else \
            {"address": host, "result": "no-address"}
    return assess_proxy(ctx.environ, names, seen, ctx.domain)


# code -> (cause, what to do) when the proxy the endpoints' requests take cannot carry them.
PROXY_FAULTS = {
    "proxy-unreachable": ("Nothing answers at the proxy's address, so every AWS call from this environment (the "
                          "CLI, SDKs, this doctor) waits for its connect timeout and fails, while the endpoints "
                          "themselves answer.", "Fix the proxy address, or let the endpoint names bypass it"),
    "proxy-auth": ("The proxy wants credentials (407 Proxy Authentication Required) that the proxy URL does not "
                   "carry or that it rejects.", "Put valid credentials in the proxy URL, or let the endpoint names "
                   "bypass it"),
    "proxy-refused": ("The proxy refused the tunnel or could not open it (it cannot reach the private endpoint, "
                      "or its rules deny the name).", "Allow CONNECT to the endpoint names on 443 in the proxy, or "
                      "let them bypass it"),
}


def assess_proxy(environ: Mapping[str, str], names: Sequence[str], probe: Optional[Mapping] = None,
                 domain: str = "amazonaws.com") -> Result:
    proxies: Dict[str, str] = {v: _redact(environ[v]) for v in PROXY_VARS if environ.get(v)}
    evidence: Dict[str, object] = {"proxies": proxies, "no_proxy": proxy.no_proxy(environ)}
    if not proxies:
        return Result(Status.PASS, "no proxy variables set", evidence=evidence)
    imds = proxy.proxied(environ, IMDS_ADDRESS, "http")
    through = [n for n in names if proxy.proxied(environ, n, "https")]
    evidence.update(through_proxy=([IMDS_ADDRESS] if imds else []) + through, probe=dict(probe or {}) or None)
    fix = Remedy(f"Add the IMDS address and the endpoint names to NO_PROXY (exact names or a .{domain} suffix: "
                 "botocore ignores CIDRs and *.), here and in the agent's environment.",
                 (f"export NO_PROXY=169.254.169.254,.{domain},localhost",), (PROXY_DOC,))
    if imds:
        return Result(Status.FAIL, f"{imds[0]}={_redact(imds[1])} takes IMDS (http://{IMDS_ADDRESS}) to the proxy: "
                      f"NO_PROXY={evidence['no_proxy'] or '(unset)'}", code="imds-through-proxy", evidence=evidence,
                      remedy=fix, cause="botocore's instance-profile credentials, for every AWS CLI and SDK process "
                      "here and for this doctor, are fetched through the proxy, which cannot give this instance's "
                      "(IMDSv2 refuses token requests carrying X-Forwarded-For); a raw curl to IMDS still works.")
    fault = _fault(probe) if through else None
    if fault:
        cause, todo = PROXY_FAULTS[fault]
        used = proxy.chosen(environ, "https") or ("", "")
        return Result(Status.FAIL, f"{', '.join(through)} go through the proxy {used[0]}={_redact(used[1])}, which "
                      f"{_seen(probe)}", code=fault, cause=cause, evidence=evidence,
                      remedy=Remedy(todo + ".", fix.commands, fix.links))
    if through:
        return Result(Status.WARN, f"{', '.join(proxies)} set and NO_PROXY={evidence['no_proxy'] or '(unset)'} does "
                      f"not cover {', '.join(through)}", code="proxy-without-no-proxy", evidence=evidence,
                      cause="Requests to these names go to the proxy instead of straight to the endpoints: they work "
                            "only while the proxy reaches the endpoints, and endpoint policies see the proxy.",
                      remedy=fix)
    return Result(Status.PASS, f"proxy set ({', '.join(proxies)}), NO_PROXY covers IMDS and every endpoint name",
                  evidence=evidence)


def _fault(probe: Optional[Mapping]) -> Optional[str]:
    probe = probe or {}
    result = probe.get("result")
    if result in (None, "tunnel", "connected"):
        return None
    if result == "status":
        return "proxy-auth" if probe.get("status") == HTTPStatus.PROXY_AUTHENTICATION_REQUIRED else "proxy-refused"
    return "proxy-refused" if result == "not-http" else "proxy-unreachable"


def _seen(probe: Optional[Mapping]) -> str:
    probe = probe or {}
    if probe.get("result") == "status":
        return f"answered CONNECT {probe.get('target')} with HTTP {probe.get('status')}"
    if probe.get("result") == "no-address":
        return f"does not resolve ({probe.get('address')})"
    return f"gave {probe.get('result')} at {probe.get('address')} after {probe.get('ms', 0):.0f} ms"


def bypassed(host: str, no_proxy: str) -> bool:
    """The common reading of NO_PROXY (curl, requests, Go): '*', an exact host, or a domain suffix."""
    entries = [e.strip().lower() for e in no_proxy.split(",") if e.strip()]
    if "*" in entries:
        return True
    bare = [e.lstrip("*").lstrip(".") for e in entries]
    return any(b and (host == b or host.endswith("." + b)) for b in bare)


def _redact(url: str) -> str:
    """Proxy URLs may carry user:password, and a password may hold a raw / # ? or @: redact.url hides it whole."""
    return redact.url(url)
