"""Shared (hub-and-spoke) endpoints: private answers outside this VPC's CIDRs (fidelity.md §D, Shared endpoints:
ministryofjustice/modernisation-platform#13725, awslabs/landing-zone-accelerator-on-aws#1014). Reachability decides."""
from vpce_doctor.checks import dns, tcp, vpc
from vpce_doctor.model import Status

NAME = "ssm.eu-west-1.amazonaws.com"


def answer(*addresses):
    return {"type": "A", "code": "answer", "addresses": list(addresses), "cnames": []}


def test_a_private_answer_outside_the_vpc_is_a_shared_endpoint_not_a_public_one():
    shared = dns.assess(NAME, False, answer("10.100.1.10"), {}, ["10.0.0.0/16"])
    assert (shared.status, shared.code) == (Status.PASS, "outside-vpc")
    assert dns.shared(shared) == ["10.100.1.10"]
    cgnat = dns.assess(NAME, False, answer("100.64.3.4"), {}, ["10.0.0.0/16"])  # RFC 6598, valid for VPCs
    assert cgnat.code == "outside-vpc"
    public = dns.assess(NAME, False, answer("52.119.1.1"), {}, ["10.0.0.0/16"])
    assert (public.status, public.code, dns.shared(public)) == (Status.FAIL, "public-answer", [])
    documentation = dns.assess(NAME, False, answer("203.0.113.10"), {}, ["10.0.0.0/16"])  # is_private, not a VPC's
    assert documentation.code == "public-answer"
    mixed = dns.assess(NAME, False, answer("10.0.1.10", "10.100.1.10"), {}, ["10.0.0.0/16"])
    assert mixed.code == "mixed-answer"


def test_a_silent_shared_endpoint_points_at_the_vpc_that_owns_it():
    probes = {"10.100.1.10": {"result": "timeout", "ms": 1000.0}}
    result = tcp.assess("ssm", 443, False, probes, {"cidr": "10.0.0.0/16"}, shared=["10.100.1.10"])
    assert (result.status, result.code) == (Status.FAIL, "timeout")
    assert "another VPC" in result.cause
    assert "Values=10.100.1.10" in result.remedy.commands[0]
    assert "--cidr 10.0.0.0/16" in result.remedy.commands[1]
    local = tcp.assess("ssm", 443, False, probes, {"cidr": "10.0.0.0/16"})
    assert "another VPC" not in local.cause


def test_the_control_plane_says_which_names_come_from_elsewhere_and_which_are_missing():
    seen = {"endpoints": {"ok": True, "response": {"VpcEndpoints": []}}}
    result = vpc.assess(seen, ["ssm", "ssmmessages"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], [], "10.0.1.5",
                        addresses={"ssm": ["10.100.1.10"], "ssmmessages": ["52.119.1.1"]})
    assert result.code == "no-endpoint"
    assert result.evidence["problems"] == [
        "no endpoint for ssmmessages in vpc-1 (com.amazonaws.eu-west-1.ssmmessages), and unlike ssm its name has no "
        "private record shared from another VPC: create it where the shared endpoints live, with its private hosted "
        "zone associated with vpc-1, or here"]
