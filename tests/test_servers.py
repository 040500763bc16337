"""The fake servers behave as specified, seen through real clients on loopback."""
from __future__ import annotations

import socket
import ssl
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest
import requests

from tests.servers import DnsServer, ImdsServer, TcpListener, TlsServer, closed_port, make_certs, server_context

NAME = "ssm.ap-northeast-1.amazonaws.com"


def resolver(server: DnsServer) -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port, res.lifetime = [server.host], server.port, 1.0
    return res


def ask(server: DnsServer, name: str, rdtype: str = "A", timeout: float = 1.0) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), server.host, port=server.port, timeout=timeout)


@pytest.mark.parametrize("tcp", [False, True])
def test_dns_answers_a_and_aaaa_over_udp_and_tcp(tcp):
    with DnsServer(answers={NAME: ["10.0.1.10", "10.0.1.11", "fd00::10"]}) as server:
        a = resolver(server).resolve(NAME, "A", tcp=tcp)
        aaaa = resolver(server).resolve(NAME, "AAAA", tcp=tcp)
        assert sorted(r.address for r in a) == ["10.0.1.10", "10.0.1.11"]
        assert [r.address for r in aaaa] == ["fd00::10"]
        assert a.rrset.ttl == 60
        assert server.queries[NAME] == 2


def test_dns_flags_and_missing_family_is_nodata():
    with DnsServer(answers={NAME: "10.0.1.10"}) as server:
        reply = ask(server, NAME, "AAAA")
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []
        assert not reply.flags & dns.flags.AA and reply.flags & dns.flags.RA
        with pytest.raises(dns.resolver.NoAnswer):
            resolver(server).resolve(NAME, "MX")


def test_dns_wildcards_and_exact_names():
    answers = {"*.s3.example.com": "52.216.8.10", "exact.s3.example.com": "10.9.9.9"}
    with DnsServer(answers=answers, default="refused") as server:
        assert ask(server, "b.s3.example.com").answer[0][0].address == "52.216.8.10"
        assert ask(server, "a.b.S3.example.com.").answer[0][0].address == "52.216.8.10"
        assert ask(server, "exact.s3.example.com").answer[0][0].address == "10.9.9.9"
        assert ask(server, "s3.example.com").rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("behaviour, rcode", [("nxdomain", dns.rcode.NXDOMAIN), ("nodata", dns.rcode.NOERROR),
                                              ("servfail", dns.rcode.SERVFAIL), ("refused", dns.rcode.REFUSED)])
def test_dns_error_behaviours(behaviour, rcode):
    with DnsServer(answers={NAME: behaviour}, default="10.1.1.1") as server:
        reply = ask(server, NAME)
        assert reply.rcode() == rcode and reply.answer == []


def test_dns_nxdomain_default_through_resolver():
    with DnsServer() as server:
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver(server).resolve(NAME)


def test_dns_timeout_down_and_runtime_changes():
    with DnsServer(answers={NAME: "timeout"}) as server:
        with pytest.raises(dns.exception.Timeout):
            ask(server, NAME, timeout=0.1)
        server.set(NAME, "10.0.1.10")
        assert ask(server, NAME).answer[0][0].address == "10.0.1.10"
        server.down = True
        with pytest.raises(dns.exception.Timeout):
            ask(server, NAME, timeout=0.1)
        server.down = False
        server.set_default("servfail")
        assert ask(server, "other.example").rcode() == dns.rcode.SERVFAIL
        server.reset({"other.example": "::1"})
        assert ask(server, NAME).rcode() == dns.rcode.NXDOMAIN
        assert ask(server, "other.example", "AAAA").answer[0][0].address == "::1"
        assert server.queries == {NAME: 4, "other.example": 2}
        with pytest.raises(ValueError):
            server.set(NAME, "10.0.1.300")
        port = server.port
        server.stop()
        server.start()  # as the lab does to bring a resolver back: same port, same table
        assert server.port == port and ask(server, "other.example", "AAAA").answer[0][0].address == "::1"


def test_dns_survives_malformed_packets_on_ipv6():
    with DnsServer(host="::1", answers={NAME: "10.0.1.10"}) as server:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as junk:
            junk.sendto(b"\x00\x01garbage", (server.host, server.port))
        with socket.create_connection((server.host, server.port)) as junk:
            junk.sendall(b"\x00\x05abcde")
        assert ask(server, NAME).answer[0][0].address == "10.0.1.10"


METADATA = {
    "meta-data/instance-id": "i-0123",
    "meta-data/iam/security-credentials/vpclab-instance-role": '{"Code": "Success"}',
    "meta-data/network/interfaces/macs/0e:00:00:00:00:01/vpc-id": "vpc-1",
    "dynamic/instance-identity/document": '{"region": "ap-northeast-1"}',
}


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # a proxy from the environment must never see loopback traffic
        yield session


def token(http, base, ttl="60", timeout=2.0, **headers):
    headers["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
    return http.put(base + "/latest/api/token", headers=headers, timeout=timeout)


def instance_id(http, base, token=None):
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    return http.get(base + "/latest/meta-data/instance-id", headers=headers, timeout=2)


def test_imds_v2_token_flow_and_listings(http):
    with ImdsServer(metadata=METADATA) as imds:
        base = f"http://{imds.host}:{imds.port}"
        put = token(http, base)
        assert put.status_code == 200 and put.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "60"
        auth = {"X-aws-ec2-metadata-token": put.text}
        get = lambda path, headers=auth: http.get(base + "/latest/" + path, headers=headers, timeout=2)  # noqa: E731
        assert get("meta-data/instance-id").text == "i-0123"
        assert get("meta-data/iam/security-credentials/").text == "vpclab-instance-role"
        assert get("meta-data/iam/security-credentials/vpclab-instance-role").json() == {"Code": "Success"}
        assert get("meta-data/network/interfaces/macs/").text == "0e:00:00:00:00:01/"
        assert get("meta-data/").text == "iam/\ninstance-id\nnetwork/"
        assert get("meta-data/nope").status_code == 404
        assert get("meta-data/instance-id", {}).status_code == 401
        assert get("meta-data/instance-id", {"X-aws-ec2-metadata-token": "forged"}).status_code == 401
        assert [(m, p) for m, p, _ in imds.requests][:2] == [("PUT", "/latest/api/token"),
                                                             ("GET", "/latest/meta-data/instance-id")]
        assert imds.requests[1][2]["x-aws-ec2-metadata-token"] == put.text


@pytest.mark.parametrize("ttl, status", [("0", 400), ("21601", 400), ("abc", 400), ("21600", 200), ("1", 200)])
def test_imds_token_ttl_bounds(http, ttl, status):
    with ImdsServer() as imds:
        assert token(http, f"http://{imds.host}:{imds.port}", ttl).status_code == status


def test_imds_rejects_forwarded_put_missing_ttl_and_expires_tokens(http):
    with ImdsServer(metadata=METADATA) as imds:
        base = f"http://{imds.host}:{imds.port}"
        assert token(http, base, **{"X-Forwarded-For": "10.0.1.5"}).status_code == 403
        assert http.put(base + "/latest/api/token", timeout=2).status_code == 400
        short, long = token(http, base, "1").text, token(http, base, "21600").text
        assert instance_id(http, base, short).status_code == 200
        imds.clock = lambda: time.monotonic() + 2
        assert (instance_id(http, base, short).status_code, instance_id(http, base, long).status_code) == (401, 200)


def test_imds_v1_disabled_and_garbage_modes(http):
    with ImdsServer(metadata=METADATA, mode="v1") as imds:
        base = f"http://{imds.host}:{imds.port}"
        assert http.get(base + "/latest/meta-data/instance-id", timeout=2).text == "i-0123"
        assert instance_id(http, base, "forged").status_code == 401  # optional tokens, but a bad one is refused
        assert token(http, base).status_code == 200
        imds.mode = "disabled"
        assert http.get(base + "/latest/meta-data/instance-id", timeout=2).status_code == 403
        assert token(http, base).status_code == 403
        imds.mode = "garbage"
        body = http.get(base + "/latest/meta-data/instance-id", timeout=2).content
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        junk = token(http, base)
        assert junk.status_code == 200 and len(junk.content) == 5000


def test_imds_hop_limit_holds_the_token_put_without_blocking_stop(http):
    with ImdsServer(metadata=METADATA, mode="hop-limit") as imds:
        base = f"http://{imds.host}:{imds.port}"
        with pytest.raises(requests.exceptions.ReadTimeout):
            token(http, base, timeout=0.2)
        assert instance_id(http, base).status_code == 401
        held = socket.create_connection((imds.host, imds.port))
        held.sendall(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n"
                     b"Content-Length: 0\r\n\r\n")
        time.sleep(0.1)
        started = time.monotonic()
        imds.stop()
        assert time.monotonic() - started < 1.0
        held.settimeout(1)
        assert held.recv(100) == b""  # closed without a reply
        held.close()


def test_tcp_listener_holds_then_closes_and_closed_port_refuses():
    with TcpListener() as listener:
        client = socket.create_connection((listener.host, listener.port), timeout=1)
        client.settimeout(0.1)
        with pytest.raises(socket.timeout):
            client.recv(1)  # held open, silent
    client.settimeout(1)
    assert client.recv(1) == b""
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port()), timeout=1)


def tls_get(port: int, cafile: str, name: str) -> bytes:
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
            return tls.recv(4096)


@pytest.fixture(scope="module")
def lab_ca(tmp_path_factory):
    ca, leaf = make_certs([NAME])
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, leaf, str(path)


def test_tls_right_name_passes(lab_ca):
    _, leaf, cafile = lab_ca
    with TlsServer(cert=leaf) as server:
        reply = tls_get(server.port, cafile, NAME)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nok\n")
        assert server.handshakes == 1


def test_tls_wrong_name_is_a_hostname_mismatch(lab_ca):
    ca, _, cafile = lab_ca
    _, wrong = make_certs("wrong.example.invalid", ca=ca)
    with TlsServer(ssl_context=server_context(wrong)) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as error:
            tls_get(server.port, cafile, NAME)
        assert "Hostname mismatch" in error.value.verify_message


def test_tls_untrusted_ca_then_server_keeps_serving(lab_ca):
    _, leaf, cafile = lab_ca
    _, intercepting = make_certs([NAME])
    with TlsServer(cert=intercepting) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as error:
            tls_get(server.port, cafile, NAME)
        assert error.value.verify_message == "unable to get local issuer certificate"
        server.ssl_context = server_context(leaf)
        assert tls_get(server.port, cafile, NAME).startswith(b"HTTP/1.1 200 OK")


def test_tls_default_cert_and_silent_client_do_not_block_stop(tmp_path):
    with TlsServer() as server:
        server.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        assert tls_get(server.port, str(tmp_path / "ca.pem"), "127.0.0.1").startswith(b"HTTP/1.1 200 OK")
        silent = socket.create_connection((server.host, server.port))
        time.sleep(0.05)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 0.5
        silent.settimeout(1)
        assert silent.recv(1) == b""  # cut mid-handshake, not left to its 5 s timeout
        silent.close()


def test_an_alias_to_a_name_with_addresses_answers_the_chain_and_the_addresses():
    """A recursive resolver follows the CNAME and gives the target's records too (RFC 1034 3.6.2, 4.3.2)."""
    import dns.message
    server = DnsServer("127.0.0.1", 0, {"ssm.x.amazonaws.com": "cname:sinkhole.corp.example",
                                        "sinkhole.corp.example": "10.0.9.53"})
    reply = dns.message.from_wire(server.answer(dns.message.make_query("ssm.x.amazonaws.com", "A").to_wire()))
    assert [(r.name.to_text(), r.rdtype) for r in reply.answer] == [("ssm.x.amazonaws.com.", 5),
                                                                    ("sinkhole.corp.example.", 1)]
    assert reply.answer[1][0].to_text() == "10.0.9.53"
