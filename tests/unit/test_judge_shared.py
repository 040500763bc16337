"""Shared (hub-and-spoke) endpoints: private answers outside this VPC's CIDRs (fidelity.md §D, Shared endpoints:
ministryofjustice/modernisation-platform#13725, awslabs/landing-zone-accelerator-on-aws#1014). Reachability decides."""
from vpce_doctor.aws import Call
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
    seen = {"endpoints": Call(ok=True, response={"VpcEndpoints": []})}
    result = vpc.assess(seen, ["ssm", "ssmmessages"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], [], "10.0.1.5",
                        addresses={"ssm": ["10.100.1.10"], "ssmmessages": ["52.119.1.1"]})
    assert result.code == "no-endpoint"
    assert result.evidence["problems"] == [
        "no endpoint for ssmmessages in vpc-1 (com.amazonaws.eu-west-1.ssmmessages), and unlike ssm its name has no "
        "private record shared from another VPC: create it where the shared endpoints live, with its private hosted "
        "zone associated with vpc-1, or here"]


def test_a_custom_dns_server_leads_with_forwarding_to_the_vpc_resolver():
    from vpce_doctor.checks import resolver
    public = {"type": "A", "code": "answer", "addresses": ["52.119.1.1"], "cnames": []}
    assert resolver.custom("10.0.1.53", ["10.0.0.0/16"]) and not resolver.custom("10.0.0.2", ["10.0.0.0/16"])
    assert not resolver.custom("169.254.169.253", ["10.0.0.0/16"])
    assert resolver.vpc_resolver(["10.0.0.0/16", "100.64.0.0/16"]) == "10.0.0.2"
    context = {"vpc": "vpc-1", "subnet": "subnet-1", "region": "eu-west-1", "domain": "amazonaws.com", "name": NAME,
               "resolver": "10.0.1.53", "vpc_resolver": "10.0.0.2", "resolver_in_vpc": "yes"}
    inside = dns.assess(NAME, False, public, {}, ["10.0.0.0/16"], context)
    assert inside.code == "public-answer" and inside.cause.startswith("This instance asks 10.0.1.53")
    assert inside.remedy.text.startswith("Forward amazonaws.com (at least eu-west-1.amazonaws.com) from 10.0.1.53 "
                                         "to the VPC resolver 10.0.0.2")
    assert inside.remedy.commands[0].startswith(f"dig +short @10.0.0.2 {NAME}")
    # On premises: the VPC resolver answers only inside the VPC; an inbound Resolver endpoint is the way in.
    onprem = dns.assess(NAME, False, {"type": "A", "code": "nxdomain"}, {}, ["10.0.0.0/16"],
                        {**context, "resolver": "192.168.50.5", "resolver_in_vpc": ""})
    assert "inbound Route 53 Resolver endpoint in vpc-1" in onprem.remedy.text
    assert "--direction INBOUND" in onprem.remedy.commands[0]
    plain = dns.assess(NAME, False, {"type": "A", "code": "timeout", "timeout_s": 1.0}, {}, ["10.0.0.0/16"],
                       {"vpc": "vpc-1"})
    assert "list-resolver-rule-associations --filters Name=VPCId,Values=vpc-1" in plain.remedy.commands[0]


def test_the_root_cause_line_leads_with_the_resource_the_control_plane_named():
    from vpce_doctor.model import Check, Finding, Report, Result, Severity
    from vpce_doctor.render import document, text
    seen = {"endpoints": Call(ok=True, response={"VpcEndpoints": [
        {"VpcEndpointId": "vpce-0s3", "ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Gateway",
         "State": "available"}]}),
        "routes": Call(ok=True, response={"RouteTables": [{"RouteTableId": "rtb-0a", "Associations": [
            {"SubnetId": "subnet-1"}], "Routes": []}]})}
    control = vpc.assess(seen, ["s3"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], [], "10.0.1.5", subnet="subnet-1",
                         addresses={"s3": ["52.218.1.1"]})
    timeout = tcp.assess("s3", 443, True, {"52.218.1.1": {"result": "timeout", "ms": 1000.0}},
                         {"subnet": "subnet-1"})

    def finding(check_id, result):
        return Finding(Check(check_id, check_id, Severity.LOW, lambda ctx, prior: result), result)
    report = Report("0", "2026-11-29T00:00:00Z", 1.0, {}, (finding("tcp:s3", timeout), finding("vpc:endpoints", control)))
    assert [f.check.id for f in report.root_causes] == ["tcp:s3"]
    cause = document.to_dict(report)["summary"]["root_causes"][0]
    assert cause["explained_by"] == {
        "id": "vpc:endpoints", "problem": "this subnet's route table rtb-0a has no route to vpce-0s3 (s3 gateway "
        "endpoint)", "command": "aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0s3 --add-route-table-ids rtb-0a"}
    assert "tcp:s3 [timeout]" in text.summary(report) and \
        "fix: aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0s3 --add-route-table-ids rtb-0a" in text.summary(report)
    assert "$ aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0s3" in text.footer(report)
