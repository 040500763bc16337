"""names:dialled: the names this instance's software will really dial, when a setting makes them differ from the ones
the dns checks test (global STS, dual-stack, FIPS, AWS_ENDPOINT_URL*), each resolved and judged like a service name:
inside the VPC (an endpoint's private DNS covers it), or public (gateway services only), or no private path."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Dict, List, Mapping, Optional, Sequence

from .. import dialled
from ..dialled import Dialled
from ..model import Check, Remedy, Result, Severity, Status
from ..settings import GATEWAY_SERVICES
from . import dns, dns_query

CONFIG_LIMIT = 256 * 1024
SDK_DOC = "https://docs.aws.amazon.com/sdkref/latest/guide/feature-endpoints.html"
FIXES = {
    "global-sts": ("sts.amazonaws.com has no VPC endpoint name: an STS interface endpoint's private DNS covers only "
                   "sts.{region}.{domain}. Use the regional name (botocore's default since sts_regional_endpoints "
                   "became regional).",
                   ("unset AWS_STS_REGIONAL_ENDPOINTS", "aws configure set sts_regional_endpoints regional"),
                   "https://docs.aws.amazon.com/sdkref/latest/guide/feature-sts-regionalized-endpoints.html"),
    "dualstack": ("The dual-stack name is not covered by this VPC's endpoints: their private DNS answers only for "
                  "the names it was created for. Turn the setting off on IPv4 instances, or give the endpoint a "
                  "dual-stack IP address type and check that its private DNS answers for this name.",
                  ("unset AWS_USE_DUALSTACK_ENDPOINT", "aws configure set use_dualstack_endpoint false",
                   "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
                   "--query "
                   "'VpcEndpoints[].[ServiceName,IpAddressType,DnsOptions.DnsRecordIpType,DnsEntries[].DnsName]'"),
                  "https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html"),
    "fips": ("No endpoint answers for the FIPS name in this VPC: FIPS names are separate endpoint services "
             "(e.g. {endpoint_ssm}-fips) offered in few Regions. Create that endpoint where it exists, "
             "or turn the setting off.",
             ("unset AWS_USE_FIPS_ENDPOINT", "aws configure set use_fips_endpoint false",
              "aws ec2 describe-vpc-endpoint-services --filters Name=service-name,Values='*-fips' "
              "--query 'ServiceNames'"),
             SDK_DOC),
    "endpoint-url": ("The configured endpoint URL's host has no private answer: point it at the service's regional "
                     "name (which the endpoint's private DNS covers) or at the endpoint's own DNS name, or remove it.",
                     ("unset AWS_ENDPOINT_URL", "aws configure get endpoint_url"),
                     "https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html"),
}
IMDS_MODE = Remedy(
    "IMDS answers here only at [fd00:ec2::254], but SDKs and the AWS CLI ask 169.254.169.254 unless told otherwise: "
    "their instance-profile credentials fail. Set the IMDS endpoint mode to IPv6 for them (and for services' "
    "units).", ("aws configure set ec2_metadata_service_endpoint_mode IPv6",
                "echo 'AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6' >> /etc/environment"),
    ("https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-client.html",))

IMDS_V6_OFF = Remedy(
    "Turn on IMDS's IPv6 endpoint, or drop the IPv6 endpoint mode where IPv4 IMDS works.",
    ("aws ec2 modify-instance-metadata-options --instance-id {instance} --http-protocol-ipv6 enabled "
     "--http-endpoint enabled", "unset AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
     "aws configure set ec2_metadata_service_endpoint_mode IPv4"),
    ("https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-existing-instances.html",))


def check(services: Sequence[str]) -> Check:
    return Check("names:dialled", "the names the instance's SDKs and agent will dial have a private path",
                 Severity.HIGH, partial(run, services=tuple(services)), needs=("dns:resolver",))


def run(ctx, prior, *, services) -> Result:
    environ = ctx.environ
    profile, problem = read_profile(environ, ctx.host.root)
    settings = dialled.botocore_settings(environ, profile, "the doctor's environment")
    names = dialled.botocore_names(services, ctx.region, ctx.domain, settings)
    agent_env = _agent_environ(ctx)
    config = ctx.agent_config
    flag = f'"UseDualStackEndpoint": true in {config.path}' if config.use_dualstack else None
    names += dialled.agent_names(services, ctx.region, ctx.domain, flag, agent_env,
                                 [s for s, _ in config.endpoints])
    resolver, timeout = ctx.resolver(), ctx.io_timeout()
    unique = sorted({n.name for n in names if n.name})[:24]
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = dict(zip(unique, pool.map(lambda n: (dns_query.lookup(resolver, n, "A", timeout),
                                                      dns_query.lookup(resolver, n, "AAAA", timeout)), unique)))
    facts = ctx.facts
    context = ctx.placeholders()
    return assess(names, found, list(facts.vpc_cidrs) + list(facts.vpc_ipv6_cidrs), context,
                  dialled.imds_mode_problem(facts.imds.endpoint, settings, environ), problem,
                  _ipv6_mode_unanswered(ctx, dialled.imds_ipv6_mode(settings, environ)))


def _ipv6_mode_unanswered(ctx, where: str) -> str:
    """SDKs told to use IMDS over IPv6: does [fd00:ec2::254] answer? (what gather saw, else one token PUT)"""
    from ..facts import IPV6_ENDPOINT, token, usable
    imds = ctx.facts.imds
    if not where or imds.disabled_by_env or "[" in imds.endpoint:
        return ""
    reply = imds.tokens.get(IPV6_ENDPOINT) or token(IPV6_ENDPOINT, ctx.remaining)
    return "" if usable(reply) else f"{where}; [fd00:ec2::254] answered {reply.error or f'HTTP {reply.status}'}"


def assess(names: Sequence[Dialled], found: Mapping[str, tuple], vpc_cidrs: Sequence[str],
           context: Optional[Dict[str, str]] = None, imds_mode: str = "", problem: str = "",
           imds_mode6: str = "") -> Result:
    """found: {name: (A lookup, AAAA lookup)} as dns_query.lookup returns them."""
    context = context or {}
    verdicts = {n.name: _verdict(n, found.get(n.name), vpc_cidrs) for n in names}
    evidence = {"names": [{"service": n.service, "name": n.name, "kind": n.kind, "setting": n.setting,
                           "who": n.who, "answer": verdicts[n.name][1]} for n in names],
                "config_problem": problem, "imds_mode": imds_mode or imds_mode6}
    bad = [n for n in names if not verdicts[n.name][0]]
    if bad:
        first = bad[0]
        text, commands, link = FIXES[first.kind]
        code = {"dualstack": "dualstack-not-covered", "fips": "fips-no-endpoint"}.get(first.kind, first.kind)
        return Result(Status.FAIL,
                      f"{len(bad)} name(s) that will be dialled have no private path: {_grouped(bad, verdicts)}",
                      cause=f"A setting makes {first.who} dial {first.name} instead of the name the endpoint's "
                            f"private DNS covers; from this subnet that name has no path.", code=code,
                      remedy=Remedy(text, _commands(first, commands), (link,)).filled(**context), evidence=evidence)
    if imds_mode:
        return Result(Status.FAIL, f"IMDS answers only over IPv6, and SDKs will ask it over IPv4 ({imds_mode})",
                      cause="botocore and the AWS CLI use 169.254.169.254 unless the endpoint mode is IPv6, so "
                            "every instance-profile credential fetch fails on this instance.",
                      code="imds-mode-ipv4", remedy=IMDS_MODE, evidence=evidence)
    if imds_mode6:
        return Result(Status.FAIL, f"SDKs are told to ask IMDS over IPv6, which does not answer here ({imds_mode6})",
                      cause="With the endpoint mode IPv6, botocore and the AWS CLI fetch instance-profile credentials "
                            "only from [fd00:ec2::254], which answers only when the instance's HttpProtocolIpv6 "
                            "option is enabled (off by default): every credential fetch fails.",
                      code="imds-mode-ipv6", remedy=IMDS_V6_OFF.filled(**context), evidence=evidence)
    if problem:
        return Result(Status.WARN, problem, code="config-unreadable", evidence=evidence,
                      cause="The shared config file could not be read, so its settings were not judged.")
    if not names:
        return Result(Status.PASS, "no setting changes the names dialled (the dns checks test them)", evidence=evidence)
    return Result(Status.PASS, "; ".join(f"{n.name} ({n.setting}) → {verdicts[n.name][1]}" for n in names),
                  evidence=evidence)


def imds_mode_broken(result) -> bool:
    """A names:dialled finding that found the SDKs' IMDS endpoint mode pointing at an IMDS that does not answer, so
    botocore gets no instance-profile credentials."""
    return result is not None and result.code in ("imds-mode-ipv4", "imds-mode-ipv6")


def _grouped(bad: Sequence[Dialled], verdicts) -> str:
    """One clause per setting: the names it produces, what each answered, and who dials them."""
    by_setting: Dict[tuple, List[str]] = {}
    for n in bad:
        by_setting.setdefault((n.who, n.setting), []).append(f"{n.name} → {verdicts[n.name][1]}")
    return "; ".join(f"{', '.join(found)} ({who}: {setting})" for (who, setting), found in by_setting.items())


def _commands(first: Dialled, commands: Sequence[str]) -> tuple:
    """The fix where the setting lives: the agent's config file or unit, else the shell and ~/.aws/config."""
    if "UseDualStackEndpoint" in first.setting:
        return ('sudo sed -i \'s/"UseDualStackEndpoint": *true/"UseDualStackEndpoint": false/\' '
                '/etc/amazon/ssm/amazon-ssm-agent.json && sudo systemctl restart amazon-ssm-agent',
                *commands[2:])
    if "the SSM agent's environment" in first.setting:
        return ("sudo systemctl edit amazon-ssm-agent   # remove the Environment= line, then restart the agent",) \
            + tuple(commands[2:])
    return tuple(commands)


def _verdict(name: Dialled, lookups, vpc_cidrs) -> tuple:
    """(has a private path, what was seen)."""
    if not name.name:
        return False, "not a host name"
    if lookups is None:
        return False, "not looked up (too many names)"
    a, aaaa = lookups
    got = list(a.get("addresses") or ()) + list(aaaa.get("addresses") or ())
    if not got:
        return False, str(a.get("code"))
    inside = [x for x in got if dns.inside_vpc(x, vpc_cidrs)]
    if len(inside) == len(got):
        return True, ", ".join(got) + " (inside the VPC)"
    # S3's dual-stack and FIPS names are S3's public addresses, reached like s3.<region> through the gateway route.
    gateway = name.service in GATEWAY_SERVICES and name.kind != "endpoint-url"
    return gateway, ", ".join(got) + (" (public: the gateway endpoint's route)" if gateway else ", outside the VPC")


def read_profile(environ: Mapping[str, str], root: str) -> tuple:
    """The shared config file's profile as botocore picks it: AWS_CONFIG_FILE, else ~/.aws/config; AWS_PROFILE,
    else default. Regular files only, at most CONFIG_LIMIT bytes."""
    shown = environ.get("AWS_CONFIG_FILE") or os.path.join(environ.get("HOME") or "/root", ".aws", "config")
    path = os.path.join(root, shown.lstrip("/")) if root not in ("", "/") else shown
    text = _read_small(path)
    if text is None:
        return {}, ""
    if isinstance(text, Exception):
        return {}, f"{shown} cannot be read: {text}"
    return dialled.parse_profile(text, environ.get("AWS_PROFILE") or "default", shown)


def _read_small(path: str):
    """The file's text, None when absent, the error when unreadable (bounded: instance_files.read_text)."""
    from ..instance_files import read_text
    try:
        return read_text(path, CONFIG_LIMIT, whole=True)
    except FileNotFoundError:
        return None
    except OSError as error:
        return error


def _agent_environ(ctx) -> Dict[str, str]:
    from ..processes import list_processes, named, read_environ
    try:
        table = (ctx.host.processes or list_processes)()
    except Exception:  # noqa: BLE001 - ssm:agent reports a broken process table; here it only means no agent view
        return {}
    agents = sorted((p for p in table if named(p, "amazon-ssm-agent")), key=lambda p: p.create_time)
    return read_environ(agents[0].pid, ctx.host.root)[0] if agents else {}

