"""Remedies print the names of the instance's partition, from one computation (plan.placeholders, Remedy.filled):
no check builds com.amazonaws.<region>.<service> or <service>.<region>.amazonaws.com itself.

Facts: partition domains from botocore/data/partitions.json (dnsSuffix: aws-cn amazonaws.com.cn); endpoint service
names in China from `aws ec2 describe-vpc-endpoint-services` there (aws/aws-cdk#25333; aws-cdk packages/aws-cdk-lib/
aws-ec2/lib/vpc-endpoint.ts getDefaultEndpointPrefix: sts, ec2, monitoring and S3's interface endpoint are
cn.com.amazonaws.<region>.<service>, ssm, ssmmessages, ec2messages, logs and kms com.amazonaws.<region>.<service>;
gateway endpoints com.amazonaws everywhere, eksctl-io/eksctl#3081); the agent's package in China comes from
https://s3.cn-north-1.amazonaws.com.cn/amazon-ssm-cn-north-1/ (SSM user guide, manually-install-ssm-agent-linux).
"""
import importlib
import pkgutil
import re

import vpce_doctor.checks
from vpce_doctor import plan
from vpce_doctor.checks import agent, agent_lines, identity, run_command, session_logs
from vpce_doctor.model import Remedy

CN = plan.placeholders("cn-north-1", plan.domain_for("cn-north-1"), vpc="vpc-0cn", subnet="subnet-0cn",
                       instance="i-0cn")


def test_a_cn_region_remedy_names_chinas_endpoint_services_and_domain():
    assert identity.STS_ENDPOINT.filled(**CN).commands[0].endswith(
        "--service-name cn.com.amazonaws.cn-north-1.sts --subnet-ids subnet-0cn --private-dns-enabled")
    assert "--service-name com.amazonaws.cn-north-1.logs --vpc-id vpc-0cn" in \
        session_logs.LOGS_ENDPOINT.filled(**CN).commands[0]
    assert "com.amazonaws.cn-north-1.kms" in session_logs.KMS_ENDPOINT.filled(**CN).commands[0]
    fallback = run_command.assess("fail", "pass", (3, 3, 2958, 0), CN)
    assert "--service-name com.amazonaws.cn-north-1.ssmmessages --vpc-id vpc-0cn" in fallback.remedy.commands[0]
    assert agent.INSTALL.filled(**CN).commands[0].startswith(
        "sudo yum install -y https://s3.cn-north-1.amazonaws.com.cn/amazon-ssm-cn-north-1/")
    assert "-connect ssm.cn-north-1.amazonaws.com.cn:443" in agent_lines.INTERCEPTED.filled(**CN).commands[0]


def test_names_are_derived_from_the_region_and_unknown_ones_stay_visible():
    filled = Remedy("x", ("{endpoint_sts} {gateway_s3} {name_ssm} {endpoint_ssm}",)).filled(region="cn-northwest-1")
    assert filled.commands == ("cn.com.amazonaws.cn-northwest-1.sts com.amazonaws.cn-northwest-1.s3 "
                               "ssm.cn-northwest-1.amazonaws.com.cn com.amazonaws.cn-northwest-1.ssm",)
    eu = Remedy("x", ("{name_ssm}",)).filled(region="eusc-de-east-1")
    assert eu.commands == ("ssm.eusc-de-east-1.amazonaws.eu",)
    unknown = Remedy("x", ("{endpoint_sts} {name_ssm}",)).filled(region="<region>")
    assert unknown.commands == ("<endpoint_sts> <name_ssm>",)
    assert Remedy("x", ("{endpoint_sts}",)).filled(region="eu-west-1; rm -rf /").commands == ("<endpoint_sts>",)


def templates():
    for info in pkgutil.iter_modules(vpce_doctor.checks.__path__):
        module = importlib.import_module(f"vpce_doctor.checks.{info.name}")
        for name, value in vars(module).items():
            found = value.values() if isinstance(value, dict) else [value]
            for item in found:
                if isinstance(item, Remedy):
                    yield f"{info.name}.{name}", item


def test_no_command_template_builds_a_name_of_its_own():
    """Command strings kept apart from a Remedy (aws_buckets_probe.FIND_ENDPOINT, ...) too."""
    for info in pkgutil.iter_modules(vpce_doctor.checks.__path__):
        module = importlib.import_module(f"vpce_doctor.checks.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, str) and value.startswith("aws "):
                assert "com.amazonaws.{" not in value and "{region}.amazonaws.com" not in value, (info.name, name)


def test_no_remedy_template_builds_a_name_of_its_own():
    # imds.TRUST_EC2 names a service principal (ec2.amazonaws.com), not an endpoint: left as it is
    seen = [(where, remedy) for where, remedy in templates() if where != "imds.TRUST_EC2"]
    assert len(seen) > 20
    for where, remedy in seen:
        filled = remedy.filled(**CN)
        for line in (filled.text, *filled.commands):
            assert not re.search(r"(?<![\w.])com\.amazonaws\.cn-north-1\.sts|\.amazonaws\.com(?![\w.])", line), \
                (where, line)
            assert "<endpoint_" not in line and "<name_" not in line, (where, line)
        for line in (remedy.text, *remedy.commands):
            assert "com.amazonaws.{" not in line and "{region}.amazonaws.com" not in line, (where, line)
