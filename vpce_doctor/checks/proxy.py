"""local:proxy's reading of the environment and its one probe of the proxy.

Which proxy a request takes is decided as botocore decides it: botocore.utils.get_environ_proxies, i.e. urllib's
getproxies_environment (lowercase variables win over uppercase ones, an empty lowercase one removes the uppercase
one) and proxy_bypass_environment for NO_PROXY (exact hosts and DNS suffixes; no CIDRs: botocore's own comment).
IMDS is http:// so only http_proxy matters for it, and botocore's IMDS credential fetcher does use it
(botocore/utils.py IMDSFetcher: proxies=get_environ_proxies(self._base_url)); the endpoints are https://.
"""
from __future__ import annotations

import base64
import ipaddress
import socket
import time
from http import HTTPStatus
from typing import Dict, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # public in CPython, not in typeshed

IMDS_ADDRESS = "169.254.169.254"
MAX_STATUS_LINE = 1024


def chosen(environ: Mapping[str, str], scheme: str) -> Optional[Tuple[str, str]]:
    """(variable, value) of the proxy urllib uses for this scheme, or None."""
    lower, upper = f"{scheme}_proxy", f"{scheme.upper()}_PROXY"
    if lower in environ:
        return (lower, environ[lower]) if environ[lower] else None
    return (upper, environ[upper]) if environ.get(upper) else None


def no_proxy(environ: Mapping[str, str]) -> str:
    if "no_proxy" in environ:
        return environ["no_proxy"]
    return environ.get("NO_PROXY", "")


def proxied(environ: Mapping[str, str], host: str, scheme: str) -> Optional[Tuple[str, str]]:
    """The (variable, proxy) a request to scheme://host goes through, or None when it goes direct."""
    proxy = chosen(environ, scheme)
    if proxy is None:
        return None
    bypass = no_proxy(environ)
    return None if bypass and proxy_bypass_environment(host, {"no": bypass}) else proxy


def address(proxy_url: str) -> Tuple[str, int, str]:
    """(host, port, scheme): botocore prefixes a bare host:port with http:// (httpsession._fix_proxy_url)."""
    parts = urlsplit(proxy_url if "://" in proxy_url else "http://" + proxy_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port or (443 if parts.scheme == "https" else 80), parts.scheme


def tunnel(proxy_url: str, ip: str, name: str, port: int, timeout: float) -> Dict[str, object]:
    """Ask the proxy for a CONNECT tunnel to name:port, as botocore does (with Proxy-Authorization when the URL
    carries credentials); read only its status line. The credentials are never recorded."""
    host, proxy_port, scheme = address(proxy_url)
    started = time.monotonic()
    outcome: Dict[str, object] = {"address": f"{ip}:{proxy_port}", "target": f"{name}:{port}"}
    try:
        with socket.create_connection((ip, proxy_port), timeout=timeout) as sock:
            if scheme == "https":  # TLS to the proxy itself: the TCP connection is all this probe proves
                return {**outcome, "result": "connected", "ms": _ms(started)}
            sock.sendall(_connect_request(proxy_url, name, port))
            line = _status_line(sock, started + timeout)
    except socket.timeout:
        return {**outcome, "result": "timeout", "ms": _ms(started)}
    except ConnectionRefusedError:
        return {**outcome, "result": "refused", "ms": _ms(started)}
    except OSError as error:
        return {**outcome, "result": "unreachable" if error.errno in (101, 113) else "error",
                "error": error.__class__.__name__, "ms": _ms(started)}
    version, code = (line.split() + ["", ""])[:2]  # "HTTP/1.1 200 Connection established"
    status = int(code) if version.startswith("HTTP/") and code.isdigit() else None
    tunnel = status is not None and HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES  # any 2xx (RFC 9110 §9.3.6)
    result = "tunnel" if tunnel else "status" if status else "not-http"
    return {**outcome, "result": result, "status": status, "ms": _ms(started)}


def _connect_request(proxy_url: str, name: str, port: int) -> bytes:
    parts = urlsplit(proxy_url if "://" in proxy_url else "http://" + proxy_url)
    lines = [f"CONNECT {name}:{port} HTTP/1.1", f"Host: {name}:{port}"]
    if parts.username:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(pair).decode())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_line(sock: socket.socket, deadline: float) -> str:
    """The proxy's first line, read within one deadline for the whole line: a proxy that drips a byte at a time
    must not hold each read just under the timeout (issue 12 defect 3, for the proxy probe)."""
    data = b""
    while b"\n" not in data and len(data) < MAX_STATUS_LINE:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no status line from the proxy before the deadline")
        sock.settimeout(left)
        chunk = sock.recv(MAX_STATUS_LINE - len(data))
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("latin-1").strip()


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
