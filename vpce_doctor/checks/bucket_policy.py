"""The probe bucket's own policy, when the role may read it (s3:GetBucketPolicy): evaluated for this endpoint and
role (aws:SourceVpce, aws:SourceVpc, aws:VpcSourceIp, the principal), so an S3 denial is attributed to the statement
that causes it. Reading is one opportunistic call after a denial; judging is pure (vpce_doctor.policy)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional

from .. import policy
from ..aws import Call, call
from ..model import Remedy

# "NoSuchBucketPolicy: The bucket policy does not exist" (GetBucketPolicy API reference, Errors:
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketPolicy.html)
NO_POLICY = "NoSuchBucketPolicy"


def read(client, bucket: str) -> Call:
    return call(client, "get_bucket_policy", Bucket=bucket)


def explain(got: Optional[Call], action: str, resource: str, principal: Optional[str],
            context: Optional[Mapping[str, Optional[str]]]) -> Optional[Dict[str, object]]:
    """What the bucket policy says about this request: {"read", "effect", "statement", "reason"} or, when it could
    not be read, {"read": False, "error"}. None: it was not asked for."""
    if got is None:
        return None
    if not got.ok:
        code = str(got.code or got.kind or "")
        if code == NO_POLICY:
            return {"read": True, "effect": "none", "statement": None, "reason": "the bucket has no policy"}
        return {"read": False, "error": code, "reason": f"the bucket policy could not be read ({code}); with "
                "s3:GetBucketPolicy on the bucket the doctor names the statement that denies"}
    text = str(got.response.get("Policy") or "")
    try:
        # A resource policy: an account principal means that account (its IAM policies decide), not only its root.
        decision = policy.evaluate(policy.parse(text), action, resource, principal, context, gateway=False)
    except policy.PolicyError as error:
        return {"read": True, "effect": "unknown", "statement": None, "reason": f"not evaluated: {error}"}
    return {"read": True, "effect": decision.effect, "statement": decision.statement, "reason": decision.reason,
            "unevaluated": list(decision.unevaluated)}


def sentence(found: Optional[Mapping[str, object]]) -> str:
    """One sentence for a finding's cause, naming the statement when the bucket policy denies."""
    if not found:
        return ""
    if found.get("effect") == "explicit-deny":
        return f" The bucket policy denies it: {found['reason']}."
    return f" Bucket policy: {found['reason']}."


def remedy(found: Optional[Mapping[str, object]], bucket: str, endpoint: Optional[str], vpc: Optional[str]):
    """When the bucket policy's own Deny decides: change that statement, not the role. None otherwise."""
    if not found or found.get("effect") != "explicit-deny":
        return None
    return Remedy(f"Statement \"{found['statement']}\" of {bucket}'s bucket policy denies this request through "
                  f"{endpoint or 'this endpoint'} from {vpc or 'this VPC'}: admit them in its condition "
                  "(aws:SourceVpce, aws:SourceVpc) if this instance should have access.",
                  (f"aws s3api get-bucket-policy --bucket {bucket} --query Policy --output text",),
                  ("https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies-vpc-endpoint.html",))
