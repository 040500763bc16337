"""S3's denials as AWS words them (fidelity.md §D), judged from literal inputs: SSE-KMS, HeadBucket's bare 403,
GetObject's 403 for a missing key, and the endpoint policy evaluated as AWS does (gateway principals)."""
import json
from dataclasses import replace

import pytest

from vpce_doctor import denials, policy
from vpce_doctor.aws import Call
from vpce_doctor.checks import api, s3
from vpce_doctor.model import Status

SESSION = "arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0"
KEY = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OBJECT = "arn:aws:s3:::probe-bucket/vpce-doctor/i-0123456789abcdef0.probe"
# The identity-based form, as aws-deadline/deadline-cloud test/unit/deadline_job_attachments/test_upload.py
# quotes S3's PutObject denial on an SSE-KMS bucket (account and key filled in).
KMS_IDENTITY = (f"User: {SESSION} is not authorized to perform: kms:GenerateDataKey on resource: {KEY} because no "
                "identity-based policy allows the kms:GenerateDataKey action")
# The key-policy form, from buildkite/docs#2344 (S3 names no key).
KMS_KEY_POLICY = (f"User: {SESSION} is not authorized to perform: kms:GenerateDataKey on this resource because the "
                  "resource does not exist in this Region, no resource-based policies allow access, or a "
                  "resource-based policy explicitly denies access")
ACCOUNT_PRINCIPAL = json.dumps({"Statement": [{"Sid": "OurAccount", "Effect": "Allow",
                                               "Principal": {"AWS": "123456789012"}, "Action": "s3:*",
                                               "Resource": "*"}]})
ALLOW_ALL = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})
GATEWAY = {"id": "vpce-0s3gw", "policy": ACCOUNT_PRINCIPAL, "type": "Gateway"}
CONTEXT = policy.request_context(SESSION, "vpce-0s3gw", "vpc-0a", "10.0.1.100")


def err(code, message="", status=403):
    return Call(ok=False, kind="api", code=code, message=message, status=status, ms=5.0)


def test_sse_kms_denial_names_the_kms_action_and_the_key():
    verdict = api.judge(err("AccessDenied", KMS_IDENTITY), "s3:PutObject", OBJECT, SESSION, ALLOW_ALL, "vpce-0s3gw")
    assert (verdict.code, verdict.certainty) == ("kms-key-denied", "stated")
    assert f"needs kms:GenerateDataKey on {KEY}" in verdict.cause and "s3:PutObject" in verdict.cause
    assert f"Allow kms:GenerateDataKey on {KEY}" in verdict.remedy.text
    assert f"--key-id {KEY}" in verdict.remedy.commands[0]


def test_sse_kms_denial_without_the_key_says_where_to_find_it():
    verdict = api.judge(err("AccessDenied", KMS_KEY_POLICY), "s3:PutObject", OBJECT, SESSION, ALLOW_ALL)
    assert (verdict.code, verdict.certainty) == ("kms-key-denied", "inferred")
    assert "the bucket's default KMS key" in verdict.cause
    assert verdict.remedy.commands[1] == "aws s3api get-bucket-encryption --bucket probe-bucket"
    assert denials.parse("AccessDenied", KMS_KEY_POLICY).resource is None


def test_a_stated_gateway_endpoint_denial_names_the_root_only_statement():
    message = (f'User: {SESSION} is not authorized to perform: s3:PutObject on resource: "{OBJECT}" because no VPC '
               "endpoint policy allows the s3:PutObject action")
    verdict = api.judge(err("AccessDenied", message), "s3:PutObject", OBJECT, SESSION, ACCOUNT_PRINCIPAL,
                        "vpce-0s3gw", gateway=True, context=CONTEXT)
    assert (verdict.code, verdict.certainty) == ("endpoint-policy", "stated")
    assert 'statement "OurAccount" names the account' in verdict.cause and "root user only" in verdict.cause


@pytest.mark.parametrize("endpoint, attributed, words", [
    (GATEWAY, "endpoint-policy", "root user only"),
    ({"id": "vpce-0s3gw", "policy": ALLOW_ALL, "type": "Gateway"}, "not-endpoint-policy",
     "the role's policies or the bucket policy deny it"),
    ({"id": None, "policy": None}, "access-denied", "the role, the bucket policy or the endpoint policy"),
])
def test_a_denied_head_bucket_is_attributed_as_far_as_a_bodiless_403_allows(endpoint, attributed, words):
    # botocore's view of S3's 403 to a HEAD: no body, code "403", message "Forbidden" (gallantlab/cottoncandy#87)
    result = replace(err("403", "Forbidden"), headers={"x-amz-bucket-region": "eu-west-1"})
    found = s3.assess_bucket("probe-bucket", "eu-west-1", result, s3.Seen(endpoint, SESSION, CONTEXT))
    assert (found.status, found.code, found.evidence["attributed"]) == (Status.WARN, "head-denied", attributed)
    assert words in found.cause


def test_no_write_read_of_an_absent_key_without_list_bucket_passes():
    # GetObject API reference, "Permissions": without s3:ListBucket a missing key is 403 AccessDenied, not 404
    steps = {"get": err("AccessDenied", "Access Denied")}
    endpoint = {"id": "vpce-0s3gw", "policy": ALLOW_ALL, "type": "Gateway"}
    assert s3.assess_get_put("probe-bucket", "k", steps, True, endpoint, SESSION, CONTEXT).status is Status.PASS
    stated = {"get": err("AccessDenied", f'User: {SESSION} is not authorized to perform: s3:GetObject on resource: '
                                         f'"{OBJECT}" because no identity-based policy allows the s3:GetObject action')}
    assert s3.assess_get_put("probe-bucket", "k", stated, True, endpoint, SESSION, CONTEXT).code == "identity-policy"
    denied = s3.assess_get_put("probe-bucket", "k", steps, True, GATEWAY, SESSION, CONTEXT)
    assert (denied.status, denied.code) == (Status.FAIL, "endpoint-policy")
    # with writes on, a bare 403 on the read-back is a failure as before
    assert s3.assess_get_put("probe-bucket", "k", {"put": Call(ok=True, ms=1.0), **steps}, False, endpoint,
                             SESSION, CONTEXT).status is Status.FAIL


@pytest.mark.parametrize("text", ["{", "[]", '{"Statement": "x"}', None])
def test_a_malformed_endpoint_policy_gives_a_clear_finding(text):
    verdict = api.judge(err("AccessDenied", "Access Denied"), "s3:PutObject", OBJECT, SESSION, text, "vpce-0s3gw",
                        gateway=True, context=CONTEXT)
    assert verdict.code == "access-denied" and verdict.certainty == "unknown"


def test_imds_turned_off_means_no_session_not_probably_one():
    from vpce_doctor.checks import session
    prior = {"imds:token": ("fail", "forbidden", "IMDSv2 token request failed: HTTP 403"),
             "session:preferences": ("skip", "blocked", "not run")}
    found = session.predict(prior, {})
    assert (found.status, found.code) == (Status.FAIL, "fails")
    assert "no credentials from IMDS" in found.summary and found.caused_by == ("imds:token",)
    # a container behind a hop limit of 1 loses IMDS while the agent on the host keeps it: not a prediction
    hop = session.predict({**prior, "imds:token": ("fail", "timeout", "no answer")}, {})
    assert hop.code == "unknown"


def test_other_region_bucket_says_what_a_gateway_cannot_and_cross_region_interface_endpoints_can():
    result = replace(err("301", "", 301), headers={"x-amz-bucket-region": "us-west-2"})
    found = s3.assess_bucket("far-bucket", "eu-west-1", result, s3.Seen(vpc="vpc-0a1b", subnet="subnet-0c2d"))
    assert (found.status, found.code) == (Status.FAIL, "other-region")
    assert "only buckets in its own Region (eu-west-1)" in found.remedy.text
    assert "S3 interface endpoint for us-west-2" in found.remedy.text
    assert "--service-region us-west-2" in found.remedy.commands[0]
    assert found.remedy.commands[1] == (
        "aws ec2 create-vpc-endpoint --region eu-west-1 --vpc-id vpc-0a1b --vpc-endpoint-type Interface "
        "--service-name com.amazonaws.us-west-2.s3 --service-region us-west-2 --subnet-ids subnet-0c2d")
    assert any("cross-region-privatelink" in link for link in found.remedy.links)


def test_remedies_use_what_was_seen():
    pinned = (f'User: {SESSION} is not authorized to perform: s3:PutObject on resource: "{OBJECT}" with an explicit '
              "deny in a resource-based policy")
    verdict = api.judge(err("AccessDenied", pinned), "s3:PutObject", OBJECT, SESSION, ALLOW_ALL, "vpce-0s3gw")
    assert (verdict.code, verdict.certainty) == ("resource-policy", "stated")
    assert "The bucket policy of probe-bucket denies s3:PutObject" in verdict.remedy.text
    assert "admit this endpoint (vpce-0s3gw)" in verdict.remedy.text
    assert verdict.remedy.commands == ("aws s3api get-bucket-policy --bucket probe-bucket --query Policy --output text",)
    identity = api.judge(err("AccessDenied", f'User: {SESSION} is not authorized to perform: s3:PutObject on resource: '
                                            f'"{OBJECT}" because no identity-based policy allows the s3:PutObject '
                                            "action"), "s3:PutObject", OBJECT, SESSION)
    assert "--policy-source-arn arn:aws:iam::123456789012:role/app " in identity.remedy.commands[0]
    gateway = api.judge(err("AccessDenied", "Access Denied"), "s3:PutObject", OBJECT, SESSION, ACCOUNT_PRINCIPAL,
                        "vpce-0s3gw", gateway=True, context=CONTEXT)
    assert '"Principal":"*"' in gateway.remedy.text
    assert '"Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/app"}}' in gateway.remedy.text
    assert "--vpc-endpoint-id vpce-0s3gw" in gateway.remedy.commands[1]
