"""The lab's forward proxy ([proxy] in a scenario): a listener that answers every CONNECT the way a proxy that will
not tunnel does, so a client's proxy settings can be judged against a proxy that answers (not only a dead one).

mode "auth": 407 Proxy Authentication Required with a Basic challenge, unless the request carries the Proxy-
Authorization the scenario's credentials give (then still 403: the lab tunnels nowhere), as squid answers a client
without credentials (RFC 9110 15.5.8 and 11.7.1; squid's Basic scheme challenges with
`Proxy-Authenticate: Basic realm="..."`, squid-cache/squid src/auth/basic/Config.cc); mode "refuse": 403 Forbidden
for every CONNECT, as squid's http_access deny does (ERR_ACCESS_DENIED). Everything else a client sends is ignored.
"""
from __future__ import annotations

import base64
import socketserver

MODES = ("none", "auth", "refuse")
MAX_HEAD = 16 * 1024


def answer(mode: str, head: bytes, credentials: str = "") -> bytes:
    """The status line and headers for one request head (pure: the listener only moves bytes)."""
    wanted = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
    given = [line.split(b":", 1)[1].strip().decode("latin-1") for line in head.split(b"\r\n")
             if line.lower().startswith(b"proxy-authorization:")]
    if mode == "auth" and (wanted is None or wanted not in given):
        return (b"HTTP/1.1 407 Proxy Authentication Required\r\nServer: squid\r\n"
                b"Proxy-Authenticate: Basic realm=\"vpclab proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return b"HTTP/1.1 403 Forbidden\r\nServer: squid\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: ProxyServer = self.server  # type: ignore[assignment]
        self.request.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                head += chunk
            if server.mode != "none":
                self.request.sendall(answer(server.mode, head, server.credentials))
        except OSError:
            return


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, port: int):
        super().__init__((address, port), _Handler)
        self.mode, self.credentials = "none", ""
