"""The lab's IAM (tests/lab/iam.py) as AWS does it: every call judged (EC2 and SSM too, on the ARN AWS builds),
gateway principals, condition keys of a request through an endpoint, bucket policies, HeadBucket, SSE-KMS and the
403 for a missing key without s3:ListBucket. In-process, on the Lab of test_aws.py."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.lab.test_aws import ACCOUNT, REGION, denial, lab, role_arn  # noqa: F401  (lab: the module fixture)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/vpclab-instance-role"
ALL = {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def role_policy(*statements) -> dict:
    return {"iam": {"role_policies": {"only": policy(*statements)}}}


def test_gateway_account_principal_grants_the_root_user_only(lab):
    # PrivateLink guide, "Principals for gateway endpoints": the account id means its root user on a gateway endpoint
    account = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "*", "Resource": "*"})
    lab.apply(endpoints={"s3": {"policy": account}, "ssm": {"policy": account}})
    status, code, message = denial(lambda: lab.client("s3").put_object(Bucket="vpclab-probe", Key="k", Body=b"x"))
    assert (status, code) == (403, "AccessDenied")
    assert message.endswith("because no VPC endpoint policy allows the s3:PutObject action")
    # ... and every principal of the account on an interface endpoint
    assert lab.client("ssm").get_document(Name="SSM-SessionManagerRunShell")["Name"]


def test_source_ip_is_absent_through_an_endpoint(lab):
    # The bucket-policy lock-out: NotIpAddress on aws:SourceIp always applies through an endpoint
    lock = {"Sid": "OfficeOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}}}
    lab.apply(endpoints={"s3": {"policy": policy(ALL, lock)}})
    assert denial(lambda: lab.client("s3").get_object(Bucket="vpclab-probe", Key="k"))[2].endswith(
        "with an explicit deny in a VPC endpoint policy")
    by_vpc_ip = {**lock, "Condition": {"NotIpAddress": {"aws:VpcSourceIp": "127.0.0.0/8"}}}  # the test's source
    lab.apply(endpoints={"s3": {"policy": policy(ALL, by_vpc_ip)}})
    with pytest.raises(ClientError, match="NoSuchKey"):
        lab.client("s3").get_object(Bucket="vpclab-probe", Key="k")


def test_bucket_policy_pinned_to_another_endpoint_is_a_resource_based_denial(lab):
    pin = policy({"Sid": "OnlyFromVpceOther", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                  "Resource": ["arn:aws:s3:::vpclab-probe", "arn:aws:s3:::vpclab-probe/*"],
                  "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-0other000000000"}}})
    lab.apply(buckets={"vpclab-probe": {"policy": pin}})
    s3 = lab.client("s3")
    assert denial(lambda: s3.put_object(Bucket="vpclab-probe", Key="k", Body=b"x")) == (
        403, "AccessDenied", f"User: {role_arn(lab)} is not authorized to perform: s3:PutObject on resource: "
        '"arn:aws:s3:::vpclab-probe/k" with an explicit deny in a resource-based policy')
    # HeadBucket is a HEAD: S3's 403 has no body, botocore shows code "403" and message "Forbidden"
    status, code, message = denial(lambda: s3.head_bucket(Bucket="vpclab-probe"))
    assert (status, code, message) == (403, "403", "Forbidden")


def test_bucket_policy_allows_what_the_role_does_not(lab):
    grant = policy({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:PutObject",
                    "Resource": "arn:aws:s3:::vpclab-probe/*"})
    lab.apply(buckets={"vpclab-probe": {"policy": grant}}, **role_policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::vpclab-probe/*"}))
    assert lab.client("s3").put_object(Bucket="vpclab-probe", Key="k", Body=b"x")["ResponseMetadata"]


def test_every_call_is_judged_on_the_arn_aws_builds(lab):
    document = f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/SSM-SessionManagerRunShell"
    lab.apply(**role_policy({"Effect": "Allow", "Action": "ssm:GetDocument", "Resource": document},
                            {"Effect": "Allow", "Action": "ec2:DescribeVpcEndpoints", "Resource": "*"}))
    assert lab.client("ssm").get_document(Name="SSM-SessionManagerRunShell")["Name"]
    assert "VpcEndpoints" in lab.client("ec2").describe_vpc_endpoints()
    status, code, message = denial(lab.client("ec2").describe_route_tables)
    assert (status, code) == (403, "UnauthorizedOperation") and message.endswith(
        "because no identity-based policy allows the ec2:DescribeRouteTables action")
    # GetCallerIdentity needs no permission (STS API reference)
    assert lab.client("sts").get_caller_identity()["Arn"] == role_arn(lab)


def test_sse_kms_write_is_denied_naming_the_kms_action_and_key(lab):
    facts = lab.apply(buckets={"vpclab-probe": {"encryption": "aws:kms"}}, **role_policy(
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::vpclab-probe", "arn:aws:s3:::vpclab-probe/*"]}))
    assert denial(lambda: lab.client("s3").put_object(Bucket="vpclab-probe", Key="k", Body=b"x")) == (
        403, "AccessDenied", f"User: {role_arn(lab)} is not authorized to perform: kms:GenerateDataKey on resource: "
        f"{facts['kms_key_arn']} because no identity-based policy allows the kms:GenerateDataKey action")


def test_missing_key_without_list_bucket_is_403(lab):
    # GetObject API reference, "Permissions": 404 only with s3:ListBucket, else 403
    lab.apply(**role_policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::vpclab-probe/*"}))
    assert denial(lambda: lab.client("s3").get_object(Bucket="vpclab-probe", Key="nothing-here")) == (
        403, "AccessDenied", "Access Denied")
    lab.apply()
    with pytest.raises(ClientError, match="NoSuchKey"):
        lab.client("s3").get_object(Bucket="vpclab-probe", Key="nothing-here")
