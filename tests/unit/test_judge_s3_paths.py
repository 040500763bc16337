"""An S3 interface endpoint beside the gateway endpoint: which path s3.<region> takes and whose policy judges it.

Facts (AWS PrivateLink for Amazon S3, https://docs.aws.amazon.com/AmazonS3/latest/userguide/
privatelink-interface-endpoints.html, "Private DNS"; EC2 API reference, DnsOptionsSpecification
PrivateDnsOnlyForInboundResolverEndpoint: "It routes traffic that originates from the VPC to the gateway endpoint and
traffic that originates from on-premises to the interface endpoint"): with private DNS for every resolver the VPC's
requests resolve to the interface endpoint's addresses; with it for inbound Resolver endpoints only they keep S3's
public addresses and the gateway's route. Inputs have DescribeVpcEndpoints' shape (DnsOptions included).
"""
import json

from tests.unit.test_judge_vpc import judge, world
from vpce_doctor.aws import Call
from vpce_doctor.checks import api, s3, s3_paths
from vpce_doctor.model import Result, Status
from vpce_doctor.policy import request_context

ROLE = "arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0"
ALLOW_ALL = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})
OTHER_BUCKET_ONLY = json.dumps({"Statement": [{"Sid": "OnlyTheDataBucket", "Effect": "Allow", "Principal": "*",
                                               "Action": "s3:*", "Resource": ["arn:aws:s3:::data",
                                                                              "arn:aws:s3:::data/*"]}]})


def interface(inbound_only=False, private_dns=True, policy=ALLOW_ALL, groups=("sg-0end",)):
    return {"VpcEndpointId": "vpce-0s3if", "ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Interface",
            "State": "available", "PrivateDnsEnabled": private_dns, "SubnetIds": ["subnet-a"],
            "Groups": [{"GroupId": g} for g in groups], "PolicyDocument": policy,
            "DnsOptions": {"DnsRecordIpType": "ipv4", "PrivateDnsOnlyForInboundResolverEndpoint": inbound_only}}


def both(**kwargs):
    seen = world()
    seen["endpoints"].response["VpcEndpoints"].append(interface(**kwargs))
    return seen


def test_the_dns_answer_decides_the_path_and_without_one_the_private_dns_option_does():
    gateway = {"id": "vpce-0s3", "type": "Gateway"}
    iface = {"id": "vpce-0s3if", "type": "Interface", "private_dns": True, "inbound_only": False}
    assert s3_paths.on_path([gateway, iface], ["10.0.1.20"]) == (iface, [gateway])
    assert s3_paths.on_path([gateway, iface], ["52.218.1.1"]) == (gateway, [iface])
    assert s3_paths.on_path([gateway, iface], []) == (iface, [gateway])
    assert s3_paths.on_path([gateway, {**iface, "inbound_only": True}], [])[0] == gateway
    assert s3_paths.on_path([gateway], ["10.0.1.20"]) == (gateway, [])


def test_eni_answers_take_the_interface_endpoint_and_never_blame_the_gateway_route_or_prefix_list():
    tables = [{"RouteTableId": "rtb-main", "Associations": [{"Main": True}], "Routes": []}]  # no gateway route
    seen = both()
    seen["routes"] = Call(ok=True, response={"RouteTables": tables})
    result = judge(seen, {"ssm": ["10.0.1.10"], "s3": ["10.0.1.20"]})
    assert result.status is Status.PASS, result.evidence["problems"]
    endpoint = result.evidence["endpoints"]["s3"]
    assert (endpoint["id"], endpoint["type"], endpoint["other"]["id"]) == ("vpce-0s3if", "Interface", "vpce-0s3")
    # the same VPC answering S3's public addresses (inbound-only private DNS) takes the gateway: its route counts
    inbound = both(inbound_only=True)
    inbound["routes"] = Call(ok=True, response={"RouteTables": tables})
    result = judge(inbound, {"ssm": ["10.0.1.10"], "s3": ["52.218.1.1"]})
    assert result.code == "no-route" and result.evidence["endpoints"]["s3"]["other"]["inbound_only"] is True


def test_the_interface_endpoints_security_group_is_judged_on_its_path():
    result = judge(both(groups=("sg-0closed",)), {"ssm": ["10.0.1.10"], "s3": ["10.0.1.20"]})
    assert result.code == "sg-no-ingress" and "vpce-0s3if (s3)" in result.summary
    assert result.evidence["explains"] == ["tcp:s3"]


def endpoint_seen(result: Result):
    return api.endpoint_of({"vpc:endpoints": result}, "s3")


def test_a_denial_by_the_interface_policy_names_it_and_offers_the_gateway_when_that_one_allows():
    control = judge(both(policy=OTHER_BUCKET_ONLY), {"ssm": ["10.0.1.10"], "s3": ["10.0.1.20"]})
    endpoint = endpoint_seen(control)
    assert (endpoint["id"], endpoint["type"]) == ("vpce-0s3if", "Interface")
    # S3's wording for an endpoint-policy denial (S3 user guide, troubleshoot-403-errors, "Access denied message
    # examples")
    denied = Call(ok=False, kind="api", status=403, code="AccessDenied",
                  message=f"User: {ROLE} is not authorized to perform: s3:PutObject on resource: "
                          '"arn:aws:s3:::probe/vpce-doctor/i-1.probe" because no VPC endpoint policy allows the '
                          "s3:PutObject action")
    context = request_context(ROLE, "vpce-0s3if", "vpc-1", "10.0.1.5")
    result = s3.assess_get_put("probe", "vpce-doctor/i-1.probe", {"put": denied}, False, endpoint, ROLE, context)
    assert (result.status, result.code) == (Status.FAIL, "endpoint-policy")
    assert "vpce-0s3if's network interfaces" in result.cause and "vpce-0s3's policy never sees them" in result.cause
    assert result.remedy.commands[-1] == ("aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0s3if --dns-options "
                                          "PrivateDnsOnlyForInboundResolverEndpoint=true")


def test_a_denial_by_the_gateway_policy_says_the_interface_policy_does_not_apply():
    seen = both(inbound_only=True)
    seen["endpoints"].response["VpcEndpoints"][1]["PolicyDocument"] = OTHER_BUCKET_ONLY  # the gateway's
    endpoint = endpoint_seen(judge(seen))
    assert endpoint["type"] == "Gateway" and endpoint["other"]["id"] == "vpce-0s3if"
    denied = Call(ok=False, kind="api", status=403, code="AccessDenied", message="Access Denied")
    context = request_context(ROLE, "vpce-0s3", "vpc-1", "10.0.1.5")
    result = s3.assess_get_put("probe", "k", {"put": denied}, False, endpoint, ROLE, context)
    assert result.code == "endpoint-policy" and "OnlyTheDataBucket" not in result.cause.split("two S3")[1]
    assert "routed through the gateway endpoint vpce-0s3" in result.cause and "inbound Resolver endpoints only" \
        in result.cause
    assert not any("--dns-options" in c for c in result.remedy.commands)
    # one endpoint only: nothing about paths
    single = s3.assess_get_put("probe", "k", {"put": denied}, False, {**endpoint, "other": None}, ROLE, context)
    assert "two S3 endpoints" not in single.cause
