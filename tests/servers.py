"""Real DNS, IMDSv2, TCP and TLS servers for the tests, and for the lab (which binds them inside its namespace)."""
from __future__ import annotations

import ipaddress
import secrets
import select
import socket
import socketserver
import ssl
import struct
import threading
import time
from contextlib import suppress
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trustme


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _Bound:
    """A socketserver that belongs to a _Server: one daemon thread per request, silent about client errors."""
    daemon_threads = True
    request_queue_size = 128  # the doctor asks IMDS several paths at once; the default backlog of 5 drops SYNs
    block_on_close = False  # stop() cuts the connections instead, so a stuck client cannot hang it
    timeout = 0.05  # how long each handle_request() waits before the loop checks for stop()

    def __init__(self, owner: "_Server", handler, port: Optional[int] = None) -> None:
        self.owner, self.address_family = owner, _family(owner.host)
        super().__init__((owner.host, owner.port if port is None else port), handler)  # type: ignore[call-arg]

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up or send junk are part of the scenarios, not worth a traceback


class _UDP(_Bound, socketserver.ThreadingUDPServer):
    pass


class _TCP(_Bound, socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # the lab restarts servers on fixed ports: TIME_WAIT must not block the bind

    def get_request(self):
        conn, address = super().get_request()  # type: ignore[misc]
        conn.settimeout(5)
        self.owner._track(conn)
        return conn, address

    def shutdown_request(self, request) -> None:
        self.owner._track(request, add=False)
        super().shutdown_request(request)  # type: ignore[misc]


class _Server:
    """Start on __enter__ or start(), stop on __exit__ or stop(); .host and .port (the real one once started)."""
    _handler = None  # a request handler class; None hands each connection to _handle()

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._servers: List[socketserver.BaseServer] = []
        self._threads: List[threading.Thread] = []
        self._conns: Set[socket.socket] = set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self):
        self._run(_TCP(self, self._handler or (lambda conn, *_: self._handle(conn))))
        return self

    def _run(self, *servers: socketserver.BaseServer) -> None:
        self.port = servers[0].server_address[1]  # kept by stop(): a restart comes back on the same port
        self._stopping.clear()
        for server in servers:
            self._servers.append(server)
            self._threads.append(threading.Thread(target=self._loop, args=(server,), daemon=True))
            self._threads[-1].start()

    def _loop(self, server: socketserver.BaseServer) -> None:
        # Not serve_forever(): its shutdown() waits out one poll per server, one server after the other.
        while not self._stopping.is_set():
            server.handle_request()

    def _track(self, conn: socket.socket, add: bool = True) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)
            late = add and self._stopping.is_set()  # stop() has already cut the ones it knew
        if late:
            _cut(conn)

    def _handle(self, conn: socket.socket) -> None:
        self._stopping.wait()  # hold the connection, silently

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(2)
        for server in self._servers:
            server.server_close()
        with self._lock:
            conns, self._conns, self._servers, self._threads = list(self._conns), set(), [], []
        for conn in conns:
            _cut(conn)


def _cut(conn: socket.socket) -> None:
    with suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)  # wakes the handler blocked on it, which then closes it


Behaviour = Union[str, Sequence[str]]
_RCODES = {"nxdomain": dns.rcode.NXDOMAIN, "nodata": dns.rcode.NOERROR,
           "servfail": dns.rcode.SERVFAIL, "refused": dns.rcode.REFUSED}


def _behaviour(value: Behaviour):
    if isinstance(value, str) and (value in _RCODES or value == "timeout" or value.startswith("cname:")):
        return value
    addresses = [value] if isinstance(value, str) else list(value)
    return [str(ipaddress.ip_address(a)) for a in addresses]  # a typo raises here, not a silent NXDOMAIN later


class DnsServer(_Server):
    """A recursive resolver as clients see it: UDP and TCP on one port, answers from a table."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, answers: Optional[Dict[str, Behaviour]] = None,
                 default: Behaviour = "nxdomain") -> None:
        super().__init__(host, port)
        self.down = False
        self.queries: Dict[str, int] = {}
        self.reset(answers, default)

    def reset(self, answers: Optional[Dict[str, Behaviour]] = None, default: Behaviour = "nxdomain") -> None:
        table = {name.lower().rstrip("."): _behaviour(b) for name, b in (answers or {}).items()}
        with self._lock:
            self._answers, self._default = table, _behaviour(default)

    def set(self, name: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._answers[name.lower().rstrip(".")] = _behaviour(behaviour)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._default = _behaviour(behaviour)

    def answer(self, wire: bytes) -> Optional[bytes]:
        """The reply to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
            question, response = query.question[0], dns.message.make_response(query)
        except Exception:  # malformed, no question, or not a query at all: ignored like any junk
            return None
        name = question.name.to_text(omit_final_dot=True).lower()
        labels = name.split(".")
        candidates = [name] + ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]  # most specific first
        with self._lock:
            self.queries[name] = self.queries.get(name, 0) + 1
            found = next((self._answers[c] for c in candidates if c in self._answers), self._default)
        if self.down or found == "timeout":
            return None
        response.flags = (response.flags & ~dns.flags.AA) | dns.flags.RA
        if isinstance(found, str) and found.startswith("cname:"):
            return self._alias(question, response, found[len("cname:"):])
        if isinstance(found, str):
            response.set_rcode(_RCODES[found])
        else:
            version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(question.rdtype)
            addresses = [a for a in found if ipaddress.ip_address(a).version == version]
            if addresses:
                response.answer.append(dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, question.rdtype,
                                                           *addresses))
        return response.to_wire()

    def _alias(self, question, response, target: str) -> bytes:
        """A recursive resolver's answer for an alias: the CNAME itself to a CNAME query (RFC 1034 5.2.2), else the
        chain followed in the table, and SERVFAIL when it loops (as BIND and Unbound answer an alias loop)."""
        response.answer.append(dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, dns.rdatatype.CNAME,
                                                   target + "."))
        if question.rdtype == dns.rdatatype.CNAME:
            return response.to_wire()
        seen, current = {question.name.to_text(omit_final_dot=True).lower()}, target.lower()
        with self._lock:
            while current not in seen:
                seen.add(current)
                following = self._answers.get(current)
                if not (isinstance(following, str) and following.startswith("cname:")):
                    if isinstance(following, str) and following in _RCODES:  # the target fails: so does the lookup
                        response.set_rcode(_RCODES[following])
                    elif isinstance(following, list):  # and the target's own records, as a recursive resolver gives
                        version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(question.rdtype)
                        found = [a for a in following if ipaddress.ip_address(a).version == version]
                        if found:
                            response.answer.append(dns.rrset.from_text(current + ".", 60, dns.rdataclass.IN,
                                                                       question.rdtype, *found))
                    return response.to_wire()
                current = following[len("cname:"):].lower()
        response.answer.clear()
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()

    def start(self) -> "DnsServer":
        for attempt in range(50):  # with port 0, the free UDP port the kernel picks may be taken for TCP
            udp = _UDP(self, lambda request, peer, _: self._datagram(request, peer))
            try:
                tcp = _TCP(self, lambda conn, *_: self._handle(conn), udp.server_address[1])
                break
            except OSError:
                udp.server_close()
                if self.port or attempt == 49:
                    raise
        self._run(udp, tcp)
        return self

    def _datagram(self, request: Tuple[bytes, socket.socket], peer) -> None:
        reply = self.answer(request[0])
        if reply is not None:
            request[1].sendto(reply, peer)

    def _handle(self, conn: socket.socket) -> None:
        with conn.makefile("rb") as stream:
            while True:
                prefix = stream.read(2)
                if len(prefix) < 2:
                    return
                reply = self.answer(stream.read(struct.unpack("!H", prefix)[0]))
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


_JUNK = bytes(range(0x80, 0x100)) * 40  # continuation and invalid lead bytes: never valid UTF-8


class _ImdsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle and delayed ACKs stall every response ~40 ms
    server_version, sys_version = "EC2ws", ""
    timeout = 5

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        for key, value in dict({"Content-Type": "text/plain", "Connection": "close"}, **(headers or {})).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self) -> None:
        self.close_connection = True
        imds: ImdsServer = self.server.owner  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # an unread body turns our close into a RST
        path, mode = self.path.split("?", 1)[0], imds.mode
        with imds._lock:
            imds.requests.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        if mode == "drip":  # a broken or hostile IMDS: two bytes a second, never a whole reply
            return self._drip(imds)
        if mode in ("disabled", "garbage"):
            return self._reply(403) if mode == "disabled" else self._reply(200, _JUNK[:5000])
        if self.command == "GET":
            return self._get(imds, path, mode)
        if path != "/latest/api/token":
            return self._reply(404, b"Not Found")
        if mode == "hop-limit":
            return self._hold(imds)
        if "X-Forwarded-For" in self.headers:  # IMDS refuses token requests that went through a proxy
            return self._reply(403)
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._reply(400)
        token = secrets.token_urlsafe(42)
        with imds._lock:
            imds._tokens[token] = imds.clock() + int(ttl)
        self._reply(200, token.encode(), {"X-aws-ec2-metadata-token-ttl-seconds": ttl})

    do_GET = do_PUT = _dispatch

    def _hold(self, imds: "ImdsServer") -> None:
        # As behind a container with hop limit 1: the reply dies on the way back, so the client just waits.
        with suppress(OSError):
            while not imds._stopping.wait(0.1):
                if select.select([self.connection], [], [], 0)[0] and not self.connection.recv(1, socket.MSG_PEEK):
                    return  # the client gave up

    def _drip(self, imds: "ImdsServer") -> None:
        with suppress(OSError):
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
                if imds._stopping.wait(0.5):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    def _get(self, imds: "ImdsServer", path: str, mode: str) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token")
        with imds._lock:
            valid = imds._tokens.get(token or "", 0.0) > imds.clock()
        if not valid and (token is not None or mode != "v1"):  # v1 accepts no token, never a bad one
            return self._reply(401)
        body = imds.lookup(path[len("/latest/"):]) if path.startswith("/latest/") else None
        self._reply(404, b"Not Found") if body is None else self._reply(200, body.encode())


class ImdsServer(_Server):
    """IMDS with v2 tokens; mode (v2, v1, disabled, hop-limit, garbage, drip) is how it fails on real instances."""
    _handler = _ImdsHandler

    def __init__(self, host: str = "127.0.0.1", port: int = 0, metadata: Optional[Dict[str, str]] = None,
                 mode: str = "v2") -> None:
        super().__init__(host, port)
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.mode = mode
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []
        self._tokens: Dict[str, float] = {}
        self.clock = time.monotonic  # token expiry reads this: tests move it instead of sleeping

    def lookup(self, path: str) -> Optional[str]:
        """The body for a path under /latest/: its value, or a directory's listing (subdirectories end in /)."""
        metadata = dict(self.metadata)
        if path in metadata:
            return metadata[path]
        prefix = path.rstrip("/") + "/" if path.strip("/") else ""
        rests = [k[len(prefix):] for k in metadata if k.startswith(prefix)]
        children = sorted({rest.split("/")[0] + ("/" if "/" in rest else "") for rest in rests})
        return "\n".join(children) if children else None


class TcpListener(_Server):
    """Accepts connections and holds them silently until stop()."""


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, so connect() is refused (barring a race with another binder)."""
    with socket.socket(_family(host)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def make_certs(names: Union[str, Sequence[str]],
               ca: Optional[trustme.CA] = None) -> Tuple[trustme.CA, trustme.LeafCert]:
    """(CA, leaf for names as SANs); pass ca to issue from an existing CA (one lab CA, many endpoints)."""
    ca = ca or trustme.CA()
    return ca, ca.issue_cert(*([names] if isinstance(names, str) else names))


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(ctx)
    return ctx


class TlsServer(_Server):
    """Answers any HTTP request over TLS with 200; without cert or ssl_context it issues one for host (see .ca)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, cert: Optional[trustme.LeafCert] = None,
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(host, port)
        self.ca: Optional[trustme.CA] = None
        if ssl_context is None and cert is None:
            self.ca, cert = make_certs(host)
        self.ssl_context = ssl_context or server_context(cert)
        self.handshakes = 0

    def _handle(self, conn: socket.socket) -> None:
        # Wrapping detaches conn: track the TLS socket so stop() can cut a client that never speaks.
        tls = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        self._track(tls)
        try:
            tls.do_handshake()  # failures raise, and are swallowed: the client reports them
            with self._lock:
                self.handshakes += 1
            with tls.makefile("rb") as stream:
                while stream.readline().strip():  # up to the blank line that ends the request head
                    pass
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n"
                        b"\r\nok\n")
        finally:
            self._track(tls, add=False)
            tls.close()
