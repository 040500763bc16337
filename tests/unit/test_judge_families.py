"""Both address families, judged from literal observations: IMDS over IPv4 and IPv6, AAAA answers against the VPC's
IPv6 CIDRs, DNS64, one family of a dual-stack endpoint dropped, IPv6 literals in what is printed."""
import pytest

from vpce_doctor import addresses
from vpce_doctor.checks import dns, imds, tcp, tls
from vpce_doctor.facts import IPV6_ENDPOINT, Facts, Imds, Reply, interpret
from vpce_doctor.model import Status

# A VPC with its Amazon-provided /56 (documentation prefix standing in) and an IPv4 CIDR.
V4, V6 = "10.0.0.0/16", "2001:db8:1200::/56"
VPC = [V4, V6]
NAME = "ssm.eu-west-1.amazonaws.com"
CONTEXT = {"vpc": "vpc-1", "subnet": "subnet-1", "region": "eu-west-1", "domain": "amazonaws.com",
           "endpoint_service": "com.amazonaws.eu-west-1.ssm"}


def answer(kind, *found, code="answer"):
    return {"type": kind, "code": code if found else "nodata", "addresses": list(found), "ms": 1.0, "timeout_s": 2.0}


def probe(result, ms=1.0):
    return {"result": result, "ms": ms}


# -- addresses ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("fe80::1%eth0", "scope id"),                # meaningful on one host only
    ("::ffff:10.0.1.10", "IPv4-mapped"),         # a socket-API form, never an endpoint's AAAA
    ("2001:db8::zz", "not an IP address"),
    ("", "not an IP address"),
    (None, "not an IP address"),
])
def test_parse_refuses_what_an_answer_cannot_be(text, why):
    ip, problem = addresses.parse(text)
    assert ip is None and why in problem


def test_ipv6_literals_are_bracketed_beside_a_port():
    assert addresses.hostport("2001:db8:1200:1::10", 443) == "[2001:db8:1200:1::10]:443"
    assert addresses.hostport("10.0.1.10", 443) == "10.0.1.10:443"


def test_dns64_source_reads_the_embedded_ipv4():
    # RFC 6052 §2.4's example: 192.0.2.33 in the well-known prefix is 64:ff9b::c000:221.
    assert addresses.dns64_source("64:ff9b::c000:221") == "192.0.2.33"
    assert addresses.dns64_source("2001:db8::1") is None


# -- IMDS facts over IPv6 ----------------------------------------------------------------------------------------

def ok(body):
    return Reply(200, body)


def test_ipv6_cidrs_and_addresses_come_from_imds():
    facts = interpret(Imds(IPV6_ENDPOINT, token=ok("t"), replies={
        "instance-id": ok("i-0123456789abcdef0"), "placement/region": ok("eu-west-1"),
        "vpc-ipv6-cidr-blocks": ok("2001:db8:1200::/56"), "subnet-ipv6-cidr-blocks": ok("2001:db8:1200:1::/64"),
        "ipv6s": ok("2001:db8:1200:1::100"), "local-ipv4": Reply(404, "")}))
    assert facts.vpc_ipv6_cidrs == (V6,) and facts.ipv6s == ("2001:db8:1200:1::100",)
    assert facts.families() == ("IPv6",) and facts.private_ip is None
    assert imds.assess_token(facts).status is Status.PASS
    assert "from http://[fd00:ec2::254]" in imds.assess_token(facts).summary


def test_garbage_ipv6_cidr_is_malformed():
    facts = interpret(Imds(IPV6_ENDPOINT, token=ok("t"), replies={
        "instance-id": ok("i-0123456789abcdef0"), "placement/region": ok("eu-west-1"),
        "vpc-ipv6-cidr-blocks": ok("2001:db8:zz::/56")}))
    assert "vpc-ipv6-cidr-blocks" in facts.malformed
    assert imds.assess_token(facts).code == "garbage"


def both_failed(v4="unreachable", v6="timeout"):
    tokens = {"http://169.254.169.254": Reply(error=v4), IPV6_ENDPOINT: Reply(error=v6)}
    return Facts(Imds("http://169.254.169.254", token=tokens["http://169.254.169.254"], tokens=tokens))


def test_ipv6_imds_off_is_the_cause_on_an_ipv6_only_instance():
    result = imds.assess_token(both_failed(), local_families=("IPv6",))
    assert (result.status, result.code) == (Status.FAIL, "ipv6-disabled")
    assert any("--http-protocol-ipv6 enabled" in c for c in result.remedy.commands)


def test_ipv6_imds_off_is_no_finding_where_ipv4_imds_could_answer():
    # HttpProtocolIpv6 is off by default: on a dual-stack instance a dead IMDS is the IPv4 verdict as before.
    assert imds.assess_token(both_failed("timeout"), local_families=("IPv4", "IPv6")).code == "timeout"


# -- DNS per family ----------------------------------------------------------------------------------------------

def test_dual_stack_answer_inside_both_cidrs_passes():
    result = dns.assess(NAME, False, answer("A", "10.0.1.10"), answer("AAAA", "2001:db8:1200:1::10"), VPC)
    assert result.status is Status.PASS
    assert dns.addresses(result) == ["10.0.1.10", "2001:db8:1200:1::10"]


def test_aaaa_outside_the_vpcs_ipv6_cidr_is_a_mixed_answer():
    # 2600:1f18::/32 is an Amazon public IPv6 range (ip-ranges.json): a public dual-stack name, not the endpoint.
    result = dns.assess(NAME, False, answer("A", "10.0.1.10"), answer("AAAA", "2600:1f18:4c15:8200::1"), VPC)
    assert (result.status, result.code) == (Status.FAIL, "mixed-answer")


def test_aaaa_only_answer_on_an_ipv6_only_instance_passes():
    result = dns.assess(NAME, False, answer("A"), answer("AAAA", "2001:db8:1200:1::10"), VPC, families=("IPv6",))
    assert result.status is Status.PASS


@pytest.mark.parametrize("bad", ["fe80::10%eth0", "::ffff:10.0.1.10", "not-an-address"])
def test_unusable_addresses_in_an_answer_are_a_clear_finding(bad):
    result = dns.assess(NAME, False, answer("A", "10.0.1.10"), answer("AAAA", bad), VPC)
    assert (result.status, result.code) == (Status.FAIL, "bad-answer")
    assert bad in result.summary and dns.addresses(result) == ["10.0.1.10"]


def test_ipv4_only_endpoint_on_an_ipv6_only_instance():
    result = dns.assess(NAME, False, answer("A", "10.0.1.10"), answer("AAAA"), VPC, CONTEXT, families=("IPv6",))
    assert (result.status, result.code) == (Status.FAIL, "ipv4-only")
    assert any("DnsRecordIpType=dualstack" in c for c in result.remedy.commands)


def test_ipv4_only_s3_name_on_an_ipv6_only_instance_names_the_dual_stack_name():
    result = dns.assess("s3.eu-west-1.amazonaws.com", True, answer("A", "52.218.1.5"), answer("AAAA"), VPC, CONTEXT,
                        families=("IPv6",))
    assert result.code == "ipv4-only" and "s3.dualstack.eu-west-1.amazonaws.com" in result.cause


def test_dns64_of_the_endpoints_ipv4_is_a_warning_named_as_such():
    result = dns.assess(NAME, False, answer("A"), answer("AAAA", "64:ff9b::a00:10a"), VPC, CONTEXT,
                        families=("IPv6",))
    assert (result.status, result.code) == (Status.WARN, "dns64")
    assert result.evidence["dns64"] == {"64:ff9b::a00:10a": "10.0.1.10"} and "NAT64" in result.cause


def test_dns64_of_a_public_address_has_no_private_path():
    # 52.119.160.10 is an Amazon public IPv4 address: DNS64 of the public service's name.
    result = dns.assess(NAME, False, answer("A"), answer("AAAA", "64:ff9b::3477:a00a"), VPC, CONTEXT,
                        families=("IPv6",))
    assert (result.status, result.code) == (Status.FAIL, "dns64-public")
    assert "52.119.160.10" in result.summary


# -- TCP and TLS per family --------------------------------------------------------------------------------------

def test_ipv6_side_of_a_dual_stack_endpoint_dropped_is_a_warning_naming_the_family():
    result = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("open"), "2001:db8:1200:1::10": probe("timeout", 2000)},
                        {**CONTEXT, "cidr6": V6})
    assert (result.status, result.code) == (Status.WARN, "ipv6-dropped")
    assert "not over IPv6" in result.summary and "2001:db8:1200:1::10" in result.summary
    assert any("CidrIpv6=2001:db8:1200::/56" in c for c in result.remedy.commands)


def test_ipv4_side_dropped_is_named_too():
    result = tcp.assess("ssm", 443, False, {"10.0.1.10": probe("timeout"), "2001:db8:1200:1::10": probe("open")})
    assert result.code == "ipv4-dropped"


def test_one_eni_of_two_in_the_same_family_stays_partial():
    result = tcp.assess("ssm", 443, False, {"2001:db8:1200:1::10": probe("open"),
                                            "2001:db8:1200:2::10": probe("timeout")})
    assert result.code == "partial"


def test_dns64_addresses_that_time_out_have_no_nat64_path():
    result = tcp.assess("ssm", 443, False, {"64:ff9b::a00:10a": probe("timeout", 2000)}, CONTEXT)
    assert (result.status, result.code) == (Status.FAIL, "no-nat64")
    assert any("64:ff9b::/96" in c for c in result.remedy.commands)


def test_tls_remedy_brackets_an_ipv6_address():
    result = tls.assess(NAME, 443, {"2001:db8:1200:1::10": {"result": "untrusted", "verify_code": 20, "ms": 3}})
    assert any("-connect '[2001:db8:1200:1::10]:443'" in c for c in result.remedy.commands)  # quoted: [ ] glob


def test_an_ipv6_only_instance_dials_only_ipv6_addresses():
    # A dual-stack endpoint's A records are no path from an instance without IPv4 (IPv6-only subnet).
    both = ["10.0.1.10", "2001:db8:1200:1::10"]
    assert tcp.usable(both, ("IPv6",)) == ["2001:db8:1200:1::10"]
    assert tcp.usable(both, ("IPv4", "IPv6")) == both
    assert tcp.usable(["10.0.1.10"], ("IPv6",)) == ["10.0.1.10"]  # nothing else to try: the connect tells
