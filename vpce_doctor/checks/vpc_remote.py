"""vpc:endpoints and s3:aws-buckets from outside the instance (`vpce-doctor remote`): the same judgement as on the
instance (vpc.assess, aws_buckets.assess), fed from the control plane where the instance would have used its own
eyes. The endpoints' addresses come from their network interfaces instead of DNS, S3's from its prefix list."""
from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Dict, List, Mapping, Sequence

from .. import aws_buckets as buckets_data
from .. import policy
from ..aws import call
from ..model import Check, Result, Severity, Status
from . import api, aws_buckets, remote, vpc, vpc_observe


def checks(services: Sequence[str], document: str = "SSM-SessionManagerRunShell") -> Sequence[Check]:
    return (
        Check("vpc:endpoints", "the VPC's endpoints, DNS attributes, security groups, ACLs and routes let this "
              "instance reach them", Severity.CRITICAL, run, needs=("remote:instance",)),
        *(remote.session_logging(document) if "ssm" in services else ()),
        remote.registration(),
        *((Check("s3:aws-buckets", aws_buckets.check().title, Severity.LOW, run_buckets,
                 needs=("vpc:endpoints",), after=("iam:role", "ssm:registration")),) if "s3" in services else ()),
    )


def run(ctx, prior) -> Result:
    facts, ec2 = ctx.facts, ctx.clients.client("ec2")
    services = [t.service for t in ctx.targets]
    seen = vpc_observe.observe(ec2, facts.vpc_id, facts.subnet_id, facts.security_groups,
                               ctx.endpoint_service_name("s3", gateway=True) if "s3" in services else None)
    endpoints = seen["endpoints"].response.get("VpcEndpoints", [])
    enis = sorted({n for e in endpoints for n in e.get("NetworkInterfaceIds", [])})
    described = call(ec2, "describe_network_interfaces", NetworkInterfaceIds=enis) if enis else vpc_observe.NOTHING
    addresses = endpoint_addresses(endpoints, described.response.get("NetworkInterfaces", []))
    found = vpc_observe.prefix_list(seen)
    cidrs = found.cidrs if found else []
    addresses.update({"s3": prefix_addresses(cidrs)} if "s3" in services else {})
    return outside(ranges(cidrs),
                   vpc.assess(seen, services, ctx.region, facts.vpc_id, list(facts.vpc_cidrs),
                              list(facts.security_groups), facts.private_ip, facts.az, addresses.get("s3", []),
                              facts.subnet_id, domain=ctx.domain, addresses=addresses, subnet_cidr=facts.subnet_cidr))


def endpoint_addresses(endpoints: Sequence[Mapping], interfaces: Sequence[Mapping]) -> Dict[str, List[str]]:
    """service -> the private addresses of its interface endpoint's network interfaces (what its private DNS name
    resolves to inside the VPC)."""
    address = {n.get("NetworkInterfaceId"): str(n.get("PrivateIpAddress") or "") for n in interfaces}
    return {str(e.get("ServiceName", "")).rsplit(".", 1)[-1]: [address[n] for n in e.get("NetworkInterfaceIds", [])
                                                              if address.get(n)]
            for e in endpoints if str(e.get("VpcEndpointType", "")).lower() == "interface"}


def prefix_addresses(cidrs: Sequence[str]) -> List[str]:
    """One address of the S3 prefix list's first CIDR: where the gateway route sends S3 traffic."""
    try:
        return [str(next(ipaddress.ip_network(cidrs[0], strict=False).hosts()))] if cidrs else []
    except (ValueError, StopIteration):
        return []


def ranges(cidrs: Sequence[str]) -> Dict[str, str]:
    """The address prefix_addresses() stood in with -> the prefix list's CIDR it stands for."""
    return {address: cidrs[0] for address in prefix_addresses(cidrs)}


def outside(stood_in: Mapping[str, str], result: Result) -> Result:
    """On the instance a problem that breaks a path is a warning that explains the failing probe; from outside no
    probe runs, so the problem is the failure itself. S3's stand-in address is named as the range it stands for."""
    def say(text: str) -> str:
        for address, cidr in stood_in.items():
            text = text.replace(f"{address}/32", cidr).replace(f"from {address} ", f"from {cidr} ") \
                .replace(f"to {address} ", f"to {cidr} ")
        return text
    explains = vpc.explains(result)
    if result.status is not Status.WARN or not explains:
        return result
    remedy = result.remedy and replace(result.remedy, commands=tuple(say(c) for c in result.remedy.commands))
    return replace(result, status=Status.FAIL, summary=say(result.summary), remedy=remedy,
                   cause=f"It breaks the path {', '.join(explains)} would probe on the instance; from outside no "
                         "probe runs, so this is the failure itself.")


def run_buckets(ctx, prior) -> Result:
    os_id, version = remote.platform(prior.get("ssm:registration"))
    services = {t.service for t in ctx.targets}
    endpoint = api.endpoint_of(prior, "s3")
    needed = buckets_data.needed(ctx.region, os_id, version, ssm="ssm" in services)
    return aws_buckets.assess(endpoint, needed, remote.role_arn(prior.get("iam:role")),
                              policy.request_context(None, endpoint.get("id"), ctx.facts.vpc_id, ctx.facts.private_ip),
                              ctx.facts.partition or "aws", " ".join(p for p in (os_id, version) if p))
