"""creds:source and sts:identity: which credentials the doctor uses, and whether AWS accepts them."""
from __future__ import annotations

from typing import Mapping, Optional

from ..aws import PROVIDERS, Call, call
from ..model import Check, Remedy, Result, Severity, Status
from . import api, names

ATTACH = Remedy("Attach an instance profile to the instance, or run where credentials are configured.",
                ("aws ec2 associate-iam-instance-profile --instance-id {instance} "
                 "--iam-instance-profile Name=<profile>",))
UNSHADOW = Remedy("Unset the credential variables (or remove ~/.aws/credentials for this user) so the instance "
                  "profile is used, as the SSM agent does.",
                  ("unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE",))
STS_ENDPOINT = Remedy("Create an interface endpoint for STS with private DNS, and call the regional name "
                      "({name_sts}), not the global STS name.",
                      ("aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name "
                       "{endpoint_sts} --subnet-ids {subnet} --private-dns-enabled",))


def checks(sts_planned: bool, imds_only: bool):
    # With nothing else configured, credentials can only come from the instance profile: without one, every
    # authenticated check follows from imds:profile and is skipped behind it.
    source = Check("creds:source", "the doctor has credentials, from the instance profile", Severity.CRITICAL,
                   run_source, needs=("imds:profile",) if imds_only else ())
    if not sts_planned:
        return (source,)
    return (source, Check("sts:identity", "STS accepts the credentials (GetCallerIdentity)", Severity.CRITICAL,
                          run_identity, needs=("tls:sts", "creds:source"), clients=("sts",)))


def run_source(ctx, prior) -> Result:
    method, problem = ctx.clients.credentials()
    imds_mode = names.imds_mode_broken(prior.get("names:dialled"))
    return assess_source(method, problem, ctx.facts.instance_profile_arn, ctx.facts.instance_id, imds_mode)


def assess_source(method: Optional[str], problem: str, profile_arn: Optional[str],
                  instance: Optional[str] = None, imds_mode: bool = False) -> Result:
    """imds_mode: names:dialled found the SDKs' IMDS endpoint mode pointing at an IMDS that does not answer."""
    evidence = {"provider": method, "instance_profile_arn": profile_arn}
    if method is None:
        return Result(Status.FAIL, f"no credentials: {problem}", code="no-credentials", evidence=evidence,
                      caused_by=("names:dialled",) if imds_mode else (),
                      cause="Neither the environment, ~/.aws nor the instance profile gave credentials"
                            + ("." if profile_arn else ": no instance profile is attached (see imds:profile)."),
                      remedy=ATTACH.filled(instance=instance or "<instance-id>"))
    shown = PROVIDERS.get(method, method)
    if method != "iam-role" and profile_arn:
        return Result(Status.WARN, f"credentials come from {shown}, not the instance profile {profile_arn}",
                      code="shadowed", evidence=evidence, remedy=UNSHADOW,
                      cause="Something on the instance shadows the instance profile: the doctor's API probes and the "
                            "AWS CLI in this shell use other credentials than the SSM agent does.")
    return Result(Status.PASS, f"credentials from {shown}", evidence=evidence)


def run_identity(ctx, prior) -> Result:
    result = call(ctx.clients.client("sts"), "get_caller_identity")
    context = ctx.placeholders()
    return assess_identity(result, ctx.clients.endpoint("sts"), context)


def arn(result) -> Optional[str]:
    """The caller ARN an sts:identity finding got from GetCallerIdentity; None when it did not run or failed."""
    found = result.evidence.get("arn") if result is not None else None
    return str(found) if found else None


def assess_identity(result: Call, endpoint: str, context: Mapping[str, object]) -> Result:
    evidence = result.evidence()
    evidence["endpoint"] = endpoint
    if result.ok:
        arn = str(result.response.get("Arn", ""))
        evidence["arn"] = arn
        return Result(Status.PASS, f"{arn} (account {result.response.get('Account')}, "
                      f"{result.ms:.0f} ms)", evidence=evidence)
    verdict = api.judge(result, "sts:GetCallerIdentity")
    if verdict.code in ("timeout", "unreachable"):
        return Result(Status.FAIL, f"STS at {endpoint} did not answer ({result.code})", code="sts-unreachable",
                      cause="STS cannot be reached; this says nothing about the credentials themselves. "
                            + verdict.cause, remedy=STS_ENDPOINT.filled(**context), evidence=evidence)
    return Result(Status.FAIL, f"GetCallerIdentity failed: {result.code}: {str(result.message)[:200]}",
                  code=verdict.code, cause=verdict.cause, remedy=verdict.remedy,
                  evidence={**evidence, **verdict.evidence}, caused_by=verdict.caused_by)
