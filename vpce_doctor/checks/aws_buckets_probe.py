"""s3:aws-buckets' verdict from what S3 answered to anonymous GETs of AWS-owned objects (anonymous_get), with the
endpoint-policy judgement of checks/aws_buckets.assess when the cross-check read the policy. Pure: no I/O.

Why a bare 403 is the endpoint policy's: an unsigned request has no principal, so no identity policy, permissions
boundary or SCP applies to it, and these buckets let anyone read them (dnf reads them anonymously on every Amazon Linux
instance); what is left on the path is the policy of the S3 endpoint the request went through. S3 does not say so:
"Enhanced access denied messages are returned only for same-account requests or for requests within the same
organization"; others get a generic "Access Denied" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
troubleshoot-403-errors.html, "Access denied message examples"), and an anonymous caller is in no account.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Dict, List, Mapping, Optional, Sequence

from .. import aws_buckets, denials
from ..aws_buckets import INSTANCE, Bucket
from ..model import Remedy, Result, Status

BLOCKED = ("explicit-deny", "implicit-deny")
ARTIFACT_GO = "aws/amazon-ssm-agent agent/fileutil/artifact/artifact.go"
FIND_ENDPOINT = ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
                 "Name=service-name,Values={gateway_s3} --query "
                 "'VpcEndpoints[].[VpcEndpointId,VpcEndpointType]' --output text")
GET_POLICY = ("aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {endpoint} --query 'VpcEndpoints[0].PolicyDocument' "
              "--output text > policy.json")
SET_POLICY = "aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint} --policy-document file://policy.json"


@dataclass(frozen=True)
class Where:
    endpoint: Optional[str]   # the S3 endpoint the cross-check found, None when it did not run
    vpc: Optional[str]
    region: str
    partition: str = "aws"
    os_name: str = ""
    repo_url: Optional[str] = None  # dnf's mirror list as the instance's repository file names it


def outcome(answer: Mapping[str, object]) -> str:
    """allowed | denied (S3's AccessDenied) | not-s3 (something else answered) | unanswered | other (S3 said
    something else: NoSuchKey, a redirect ...)."""
    if "error" in answer:
        return "unanswered"
    if answer.get("status") in (200, 206, 304):
        return "allowed"
    if not answer.get("s3"):
        return "not-s3"
    denied = answer.get("status") == HTTPStatus.FORBIDDEN and answer.get("code") == "AccessDenied"
    return "denied" if denied else "other"


def assess(buckets: Sequence[Bucket], answers: Mapping[str, Mapping[str, object]], judged: Optional[Result],
           where: Where) -> Result:
    """answers: anonymous_get's, by URL; judged: the endpoint-policy verdict (checks/aws_buckets.assess), or None
    when the policy was not read."""
    effects = {b["bucket"]: b for b in (judged.evidence.get("buckets") or [])} if judged is not None else {}
    rows, denied, predicted, contradicted = [], [], [], []
    for bucket in buckets:
        answer = answers.get(bucket.url or "")
        seen = outcome(answer) if answer is not None else None
        effect = (effects.get(bucket.name) or {}).get("effect")
        rows.append({"bucket": bucket.name, "purpose": bucket.purpose, "url": bucket.url, "source": bucket.source,
                     "probe": None if answer is None else {**_short(answer), "outcome": seen},
                     "effect": effect, "statement": (effects.get(bucket.name) or {}).get("statement")})
        if seen == "denied":
            denied.append((bucket, answer))
        elif seen is None and effect in BLOCKED:
            predicted.append(bucket)
        contradicted.extend(_contradiction(bucket, seen, effect))
    evidence = {"endpoint": where.endpoint, "os": where.os_name or None, "repository_url": where.repo_url,
                "buckets": rows, **({"disagreements": contradicted} if contradicted else {})}
    if denied or predicted:
        return _blocked(denied, predicted, where, evidence, contradicted)
    result = _not_blocked(buckets, answers, judged, where, evidence)
    if where.repo_url and not any(b.url == where.repo_url for b in buckets):  # dnf's mirror list is not on S3
        return replace(result, summary=f"{result.summary}; dnf's mirror list is {where.repo_url}, not on S3 "
                                       "(not judged here)")
    return result


def _contradiction(bucket: Bucket, seen: Optional[str], effect: Optional[str]) -> List[str]:
    """S3's answer against the endpoint policy as evaluated here, when they disagree (S3's answer stands)."""
    if seen not in ("allowed", "denied") or effect not in (*BLOCKED, "allow") or (seen == "allowed") == (
            effect == "allow"):
        return []
    return [f"{bucket.name}: S3 {'let the read through' if seen == 'allowed' else 'denied it'}"
            f" though the policy as read {'allows' if effect == 'allow' else 'blocks'} it"]


def _not_blocked(buckets, answers, judged: Optional[Result], where: Where, evidence) -> Result:
    odd = [(b, answers[b.url]) for b in buckets if b.url in answers and outcome(answers[b.url]) != "allowed"]
    if odd:
        said = "; ".join(f"{b.name}: {_said(a)}" for b, a in odd)
        return Result(Status.WARN, f"S3 did not serve {len(odd)} AWS-owned object(s) this instance's software reads: "
                      f"{said}", code="aws-bucket-unanswered", evidence=evidence,
                      cause="Neither an answer nor S3's denial: the name may resolve elsewhere (a hosts entry, a DNS "
                            "firewall), a proxy or firewall may answer for S3, or the object's name in the doctor's "
                            "list may be out of date.")
    probed = [b.name for b in buckets if b.url in answers]
    on = f"{where.os_name}: " if where.os_name else ""
    took = max((float(answers[b.url].get("ms") or 0) for b in buckets if b.url in answers), default=0.0)
    said = f"S3 served {', '.join(probed)} to an anonymous read ({took:.0f} ms)" if probed else \
        "no AWS-owned object with a known key to ask for"
    if judged is not None and judged.code == "policy-unreadable":
        said += f"; {judged.summary}"
    elif judged is not None:
        said += f"; {where.endpoint}'s policy lets through the {len(buckets)} buckets"
    if evidence.get("disagreements"):
        said += " (the policy as evaluated here disagrees: S3's answer stands)"
    return Result(Status.PASS, on + said, evidence=evidence)


def _blocked(denied, predicted: List[Bucket], where: Where, evidence, contradicted: List[str]) -> Result:
    parts = []
    if denied:
        parts.append("S3 denied anonymous reads of " + ", ".join(
            f"s3://{b.name}/{b.key} ({b.purpose}: {_said(a)})" for b, a in denied))
    if predicted:
        parts.append(f"{where.endpoint}'s policy blocks " + ", ".join(f"{b.name} ({b.purpose})" for b in predicted))
    on = f"{where.os_name}: " if where.os_name else ""
    blocked = [b for b, _ in denied] + predicted
    return Result(Status.WARN, on + "; ".join(parts), code="aws-bucket-blocked", evidence=evidence,
                  cause=_cause(denied, predicted, contradicted), remedy=_remedy(blocked, where))


def _cause(denied, predicted: List[Bucket], contradicted: List[str]) -> str:
    said = []
    if denied:
        stated = [denials.parse(a.get("code"), a.get("message")) for _, a in denied]
        named = any(d.policy_type == "vpc-endpoint" and d.certainty == "stated" for d in stated)
        said.append(("S3 names the VPC endpoint policy. " if named else
                     "S3 says only \"Access Denied\", as it does to callers outside the bucket's account; but an "
                     "unsigned request has no principal, so no identity policy or SCP applies, and AWS lets anyone "
                     "read these buckets: what denies it is the policy of the S3 endpoint on this path. ") +
                    "A gateway endpoint's policy applies to every bucket reached through it, AWS's own too, so "
                    f"{_what_fails([b for b, _ in denied])} fail now, often weeks after the policy changed.")
        if any(b.who == INSTANCE for b, _ in denied):
            said.append(f"The agent first asks with its role, then anonymously ({ARTIFACT_GO}: Download tries "
                        "s3Download, then httpDownload): its update works only if the endpoint policy admits one "
                        "of them and, for the signed one, the role's policies grant s3:GetObject on the bucket.")
    if predicted:
        said.append("The buckets with no object the doctor can ask for are judged from the endpoint policy as read: "
                    "Distributor, Patch Manager and AWS documents fail when they next need them.")
    if contradicted:
        said.append("Where the policy as read and S3 disagree, S3's answer stands (another S3 endpoint on the path, or "
                    "a policy changed since it was read): " + "; ".join(contradicted) + ".")
    return " ".join(said)


def _what_fails(buckets: List[Bucket]) -> str:
    """In the operator's words: `dnf update` for a package repository, the bucket's purpose otherwise."""
    said = ["`dnf update`" if "repositories" in b.purpose and "dnf" in b.purpose else
            "`yum update`" if "repositories" in b.purpose else b.purpose for b in buckets]
    return " and ".join(dict.fromkeys(said))


def _remedy(blocked: List[Bucket], where: Where) -> Remedy:
    add = json.dumps(aws_buckets.statement(blocked, where.partition))
    endpoint = where.endpoint or "<s3-endpoint-id>"
    find = () if where.endpoint else (FIND_ENDPOINT,)
    commands = Remedy("", (*find, GET_POLICY, SET_POLICY)).filled(  # only the commands: the text holds JSON braces
        vpc=where.vpc or "<vpc-id>", region=where.region, endpoint=endpoint).commands
    return Remedy(
        f"Add this statement to the policy of {endpoint}{'' if where.endpoint else ' (the first command finds it)'}: "
        f"{add}. AWS recommends naming this Region's buckets, never a wildcard such as aws-ssm-*/*; if a Deny "
        "statement names only your buckets (NotResource), exclude these from it too.",
        commands, (aws_buckets.SSM_S3_DOC, aws_buckets.AL2023_DOC))


def _said(answer: Mapping[str, object]) -> str:
    if "error" in answer:
        return f"no answer ({answer['error']})"
    code = f" {answer['code']}" if answer.get("code") else ""
    who = "" if answer.get("s3") else f" from {answer.get('server') or 'a server'} that is not S3"
    return f"{answer.get('status')}{code}{who}"


def _short(answer: Mapping[str, object]) -> Dict[str, object]:
    return {k: answer.get(k) for k in ("status", "code", "error", "ms", "address") if answer.get(k) is not None}
