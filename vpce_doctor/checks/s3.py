"""s3:bucket, s3:get_put and s3:list: the allowed bucket through the gateway endpoint, and the expected denials."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import denials, policy
from ..aws import Call, call
from ..model import Check, Remedy, Result, Severity, Status
from ..plan import domain_for, endpoint_service_name
from . import api, bucket_policy, identity, s3_paths

# A gateway endpoint carries only its own Region's S3 (https://docs.aws.amazon.com/vpc/latest/privatelink/
# vpc-endpoints-s3.html); cross-Region PrivateLink lets an interface endpoint reach a list of services, S3 among them,
# in another Region (https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-cross-region-privatelink-support
# .html): which Region pairs offer it is what describe-vpc-endpoint-services --service-region answers.
CROSS_REGION = Remedy(
    "A gateway endpoint reaches only buckets in its own Region ({region}). Use a bucket in {region}, or create an "
    "S3 interface endpoint for {bucket_region} in this VPC (cross-Region PrivateLink supports S3, where both Regions "
    "offer it: the first command lists what {bucket_region} offers here), or reach an interface endpoint in "
    "{bucket_region} over peering or a transit gateway.",
    ("aws ec2 describe-vpc-endpoint-services --region {region} --service-region {bucket_region} --filters "
     "Name=service-type,Values=Interface Name=owner,Values=amazon --query 'ServiceNames'",
     "aws ec2 create-vpc-endpoint --region {region} --vpc-id {vpc} --vpc-endpoint-type Interface --service-name "
     "{bucket_endpoint} --service-region {bucket_region} --subnet-ids {subnet}",
     "aws s3api get-bucket-location --bucket {bucket}"),
    ("https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html",
     "https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-cross-region-privatelink-support.html"))


def checks(bucket: Optional[str], cross_check: bool, identity: Tuple[str, ...] = ()):
    if not bucket:
        return ()
    after = (("vpc:endpoints",) if cross_check else ()) + identity
    return (
        Check("s3:bucket", f"bucket {bucket} is in this Region and answers", Severity.HIGH, run_bucket,
              needs=("tls:s3", "creds:source"), after=after, clients=("s3",)),
        Check("s3:get_put", f"a probe object in {bucket} can be written, read back and removed", Severity.HIGH,
              run_get_put, needs=("s3:bucket",), after=after, clients=("s3",)),
        Check("s3:list", "ListBuckets is allowed, or denied as the endpoint policy intends", Severity.LOW,
              run_list, needs=("tls:s3", "creds:source"), after=("s3:get_put",) + after, clients=("s3",)),
    )


def probe_key(prefix: str, instance_id: Optional[str]) -> str:
    return f"{prefix}vpce-doctor/{instance_id or 'unknown-instance'}.probe"


def run_bucket(ctx, prior) -> Result:
    bucket = ctx.settings.bucket
    return assess_bucket(bucket, ctx.region, call(ctx.clients.client("s3"), "head_bucket", Bucket=bucket),
                         request_of(ctx, prior))


def assess_bucket(bucket: str, region: str, result: Call, request: Optional[Seen] = None) -> Result:
    headers = result.headers or result.response.get("ResponseMetadata", {}).get(
        "HTTPHeaders", {})
    found = headers.get("x-amz-bucket-region")
    seen = request or Seen()
    evidence = {"bucket": bucket, "bucket_region": found, "status": result.status, "code": result.code}
    if found and found != region:
        return Result(Status.FAIL, f"bucket {bucket} is in {found}, not {region}", code="other-region",
                      cause="The gateway endpoint carries traffic only to S3 in its own Region; requests for this "
                            "bucket go to another Region's addresses, which a private subnet cannot reach.",
                      remedy=CROSS_REGION.filled(bucket=bucket, region=region, bucket_region=found,
                                                 bucket_endpoint=endpoint_service_name("s3", found, domain_for(found)),
                                                 vpc=seen.vpc or "<vpc-id>", subnet=seen.subnet or "<subnet-id>"),
                      evidence=evidence)
    if result.ok:
        return Result(Status.PASS, f"bucket {bucket} answers in {found or region} ({result.ms:.0f} ms)",
                      evidence=evidence)
    if result.code in ("404", "NoSuchBucket", "NotFound"):
        return Result(Status.FAIL, f"bucket {bucket} does not exist", code="no-such-bucket", evidence=evidence,
                      cause="HeadBucket answered 404: the name is wrong or the bucket was deleted.",
                      remedy=Remedy("Create the bucket in this Region or point --bucket at an existing one."))
    if result.status == HTTPStatus.FORBIDDEN and found:
        return _head_denied(bucket, found, result, seen, evidence)
    verdict = api.judge(result, "s3:ListBucket", f"arn:aws:s3:::{bucket}")
    return Result(Status.FAIL, f"HeadBucket {bucket} failed: {result.code}", code=verdict.code,
                  cause=verdict.cause, remedy=verdict.remedy, evidence={**evidence, **verdict.evidence},
                  caused_by=verdict.caused_by)


def run_get_put(ctx, prior) -> Result:
    bucket, key = ctx.settings.bucket, probe_key(ctx.settings.key_prefix, ctx.facts.instance_id)
    client = ctx.clients.client("s3")
    # The same bytes from every run on this instance: runs that overlap rewrite the key with what the other expects.
    body = f"vpce-doctor probe {ctx.facts.instance_id}\n".encode()
    steps: Dict[str, Call] = {}
    if not ctx.settings.no_write:
        steps["put"] = call(client, "put_object", Bucket=bucket, Key=key, Body=body)
    if "put" not in steps or steps["put"].ok:
        steps["get"] = call(client, "get_object", Bucket=bucket, Key=key)
        if steps["get"].ok:
            steps["get"] = replace(steps["get"], matches=steps["get"].response["Body"].read(4096) == body)
    if "put" in steps and steps["put"].ok:
        steps["delete"] = call(client, "delete_object", Bucket=bucket, Key=key)
    seen = request_of(ctx, prior)
    denied = any(step.status == HTTPStatus.FORBIDDEN for step in steps.values())
    return assess_get_put(bucket, key, steps, ctx.settings.no_write, seen.endpoint, seen.principal, seen.context,
                          bucket_policy.read(client, bucket) if denied else None)


def assess_get_put(bucket: str, key: str, steps: Mapping[str, Call], no_write: bool,
                   endpoint: Mapping[str, Optional[str]], principal: Optional[str] = None,
                   context: Optional[Mapping[str, Optional[str]]] = None,
                   policy_read: Optional[Call] = None) -> Result:
    """policy_read: GetBucketPolicy's call() result, asked for after a 403 (None: not asked)."""
    evidence: Dict[str, Any] = {"bucket": bucket, "key": key,
                                "steps": {name: step.summary() for name, step in steps.items()},
                                "endpoint": endpoint.get("id")}
    for name, action in (("put", "s3:PutObject"), ("get", "s3:GetObject")):
        step = steps.get(name)
        if step is None or step.ok:
            continue
        if name == "get" and no_write and _missing_or_unlisted(step, f"arn:aws:s3:::{bucket}/{key}", endpoint,
                                                                   principal, context):
            return Result(Status.PASS, f"S3 answered for s3://{bucket}/{key} (no probe object yet; writes are off)",
                          evidence=evidence)
        if name == "get" and step.code in ("NoSuchKey", "404"):  # S3 says NoSuchKey only to allowed readers
            return Result(Status.PASS, f"put s3://{bucket}/{key}; it was gone before the read-back (removed by another "
                          "vpce-doctor run on this instance?), and S3 answered the read", evidence=evidence)
        code, cause, remedy, seen, caused_by = _denied(step, action, bucket, key, endpoint, principal, context,
                                                       policy_read)
        evidence.update(seen)
        return Result(Status.FAIL, f"{action} on s3://{bucket}/{key} failed: {step.code}: "
                      f"{str(step.message)[:160]}", code=code, cause=cause, evidence=evidence, remedy=remedy,
                      caused_by=caused_by)
    return _passed(steps, bucket, key, no_write, evidence)


def _denied(step: Call, action: str, bucket: str, key: str, endpoint: Mapping[str, Optional[str]],
            principal: Optional[str], context: Optional[Mapping[str, Optional[str]]],
            policy_read: Optional[Call]) -> Tuple[str, str, Optional[Remedy], Dict[str, Any], Tuple[str, ...]]:
    """A failed put or get: (code, cause, remedy, evidence, caused_by), by the endpoint and bucket policies."""
    verdict = api.judge(step, action, f"arn:aws:s3:::{bucket}/{key}", principal, endpoint.get("policy"),
                        endpoint.get("id"), gateway=_gateway(endpoint), context=context)
    found = bucket_policy.explain(policy_read, action, f"arn:aws:s3:::{bucket}/{key}", principal, context)
    # A bare or unattributed denial that the bucket policy's own Deny explains is the bucket policy's.
    code = "resource-policy" if (found or {}).get("effect") == "explicit-deny" and verdict.code in (
        "access-denied", "not-endpoint-policy") else verdict.code
    which, commands = s3_paths.explain(endpoint, action, f"arn:aws:s3:::{bucket}/{key}", principal, context) \
        if code == "endpoint-policy" else ("", ())
    remedy = bucket_policy.remedy(found, bucket, endpoint.get("id"), (context or {}).get("aws:sourcevpc")) \
        or verdict.remedy
    return (code, verdict.cause + bucket_policy.sentence(found) + which,
            replace(remedy, commands=remedy.commands + commands) if remedy and commands else remedy,
            {**verdict.evidence, **({"bucket_policy": found} if found else {})}, verdict.caused_by)


def _passed(steps: Mapping[str, Call], bucket: str, key: str, no_write: bool, evidence: Dict[str, Any]) -> Result:
    """Every step S3 answered: the content must have come back as written."""
    if "get" in steps and steps["get"].matches is False:
        return Result(Status.FAIL, f"s3://{bucket}/{key} came back different from what was written", code="corrupted",
                      cause="Something between the instance and S3 rewrites content: a proxy or a bug.",
                      evidence=evidence)
    took = sum(s.ms for s in steps.values())
    if no_write:
        return Result(Status.PASS, f"read s3://{bucket}/{key} ({took:.0f} ms; writes are off)", evidence=evidence)
    delete = steps.get("delete")
    note = "" if delete and delete.ok else f"; delete denied ({delete and delete.code}), the probe object stays"
    return Result(Status.PASS, f"put, get and compared s3://{bucket}/{key} in {took:.0f} ms{note}", evidence=evidence)


def run_list(ctx, prior) -> Result:
    result = call(ctx.clients.client("s3"), "list_buckets")
    seen = request_of(ctx, prior)
    return assess_list(result, prior.get("s3:get_put"), seen.endpoint, seen.principal, seen.context)


def assess_list(result: Call, get_put, endpoint: Mapping[str, Optional[str]],
                principal: Optional[str] = None, context: Optional[Mapping[str, Optional[str]]] = None) -> Result:
    evidence = result.summary()
    if result.ok:
        return Result(Status.PASS, f"ListBuckets allowed ({len(result.response.get('Buckets', []))} buckets)",
                      evidence=evidence)
    verdict = api.judge(result, "s3:ListAllMyBuckets", "*", principal, endpoint.get("policy"), endpoint.get("id"),
                        gateway=_gateway(endpoint), context=context)
    objects_work = get_put is not None and get_put.status is Status.PASS
    if verdict.code == "endpoint-policy" and objects_work:
        return Result(Status.PASS, "ListBuckets denied by the endpoint policy while object get/put works: "
                      "`aws s3 ls` fails and `aws s3 cp` works, the endpoint policy is doing its job",
                      code="expected-denial", evidence=evidence)
    if verdict.code in ("endpoint-policy", "identity-policy", "not-endpoint-policy", "access-denied"):
        return Result(Status.PASS, f"ListBuckets denied ({verdict.code}); least-privilege policies often do this",
                      code="denied", evidence={**evidence, "cause": verdict.cause})
    return Result(Status.WARN, f"ListBuckets failed: {result.code}", code=verdict.code, cause=verdict.cause,
                  remedy=verdict.remedy, evidence={**evidence, **verdict.evidence}, caused_by=verdict.caused_by)


@dataclass(frozen=True)
class Seen:
    """What the S3 checks attribute a denial with: the endpoint the cross-check read, the caller, the request keys."""
    endpoint: Mapping[str, Optional[str]] = field(default_factory=dict)
    principal: Optional[str] = None
    context: Optional[Mapping[str, Optional[str]]] = None
    vpc: Optional[str] = None
    subnet: Optional[str] = None


def request_of(ctx, prior, service: str = "s3") -> Seen:
    """The endpoint on the service's path, the caller and the request's condition keys: what a denial is judged
    with (the agent's own calls, made as the same role through the same endpoint, too)."""
    endpoint = api.endpoint_of(prior, service)
    principal = identity.arn(prior.get("sts:identity"))
    facts = ctx.facts
    context = policy.request_context(principal, endpoint.get("id"), facts.vpc_id, facts.private_ip)
    return Seen(endpoint, principal, context, facts.vpc_id, facts.subnet_id)


def _gateway(endpoint: Mapping[str, Optional[str]]) -> bool:
    return str(endpoint.get("type") or "").lower() == "gateway"


def _missing_or_unlisted(step: Call, resource: str, endpoint: Mapping[str, Optional[str]],
                         principal: Optional[str], context: Optional[Mapping[str, Optional[str]]]) -> bool:
    """With writes off the probe key usually does not exist. S3 answers GetObject of a missing key with 404 to a
    caller allowed s3:ListBucket and with 403 AccessDenied to one that is not (GetObject API reference,
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions"): a denial that blames no
    policy is then S3's answer to a missing key, not a failure, unless the endpoint policy denies the read."""
    if step.code in ("NoSuchKey", "404"):
        return True
    if step.status != HTTPStatus.FORBIDDEN or denials.parse(step.code, step.message).certainty == "stated":
        return False
    text = endpoint.get("policy")
    if text is None:
        return True
    try:
        return policy.evaluate(policy.parse(text), "s3:GetObject", resource, principal, context,
                               _gateway(endpoint)).effect in ("allow", "unknown")
    except policy.PolicyError:
        return True


def _head_denied(bucket: str, region: str, result: Call, seen: Seen, evidence) -> Result:
    """HeadBucket is a HEAD: a denial is a bare 403 with no body (botocore: code "403", message "Forbidden",
    e.g. gallantlab/cottoncandy#87), so no policy is named; the endpoint policy, evaluated here, is all there is."""
    verdict = api.judge(result, "s3:ListBucket", f"arn:aws:s3:::{bucket}", seen.principal,
                        seen.endpoint.get("policy"), seen.endpoint.get("id"), gateway=_gateway(seen.endpoint),
                        context=seen.context)
    if verdict.code == "endpoint-policy":
        why = verdict.cause
    elif verdict.code == "not-endpoint-policy":
        why = (f"HeadBucket needs s3:ListBucket; {seen.endpoint.get('id')}'s policy allows it, so the role's "
               "policies or the bucket policy deny it (a HEAD answer carries no message to say which).")
    else:
        why = "HeadBucket needs s3:ListBucket, which the role, the bucket policy or the endpoint policy does not grant."
    return Result(Status.WARN, f"bucket {bucket} is in {region}, but HeadBucket is denied", code="head-denied",
                  evidence={**evidence, "attributed": verdict.code, **verdict.evidence}, caused_by=verdict.caused_by,
                  cause=why + " Object reads and writes may still work.", remedy=verdict.remedy)

