"""ssm:run_command: which channel delivers Run Command here (ssmmessages or ec2messages), for this agent version.

aws/amazon-ssm-agent@1c217c89 agent/ssmconnectionchannel/ssmconnectionchannel.go: once ssmmessages (MGS) connects
the agent switches ec2messages (MDS) off (mdsSwitchChannel <- false), and back on when MGS fails (MGSFailed ->
mdsSwitchChannel <- true). The Systems Manager user guide (VPC endpoints) says that from 3.3.40.0 ssmmessages is
used instead of ec2messages whenever available. So with such an agent a broken ec2messages path is a lost fallback:
a warning, not a failure; ssm:run_command says whether commands still arrive.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Tuple

from ..model import Check, Remedy, Result, Severity, Status
from ..plan import endpoint_service_name
from .agent import version_of, version_tuple

MGS_SINCE = (3, 1, 821, 0)   # Run Command over ssmmessages (MGS), with ec2messages (MDS) as the fallback
MDS_OFF_SINCE = (3, 3, 40, 0)  # ec2messages switched off once ssmmessages connects
CHANNELS = ("tls:ssmmessages", "tls:ec2messages")
ENDPOINT = Remedy("Create the missing interface endpoint with private DNS (see the failing check above).",
                  ("aws ec2 create-vpc-endpoint --vpc-endpoint-type Interface --service-name "
                   "{endpoint_service} --vpc-id {vpc} --subnet-ids {subnet} --private-dns-enabled",))


def check() -> Check:
    return Check("ssm:run_command", "Run Command has a working delivery channel", Severity.HIGH, run,
                 after=CHANNELS + ("ssm:agent",))


def as_fallback(check: Check) -> Check:
    """An ec2messages network check whose failure, for an agent >= 3.3.40.0, is a lost fallback (a warning)."""
    def run_as_fallback(ctx, prior) -> Result:
        behind = next((n for n in check.needs if is_lost_fallback(prior.get(n))), None)
        if behind:  # what it would test is already known to be broken, and already a warning
            return Result(Status.WARN, f"not run: {behind} is a lost fallback", code="blocked",
                          evidence={"blocked_by": behind, "lost_fallback": True})
        return lost_fallback(check.run(ctx, prior), version_tuple(version_of(prior)))
    return replace(check, run=run_as_fallback, after=check.after + ("ssm:agent",))


def lost_fallback(result: Result, version: Optional[Tuple[int, ...]]) -> Result:
    if result.status is not Status.FAIL or version is None or version < MDS_OFF_SINCE:
        return result
    return replace(result, status=Status.WARN, evidence={**result.evidence, "lost_fallback": True},
                   cause=(result.cause + " " if result.cause else "") + "This agent (>= 3.3.40.0) uses ec2messages "
                         "only as the fallback when ssmmessages fails, so this is a lost fallback, not a failure: "
                         "ssm:run_command says whether commands arrive.")


def is_lost_fallback(result: Optional[Result]) -> bool:
    return result is not None and bool(result.evidence.get("lost_fallback"))


def run(ctx, prior) -> Result:
    version = version_tuple(version_of(prior))
    channels = {c.split(":")[1]: ("fail" if is_lost_fallback(prior.get(c)) else prior[c].status.value)
                if c in prior else "unplanned" for c in CHANNELS}
    context = ctx.placeholders()
    return assess(channels["ssmmessages"], channels["ec2messages"], version, context)


def _endpoint(service: str, context: Mapping[str, object]) -> Remedy:
    """ENDPOINT for one channel, with its endpoint service name from the placeholders (plan.placeholders)."""
    name = context.get(f"endpoint_{service}") or endpoint_service_name(
        service, str(context.get("region") or "<region>"), str(context.get("domain") or "amazonaws.com"))
    return ENDPOINT.filled(**{**context, "service": service, "endpoint_service": name})


def assess(mgs: str, mds: str, version: Optional[Tuple[int, ...]], context: Mapping[str, object]) -> Result:
    """mgs/mds: the status of tls:ssmmessages / tls:ec2messages ("pass", "fail", "skip", "unplanned", ...)."""
    shown = ".".join(map(str, version)) if version else "unknown"
    evidence = {"ssmmessages": mgs, "ec2messages": mds, "agent_version": shown}
    works_mgs, works_mds = mgs in ("pass", "warn"), mds in ("pass", "warn")
    uses_mgs = version is None or version >= MGS_SINCE
    if uses_mgs and works_mgs:
        if works_mds or mds == "unplanned":
            return Result(Status.PASS, f"Run Command arrives over ssmmessages (agent {shown})", evidence=evidence)
        return Result(Status.WARN, f"Run Command arrives over ssmmessages (agent {shown}); ec2messages, its "
                      f"fallback, is {mds}", code="no-fallback", evidence=evidence,
                      caused_by=("tls:ec2messages",),
                      cause="This agent turns ec2messages back on when ssmmessages fails "
                            "(ssmconnectionchannel.go); without it, commands end as Delivery Timed Out whenever "
                            "ssmmessages is down.",
                      remedy=_endpoint("ec2messages", context))
    if works_mds and not uses_mgs:
        return Result(Status.PASS, f"Run Command arrives over ec2messages, the only channel of agent {shown}",
                      evidence=evidence)
    if works_mds:
        return Result(Status.WARN, f"Run Command arrives over ec2messages only: ssmmessages is {mgs} (agent {shown})",
                      code="fallback-only", evidence=evidence, caused_by=("tls:ssmmessages",),
                      cause="Commands still arrive, through the fallback; Session Manager needs ssmmessages.",
                      remedy=_endpoint("ssmmessages", context))
    if mgs == mds == "unplanned":
        return Result(Status.WARN, "no channel was checked: plan ssmmessages and ec2messages", code="unknown",
                      evidence=evidence)
    broken = [f"tls:{name}" for name, status in (("ssmmessages", mgs), ("ec2messages", mds)) if status != "unplanned"]
    return Result(Status.FAIL, f"no channel delivers Run Command: ssmmessages is {mgs}, ec2messages is {mds} "
                  f"(agent {shown})", code="undeliverable", evidence=evidence, caused_by=tuple(broken),
                  cause="Commands sent to this instance end as Delivery Timed Out.",
                  remedy=_endpoint("ssmmessages" if uses_mgs else "ec2messages", context))
