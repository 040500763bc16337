"""The doctor end to end, in-process, against real IMDSv2, DNS and TLS servers on loopback."""
import socket
import threading
import time

import pytest

from tests.servers import TlsServer, make_certs, server_context

from .conftest import NO_LISTENER, OUTSIDE, REGION, metadata

DEFAULT_IDS = ["imds:token", "imds:profile", "dns:resolver", "local:hosts", "local:proxy"] + [
    f"{layer}:{s}" for layer in ("dns", "tcp", "tls") for s in ("ssm", "ssmmessages", "ec2messages", "s3")]


def test_healthy_world_passes_every_check_with_observed_values(world):
    run = world.doctor()
    assert run.code == 0, run.out
    report = run.report
    assert [f["id"] for f in report["findings"]] == DEFAULT_IDS
    assert {f["status"] for f in report["findings"]} == {"pass"}
    assert report["instance"]["instance_id"] == "i-0123456789abcdef0"
    assert report["instance"]["vpc_cidrs"] == ["127.0.0.0/24"]
    assert "127.0.0.10" in run.finding("dns:ssm")["summary"]
    assert run.finding("tls:ssm")["evidence"]["handshakes"]["127.0.0.10"]["result"] == "ok"
    assert run.err == ""


def test_text_report_takes_one_line_per_pass_and_no_colour_off_a_terminal(world):
    run = world.doctor(output="text")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0].startswith("vpce-doctor 0.1.0 · i-0123456789abcdef0 · eu-west-1a · vpc-0abc1234")
    assert sum(line.startswith("[PASS]") for line in lines) == len(DEFAULT_IDS)
    assert "\033[" not in run.out
    assert lines[-1].startswith("healthy: 17 passed")


@pytest.mark.parametrize("behaviour, code", [("nxdomain", "nxdomain"), ("nodata", "nodata"),
                                             ("servfail", "servfail"), ("refused", "refused"),
                                             ("timeout", "timeout"), (OUTSIDE, "public-answer")])
def test_each_dns_failure_is_named_and_blocks_only_its_service(world, behaviour, code):
    world.dns.set(world.name("ssmmessages"), behaviour)
    run = world.doctor()
    assert run.code == 1
    assert run.root_causes == [("dns:ssmmessages", code)]
    assert run.report["summary"]["root_causes"][0]["blocked"] == ["tcp:ssmmessages", "tls:ssmmessages"]
    assert run.finding("tls:ssm")["status"] == "pass"


def test_a_dead_resolver_reads_as_one_problem(world):
    world.dns.down = True
    started = time.monotonic()
    run = world.doctor(output="text")
    assert time.monotonic() - started < 2.0
    assert run.code == 1
    problems = run.out.split("to fix:")[1]
    assert "dns:resolver" in problems and "12 more findings follow from it" in problems
    assert "dns:ssm:" not in problems


def test_tcp_refused_and_one_bad_eni_are_distinct(world):
    world.dns.set(world.name("ssm"), NO_LISTENER)
    world.dns.set(world.name("ssmmessages"), ["127.0.0.11", NO_LISTENER])
    run = world.doctor()
    assert run.root_causes == [("tcp:ssm", "refused")]
    partial = run.finding("tcp:ssmmessages")
    assert (partial["status"], partial["code"]) == ("warn", "partial")
    assert NO_LISTENER in partial["summary"] and run.finding("tls:ssmmessages")["status"] == "pass"
    assert run.code == 1


def test_tls_wrong_name_and_untrusted_ca_are_distinct(world):
    world.tls["ssm"].ssl_context = server_context(make_certs(world.name("ssm"))[1])  # right name, unknown CA
    same_ca_wrong_name = TlsServer("127.0.0.30", world.port,
                                   ssl_context=server_context(world_ca_leaf(world, "wrong.example.invalid")))
    with same_ca_wrong_name:
        world.dns.set(world.name("kms"), "127.0.0.30")
        run = world.doctor("--services", "ssm,kms")
    assert sorted(run.root_causes) == [("tls:kms", "name-mismatch"), ("tls:ssm", "untrusted")]
    assert "openssl s_client -connect 127.0.0.10" in run.finding("tls:ssm")["remedy"]["commands"][0]


def world_ca_leaf(world, name):
    """A leaf for name from the CA the doctor trusts (the world's ca_file)."""
    import trustme
    ca = trustme.CA()
    with open(world.ca_file, "a") as handle:  # trust this CA too, so only the name is wrong
        handle.write(ca.cert_pem.bytes().decode())
    return ca.issue_cert(name)


def test_imds_hop_limit_is_reported_once_and_never_falls_back_to_imdsv1(world):
    world.imds.mode = "hop-limit"
    run = world.doctor("--region", REGION)
    causes = run.root_causes
    assert causes[0] == ("imds:token", "timeout") and [c for c in causes if c[0].startswith("imds")] == [causes[0]]
    assert run.finding("imds:profile")["status"] == "skip"
    # Without IMDS the VPC CIDRs are unknown: loopback "ENIs" no longer count as private, but DNS still ran.
    assert run.finding("dns:ssm")["evidence"]["addresses"] == ["127.0.0.10"]
    assert [method for method, _, _ in world.imds.requests] == ["PUT"]
    assert run.code == 1


def test_without_imds_and_without_region_the_usage_error_is_one_line(world):
    world.imds.mode = "disabled"
    run = world.doctor()
    assert run.code == 64 and run.out == ""
    assert run.err.count("\n") == 1 and "region is unknown" in run.err


@pytest.mark.parametrize("mode, code", [("disabled", "forbidden"), ("garbage", "garbage")])
def test_imds_refusals_and_garbage_are_findings_not_crashes(world, mode, code):
    world.imds.mode = mode
    run = world.doctor("--region", REGION)
    assert run.root_causes[0] == ("imds:token", code)


def test_no_instance_profile(world):
    world.imds.metadata = metadata(profile=False)
    run = world.doctor()
    assert run.root_causes == [("imds:profile", "none")]
    assert "associate-iam-instance-profile --instance-id i-0123456789abcdef0" in \
        run.finding("imds:profile")["remedy"]["commands"][0]


def test_only_runs_what_was_asked_plus_prerequisites(world):
    run = world.doctor("--only", "tls:ssm", only=())
    assert [f["id"] for f in run.report["findings"]] == ["dns:resolver", "dns:ssm", "tcp:ssm", "tls:ssm"]


def test_the_deadline_holds_with_everything_silent(world):
    world.dns.down = True
    world.imds.mode = "hop-limit"
    started = time.monotonic()
    run = world.doctor("--region", REGION, "--timeout", "1.5", "--connect-timeout", "1")
    assert time.monotonic() - started < 1.5 + 0.5
    assert run.code == 1


def test_proxy_and_hosts_overrides_are_reported(world, tmp_path):
    (tmp_path / "etc").mkdir()
    # local:hosts probes a pinned address on 443: pin to loopback, where the world's TLS server answers
    (tmp_path / "etc" / "hosts").write_text(f"127.0.0.10 {world.name('ssm')}\n")  # ssm's own "ENI"
    (tmp_path / "etc" / "resolv.conf").write_text("nameserver 10.0.0.2\n")
    proxy = socket.socket()  # a proxy on loopback that opens the tunnel local:proxy asks for, and nothing more
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(1)
    threading.Thread(target=lambda: proxy.accept()[0].sendall(b"HTTP/1.1 200 Connection established\r\n\r\n"),
                     daemon=True).start()
    world.root = str(tmp_path)
    world.environ.update(HTTPS_PROXY=f"http://127.0.0.1:{proxy.getsockname()[1]}")
    run = world.doctor()
    proxy.close()
    assert run.finding("local:hosts")["code"] == "hosts-override"
    assert run.finding("local:proxy")["code"] == "proxy-without-no-proxy"
    assert run.finding("local:proxy")["evidence"]["probe"]["result"] == "tunnel"
    assert run.code == 0  # warnings alone keep the run healthy


def test_a_cname_loop_is_named_not_reported_as_servfail(world):
    """Issue 12 item 24: resolvers answer an alias loop with SERVFAIL (RFC 1034 5.2.2: "Alias loops ... should be
    caught and an error condition passed back"), which sent the operator to the VPC's DNS support."""
    name = world.name("ssm")
    world.dns.set(name, "cname:ssm.internal.example")
    world.dns.set("ssm.internal.example", "cname:" + name)
    finding = world.doctor(only=["dns:ssm"]).finding("dns:ssm")
    assert (finding["status"], finding["code"]) == ("fail", "cname-loop")
    assert finding["summary"] == f"{name} is a CNAME loop: {name} → ssm.internal.example → {name}"
    world.dns.set("ssm.internal.example", "servfail")  # a chain that merely ends in SERVFAIL is no loop
    assert world.doctor(only=["dns:ssm"]).finding("dns:ssm")["code"] == "servfail"
