"""One unsigned, bounded GET of an S3 object, as dnf (libcurl, anonymous) and the SSM agent's fallback download send
it (aws/amazon-ssm-agent agent/fileutil/artifact/artifact.go: Download tries a signed GetObject, then httpDownload,
a plain http.Client GET of the same URL). Observation only: what S3 answered, judged elsewhere (checks/aws_buckets).

Bounded: the name is resolved with the doctor's resolver (dnspython, a lifetime), one connection, a verified TLS
handshake with SNI, `Range: bytes=0-1023` (a GetObject all the same: S3 authorizes a ranged GET as s3:GetObject,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html), at most MAX_BODY bytes read, and a watchdog that
shuts the socket when the probe's whole time is up, so a server sending a byte a second cannot hold the run.
"""
from __future__ import annotations

import http.client
import re
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Sequence
from urllib.parse import urlsplit

from .watchdog import Watchdog

MAX_BODY = 16 * 1024
USER_AGENT = "vpce-doctor (anonymous probe of an AWS-owned object)"
_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_MESSAGE = re.compile(r"<Message>([^<]{0,500})</Message>")


TOO_LITTLE_S = 0.05  # what is left after DNS, below which no GET is started: timeout is the answer

def get_all(urls: Sequence[str], resolve: Callable[[str, float], List[str]], context: ssl.SSLContext,
            budget: float, port: int = 443) -> Dict[str, Dict[str, object]]:
    """Every URL at once, each within `budget` seconds: the answers by URL. port: where a URL names none (443;
    another only where tests point the doctor at local servers: cli.main(port=...))."""
    if not urls:
        return {}
    with ThreadPoolExecutor(max_workers=min(4, len(urls)), thread_name_prefix="anonymous-get") as pool:
        answers = list(pool.map(lambda url: get(url, resolve, context, budget, port), urls))
    return dict(zip(urls, answers))


def get(url: str, resolve: Callable[[str, float], List[str]], context: ssl.SSLContext, budget: float,
        port: int = 443) -> Dict[str, object]:
    """{"status", "code", "message", "s3" (S3 answered: x-amz-request-id), "address", "ms"} or {"error", "ms"}."""
    started = time.monotonic()
    parts = urlsplit(url)
    host, path = parts.hostname or "", (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        addresses = resolve(host, budget)
    except Exception as error:  # dnspython's NXDOMAIN, NoAnswer, LifetimeTimeout ...: the name does not resolve
        return {"error": f"dns: {type(error).__name__}", "ms": _ms(started)}
    if not addresses:
        return {"error": "dns: no address", "ms": _ms(started)}
    left = budget - (time.monotonic() - started)
    if left <= TOO_LITTLE_S:
        return {"error": "timeout", "ms": _ms(started)}
    return {**_request(addresses[0], parts.port or port, host, path, context, left), "address": addresses[0],
            "ms": _ms(started)}


def _request(address: str, port: int, host: str, path: str, context: ssl.SSLContext,
             timeout: float) -> Dict[str, object]:
    holder: List[socket.socket] = []
    with Watchdog(timeout, lambda: holder) as dog:
        try:
            raw = socket.create_connection((address, port), timeout=timeout)
            holder.append(raw)
            with context.wrap_socket(raw, server_hostname=host) as tls:
                holder.append(tls)  # wrapping detached raw: the watchdog must shut the TLS socket down
                tls.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nRange: bytes=0-1023\r\n"
                             f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                             ).encode("ascii", "replace"))
                response = http.client.HTTPResponse(tls, method="GET")
                response.begin()
                body = response.read(MAX_BODY).decode("utf-8", "replace")
                return {"error": "timeout"} if dog.fired.is_set() else _answer(response, body)  # cut short
        except (OSError, http.client.HTTPException, ValueError) as error:  # ssl.SSLError and timeouts are OSErrors
            return {"error": "timeout" if dog.fired.is_set() or isinstance(error, socket.timeout) else _kind(error)}
        finally:
            for sock in holder:
                sock.close()


def _answer(response: http.client.HTTPResponse, body: str) -> Dict[str, object]:
    code, message = _CODE.search(body), _MESSAGE.search(body)
    return {"status": response.status, "code": code.group(1) if code else None,
            "message": message.group(1) if message else None,
            "s3": bool(response.getheader("x-amz-request-id")), "server": (response.getheader("Server") or "")[:60]}


def _kind(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"tls: {error.verify_message}"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    return f"{type(error).__name__}: {str(error)[:120]}"


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def resolver_of(resolver) -> Callable[[str, float], List[str]]:
    """A resolve(name, lifetime) on a dnspython resolver: IPv4 first, IPv6 when the name has no A record."""
    def resolve(name: str, lifetime: float) -> List[str]:
        import dns.resolver
        deadline = time.monotonic() + lifetime
        try:
            answer = resolver.resolve(name, "A", lifetime=max(0.05, deadline - time.monotonic()))
        except dns.resolver.NoAnswer:  # an IPv6-only name
            answer = resolver.resolve(name, "AAAA", lifetime=max(0.05, deadline - time.monotonic()))
        return [record.to_text() for record in answer][:4]
    return resolve
