"""One DNS query through dnspython for dns:<service>, names:dialled, local:proxy and path: its outcome as data."""
from __future__ import annotations

import time
from typing import Any, Dict, List

CNAME = 5  # the CNAME record type (RFC 1035 3.2.2)
MAX_ALIASES = 8  # CNAME hops followed to tell a loop from another SERVFAIL (dnspython itself gives up at 16)


def lookup(resolver, name: str, kind: str, timeout: float) -> Dict[str, Any]:
    """One query through dnspython; the outcome is data ("nxdomain", "timeout", ...), never an exception."""
    import dns.exception
    import dns.resolver
    started = time.monotonic()
    outcome: Dict[str, object] = {"type": kind}
    try:
        answer = resolver.resolve(name, kind, lifetime=timeout, search=False, raise_on_no_answer=False)
        addresses = sorted(r.to_text() for r in answer.rrset) if answer.rrset is not None else []
        chain = [str(rr.target).rstrip(".") for rrset in answer.response.answer if rrset.rdtype == CNAME
                 for rr in rrset]
        outcome.update(code="answer" if addresses else "nodata", addresses=addresses, cnames=chain)
    except dns.resolver.NXDOMAIN:
        outcome["code"] = "nxdomain"
    except dns.resolver.NoNameservers as error:
        outcome["code"] = "refused" if "REFUSED" in str(error) else "servfail"
        loop = cname_loop(resolver, name, timeout) if outcome["code"] == "servfail" else []
        if loop:  # name it: "SERVFAIL" alone sends the operator to the VPC's DNS support
            outcome.update(code="cname-loop", cnames=loop, error=" → ".join(loop))
    except dns.exception.Timeout:
        outcome["code"] = "timeout"
    except (dns.exception.DNSException, OSError, ValueError) as error:
        outcome.update(code="error", error=f"{error.__class__.__name__}: {error}"[:200])
    outcome["ms"] = round((time.monotonic() - started) * 1000, 1)
    outcome["timeout_s"] = timeout
    return outcome


def cname_loop(resolver, name: str, timeout: float) -> List[str]:
    """The alias chain from name when it comes back to a name already seen, else []. CNAME queries are answered
    with the CNAME itself, not chased (RFC 1034 5.2.2), so each hop is one query."""
    import dns.exception
    import dns.resolver
    chain, current = [name.rstrip(".").lower()], name
    for _ in range(MAX_ALIASES):
        try:
            answer = resolver.resolve(current, "CNAME", lifetime=timeout, search=False, raise_on_no_answer=False)
        except (dns.exception.DNSException, OSError, ValueError):
            return []
        if answer.rrset is None:
            return []
        current = str(answer.rrset[0].target).rstrip(".").lower()
        chain.append(current)
        if current in chain[:-1]:
            return chain
    return []
