"""vpce-doctor remote --instance-id ID: the control plane's judgement of one instance, from a workstation or CI with
read-only credentials (packaging/iam/vpce-doctor-remote-policy.json), for the instance the doctor cannot run on.

The same report (mode "remote"), root-cause rules and exit codes as on the instance. What only the instance can see
(its DNS answers, TCP and TLS to the endpoints, the agent and its logs, the clock) is listed as not seen from
outside instead of guessed. The AWS Support runbooks AWSSupport-TroubleshootManagedInstance and
AWSSupport-AnalyzeAWSEndpointReachabilityFromEC2 look at the same control-plane facts.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, Mapping, Optional, Sequence, TextIO, Tuple

from . import __version__, plan
from .arguments import Parser, instance_id, operator_region
from .settings import REGION_RE, Settings, UsageError

DEFAULT_TIMEOUT = 30.0  # a workstation talks to public endpoints across the Internet: more than the instance's 20
CONNECT_TIMEOUT = 5.0
# on-instance checks remote mode makes too (ssm:registration: without GetConnectionStatus and the local reconciliation)
COVERED = ("vpc:endpoints", "s3:aws-buckets", "session:preferences", "ssm:registration")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="vpce-doctor remote", description="Judge one instance's path to AWS from the control plane "
                "(subnet, route table, security groups, network ACLs, endpoints and their policies, instance "
                "profile, IMDS options, SSM's view), without running on it.")
    p.add_argument("--instance-id", required=True)
    p.add_argument("--region", help="the instance's Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)")
    p.add_argument("--services", help="comma-separated services (default: ssm,ssmmessages,ec2messages,s3)")
    p.add_argument("--output", "-o", choices=("text", "json", "summary"), default="text")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="deadline for the whole run in seconds")
    return p


def main(argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    try:
        args = parser().parse_args(list(argv))
        settings = _settings(args, environ)
    except UsageError as error:
        stderr.write(f"vpce-doctor remote: {error}\n")
        return 64
    from .render import document, text
    report = diagnose(args.instance_id, settings, environ)
    if settings.output == "json":
        stdout.write(document.render(report))
    elif settings.output == "summary":
        stdout.write(text.summary(report))
    else:
        stdout.write(header(report) + "".join(text.finding(f) for f in report.findings) + text.footer(report))
    stdout.flush()
    return int(report.exit_code)


def _settings(args, environ: Mapping[str, str]) -> Settings:
    from . import settings as settings_mod
    instance_id(args.instance_id)
    region = operator_region(args.region, environ)
    if not region or not REGION_RE.fullmatch(region):
        raise UsageError(f"--region {region!r} is not a Region name" if region else
                         "no Region: use --region, AWS_REGION or the profile's region")
    raw = {"region": region, "output": args.output, "timeout": args.timeout,
           "connect_timeout": min(CONNECT_TIMEOUT, args.timeout)}
    if args.services:
        raw["services"] = args.services
    return settings_mod.validate({k: settings_mod._coerce(k, v) for k, v in raw.items()})


def diagnose(instance_id: str, settings: Settings, environ: Mapping[str, str]):
    """Describe the instance, then run the remote catalogue on what that said, within one deadline."""
    from .aws import Clients, call
    from .checks import remote_catalogue
    from .doctor import instance_facts, now_utc
    from .model import Report
    from .runner import run_checks
    started, started_at = time.monotonic(), now_utc()
    deadline = started + settings.timeout
    region = str(settings.region)
    clients = Clients(region, {"ec2": None, "iam": None, "ssm": None}, settings.connect_timeout,
                      lambda: deadline - time.monotonic())
    ec2 = clients.client("ec2")
    described = call(ec2, "describe_instances", InstanceIds=[instance_id])
    ctx = _context(settings, environ, instance_id, described, ec2, clients, deadline)
    checks = remote_catalogue(ctx.targets, described, settings)
    findings = run_checks(checks, ctx, deadline=deadline).findings
    return Report(__version__, started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  round(time.monotonic() - started, 3), instance_facts(ctx), findings, mode="remote",
                  not_seen=not_seen(ctx.targets, settings))


def _context(settings: Settings, environ, instance_id: str, described, ec2, clients, deadline: float):
    from .checks.remote import instance_of
    from .context import Context
    from .facts import Facts, Imds
    found = instance_of(described)
    region = str(settings.region)
    domain = plan.domain_for(region)
    vpc_cidrs, subnet_cidr = _network(ec2, found.get("VpcId"), found.get("SubnetId"))
    profile = (found.get("IamInstanceProfile") or {}).get("Arn")
    facts = Facts(Imds(""), instance_id=instance_id, region=region,
                  az=(found.get("Placement") or {}).get("AvailabilityZone"), domain=domain,
                  partition=next((p for p, pattern, _ in plan.PARTITIONS if pattern.match(region)), "aws"),
                  vpc_id=found.get("VpcId"), vpc_cidrs=vpc_cidrs, subnet_id=found.get("SubnetId"),
                  subnet_cidr=subnet_cidr, security_groups=tuple(g["GroupId"] for g in found.get("SecurityGroups", [])),
                  private_ip=found.get("PrivateIpAddress"), instance_profile_arn=profile)
    agent = plan.AgentConfig("")
    targets = plan.targets(settings.services, region, domain, agent)
    return Context(settings, facts, targets, agent, environ, deadline, clients=clients)


def _network(ec2, vpc_id: Optional[str], subnet_id: Optional[str]) -> Tuple[Tuple[str, ...], Optional[str]]:
    """The VPC's associated CIDRs and the subnet's (what IMDS would have told the instance)."""
    from .aws import Call, call
    vpcs = call(ec2, "describe_vpcs", VpcIds=[vpc_id]) if vpc_id else Call(False)
    found = (vpcs.response.get("Vpcs") or [{}])[0]
    cidrs = tuple(a["CidrBlock"] for a in found.get("CidrBlockAssociationSet", [])
                  if (a.get("CidrBlockState") or {}).get("State") == "associated") or \
        ((found["CidrBlock"],) if found.get("CidrBlock") else ())
    subnets = call(ec2, "describe_subnets", SubnetIds=[subnet_id]) if subnet_id else Call(False)
    subnet = (subnets.response.get("Subnets") or [{}])[0]
    return cidrs, subnet.get("CidrBlock")


def not_seen(targets, settings: Settings) -> Tuple[str, ...]:
    """The checks a run on the instance would make and the control plane cannot: every one but those covered."""
    from .checks import catalogue
    return tuple(c.id for c in catalogue(targets, settings) if c.id not in COVERED)


def header(report) -> str:
    from .render import text
    return text.header(__version__, report.instance).rstrip("\n") + \
        "\nremote: judged from the control plane; not seen from outside: " + ", ".join(report.not_seen) + "\n\n"


def fleet_verdicts(instance_ids: Sequence[str], region: str, environ: Mapping[str, str],
                   judge=None) -> Dict[str, Dict[str, object]]:
    """`vpce-doctor fleet --remote`: this for each instance its command never reached (four at a time), as the
    fleet document's row source "remote": its root causes from the control plane."""
    from concurrent.futures import ThreadPoolExecutor
    settings = Settings(region=region, timeout=DEFAULT_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    judge = judge or diagnose  # a seam for tests: the fleet's bookkeeping apart from the control plane

    def one(iid: str) -> Dict[str, object]:
        report = judge(iid, settings, environ)
        return {"source": "remote", "remote_exit_code": int(report.exit_code),
                "root_causes": [{"id": f.check.id, "code": f.result.code} for f in report.root_causes]}
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(instance_ids, pool.map(one, instance_ids)))
