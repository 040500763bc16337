"""local:hosts and local:proxy: instance configuration that silently bends the path to the endpoints."""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

from ..model import Check, Remedy, Result, Severity, Status

IMDS_ADDRESS = "169.254.169.254"
PROXY_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/configure-proxy-ssm-agent.html"
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")
NO_PROXY_VARS = ("no_proxy", "NO_PROXY")


def checks():
    return (
        Check("local:hosts", "/etc/hosts does not override AWS names", Severity.HIGH, run_hosts),
        Check("local:proxy", "proxy variables leave IMDS and the endpoints direct", Severity.HIGH, run_proxy),
    )


def run_hosts(ctx, prior) -> Result:
    path = ctx.path("/etc/hosts")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    except OSError as error:
        return Result(Status.WARN, f"/etc/hosts cannot be read: {error.strerror or error}", code="unreadable",
                      cause="An override there would be invisible to this check.")
    return assess_hosts(parse_hosts(text), [t.name for t in ctx.targets], ctx.domain)


def parse_hosts(text: str) -> List[Tuple[str, str]]:
    entries = []
    for line in text.splitlines()[:10000]:
        fields = line.split("#")[0].split()
        entries.extend((fields[0], name.lower().rstrip(".")) for name in fields[1:])
    return entries


def assess_hosts(entries: Sequence[Tuple[str, str]], names: Sequence[str], domain: str) -> Result:
    overrides = [(ip, name) for ip, name in entries if name in names or name.endswith("." + domain)]
    evidence = {"overrides": [{"address": ip, "name": name} for ip, name in overrides]}
    if not overrides:
        return Result(Status.PASS, f"no /etc/hosts entry for *.{domain}", evidence=evidence)
    shown = ", ".join(f"{name} → {ip}" for ip, name in overrides)
    return Result(Status.WARN, f"/etc/hosts pins {shown}", code="hosts-override", evidence=evidence,
                  cause="The SSM agent and the AWS CLI use these addresses, not DNS: when the endpoint's addresses "
                        "change, they break while DNS checks stay green.",
                  remedy=Remedy("Remove the entries and let private DNS answer for the names.",
                                ("sudo sed -i.bak '/amazonaws/d' /etc/hosts",)))


def run_proxy(ctx, prior) -> Result:
    return assess_proxy(ctx.environ, [t.name for t in ctx.targets])


def assess_proxy(environ: Mapping[str, str], names: Sequence[str]) -> Result:
    proxies: Dict[str, str] = {v: _redact(environ[v]) for v in PROXY_VARS if environ.get(v)}
    no_proxy = next((environ[v] for v in NO_PROXY_VARS if environ.get(v) is not None), "")
    evidence = {"proxies": proxies, "no_proxy": no_proxy}
    if not proxies:
        return Result(Status.PASS, "no proxy variables set", evidence=evidence)
    uncovered = [host for host in (IMDS_ADDRESS, *names) if not bypassed(host, no_proxy)]
    evidence["through_proxy"] = uncovered
    if not uncovered:
        return Result(Status.PASS, f"proxy set ({', '.join(proxies)}), NO_PROXY covers IMDS and every endpoint name",
                      evidence=evidence)
    return Result(Status.WARN, f"{', '.join(proxies)} set and NO_PROXY={no_proxy or '(unset)'} does not cover "
                  f"{', '.join(uncovered)}", code="proxy-without-no-proxy", evidence=evidence,
                  cause="Requests to these hosts go to the proxy instead of the endpoints; a proxy without a route "
                        "to them makes AWS calls time out, and IMDS through a proxy fails.",
                  remedy=Remedy("Add the IMDS address and the endpoint names to NO_PROXY, here and in the agent's "
                                "environment.", ("export NO_PROXY=169.254.169.254,.amazonaws.com,localhost",),
                                (PROXY_DOC,)))


def bypassed(host: str, no_proxy: str) -> bool:
    """The common reading of NO_PROXY (curl, requests, Go): '*', an exact host, or a domain suffix."""
    entries = [e.strip().lower() for e in no_proxy.split(",") if e.strip()]
    if "*" in entries:
        return True
    bare = [e.lstrip("*").lstrip(".") for e in entries]
    return any(b and (host == b or host.endswith("." + b)) for b in bare)


def _redact(url: str) -> str:
    """Proxy URLs may carry user:password, and a password may hold a raw @: keep only what follows the last one."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{path}"
