"""Attribution of AWS denial messages (domain.md §5): which policy type the message names, and only that."""
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpce_doctor import denials
from vpce_doctor.denials import Denial

SESSION = "arn:aws:sts::111122223333:assumed-role/ssm-instance/i-0abc1234"
OBJECT = "arn:aws:s3:::vpclab-probe/doctor/probe.txt"


def iam(action, context, resource=None):
    on = f" on resource: {resource}" if resource else ""
    return f"User: {SESSION} is not authorized to perform: {action}{on} {context}"


# message -> (policy_type, explicit, action, resource, principal, certainty)
CASES = {
    "endpoint policy, implicit": (
        iam("s3:ListAllMyBuckets", "because no VPC endpoint policy allows the s3:ListAllMyBuckets action"),
        ("vpc-endpoint", False, "s3:ListAllMyBuckets", None, SESSION, "stated")),
    "endpoint policy, explicit, with resource": (
        iam("s3:PutObject", "with an explicit deny in a VPC endpoint policy", OBJECT),
        ("vpc-endpoint", True, "s3:PutObject", OBJECT, SESSION, "stated")),
    "endpoint policy transitively through an SCP": (
        iam("s3:PutObject", "with an explicit deny in a VPC endpoint policy transitively through a service control "
            "policy", OBJECT), ("scp", None, "s3:PutObject", OBJECT, SESSION, "stated")),
    "identity, implicit": (
        iam("logs:DescribeLogGroups", "because no identity-based policy allows the logs:DescribeLogGroups action",
            "arn:aws:logs:eu-west-1:111122223333:log-group::log-stream:"),
        ("identity", False, "logs:DescribeLogGroups", "arn:aws:logs:eu-west-1:111122223333:log-group::log-stream:",
         SESSION, "stated")),
    "identity, explicit": (
        iam("ssm:GetDocument", "with an explicit deny in an identity-based policy",
            "arn:aws:ssm:eu-west-1:111122223333:document/SSM-SessionManagerRunShell"),
        ("identity", True, "ssm:GetDocument", "arn:aws:ssm:eu-west-1:111122223333:document/SSM-SessionManagerRunShell",
         SESSION, "stated")),
    "resource (KMS key policy), implicit": (
        iam("kms:GenerateDataKey", "because no resource-based policy allows the kms:GenerateDataKey action",
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("resource", False, "kms:GenerateDataKey",
         "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", SESSION, "stated")),
    "resource, explicit": (
        iam("s3:GetObject", "with an explicit deny in a resource-based policy", OBJECT),
        ("resource", True, "s3:GetObject", OBJECT, SESSION, "stated")),
    "SCP wording says explicit even for implicit SCP denies": (
        iam("s3:PutObject", "with an explicit deny in a service control policy", OBJECT),
        ("scp", None, "s3:PutObject", OBJECT, SESSION, "stated")),
    "SCP, implicit": (
        iam("s3:PutObject", "because no service control policy allows the s3:PutObject action"),
        ("scp", False, "s3:PutObject", None, SESSION, "stated")),
    "RCP, explicit": (
        iam("s3:GetObject", "with an explicit deny in a resource control policy", OBJECT),
        ("rcp", True, "s3:GetObject", OBJECT, SESSION, "stated")),
    "RCP, implicit": (
        iam("s3:GetObject", "because no resource control policy allows the s3:GetObject action", OBJECT),
        ("rcp", False, "s3:GetObject", OBJECT, SESSION, "stated")),
    "permissions boundary, implicit": (
        iam("logs:PutLogEvents", "because no permissions boundary allows the logs:PutLogEvents action"),
        ("permissions-boundary", False, "logs:PutLogEvents", None, SESSION, "stated")),
    "permissions boundary, explicit": (
        iam("logs:PutLogEvents", "with an explicit deny in a permissions boundary"),
        ("permissions-boundary", True, "logs:PutLogEvents", None, SESSION, "stated")),
    "session policy, implicit": (
        iam("s3:PutObject", "because no session policy allows the s3:PutObject action"),
        ("session", False, "s3:PutObject", None, SESSION, "stated")),
    "sessions policy (sic), explicit": (
        iam("s3:PutObject", "with an explicit deny in a sessions policy"),
        ("session", True, "s3:PutObject", None, SESSION, "stated")),
    "role trust policy is a resource policy": (
        iam("sts:AssumeRole", "because no role trust policy allows the sts:AssumeRole action",
            "arn:aws:iam::111122223333:role/probe"),
        ("resource", False, "sts:AssumeRole", "arn:aws:iam::111122223333:role/probe", SESSION, "stated")),
    "S3 enhanced format with a quoted resource": (
        f'User {SESSION} is not authorized to perform s3:PutObject on "{OBJECT}" because no VPC endpoint policy '
        "allows the s3:PutObject action",
        ("vpc-endpoint", False, "s3:PutObject", OBJECT, SESSION, "stated")),
    "S3 bucket name with dots and a closing full stop": (
        iam("s3:ListBucket", "with an explicit deny in a VPC endpoint policy.", "arn:aws:s3:::logs.example.com"),
        ("vpc-endpoint", True, "s3:ListBucket", "arn:aws:s3:::logs.example.com", SESSION, "stated")),
    "the action comes from the context when the head is missing": (
        "Request denied because no VPC endpoint policy allows the ssm:GetDocument action",
        ("vpc-endpoint", False, "ssm:GetDocument", None, None, "stated")),
    "an explicit deny that names no policy type": (
        "User: anonymous is not authorized to perform: execute-api:Invoke on resource: "
        "arn:aws:execute-api:eu-west-1:111122223333:abc/prod/GET/ with an explicit deny",
        ("unknown", True, "execute-api:Invoke", "arn:aws:execute-api:eu-west-1:111122223333:abc/prod/GET/",
         "anonymous", "unknown")),
    "bare S3 Access Denied": (
        "Access Denied", ("unknown", None, None, None, None, "unknown")),
    "old IAM format without context": (
        iam("ssm:GetDocument", "").rstrip(),
        ("unknown", None, "ssm:GetDocument", None, SESSION, "unknown")),
    "a policy only mentioned is inferred": (
        "Access Denied by the VPC endpoint policy of vpce-0abc",
        ("vpc-endpoint", None, None, None, None, "inferred")),
    "EC2 encoded message is opaque": (
        "You are not authorized to perform this operation. Encoded authorization failure message: 4Zb0wqT...",
        ("unknown", None, None, None, None, "unknown")),
    "EC2 message with a stated type and an encoded blob": (
        iam("ec2:DescribeVpcEndpoints", "because no identity-based policy allows the ec2:DescribeVpcEndpoints "
            "action. Encoded authorization failure message: Zm9vYmFy"),
        ("identity", False, "ec2:DescribeVpcEndpoints", None, SESSION, "stated")),
    "empty": ("", ("unknown", None, None, None, None, "unknown")),
}


@pytest.mark.parametrize("message, expected", CASES.values(), ids=CASES)
def test_parse(message, expected):
    denial = denials.parse("AccessDenied", message)
    assert (denial.policy_type, denial.explicit, denial.action, denial.resource, denial.principal,
            denial.certainty) == expected
    assert denial.message == message


CODES = {
    "AccessDenied": ("AccessDenied", "Access Denied", True),
    "AccessDeniedException": ("AccessDeniedException", "", True),
    "UnauthorizedOperation": ("UnauthorizedOperation", "You are not authorized to perform this operation.", True),
    "query-style prefix": ("Client.UnauthorizedOperation", "", True),
    "Forbidden": ("Forbidden", "", True),
    "HeadBucket's bare 403": ("403", "Forbidden", True),
    "service-specific code, IAM wording": ("AuthorizationError", iam("sns:Publish", ""), True),
    "not a denial": ("NoSuchBucket", "The specified bucket does not exist", False),
    "expired token is not a denial": ("ExpiredToken", "The security token included in the request is expired", False),
    "None": (None, None, False),
}


@pytest.mark.parametrize("code, message, expected", CODES.values(), ids=CODES)
def test_is_denial(code, message, expected):
    assert denials.is_denial(code, message) is expected


def test_a_policy_mentioned_outside_a_denial_is_not_blamed():
    denial = denials.parse("NoSuchBucketPolicy", "The bucket policy does not exist")
    assert (denial.policy_type, denial.certainty) == ("unknown", "unknown")


HOSTILE = {
    "None": (None, ""),
    "bytes": (b"User: arn:aws:iam::1:user/x is not authorized to perform: s3:GetObject \xff\xfe", None),
    "an int": (403, "403"),
    "binary noise": (bytes(range(256)) * 4, None),
    "control characters": ("\x00\x1b[31m\r\n\t" * 100, None),
    "10 MB of spaces": (" " * 10_000_000, None),
    "10 MB of one long word": ("x" * 10_000_000, None),
    "many almost-matches": ("User: a is not authorized to perform: " * 300_000, None),
    "nested quotes": ('on resource: "' * 1000, None),
}


class Unprintable:
    def __str__(self):
        raise RuntimeError("no")


@pytest.mark.parametrize("message, kept", list(HOSTILE.values()) + [(Unprintable(), "")],
                         ids=list(HOSTILE) + ["__str__ raises"])
def test_parse_never_raises_and_stays_bounded(message, kept):
    started = time.perf_counter()
    denial = denials.parse("AccessDenied", message)
    assert time.perf_counter() - started < 0.5
    assert isinstance(denial, Denial)
    assert len(denial.message) <= 500
    if kept is not None:
        assert denial.message == kept


def test_long_messages_are_kept_trimmed_and_still_parsed():
    message = iam("s3:PutObject", "with an explicit deny in a VPC endpoint policy", OBJECT) + " " + "z" * 1000
    denial = denials.parse("AccessDenied", message)
    assert (denial.policy_type, denial.explicit, denial.action) == ("vpc-endpoint", True, "s3:PutObject")
    assert len(denial.message) == 500 and denial.message.endswith("…")
    assert denial.message.startswith(f"User: {SESSION} is not authorized")


def test_phrases_beyond_the_first_4096_characters_are_not_read():
    denial = denials.parse("AccessDenied", "x" * 5000 + " " + iam("s3:PutObject", "with an explicit deny in a VPC "
                                                                       "endpoint policy"))
    assert (denial.policy_type, denial.action, denial.certainty) == ("unknown", None, "unknown")


@settings(max_examples=200, deadline=None)
@given(code=st.none() | st.text(max_size=30) | st.binary(max_size=30),
       message=st.none() | st.text(max_size=300) | st.binary(max_size=300)
       | st.builds(lambda a, b: a + " is not authorized to perform: " + b + " with an explicit deny in a",
                   st.text(max_size=40), st.text(max_size=40)))
def test_property_parse_never_raises(code, message):
    denial = denials.parse(code, message)
    assert denial.policy_type in ("vpc-endpoint", "identity", "resource", "scp", "rcp", "permissions-boundary",
                                  "session", "unknown")
    assert denial.certainty in ("stated", "inferred", "unknown")
    assert (denial.certainty == "unknown") is (denial.policy_type == "unknown")
    assert isinstance(denials.is_denial(code, message), bool)
