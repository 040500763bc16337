"""tls:<service>: a verified TLS handshake, with SNI = the service name, on every address that accepted TCP."""
from __future__ import annotations

import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Dict

from ..addresses import hostport
from ..context import CaBundleError
from ..model import Check, Remedy, Result, Severity, Status
from . import tcp

INTERCEPTION = Remedy(
    "Something between the instance and the endpoint presents its own certificate: a TLS-inspecting proxy or "
    "firewall. Exempt {name} (and the other AWS names) from inspection, or, if the interception is intended, add "
    "its CA to the system trust store and point AWS_CA_BUNDLE at it.",
    ("openssl s_client -connect {hostport} -servername {name} -showcerts </dev/null",),
    ("https://docs.aws.amazon.com/systems-manager/latest/userguide/troubleshooting-ssm-agent.html",))
WRONG_NAME = Remedy(
    "The address answers for another name: the DNS answer or a hosts entry points this name at the wrong "
    "endpoint (for S3 interface endpoints the name needs its bucket., accesspoint. or control. label).",
    ("getent hosts {name}", "openssl s_client -connect {hostport} -servername {name} </dev/null"))
CLOCK = Remedy("Check the clock: sync it with the Amazon Time Sync Service at 169.254.169.123.",
               ("chronyc sources -v",))

# verify_code from OpenSSL → (our code, cause, remedy)
VERIFY = {
    62: ("name-mismatch", "The certificate is valid but not for this name.", WRONG_NAME),
    20: ("untrusted", "The certificate chain ends in a CA this instance does not trust: TLS interception, or a "
         "missing CA bundle.", INTERCEPTION),
    19: ("untrusted", "The chain ends in a self-signed CA this instance does not trust: TLS interception.",
         INTERCEPTION),
    18: ("untrusted", "The certificate is self-signed: TLS interception.", INTERCEPTION),
    21: ("untrusted", "The certificate cannot be verified: TLS interception or a missing CA bundle.", INTERCEPTION),
    10: ("expired", "The certificate has expired, or this instance's clock is far ahead.", CLOCK),
    9: ("not-yet-valid", "The certificate is not valid yet, or this instance's clock is far behind.", CLOCK),
}
OTHER = {
    "timeout": ("The TCP connection opened but the handshake never finished: a middlebox holding the "
                "connection, or an MTU problem.", None),
    "reset": ("The connection was closed during the handshake: a firewall or proxy that filters TLS by name.",
              INTERCEPTION),
    "error": ("The handshake failed.", None),
}


def check(target) -> Check:
    return Check(f"tls:{target.service}", f"TLS to {target.service} verifies for {target.name}", Severity.CRITICAL,
                 partial(run, target=target), needs=(f"tcp:{target.service}",))


def run(ctx, prior, *, target) -> Result:
    addresses = tcp.open_addresses(prior[f"tcp:{target.service}"])
    try:
        context = ctx.ssl_context()
    except CaBundleError as error:
        return Result(Status.FAIL, str(error), code="ca-bundle", cause="No certificate can be verified without a "
                      "trust store, so every TLS connection and AWS call made with it fails.",
                      remedy=Remedy("Point AWS_CA_BUNDLE at a PEM file of CA certificates, or unset it."))
    timeout, port = ctx.io_timeout(), ctx.port
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(addresses)))) as pool:
        results = dict(zip(addresses, pool.map(
            lambda ip: handshake(context, ip, port, target.name, timeout), addresses)))
    return assess(target.name, port, results)


def handshake(context: ssl.SSLContext, address: str, port: int, name: str, timeout: float) -> Dict[str, object]:
    started = time.monotonic()
    outcome: Dict[str, object] = {}
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert() or {}
            outcome.update(result="ok", version=tls.version(), issuer=_name(cert.get("issuer")),
                           subject=_name(cert.get("subject")), not_after=cert.get("notAfter"))
    except ssl.SSLCertVerificationError as error:
        code = VERIFY.get(error.verify_code, ("unverified",))[0]
        outcome.update(result=code, verify_code=error.verify_code, detail=str(error.verify_message))
    except socket.timeout:
        outcome["result"] = "timeout"
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        outcome["result"] = "reset"
    except (ssl.SSLError, OSError) as error:
        outcome.update(result="error", detail=f"{error.__class__.__name__}: {error}"[:200])
    outcome["ms"] = round((time.monotonic() - started) * 1000, 1)
    return outcome


def assess(name: str, port: int, results: Dict[str, Dict[str, object]]) -> Result:
    evidence = {"name": name, "port": port, "handshakes": results}
    if not results:
        return Result(Status.ERROR, "no address accepted TCP", code="no-address", evidence=evidence,
                      cause="The TCP check passed without an open address; this is a bug in vpce-doctor.")
    bad = {ip: r for ip, r in results.items() if r.get("result") != "ok"}
    if not bad:
        first = next(iter(results.values()))
        return Result(Status.PASS, f"certificate valid for {name} on {', '.join(results)} "
                      f"({first.get('version')}, issued by {first.get('issuer') or 'unknown'})", evidence=evidence)
    address, worst = next(iter(bad.items()))
    code = str(worst["result"])
    verify = next((v for v in VERIFY.values() if v[0] == code), None)
    cause, remedy = (verify[1], verify[2]) if verify else OTHER.get(code, (f"The handshake failed: {code}.", None))
    detail = f": {worst['detail']}" if worst.get("detail") else ""
    summary = f"TLS to {name} failed on {', '.join(bad)}: {code}{detail}"
    return Result(Status.FAIL, summary, cause=cause, code=code, evidence=evidence,
                  remedy=remedy and remedy.filled(address=address, port=port, name=name,
                                                    hostport=hostport(address, port)))


def _name(rdns) -> str:
    """The CN (else O) of a getpeercert() name, e.g. 'Amazon RSA 2048 M02'."""
    fields = dict(pair for rdn in rdns or () for pair in rdn)
    return fields.get("commonName") or fields.get("organizationName") or ""
