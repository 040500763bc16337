"""names:dialled from literal settings and lookups: which names botocore and the SSM agent will dial, and whether
each has a private path."""
from vpce_doctor import dialled
from vpce_doctor.checks import names
from vpce_doctor.model import Status

VPC = ["10.0.0.0/16", "2001:db8:1200::/56"]
SERVICES = ["ssm", "ssmmessages", "ec2messages", "s3", "sts"]


def lookups(*found, code="nxdomain"):
    a = {"type": "A", "code": "answer" if found else code, "addresses": [x for x in found if ":" not in x]}
    aaaa = {"type": "AAAA", "code": "answer" if found else code, "addresses": [x for x in found if ":" in x]}
    return a, aaaa


def botocore(environ, profile=None, region="eu-west-1"):
    settings = dialled.botocore_settings(environ, profile or {}, "the doctor's environment")
    return dialled.botocore_names(SERVICES, region, "amazonaws.com", settings)


def test_no_setting_means_no_extra_name():
    assert botocore({}) == []
    result = names.assess([], {}, VPC)
    assert result.status is Status.PASS


def test_legacy_sts_in_a_legacy_region_dials_the_global_name():
    # botocore args.py: legacy + a Region in LEGACY_GLOBAL_STS_REGIONS → https://sts.amazonaws.com.
    found = botocore({"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, region="ap-northeast-1")
    assert [(n.service, n.name, n.kind) for n in found] == [("sts", "sts.amazonaws.com", "global-sts")]
    result = names.assess(found, {"sts.amazonaws.com": lookups("209.54.177.164")}, VPC)
    assert (result.status, result.code) == (Status.FAIL, "global-sts")
    assert "AWS_STS_REGIONAL_ENDPOINTS=legacy in the doctor's environment" in result.summary
    assert "unset AWS_STS_REGIONAL_ENDPOINTS" in result.remedy.commands


def test_legacy_sts_elsewhere_stays_regional():
    assert botocore({"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, region="ap-east-1") == []


def test_dualstack_from_the_environment_names_api_aws_and_s3_dualstack():
    found = {n.service: n.name for n in botocore({"AWS_USE_DUALSTACK_ENDPOINT": "true"})}
    assert found == {"ssm": "ssm.eu-west-1.api.aws", "s3": "s3.dualstack.eu-west-1.amazonaws.com",
                     "sts": "sts.eu-west-1.api.aws"}


def test_dualstack_name_with_no_answer_is_not_covered():
    # aws/session-manager-plugin#87: with AWS_USE_DUALSTACK_ENDPOINT=true the client dialled ssm.eu-west-1.api.aws,
    # which answered NXDOMAIN ("Could not connect to the endpoint URL").
    found = botocore({"AWS_USE_DUALSTACK_ENDPOINT": "true"})
    answers = {"ssm.eu-west-1.api.aws": lookups(), "sts.eu-west-1.api.aws": lookups("10.0.1.14"),
               "s3.dualstack.eu-west-1.amazonaws.com": lookups("52.218.1.5", "2600:1fa0:80c4:1::1")}
    result = names.assess(found, answers, VPC)
    assert (result.status, result.code) == (Status.FAIL, "dualstack-not-covered")
    assert "ssm.eu-west-1.api.aws" in result.summary and "nxdomain" in result.summary
    assert "sts.eu-west-1.api.aws" not in result.summary  # covered: inside the VPC
    assert "s3.dualstack" not in result.summary            # S3 is judged like s3: the gateway route


def test_fips_from_the_config_file_profile():
    profile, problem = dialled.parse_profile("[profile ops]\nuse_fips_endpoint = true\n", "ops", "/root/.aws/config")
    assert not problem
    found = botocore({}, profile)
    assert {n.name for n in found} >= {"ssm-fips.eu-west-1.amazonaws.com", "s3-fips.eu-west-1.amazonaws.com"}
    result = names.assess(found, {n.name: lookups("52.94.0.1") for n in found if n.service != "s3"}, VPC)
    assert result.code == "fips-no-endpoint"
    assert "use_fips_endpoint = true in /root/.aws/config [profile ops]" in result.summary


def test_environment_wins_over_the_config_file():
    profile, _ = dialled.parse_profile("[default]\nuse_fips_endpoint = true\n", "default", "/root/.aws/config")
    assert botocore({"AWS_USE_FIPS_ENDPOINT": "false"}, profile) == []


def test_service_endpoint_url_wins_and_is_judged_as_given():
    found = botocore({"AWS_ENDPOINT_URL_STS": "https://sts.example.internal:8443", "AWS_ENDPOINT_URL": "https://x"})
    by_service = {n.service: (n.name, n.kind) for n in found}
    assert by_service["sts"] == ("sts.example.internal", "endpoint-url")
    assert by_service["ssm"] == ("x", "endpoint-url")
    ignored = botocore({"AWS_ENDPOINT_URL": "https://x", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
    assert ignored == []


def test_the_agents_dual_stack_flag_names_every_agent_service_but_overridden_ones():
    found = dialled.agent_names(SERVICES, "eu-west-1", "amazonaws.com",
                                '"UseDualStackEndpoint": true in /etc/amazon/ssm/amazon-ssm-agent.json', {},
                                overridden=["ssmmessages"])
    assert {n.service: n.name for n in found} == {
        "ssm": "ssm.eu-west-1.api.aws", "ec2messages": "ec2messages.eu-west-1.api.aws",
        "s3": "s3.dualstack.eu-west-1.amazonaws.com"}
    assert all(n.who == "the SSM agent" for n in found)


def test_the_agents_environment_fips():
    found = dialled.agent_names(["ssm"], "us-east-1", "amazonaws.com", None, {"AWS_USE_FIPS_ENDPOINT": "true"}, [])
    assert [n.name for n in found] == ["ssm-fips.us-east-1.amazonaws.com"]


def test_other_partitions_use_their_dual_stack_suffix():
    # botocore data/partitions.json: aws-cn dualStackDnsSuffix api.amazonwebservices.com.cn.
    assert dialled.variant("ssm", "cn-north-1", "amazonaws.com.cn", False, True) == \
        "ssm.cn-north-1.api.amazonwebservices.com.cn"
    assert dialled.variant("s3", "cn-north-1", "amazonaws.com.cn", True, True) == \
        "s3-fips.dualstack.cn-north-1.amazonaws.com.cn"


def test_imds_only_over_ipv6_needs_the_sdks_endpoint_mode():
    settings = dialled.botocore_settings({}, {}, "the doctor's environment")
    problem = dialled.imds_mode_problem("http://[fd00:ec2::254]", settings, {})
    assert problem and names.assess([], {}, VPC, imds_mode=problem).code == "imds-mode-ipv4"
    ok = dialled.botocore_settings({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}, {}, "env")
    assert dialled.imds_mode_problem("http://[fd00:ec2::254]", ok, {}) == ""
    assert dialled.imds_mode_problem("http://169.254.169.254", settings, {}) == ""


def test_a_broken_config_file_is_a_warning_not_a_crash():
    profile, problem = dialled.parse_profile("[default\nx", "default", "/root/.aws/config")
    assert profile == {} and "/root/.aws/config" in problem
    assert names.assess([], {}, VPC, problem=problem).status is Status.WARN


def test_the_agents_flag_is_fixed_in_the_agents_config_file():
    found = dialled.agent_names(["ssm", "ssmmessages"], "eu-west-1", "amazonaws.com",
                                '"UseDualStackEndpoint": true in /etc/amazon/ssm/amazon-ssm-agent.json', {}, [])
    result = names.assess(found, {n.name: lookups() for n in found}, VPC)
    assert result.code == "dualstack-not-covered"
    assert result.summary.count("UseDualStackEndpoint") == 1  # one clause per setting
    assert "amazon-ssm-agent.json" in result.remedy.commands[0] and "restart amazon-ssm-agent" in \
        result.remedy.commands[0]


def test_an_endpoint_url_with_credentials_is_shown_without_them():
    found = botocore({"AWS_ENDPOINT_URL_SSM": "https://user:s3cret@ssm.example.internal"})
    assert found[0].name == "ssm.example.internal" and "s3cret" not in found[0].setting


def test_sdks_told_to_use_ipv6_imds_where_it_does_not_answer():
    settings = dialled.botocore_settings({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}, {}, "the doctor's environment")
    where = dialled.imds_ipv6_mode(settings, {})
    assert where == "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 in the doctor's environment"
    result = names.assess([], {}, VPC, {"instance": "i-0123456789abcdef0"}, imds_mode6=where + "; [fd00:ec2::254] answered timeout")
    assert (result.status, result.code) == (Status.FAIL, "imds-mode-ipv6")
    assert any("--http-protocol-ipv6 enabled" in c and "i-0123456789abcdef0" in c for c in result.remedy.commands)
    assert dialled.imds_ipv6_mode(settings, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://[fd00:ec2::254]"}) == ""


def test_missing_credentials_follow_from_the_imds_endpoint_mode():
    from vpce_doctor.checks import identity
    result = identity.assess_source(None, "Unable to retrieve token", "arn:aws:iam::123456789012:instance-profile/p",
                                    "i-0123456789abcdef0", imds_mode=True)
    assert result.code == "no-credentials" and result.caused_by == ("names:dialled",)
    assert identity.assess_source(None, "x", None).caused_by == ()
