"""Every cause of domain.md §4 C–D, judged from literal observations: no network, no fixtures."""
from vpce_doctor.checks import dns, tcp, tls
from vpce_doctor.model import Status

VPC = ["10.0.0.0/16"]
NAME = "ssm.eu-west-1.amazonaws.com"


def a(code="answer", addresses=(), **extra):
    return {"type": "A", "code": code, "addresses": list(addresses), "cnames": [], "ms": 1.0, "timeout_s": 2.0,
            **extra}


NODATA6 = {"type": "AAAA", "code": "nodata", "addresses": [], "ms": 1.0}


def test_dns_passes_when_every_address_is_inside_the_vpc():
    result = dns.assess(NAME, False, a(addresses=["10.0.1.10", "10.0.2.10"]), NODATA6, VPC)
    assert result.status is Status.PASS
    assert "10.0.1.10, 10.0.2.10" in result.summary and "10.0.0.0/16" in result.summary


def test_dns_fails_with_public_answer_for_an_interface_service():
    result = dns.assess(NAME, False, a(addresses=["52.119.160.10"]), NODATA6, VPC,
                        {"vpc": "vpc-0abc", "subnet": "subnet-1", "region": "eu-west-1",
                         "endpoint_service": "com.amazonaws.eu-west-1.ssm"})
    assert (result.status, result.code) == (Status.FAIL, "public-answer")
    assert "52.119.160.10" in result.summary
    assert "private DNS" in result.cause
    assert any("--vpc-id vpc-0abc" in c and "com.amazonaws.eu-west-1.ssm" in c for c in result.remedy.commands)


def test_dns_accepts_public_answers_for_a_gateway_service():
    result = dns.assess("s3.eu-west-1.amazonaws.com", True, a(addresses=["52.218.1.5"]), NODATA6, VPC)
    assert result.status is Status.PASS
    assert "gateway endpoint route" in result.summary


def test_dns_flags_a_mixed_answer():
    result = dns.assess(NAME, False, a(addresses=["10.0.1.10", "3.3.3.3"]), NODATA6, VPC)
    assert (result.status, result.code) == (Status.FAIL, "mixed-answer")
    assert "3.3.3.3" in result.summary


def test_dns_without_vpc_cidrs_judges_private_addresses_as_inside():
    assert dns.assess(NAME, False, a(addresses=["10.9.1.10"]), NODATA6, []).status is Status.PASS
    assert dns.assess(NAME, False, a(addresses=["54.1.1.1"]), NODATA6, []).code == "public-answer"


def test_dns_names_each_failure_distinctly():
    for code, words in (("nxdomain", "NXDOMAIN"), ("nodata", "NODATA"), ("servfail", "SERVFAIL"),
                        ("refused", "refused"), ("timeout", "no answer")):
        result = dns.assess(NAME, False, a(code=code), NODATA6, VPC)
        assert (result.status, result.code) == (Status.FAIL, code)
        assert words in result.summary and NAME in result.summary
        assert result.cause and result.remedy


def test_dns_timeout_summary_says_how_long_it_waited():
    assert "1.5 s" in dns.assess(NAME, False, a(code="timeout", timeout_s=1.5), NODATA6, VPC).summary


def test_dns_uses_aaaa_answers_when_there_is_no_a_record():
    six = {"type": "AAAA", "code": "answer", "addresses": ["2600:1f18::5"], "ms": 1.0}
    result = dns.assess(NAME, False, a(code="nodata"), six, ["2600:1f18::/56"])
    assert result.status is Status.PASS and "2600:1f18::5" in result.summary


def probe(result, ms=1.0):
    return {"result": result, "ms": ms}


def test_tcp_passes_when_every_address_accepts():
    result = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("open", 1.2), "10.0.2.10": probe("open", 0.8)})
    assert result.status is Status.PASS
    assert "10.0.1.10 (1 ms)" in result.summary and "10.0.2.10" in result.summary


def test_tcp_timeout_on_an_interface_endpoint_points_at_security_groups():
    result = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("timeout", 2000)},
                        {"vpc": "vpc-1", "cidr": "10.0.0.0/16", "endpoint_service": "com.amazonaws.r.ssm"})
    assert (result.status, result.code) == (Status.FAIL, "timeout")
    assert "security group" in result.cause
    assert any("--cidr 10.0.0.0/16" in c for c in result.remedy.commands)


def test_tcp_timeout_on_a_gateway_path_points_at_the_route_table():
    result = tcp.assess("s3", 443, True, {"52.218.1.5": probe("timeout", 2000)}, {"subnet": "subnet-9"})
    assert (result.status, result.code) == (Status.FAIL, "timeout")
    assert "route table" in result.cause
    assert any("subnet-9" in c for c in result.remedy.commands)


def test_tcp_refused_and_unreachable_are_distinct():
    refused = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("refused")})
    unreachable = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("unreachable")})
    assert (refused.code, unreachable.code) == ("refused", "unreachable")
    assert "local firewall" in refused.cause and "route" in unreachable.cause


def test_tcp_one_bad_eni_among_several_is_a_warning_naming_it():
    result = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("open"), "10.0.2.10": probe("timeout", 2000)})
    assert (result.status, result.code) == (Status.WARN, "partial")
    assert "10.0.2.10 (timeout" in result.summary


def handshake(result="ok", **extra):
    return {"result": result, "ms": 3.0, "version": "TLSv1.3", "issuer": "Amazon RSA 2048 M02", **extra}


def test_tls_passes_with_a_verified_certificate():
    result = tls.assess(NAME, 443, {"10.0.1.10": handshake()})
    assert result.status is Status.PASS
    assert "TLSv1.3" in result.summary and "Amazon RSA 2048 M02" in result.summary


def test_tls_name_mismatch_and_unknown_issuer_are_distinct_causes():
    mismatch = tls.assess(NAME, 443, {"10.0.1.10": handshake("name-mismatch", detail="Hostname mismatch")})
    untrusted = tls.assess(NAME, 443, {"10.0.1.10": handshake("untrusted", detail="unable to get local issuer")})
    assert (mismatch.code, untrusted.code) == ("name-mismatch", "untrusted")
    assert "not for this name" in mismatch.cause
    assert "interception" in untrusted.cause
    assert any("openssl s_client -connect 10.0.1.10:443 -servername " + NAME in c
               for c in untrusted.remedy.commands)


def test_tls_failure_on_one_address_fails_and_names_it():
    result = tls.assess(NAME, 443, {"10.0.1.10": handshake(), "10.0.2.10": handshake("reset")})
    assert (result.status, result.code) == (Status.FAIL, "reset")
    assert "10.0.2.10" in result.summary and "10.0.1.10" not in result.summary


def test_tls_expired_certificate_points_at_the_clock():
    result = tls.assess(NAME, 443, {"10.0.1.10": handshake("expired", detail="certificate has expired")})
    assert result.code == "expired" and "169.254.169.123" in result.remedy.text


def test_a_cname_loop_is_its_own_cause():
    """Issue 12 item 24: the loop's chain, as dns_query.lookup records it after the resolver's SERVFAIL."""
    from vpce_doctor.checks import dns as dns_check
    name = "ssm.eu-west-1.amazonaws.com"
    loop = [name, "ssm.corp.example", name]
    result = dns_check.assess(name, False, {"code": "cname-loop", "cnames": loop, "error": " → ".join(loop),
                                            "timeout_s": 2.0}, {"code": "nodata"}, ["10.0.0.0/16"])
    assert (result.status.value, result.code) == ("fail", "cname-loop")
    assert result.summary == f"{name} is a CNAME loop: {name} → ssm.corp.example → {name}"
    assert "RFC 1034" in result.cause
