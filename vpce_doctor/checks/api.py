"""What a failed AWS call means: unreachable, bad credentials, a skewed clock, or which policy denied it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from ..aws import Call
from ..model import Remedy
from . import vpc

POLICY_DOC = "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html"
S3_ENDPOINT_POLICIES_DOC = ("https://docs.aws.amazon.com/AmazonS3/latest/userguide/"
                            "example-bucket-policies-vpc-endpoint.html")
KMS_DOC = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html"
TIME_SYNC = Remedy("Point chrony at the Amazon Time Sync Service (169.254.169.123), which needs no internet, and "
                   "restart it.", ("echo 'server 169.254.169.123 prefer iburst' | sudo tee /etc/chrony.d/aws.conf",
                                   "sudo systemctl restart chronyd && chronyc tracking"),
                   ("https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html",))
DENIED = {  # Denial.policy_type → (code, who to change)
    "vpc-endpoint": ("endpoint-policy", "the VPC endpoint's policy"),
    "identity": ("identity-policy", "the instance role's policies"),
    "resource": ("resource-policy", "the resource's policy (e.g. the bucket policy)"),
    "scp": ("scp", "a service control policy of the organization"),
    "rcp": ("rcp", "a resource control policy of the organization"),
    "permissions-boundary": ("permissions-boundary", "the role's permissions boundary"),
    "session": ("session-policy", "the session policy"),
}


# codes another finding explains (when that finding did not pass: see Report.root_causes)
FOLLOWS = {"clock-skew": "clock:skew", "no-credentials": "creds:source", "invalid-credentials": "creds:source"}


@dataclass(frozen=True)
class Verdict:
    code: str
    cause: str
    remedy: Optional[Remedy] = None
    certainty: str = "stated"   # stated by AWS, inferred by the doctor, or unknown

    @property
    def evidence(self) -> Dict[str, object]:
        """What goes into the finding's evidence: the certainty."""
        return {"certainty": self.certainty}

    @property
    def caused_by(self) -> Tuple[str, ...]:
        """The finding this one follows from (clock:skew for a signature refused as expired, ...), if any."""
        return (FOLLOWS[self.code],) if self.code in FOLLOWS else ()


def judge(call: Call, action: str, resource: str = "*", principal: Optional[str] = None,
          endpoint_policy: Optional[str] = None, endpoint_id: Optional[str] = None, *, gateway: bool = False,
          context: Optional[Mapping[str, Optional[str]]] = None) -> Verdict:
    """Explain one failed call from vpce_doctor.aws.call(); pure, so every branch has a literal-input test.
    `gateway` and `context` (policy.request_context) let the endpoint policy be evaluated as AWS does."""
    kind, code, message = call.kind, str(call.code or ""), str(call.message or "")
    if kind == "timeout":
        return Verdict("timeout", f"The call to {action.split(':', maxsplit=1)[0]} timed out although TCP and TLS "
                       "to its name worked: the endpoint is overloaded or a middlebox holds the connection.")
    if kind == "unreachable":
        return Verdict("unreachable", f"The API endpoint could not be reached: {message[:200]}")
    if kind == "tls":
        return Verdict("tls", f"The TLS handshake of the API call failed: {message[:200]}")
    if kind == "credentials":
        return Verdict("no-credentials", "No usable credentials: see creds:source.")
    if "Signature expired" in message or code in ("RequestTimeTooSkewed", "RequestExpired"):
        return Verdict("clock-skew", "AWS rejected the signature because this instance's clock is off by more "
                       "than 5 minutes (15 for S3): see clock:skew.", TIME_SYNC)
    if code in ("InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
                "InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthFailure", "IncompleteSignature"):
        return Verdict("invalid-credentials", f"AWS does not accept these credentials ({code}): they are stale, "
                       "revoked, or shadow the instance profile's (see creds:source).")
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden", "403"):
        return attribute(code, message, action, resource, principal, endpoint_policy, endpoint_id,
                         Request(gateway, context))
    return Verdict("api-error", f"AWS answered {code or call.status}: {message[:200]}")


@dataclass(frozen=True)
class Request:
    """What the endpoint policy is evaluated against besides action, resource and principal."""
    gateway: bool = False
    context: Optional[Mapping[str, Optional[str]]] = None


def attribute(code: str, message: str, action: str, resource: str, principal: Optional[str],
              endpoint_policy: Optional[str], endpoint_id: Optional[str], request: Request = Request()) -> Verdict:
    from .. import denials
    denial = denials.parse(code, message)
    if denial.certainty == "stated" and denial.policy_type in DENIED:
        return _stated(denial, action, resource, endpoint_policy, endpoint_id, principal, request)
    if denial.action and denial.action.lower().startswith("kms:") and not action.lower().startswith("kms:"):
        return _kms(denial, action, resource)
    if endpoint_policy is None:
        return Verdict("access-denied", f"AWS denied {action} without naming the policy (a bare Access Denied); "
                       "the endpoint policy could not be read to tell (see vpc:endpoints), so it may be the endpoint "
                       "policy, the role's policies or the bucket policy.", _remedy("access-denied", action,
                                                                                     resource, endpoint_id),
                       "unknown")
    return _by_endpoint_policy(action, resource, principal, endpoint_policy, endpoint_id, request)


def _stated(denial, action: str, resource: str, endpoint_policy: Optional[str], endpoint_id: Optional[str],
            principal: Optional[str], request: Request) -> Verdict:
    slug, who = DENIED[denial.policy_type]
    by = _by(denial.explicit, who)
    if denial.action and denial.action.lower().startswith("kms:") and not action.lower().startswith("kms:"):
        return _kms(denial, action, resource, by)
    cause = f"AWS says {action} was denied {by}."
    decision = _evaluate(action, resource, principal, endpoint_policy, request) if slug == "endpoint-policy" \
        else None
    if decision is not None and not isinstance(decision, str) and decision.effect.endswith("deny"):
        cause += f" Evaluated here: {decision.reason}."  # which statement, and why (e.g. gateway root-only)
    return Verdict(slug, cause, _remedy(slug, action, resource, endpoint_id, principal, request.gateway), "stated")


def _by(explicit: Optional[bool], who: str) -> str:
    if explicit is None:
        return f"by {who}"
    return f"by an explicit deny in {who}" if explicit else f"because nothing in {who} allows it"


def _kms(denial, action: str, resource: str, by: str = "") -> Verdict:
    """S3 encrypts with the bucket's KMS key on the caller's behalf: the denial names the KMS action (SSE-KMS:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#aws-managed-customer-managed-keys;
    message shapes in aws-deadline/deadline-cloud test/unit/deadline_job_attachments/test_upload.py and
    buildkite/docs#2344)."""
    key = denial.resource if denial.resource and denial.resource.startswith("arn:") else None
    named = key or "the bucket's default KMS key (aws s3api get-bucket-encryption shows it)"
    bucket = resource.split(":::", 1)[-1].split("/", 1)[0]
    cause = (f"{action} on an SSE-KMS bucket needs {denial.action} on {named}, and AWS says it was denied"
             + (f" {by}." if by else ": the role's policies or the key policy do not allow it."))
    remedy = Remedy(f"Allow {denial.action} on {named} for the instance role, and make sure the key policy lets the "
                    "account's IAM policies grant it.",
                    (f"aws kms get-key-policy --key-id {key or '<key-arn>'} --policy-name default",
                     f"aws s3api get-bucket-encryption --bucket {bucket}"), (KMS_DOC, POLICY_DOC))
    return Verdict("kms-key-denied", cause, remedy, "stated" if by else "inferred")


def _evaluate(action: str, resource: str, principal: Optional[str], endpoint_policy: Optional[str],
              request: Request):
    """The endpoint policy's decision, or the one-line reason it cannot be evaluated; None: not read."""
    from .. import policy
    if endpoint_policy is None:
        return None
    try:
        return policy.evaluate(policy.parse(endpoint_policy), action, resource, principal, request.context,
                               request.gateway)
    except policy.PolicyError as error:
        return str(error)


def _by_endpoint_policy(action: str, resource: str, principal: Optional[str], endpoint_policy: str,
                        endpoint_id: Optional[str], request: Request) -> Verdict:
    decision = _evaluate(action, resource, principal, endpoint_policy, request)
    if isinstance(decision, str) or decision is None:
        return Verdict("access-denied", f"AWS denied {action} without naming the policy, and the endpoint "
                       f"policy could not be evaluated: {decision}", None, "unknown")
    if not decision.allowed and decision.effect != "unknown":
        return Verdict("endpoint-policy", f"AWS denied {action} without naming the policy; evaluating "
                       f"{endpoint_id or 'the endpoint'}'s policy here says it does not allow it: {decision.reason}",
                       _remedy("endpoint-policy", action, resource, endpoint_id, principal, request.gateway),
                       "inferred")
    if decision.allowed:
        return Verdict("not-endpoint-policy", f"AWS denied {action}, but {endpoint_id or 'the endpoint'}'s policy "
                       f"allows it ({decision.reason}): the role's policies or the bucket policy deny it.",
                       _remedy("identity-policy", action, resource, endpoint_id, principal), "inferred")
    return Verdict("access-denied", f"AWS denied {action}; the endpoint policy has conditions the doctor cannot "
                   f"evaluate ({', '.join(decision.unevaluated)}).", None, "unknown")


def _remedy(slug: str, action: str, resource: str, endpoint_id: Optional[str], principal: Optional[str] = None,
            gateway: bool = False) -> Remedy:
    if slug == "endpoint-policy":
        return _endpoint_remedy(action, resource, endpoint_id, principal if gateway else None)
    bucket = resource.split(":::", 1)[1].split("/", 1)[0] if resource.startswith("arn:aws") and ":s3:::" in resource \
        else None
    if slug == "resource-policy" and bucket:
        # Bucket-policy denies that lock out endpoint traffic usually test aws:SourceVpce, aws:SourceVpc or
        # aws:SourceIp, which is absent through an endpoint (https://repost.aws/knowledge-center/
        # iam-restrict-access-policy; S3 user guide, example-bucket-policies-vpc-endpoint).
        return Remedy(f"The bucket policy of {bucket} denies {action}: find the Deny statement (often a condition on "
                      "aws:SourceVpce, aws:SourceVpc, or aws:SourceIp, which is absent through a VPC endpoint) and "
                      f"admit this endpoint{f' ({endpoint_id})' if endpoint_id else ''}.",
                      (f"aws s3api get-bucket-policy --bucket {bucket} --query Policy --output text",),
                      (S3_ENDPOINT_POLICIES_DOC, POLICY_DOC))
    role = (policy_context(principal).get("aws:principalarn") if principal else None) or "<role-arn>"
    return Remedy(f"Allow {action} on {resource} for the instance role (and in the bucket policy, if it has one).",
                  (f"aws iam simulate-principal-policy --policy-source-arn {role} --action-names {action} "
                   f"--resource-arns {resource}",), (POLICY_DOC,))


def _endpoint_remedy(action: str, resource: str, endpoint_id: Optional[str],
                     gateway_principal: Optional[str]) -> Remedy:
    # On a gateway endpoint roles are granted with "Principal": "*" and aws:PrincipalArn (PrivateLink guide,
    # "Principals for gateway endpoints").
    role = policy_context(gateway_principal).get("aws:principalarn") if gateway_principal else None
    condition = ',"Condition":{"ArnEquals":{"aws:PrincipalArn":"%s"}}' % role if role else ""
    statement = '{"Effect":"Allow","Principal":"*","Action":"%s","Resource":"%s"%s}' % (action, resource, condition)
    return Remedy(f"Add a statement allowing {action} on {resource} to the endpoint policy, e.g. {statement}.",
                  (f"aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {endpoint_id or '<vpce-id>'} "
                   "--query 'VpcEndpoints[0].PolicyDocument' --output text",
                   f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint_id or '<vpce-id>'} "
                   "--policy-document file://policy.json"), (POLICY_DOC,))


def policy_context(principal: Optional[str]) -> Mapping[str, Optional[str]]:
    from ..policy import request_context
    return request_context(principal)


def endpoint_of(prior: Mapping[str, object], service: str) -> Dict[str, Any]:
    """The endpoint id and policy the control-plane cross-check read for a service, when it ran and could read it:
    the one on this instance's path, with the one it bypasses as "other" (S3's gateway and interface endpoints)."""
    return vpc.endpoint(prior.get("vpc:endpoints"), service)
