"""The probe bucket's policy, evaluated for this endpoint and role after a denial, names the statement that denies.
Inputs: the S3 user guide's VPC-endpoint bucket policy examples (https://docs.aws.amazon.com/AmazonS3/latest/
userguide/example-bucket-policies-vpc-endpoint.html, "Restricting access to a specific VPC endpoint" and "... VPC")."""
import json

from vpce_doctor import policy
from vpce_doctor.aws import Call
from vpce_doctor.checks import bucket_policy, s3

BUCKET = "awsexamplebucket1"
KEY = "vpce-doctor/i-0598c7d356eba48d7.probe"
SESSION = "arn:aws:sts::123456789012:assumed-role/web-ssm/i-0598c7d356eba48d7"
CONTEXT = policy.request_context(SESSION, "vpce-0s3ours000000001", "vpc-0ours00000000001", "10.0.1.100")
SPECIFIC_VPCE = {"Version": "2012-10-17", "Id": "Policy1415115909152", "Statement": [
    {"Sid": "Access-to-specific-VPCE-only", "Principal": "*", "Action": "s3:*", "Effect": "Deny",
     "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
     "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}}]}
SPECIFIC_VPC = {"Version": "2012-10-17", "Id": "Policy1415115909153", "Statement": [
    {"Sid": "Access-to-specific-VPC-only", "Principal": "*", "Action": "s3:*", "Effect": "Deny",
     "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
     "Condition": {"StringNotEquals": {"aws:SourceVpc": "vpc-111bbb22"}}}]}
# S3's words for a denial that names no policy (a bucket in another account, or an older message format)
BARE = Call(ok=False, kind="api", code="AccessDenied", message="Access Denied", status=403)


def read(document):
    return Call(ok=True, response={"Policy": json.dumps(document)})


def test_the_statement_that_denies_is_named():
    for document, sid in ((SPECIFIC_VPCE, "Access-to-specific-VPCE-only"), (SPECIFIC_VPC, "Access-to-specific-VPC-only")):
        found = bucket_policy.explain(read(document), "s3:PutObject", f"arn:aws:s3:::{BUCKET}/{KEY}", SESSION, CONTEXT)
        assert (found["effect"], found["statement"]) == ("explicit-deny", sid)


def test_through_the_named_endpoint_it_does_not_deny():
    through = {**CONTEXT, "aws:sourcevpce": "vpce-1a2b3c4d"}
    found = bucket_policy.explain(read(SPECIFIC_VPCE), "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{KEY}", SESSION,
                                  through)
    assert found["effect"] == "implicit-deny"  # no Allow in it: the role's policies decide


def test_unreadable_or_absent_policies_say_so():
    denied = bucket_policy.explain(Call(ok=False, code="AccessDenied"), "s3:PutObject", "x", SESSION, CONTEXT)
    assert denied["read"] is False and "s3:GetBucketPolicy" in denied["reason"]
    none = bucket_policy.explain(Call(ok=False, code="NoSuchBucketPolicy"), "s3:PutObject", "x", SESSION, CONTEXT)
    assert none["effect"] == "none"
    assert bucket_policy.explain(None, "s3:PutObject", "x", SESSION, CONTEXT) is None


def test_a_bare_denial_is_attributed_to_the_bucket_policy():
    endpoint = {"id": "vpce-0s3ours000000001", "type": "Gateway", "policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})}
    result = s3.assess_get_put(BUCKET, KEY, {"put": BARE}, False, endpoint, SESSION, CONTEXT, read(SPECIFIC_VPC))
    assert result.code == "resource-policy"
    assert 'Statement "Access-to-specific-VPC-only" denies s3:PutObject' in result.cause
    assert result.evidence["bucket_policy"]["statement"] == "Access-to-specific-VPC-only"
    unread = s3.assess_get_put(BUCKET, KEY, {"put": BARE}, False, endpoint, SESSION, CONTEXT,
                               Call(ok=False, code="AccessDenied"))
    assert unread.code == "not-endpoint-policy" and "could not be read" in unread.cause


def test_the_remedy_points_at_the_statement_not_the_role():
    endpoint = {"id": "vpce-0s3ours000000001", "type": "Gateway", "policy": None}
    result = s3.assess_get_put(BUCKET, KEY, {"put": BARE}, False, endpoint, SESSION, CONTEXT, read(SPECIFIC_VPCE))
    assert '"Access-to-specific-VPCE-only"' in result.remedy.text and "vpc-0ours00000000001" in result.remedy.text
    assert result.remedy.commands == (f"aws s3api get-bucket-policy --bucket {BUCKET} --query Policy --output text",)
