"""anonymous_get against real TLS servers on loopback: what it sends, what it reads of S3's answer, and that one
deadline holds against a server that sends a byte at a time."""
import socket
import ssl
import threading
import time

from tests.servers import make_certs, server_context
from vpce_doctor import anonymous_get

NAME = "al2023-repos-eu-west-1-de612dc2.s3.dualstack.eu-west-1.amazonaws.com"
# S3's error shape (S3 API reference, ErrorResponses: https://docs.aws.amazon.com/AmazonS3/latest/API/
# ErrorResponses.html) with the generic message S3 gives a caller outside the bucket's account (S3 User Guide,
# troubleshoot-403-errors, "Access denied message examples").
DENIED = (b"HTTP/1.1 403 Forbidden\r\nx-amz-request-id: 4442587FB7D0A2F9\r\nContent-Type: application/xml\r\n"
          b"Transfer-Encoding: chunked\r\nServer: AmazonS3\r\n\r\n")
DENIED_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied'
               b"</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>")


class Server:
    """Serves one canned answer per connection over TLS; records what the client sent."""

    def __init__(self, answer: bytes, drip: float = 0.0):
        self.ca, leaf = make_certs(NAME)
        self.context = server_context(leaf)
        self.answer, self.drip, self.requests = answer, drip, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                self.requests.append(tls.recv(4096))
                for i in range(0, len(self.answer), 1 if self.drip else len(self.answer)):
                    tls.sendall(self.answer[i:i + (1 if self.drip else len(self.answer))])
                    time.sleep(self.drip)
        except OSError:
            pass

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def get(self, budget: float = 3.0):
        url = f"https://{NAME}/core/mirrors/latest/x86_64/mirror.list"
        return anonymous_get.get_all([url], lambda name, lifetime: ["127.0.0.1"], self.client_context(), budget,
                                     self.port)[url]


def chunked(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def test_s3s_denial_is_read_and_the_request_is_unsigned_and_ranged():
    server = Server(DENIED + chunked(DENIED_BODY))
    answer = server.get()
    assert (answer["status"], answer["code"], answer["message"], answer["s3"]) == (403, "AccessDenied",
                                                                                  "Access Denied", True)
    sent = server.requests[0].decode()
    assert sent.startswith("GET /core/mirrors/latest/x86_64/mirror.list HTTP/1.1\r\n")
    assert f"Host: {NAME}\r\n" in sent and "Range: bytes=0-1023\r\n" in sent and "Authorization" not in sent
    server.sock.close()


def test_a_served_object_and_a_server_that_is_not_s3():
    served = Server(b"HTTP/1.1 206 Partial Content\r\nx-amz-request-id: 1\r\nContent-Length: 5\r\n\r\nhttp:")
    assert served.get()["status"] == 206
    proxy = Server(b"HTTP/1.1 403 Forbidden\r\nServer: squid/5.5\r\nContent-Length: 0\r\n\r\n")
    assert proxy.get()["s3"] is False and proxy.get()["server"] == "squid/5.5"


def test_one_deadline_holds_against_a_server_dripping_bytes():
    server = Server(DENIED + chunked(DENIED_BODY), drip=0.05)  # about 20 s to send it all
    started = time.monotonic()
    answer = server.get(budget=1.0)
    assert answer["error"] == "timeout" and time.monotonic() - started < 10  # not the 20 s the server wants


def test_an_untrusted_certificate_or_no_address_is_no_answer():
    server = Server(DENIED + chunked(DENIED_BODY))
    url = f"https://{NAME}/x"
    untrusted = anonymous_get.get(url, lambda name, lifetime: ["127.0.0.1"], ssl.create_default_context(), 2.0,
                                  server.port)
    assert untrusted["error"].startswith("tls: ")

    def nxdomain(name, lifetime):
        raise LookupError(name)
    assert anonymous_get.get(url, nxdomain, server.client_context(), 2.0)["error"] == "dns: LookupError"
