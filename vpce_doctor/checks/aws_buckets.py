"""s3:aws-buckets: can this instance's own software read the AWS-owned buckets it needs through S3's path (its OS's
package repositories, the SSM agent's update, document and Patch Manager buckets, the CloudWatch agent's)?

On every run, one anonymous ranged GET of each object with a known key, at the URL the software itself uses
(anonymous_get; dnf's from the instance's own repository file, dnf_repo): what S3 answers is the truth of the path.
When the cross-check also read the S3 endpoint's policy, it is judged for every bucket (those with no known key
included) and, where the two disagree, the finding says so and goes with what S3 did."""
from __future__ import annotations

import json
import platform
from dataclasses import replace
from typing import List, Mapping, Optional, Sequence, Tuple

from .. import anonymous_get, aws_buckets, dnf_repo, instance_files, policy
from ..aws_buckets import ANONYMOUS, Bucket
from ..context import CaBundleError
from ..model import Check, Remedy, Result, Severity, Status
from . import api, aws_buckets_probe, identity

BLOCKED = ("explicit-deny", "implicit-deny")
PROBE_S = 3.0  # one probe's whole time, cut to what is left of the run: a small object from an endpoint in-Region


def check() -> Check:
    return Check("s3:aws-buckets", "S3 lets through the AWS buckets this instance's software needs", Severity.LOW,
                 run, needs=("tls:s3",), after=("vpc:endpoints", "sts:identity"))


def run(ctx, prior) -> Result:
    release = read_os_release(ctx.path("/etc/os-release"))
    arch = platform.machine() or "x86_64"
    services = {t.service for t in ctx.targets}
    buckets, repo_url = with_dnf_repo(aws_buckets.needed(
        ctx.region, release.get("ID", ""), release.get("VERSION_ID", ""), arch, "ssm" in services,
        ctx.path(aws_buckets.CLOUDWATCH_AGENT_DIR).is_dir(), ctx.domain),
        lambda: dnf_repo.locate(ctx.path, ctx.region, ctx.domain, arch))
    try:
        answers = anonymous_get.get_all([b.url for b in buckets if b.url], anonymous_get.resolver_of(ctx.resolver()),
                                        ctx.ssl_context(), ctx.io_timeout(PROBE_S), ctx.port)
    except CaBundleError:  # tls:s3 has said why; nothing could be verified
        answers = {}
    endpoint = api.endpoint_of(prior, "s3")
    principal = identity.arn(prior.get("sts:identity"))
    os_name = release.get("PRETTY_NAME") or release.get("ID") or ""
    judged = assess(endpoint, buckets, principal,
                    policy.request_context(None, endpoint.get("id"), ctx.facts.vpc_id, ctx.facts.private_ip),
                    ctx.facts.partition or "aws", os_name) if endpoint.get("policy") is not None else None
    return aws_buckets_probe.assess(buckets, answers, judged, aws_buckets_probe.Where(
        endpoint.get("id"), ctx.facts.vpc_id, ctx.region, ctx.facts.partition or "aws", os_name, repo_url))


def with_dnf_repo(buckets: Tuple[Bucket, ...], locate) -> Tuple[Tuple[Bucket, ...], Optional[str]]:
    """On AL2023 the repository bucket and key dnf will ask for, from the instance's repository file when it can be
    read: another S3 object replaces the documented one; a mirror list that is not on S3 (cdn.amazonlinux.com, as
    container images ship) means dnf does not use S3, so no repository bucket is needed."""
    repo = next((b for b in buckets if b.source == aws_buckets.AL2023_DOC), None)
    url = locate() if repo is not None else None
    if repo is None or url is None:
        return buckets, None
    found = dnf_repo.s3_object(url)
    kept = (replace(repo, name=found[0], key=found[1], url=url),) if found else ()
    return tuple(b for b in buckets if b is not repo) if not kept else tuple(
        kept[0] if b is repo else b for b in buckets), url


def read_os_release(path) -> Mapping[str, str]:
    """/etc/os-release, bounded (instance_files: a regular file only, so a FIFO cannot hold the doctor; 16 KiB)."""
    try:
        return aws_buckets.parse_os_release(instance_files.read_text(path, aws_buckets.MAX_OS_RELEASE))
    except OSError:
        return {}


def assess(endpoint: Mapping[str, Optional[str]], buckets: Sequence[Bucket], principal: Optional[str] = None,
           context: Optional[Mapping[str, Optional[str]]] = None, partition: str = "aws", os_name: str = "") -> Result:
    """endpoint: api.endpoint_of's id, policy and type for s3; context: the request's keys without a principal
    (request_context), to which each bucket's caller is added: the role for the agent, nobody for dnf and curl."""
    where = f" ({os_name})" if os_name else ""
    if not endpoint.get("id"):
        return Result(Status.PASS, "no S3 endpoint in this VPC, so no endpoint policy stands between this instance "
                      "and AWS's buckets (vpc:endpoints judges the path)", evidence={"endpoint": None})
    if endpoint.get("policy") is None:
        return Result(Status.PASS, f"{endpoint['id']}'s policy was not read", evidence={"endpoint": endpoint["id"]})
    try:
        parsed = policy.parse(str(endpoint["policy"]))
    except policy.PolicyError as error:
        return Result(Status.WARN, f"{endpoint['id']}'s policy cannot be evaluated: {error}", code="policy-unreadable",
                      evidence={"endpoint": endpoint["id"]})
    gateway = str(endpoint.get("type") or "").lower() == "gateway"
    judged = [(b, _decide(parsed, b, principal, context or {}, partition, gateway)) for b in buckets]
    evidence = {"endpoint": endpoint["id"], "os": os_name or None, "buckets": [
        {"bucket": b.name, "purpose": b.purpose, "effect": d.effect, "statement": d.statement, "source": b.source}
        for b, d in judged]}
    blocked = [(b, d) for b, d in judged if d.effect in BLOCKED]
    if not blocked:
        unknown = [b.name for b, d in judged if d.effect == "unknown"]
        return Result(Status.PASS, f"{endpoint['id']}'s policy lets through the {len(buckets)} AWS buckets this "
                      f"instance's software reads{where}" + (f" (not evaluated: {', '.join(unknown)})" if unknown
                                                              else ""), evidence=evidence)
    return _blocked(str(endpoint["id"]), blocked, partition, where, evidence)


def _decide(parsed: policy.Policy, bucket: Bucket, principal: Optional[str], context: Mapping[str, Optional[str]],
            partition: str, gateway: bool) -> policy.Decision:
    if bucket.who == ANONYMOUS:  # no principal: only "*" matches it, and aws:PrincipalArn is absent
        return policy.evaluate(parsed, "s3:GetObject", bucket.resource(partition), ANONYMOUS,
                               {**context, "aws:principalarn": None, "aws:principalaccount": None}, gateway)
    keys = policy.request_context(principal)
    return policy.evaluate(parsed, "s3:GetObject", bucket.resource(partition), principal,
                           {**context, **{k: v for k, v in keys.items() if k.startswith("aws:principal")}}, gateway)


def _blocked(endpoint: str, blocked: List[Tuple[Bucket, policy.Decision]], partition: str, where: str,
             evidence) -> Result:
    names = ", ".join(f"{b.name} ({b.purpose})" for b, _ in blocked)
    denied = sorted({d.statement for _, d in blocked if d.effect == "explicit-deny" and d.statement})
    add = json.dumps(aws_buckets.statement([b for b, _ in blocked], partition))
    steps = (f"Add this statement to {endpoint}'s policy: {add}. AWS recommends naming this Region's buckets, "
             "never a wildcard such as aws-ssm-*/*.")
    if denied:
        steps += f" Statement {', '.join(denied)} denies them explicitly: exclude these buckets from it first."
    return Result(
        Status.WARN, f"{endpoint}'s policy blocks {len(blocked)} AWS bucket(s) this instance's software reads"
        f"{where}: {names}", code="aws-bucket-blocked", evidence=evidence,
        cause="A gateway endpoint's policy applies to every bucket reached through it, AWS's own too: package "
              "updates, the agent's self-update, Distributor and Patch Manager fail when they next need these, "
              "often weeks after the policy changed.",
        remedy=Remedy(steps, (f"aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {endpoint} --query "
                              "'VpcEndpoints[0].PolicyDocument' --output text > policy.json",
                              f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint} --policy-document "
                              "file://policy.json"), (aws_buckets.SSM_S3_DOC,)))
