"""local:proxy as botocore reads the environment (botocore/utils.py get_environ_proxies → urllib's
getproxies_environment and proxy_bypass_environment), and its probe of the proxy against real sockets on loopback."""
import socket
import threading

from vpce_doctor.checks import local, proxy
from vpce_doctor.model import Status

NAMES = ["ssm.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"]


def test_imds_takes_only_http_proxy():
    # botocore's IMDS fetcher: proxies=get_environ_proxies("http://169.254.169.254") (botocore/utils.py)
    assert proxy.proxied({"HTTPS_PROXY": "http://p:3128"}, "169.254.169.254", "http") is None
    assert proxy.proxied({"http_proxy": "http://p:3128"}, "169.254.169.254", "http") == ("http_proxy", "http://p:3128")
    broken = local.assess_proxy({"http_proxy": "http://p:3128", "no_proxy": ".amazonaws.com"}, NAMES)
    assert (broken.status, broken.code) == (Status.FAIL, "imds-through-proxy")
    assert "169.254.169.254" in broken.remedy.commands[0]


def test_lowercase_wins_and_no_proxy_is_read_as_urllib_reads_it():
    assert proxy.chosen({"HTTPS_PROXY": "http://up:1", "https_proxy": "http://low:1"}, "https")[1] == "http://low:1"
    assert proxy.chosen({"HTTPS_PROXY": "http://up:1", "https_proxy": ""}, "https") is None
    environ = {"https_proxy": "http://p:3128"}
    # urllib matches exact hosts and DNS suffixes; "*.amazonaws.com" and CIDRs are not understood (Go's are)
    assert proxy.proxied({**environ, "no_proxy": ".amazonaws.com"}, NAMES[0], "https") is None
    assert proxy.proxied({**environ, "no_proxy": "amazonaws.com"}, NAMES[0], "https") is None
    assert proxy.proxied({**environ, "no_proxy": "*.amazonaws.com"}, NAMES[0], "https") is not None
    assert proxy.proxied({**environ, "no_proxy": "169.254.0.0/16"}, "169.254.169.254", "https") is not None


def test_a_dead_proxy_is_the_root_cause_with_its_observation():
    environ = {"HTTPS_PROXY": "http://user:s3cret@10.0.9.9:3128"}
    probe = {"address": "10.0.9.9:3128", "target": NAMES[0] + ":443", "result": "timeout", "ms": 1000.2}
    result = local.assess_proxy(environ, NAMES, probe)
    assert (result.status, result.code) == (Status.FAIL, "proxy-unreachable")
    assert "gave timeout at 10.0.9.9:3128 after 1000 ms" in result.summary
    assert "s3cret" not in repr(result) and "HTTPS_PROXY=http://***@10.0.9.9:3128" in result.summary
    auth = local.assess_proxy(environ, NAMES, {**probe, "result": "status", "status": 407})
    assert (auth.code, "answered CONNECT ssm.eu-west-1.amazonaws.com:443 with HTTP 407" in auth.summary) == (
        "proxy-auth", True)
    assert local.assess_proxy(environ, NAMES, {**probe, "result": "status", "status": 403}).code == "proxy-refused"
    working = local.assess_proxy(environ, NAMES, {**probe, "result": "tunnel", "status": 200})
    assert (working.status, working.code) == (Status.WARN, "proxy-without-no-proxy")


def serve_once(reply: bytes):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen = {}

    def answer():
        conn, _ = server.accept()
        with conn:
            seen["request"] = conn.recv(4096)
            conn.sendall(reply)
        server.close()
    threading.Thread(target=answer, daemon=True).start()
    return server.getsockname()[1], seen


def test_the_probe_asks_for_a_tunnel_with_the_urls_credentials():
    port, seen = serve_once(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
    outcome = proxy.tunnel(f"http://u%40corp:p%3Ass@127.0.0.1:{port}", "127.0.0.1", NAMES[0], 443, 2.0)
    assert (outcome["result"], outcome["status"]) == ("status", 407)
    assert seen["request"].startswith(b"CONNECT ssm.eu-west-1.amazonaws.com:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic dUBjb3JwOnA6c3M=" in seen["request"]  # u@corp:p:ss, unquoted as botocore does
    assert "p:ss" not in repr(outcome)


def test_the_probe_of_nothing_listening_is_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert proxy.tunnel(f"127.0.0.1:{port}", "127.0.0.1", NAMES[0], 443, 1.0)["result"] == "refused"
