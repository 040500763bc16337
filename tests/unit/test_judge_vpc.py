"""vpc:endpoints, the instance's side: route tables (main), security-group egress, network ACLs, secondary CIDRs.

Inputs have the shapes of the EC2 API's answers (DescribeRouteTables, DescribeSecurityGroups, DescribeNetworkAcls:
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_NetworkAclEntry.html — Protocol "6" or "-1", RuleNumber,
RuleAction, Egress, PortRange; every ACL ends with rule 32767, the "*" deny-all).
"""
from vpce_doctor import plan
from vpce_doctor.aws import Call
from vpce_doctor.checks import vpc, vpc_path
from vpce_doctor.model import Status


def ok(response):
    return Call(ok=True, response=response)


ALL_OUT = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]  # a new security group's default egress
DENY_ALL = [{"RuleNumber": 32767, "Protocol": "-1", "RuleAction": "deny", "Egress": e, "CidrBlock": "0.0.0.0/0"}
            for e in (True, False)]
DEFAULT_ACL = [{"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": e, "CidrBlock": "0.0.0.0/0"}
               for e in (True, False)] + DENY_ALL


def world(instance_egress=ALL_OUT, acl_entries=DEFAULT_ACL, tables=None, endpoint_acl=DEFAULT_ACL,
          ssm_subnets=("subnet-a",)):
    return {
        "endpoints": ok({"VpcEndpoints": [
            {"VpcEndpointId": "vpce-0ssm", "ServiceName": "com.amazonaws.eu-west-1.ssm", "VpcEndpointType": "Interface",
             "State": "available", "PrivateDnsEnabled": True, "Groups": [{"GroupId": "sg-0end"}],
             "SubnetIds": list(ssm_subnets)},
            {"VpcEndpointId": "vpce-0s3", "ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Gateway",
             "State": "available", "RouteTableIds": ["rtb-main"]}]}),
        "routes": ok({"RouteTables": tables if tables is not None else [
            {"RouteTableId": "rtb-main", "Associations": [{"Main": True, "RouteTableId": "rtb-main"}],
             "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"},
                        {"DestinationPrefixListId": "pl-6da54004", "GatewayId": "vpce-0s3"}]}]}),
        "groups": ok({"SecurityGroups": [
            {"GroupId": "sg-0end", "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                                      "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]},
            {"GroupId": "sg-0inst", "IpPermissions": [], "IpPermissionsEgress": instance_egress}]}),
        "subnets": ok({"Subnets": [{"SubnetId": "subnet-a", "AvailabilityZone": "eu-west-1a"},
                                   {"SubnetId": "subnet-b", "AvailabilityZone": "eu-west-1a"}]}),
        "acls": ok({"NetworkAcls": [
            {"NetworkAclId": "acl-0inst", "Associations": [{"SubnetId": "subnet-a"}], "Entries": acl_entries},
            {"NetworkAclId": "acl-0end", "Associations": [{"SubnetId": "subnet-b"}], "Entries": endpoint_acl}]}),
        "s3_prefix_lists": ok({"PrefixLists": [{"PrefixListId": "pl-6da54004",
                                                "PrefixListName": "com.amazonaws.eu-west-1.s3"}]}),
        "s3_prefix_list": ok({"Entries": [{"Cidr": "52.218.0.0/17"}]}),
    }


def judge(seen, addresses=None, cidrs=("10.0.0.0/16",), private_ip="10.0.1.5"):
    addresses = addresses or {"ssm": ["10.0.1.10"], "s3": ["52.218.1.1"]}
    return vpc.assess(seen, ["ssm", "s3"], "eu-west-1", "vpc-1", list(cidrs), ["sg-0inst"], private_ip, "eu-west-1a",
                      addresses.get("s3", []), "subnet-a", addresses=addresses, subnet_cidr="10.0.1.0/24")


def test_a_subnet_on_the_main_route_table_has_the_gateway_route():
    result = judge(world())
    assert result.status is Status.PASS, result.summary
    assert result.evidence["route_table"] == {"id": "rtb-main", "main": True}


def test_the_main_route_table_without_the_route_is_named_as_such():
    tables = [{"RouteTableId": "rtb-main", "Associations": [{"Main": True}], "Routes": []},
              {"RouteTableId": "rtb-other", "Associations": [{"SubnetId": "subnet-z"}],
               "Routes": [{"GatewayId": "vpce-0s3"}]}]
    result = judge(world(tables=tables))
    assert result.code == "no-route"
    assert result.evidence["problems"] == ["the VPC's main route table rtb-main has no route to vpce-0s3 (s3 gateway "
                                           "endpoint)"]
    assert result.remedy.commands == ("aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0s3 --add-route-table-ids "
                                      "rtb-main",)
    assert result.evidence["explains"] == ["tcp:s3"]


def test_instance_egress_only_to_the_vpc_misses_the_s3_prefix_list():
    egress = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]
    result = judge(world(instance_egress=egress))
    assert result.code == "sg-no-egress"
    assert result.evidence["problems"] == [
        "this instance's sg-0inst allow no outbound TCP 443 to the S3 prefix list pl-6da54004 (s3, 52.218.1.1)"]
    assert result.remedy.commands == ("aws ec2 authorize-security-group-egress --group-id sg-0inst --ip-permissions "
                                      "'IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{PrefixListId="
                                      "pl-6da54004}]'",)


def test_egress_by_prefix_list_or_endpoint_group_is_enough():
    egress = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": "pl-6da54004"}]},
              {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": "sg-0end"}]}]
    assert judge(world(instance_egress=egress)).status is Status.PASS


def test_no_egress_at_all_names_both_paths():
    result = judge(world(instance_egress=[]))
    assert result.code == "sg-no-egress"
    assert "this instance's sg-0inst allow no outbound TCP 443 to vpce-0ssm's sg-0end (ssm, 10.0.1.10)" in \
        result.evidence["problems"]
    assert result.evidence["explains"] == ["tcp:s3", "tcp:ssm"]


def test_an_acl_without_the_ephemeral_return_names_its_rule_and_spares_the_same_subnet():
    # The classic: inbound allows 443 and 22 only, so replies from S3 (to ports 32768-60999) hit the "*" deny.
    entries = [{"RuleNumber": 100, "Protocol": "6", "RuleAction": "allow", "Egress": False, "CidrBlock": "0.0.0.0/0",
                "PortRange": {"From": 443, "To": 443}},
               {"RuleNumber": 110, "Protocol": "6", "RuleAction": "allow", "Egress": False, "CidrBlock": "0.0.0.0/0",
                "PortRange": {"From": 22, "To": 22}},
               {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": True, "CidrBlock": "0.0.0.0/0"},
               *DENY_ALL]
    result = judge(world(acl_entries=entries))
    assert result.code == "nacl-deny"
    assert result.evidence["problems"] == [
        "acl-0inst (this instance's subnet subnet-a) denies inbound TCP 1024-65535 (the return traffic) from "
        "52.218.1.1 (s3) by rule *"]  # the ssm ENI is in the instance's own subnet: no ACL between them
    assert result.remedy.commands == ("aws ec2 create-network-acl-entry --network-acl-id acl-0inst --ingress "
                                      "--rule-number 120 --protocol tcp --port-range From=1024,To=65535 "
                                      "--cidr-block 52.218.1.1/32 --rule-action allow",)


def test_an_explicit_deny_on_the_endpoint_subnet_is_named_by_number():
    entries = [{"RuleNumber": 50, "Protocol": "6", "RuleAction": "deny", "Egress": False, "CidrBlock": "10.0.1.0/24",
                "PortRange": {"From": 443, "To": 443}}] + DEFAULT_ACL
    result = judge(world(endpoint_acl=entries, ssm_subnets=("subnet-b",)),
                   addresses={"ssm": ["10.0.2.10"], "s3": ["52.218.1.1"]})
    assert result.evidence["problems"] == [
        "acl-0end (vpce-0ssm's subnet subnet-b) denies inbound TCP 443 from 10.0.1.5 (ssm) by rule 50"]
    assert "--ingress --rule-number 49 --protocol tcp --port-range From=443,To=443 --cidr-block 10.0.1.5/32" in \
        result.remedy.commands[0]


def test_nacl_first_match_wins():
    entries = [{"RuleNumber": 200, "Protocol": "-1", "RuleAction": "deny", "Egress": True, "CidrBlock": "0.0.0.0/0"},
               {"RuleNumber": 100, "Protocol": "6", "RuleAction": "allow", "Egress": True, "CidrBlock": "52.0.0.0/8",
                "PortRange": {"From": 443, "To": 443}}]
    assert vpc_path.nacl_decision(entries, True, "52.218.1.1", 443) == ("allow", 100)
    assert vpc_path.nacl_decision(entries, True, "3.5.1.1", 443) == ("deny", 200)
    assert vpc_path.nacl_decision([], True, "3.5.1.1", 443) == ("deny", 32767)


def test_a_rule_for_the_primary_cidr_does_not_admit_an_instance_in_a_secondary_one():
    # The endpoint's group admits 10.0.0.0/16; the instance lives in the VPC's secondary CIDR 100.64.0.0/16.
    result = judge(world(), cidrs=("10.0.0.0/16", "100.64.0.0/16"), private_ip="100.64.1.5")
    assert "sg-0end on vpce-0ssm (ssm) has no inbound 443 from sg-0inst" in result.evidence["problems"]
    assert judge(world(), cidrs=("10.0.0.0/16", "100.64.0.0/16")).status is Status.PASS


def test_one_domain_for_every_partition():
    # botocore/data/partitions.json: regionRegex -> dnsSuffix
    assert plan.domain_for("cn-northwest-1") == "amazonaws.com.cn"
    assert plan.domain_for("eusc-de-east-1") == "amazonaws.eu"
    assert plan.domain_for("us-isob-east-1") == "sc2s.sgov.gov"
    assert plan.domain_for("us-gov-west-1") == "amazonaws.com"
    assert plan.domain_for("eu-west-1", "amazonaws.com") == "amazonaws.com"
    assert plan.service_name("ssm", "eusc-de-east-1", "amazonaws.eu") == "ssm.eusc-de-east-1.amazonaws.eu"
    # China names some endpoint services after the partition and others not: `aws ec2 describe-vpc-endpoint-services`
    # in cn-north-1/cn-northwest-1 (aws/aws-cdk#25333; aws-cdk vpc-endpoint.ts getDefaultEndpointPrefix) lists
    # cn.com.amazonaws.<region>.sts/ec2/monitoring, and com.amazonaws.<region>.ssm, logs, kms; gateways com.amazonaws
    assert plan.endpoint_service_name("ssm", "cn-north-1", "amazonaws.com.cn") == "com.amazonaws.cn-north-1.ssm"
    assert plan.endpoint_service_name("sts", "cn-northwest-1", "amazonaws.com.cn") == \
        "cn.com.amazonaws.cn-northwest-1.sts"
    assert plan.endpoint_service_name("s3", "cn-north-1", "amazonaws.com.cn", gateway=True) == \
        "com.amazonaws.cn-north-1.s3"
    assert plan.endpoint_service_name("ec2", "us-iso-east-1", "c2s.ic.gov") == "gov.ic.c2s.us-iso-east-1.ec2"
    result = vpc.assess({"endpoints": ok({"VpcEndpoints": []})}, ["ssm", "sts", "s3"], "cn-north-1", "vpc-1",
                        ["10.0.0.0/16"], [], "10.0.1.5", domain="amazonaws.com.cn")
    commands = " ".join(result.remedy.commands)
    assert all(f"--service-name {name} " in commands for name in (
        "com.amazonaws.cn-north-1.ssm", "cn.com.amazonaws.cn-north-1.sts", "com.amazonaws.cn-north-1.s3")), commands


def test_a_shared_endpoint_elsewhere_is_not_missing():
    seen = {"endpoints": ok({"VpcEndpoints": []})}
    shared = vpc.assess(seen, ["ssm"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], [], "10.0.1.5",
                        addresses={"ssm": ["10.100.1.10"]})
    assert shared.status is Status.PASS
    public = vpc.assess(seen, ["ssm"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], [], "10.0.1.5",
                        addresses={"ssm": ["52.119.1.1"]})
    assert public.code == "no-endpoint"


def test_local_zone_wavelength_and_new_partition_placements_are_valid():
    from vpce_doctor.facts import Imds, Reply, interpret
    from vpce_doctor.checks import imds

    def placed(region, az):
        replies = {"instance-id": Reply(200, "i-0123456789abcdef0"), "placement/region": Reply(200, region),
                   "placement/availability-zone": Reply(200, az)}
        return interpret(Imds("http://169.254.169.254", token=Reply(200, "t"), replies=replies))

    # fidelity.md §D: Local Zone and Wavelength names are valid AZ names in IMDS placement/availability-zone.
    for region, az in (("us-west-2", "us-west-2-lax-1a"), ("us-east-1", "us-east-1-wl1-bos-wlz-1"),
                       ("eusc-de-east-1", "eusc-de-east-1a"), ("us-isob-east-1", "us-isob-east-1a")):
        facts = placed(region, az)
        assert (facts.region, facts.az, facts.malformed) == (region, az, ()), az
        assert imds.assess_token(facts).code != "garbage"
    assert placed("eu-west-1", "<html>").malformed == ("placement/availability-zone",)


def test_hop_limit_remedy_turns_the_endpoint_on():
    from vpce_doctor.facts import Facts, Imds, Reply
    from vpce_doctor.checks import imds
    result = imds.assess_token(Facts(Imds("http://169.254.169.254", token=Reply(error="timeout"))))
    assert result.remedy.commands[0].endswith("--http-put-response-hop-limit 2 --http-endpoint enabled")


def test_a_denied_prefix_list_read_is_said_not_passed():
    # GetManagedPrefixListEntries denied: the shape vpce_doctor.aws.call() gives a ClientError (EC2's code for a
    # missing permission is UnauthorizedOperation: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)
    seen = world()
    seen["s3_prefix_list"] = Call(False, kind="api", code="UnauthorizedOperation", status=403)
    result = judge(seen)
    assert result.status is Status.WARN and result.code == "prefix-list-unreadable", result.summary
    assert "pl-6da54004" in result.summary and "UnauthorizedOperation" in result.summary
