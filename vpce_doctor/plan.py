"""Which names must work: <service>.<region>.<domain>, unless the SSM agent's config overrides them."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

from .instance_files import parse_json, read_bytes
from .settings import GATEWAY_SERVICES

AGENT_CONFIG = "etc/amazon/ssm/amazon-ssm-agent.json"
AGENT_CONFIG_LIMIT = 256 * 1024  # the template the agent ships is about 3 KB
# amazon-ssm-agent.json section whose Endpoint replaces the name the agent builds for the service.
AGENT_OVERRIDES = {"ssm": "Ssm", "ssmmessages": "Mgs", "ec2messages": "Mds", "s3": "S3", "kms": "Kms"}
HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")


@dataclass(frozen=True)
class Target:
    service: str
    name: str                 # the DNS name that must resolve and answer on 443
    gateway: bool             # s3/dynamodb: public addresses are expected, reached through a route
    source: str = "default"   # where the name came from


@dataclass(frozen=True)
class AgentConfig:
    path: str
    found: bool = False
    problem: str = ""                      # unreadable or malformed: overrides ignored
    endpoints: Tuple[Tuple[str, str], ...] = ()  # (service, host) pairs
    service_domain: Optional[str] = None
    # "Agent": {"UseDualStackEndpoint": true} (agent >= 3.3.3270.0; its amazon-ssm-agent.json.template has it false;
    # set by aws/amazon-ecs-agent#4931 for IPv6-only hosts): every name the agent builds becomes its dual-stack one.
    use_dualstack: bool = False
    # Agent.Region (appconfig contracts.go AgentInfo): the agent signs its ssm and ec2messages calls for this Region
    # (agent/ssm/service.go:97, agent/runcommand/mds/service.go:95) while dialing the names its identity's Region
    # gives (agent/sdkutil/awsconfig.go:31), all at aws/amazon-ssm-agent@1c217c89.
    region: Optional[str] = None


# Each partition's Region names and DNS suffix, from botocore/data/partitions.json (regionRegex, outputs.dnsSuffix;
# botocore 1.44). The aws partition's own regex ("^(us|eu|ap|sa|ca|me|af|il|mx)-\\w+-\\d+$") is the fallback.
PARTITIONS = (
    ("aws-cn", re.compile(r"^cn-\w+-\d+$"), "amazonaws.com.cn"),
    ("aws-eusc", re.compile(r"^eusc-(de)-\w+-\d+$"), "amazonaws.eu"),
    ("aws-iso", re.compile(r"^us-iso-\w+-\d+$"), "c2s.ic.gov"),
    ("aws-iso-b", re.compile(r"^us-isob-\w+-\d+$"), "sc2s.sgov.gov"),
    ("aws-iso-e", re.compile(r"^eu-isoe-\w+-\d+$"), "cloud.adc-e.uk"),
    ("aws-iso-f", re.compile(r"^us-isof-\w+-\d+$"), "csp.hci.ic.gov"),
    ("aws-us-gov", re.compile(r"^us-gov-\w+-\d+$"), "amazonaws.com"),
)


def domain_for(region: str, imds_domain: Optional[str] = None) -> str:
    """The one place a Region's DNS domain is decided: IMDS services/domain when it said, else the partition's."""
    if imds_domain:
        return imds_domain
    return next((suffix for _, pattern, suffix in PARTITIONS if pattern.match(region)), "amazonaws.com")


def service_name(service: str, region: str, domain: str) -> str:
    """The regional name every client dials for a service: ssm.eu-west-1.amazonaws.com,
    s3.cn-north-1.amazonaws.com.cn."""
    return f"{service}.{region}.{domain}"


# Endpoint service names are com.amazonaws.<region>.<service>, except for the services AWS named after the
# partition's reversed domain in a few Regions (cn.com.amazonaws.cn-north-1.sts, gov.ic.c2s.us-iso-east-1.ec2). Which
# ones is what `aws ec2 describe-vpc-endpoint-services` lists there, as aws-cdk keeps it (packages/aws-cdk-lib/aws-ec2/
# lib/vpc-endpoint.ts, getDefaultEndpointPrefix; aws/aws-cdk#25333, #16139), here for the services the doctor names:
# ssm, ssmmessages, ec2messages, logs and kms keep com.amazonaws in China too. A gateway endpoint's service is
# com.amazonaws everywhere (the same file, GatewayVpcEndpointAwsService; eksctl-io/eksctl#3081).
PARTITION_PREFIXED = {
    "cn-north-1": ("ec2", "monitoring", "s3", "sts"),
    "cn-northwest-1": ("ec2", "monitoring", "s3", "sts"),
    "us-iso-east-1": ("ec2",),
    "us-iso-west-1": ("ec2", "monitoring"),
    "us-isob-east-1": ("ec2",),
}


def endpoint_service_name(service: str, region: str, domain: str, gateway: bool = False) -> str:
    """The VPC endpoint service name: com.amazonaws.eu-west-1.ssm, cn.com.amazonaws.cn-north-1.sts. Endpoints are
    matched by their last label (checks/vpc.py), so this name is only what a remedy prints."""
    prefixed = not gateway and service in PARTITION_PREFIXED.get(region, ())
    return (".".join(reversed(domain.split("."))) if prefixed else "com.amazonaws") + f".{region}.{service}"


def placeholders(region: str, domain: str, **ids: Optional[str]) -> Dict[str, str]:
    """What every remedy is filled with, from one place: {region}, {domain} and the resource ids seen ({vpc},
    {subnet}, {instance}, ...; one not seen stays a visible <placeholder>). Remedy.filled derives the names from
    {region} and {domain} with the functions above: {name_ssm}, {endpoint_logs}, {gateway_s3}."""
    values = {"region": region or "<region>", "domain": domain, "vpc": "<vpc-id>", "subnet": "<subnet-id>",
              "instance": "<instance-id>"}
    values.update({key: str(value) for key, value in ids.items() if value})
    return values


def targets(services, region: str, domain: str, agent: AgentConfig, ipv6_only: bool = False) -> Tuple[Target, ...]:
    """ipv6_only: the instance has no IPv4 address, so S3 is reached by its dual-stack name (s3.<region>.<domain>
    has only A records; https://docs.aws.amazon.com/AmazonS3/latest/API/dual-stack-endpoints.html)."""
    overrides = dict(agent.endpoints)
    domain = agent.service_domain or domain
    plan = []
    for service in services:
        override = overrides.get(service)
        name = override or service_name(service, region, domain)
        source = (f"{AGENT_CONFIG.rsplit('/', maxsplit=1)[-1]} {AGENT_OVERRIDES[service]}.Endpoint" if override
                  else "default")
        if service == "s3" and ipv6_only and not override:
            name, source = f"s3.dualstack.{region}.{domain}", "dual-stack name (IPv6-only instance)"
        plan.append(Target(service, name, service in GATEWAY_SERVICES, source))
    return tuple(plan)


def read_agent_config(root: str) -> AgentConfig:
    path = Path(root) / AGENT_CONFIG
    shown = "/" + AGENT_CONFIG
    try:
        text = read_bytes(path, AGENT_CONFIG_LIMIT, whole=True).decode("utf-8")
    except FileNotFoundError:
        return AgentConfig(shown)
    except (OSError, UnicodeDecodeError) as error:
        return AgentConfig(shown, found=True, problem=f"cannot be read: {error}")
    try:
        data = parse_json(text)
    except ValueError as error:
        return AgentConfig(shown, found=True, problem=f"is not valid JSON: {error}")
    if not isinstance(data, dict):
        return AgentConfig(shown, found=True, problem="is not a JSON object")
    endpoints, bad = [], []
    for service, section in AGENT_OVERRIDES.items():
        raw = _get(data, section, "Endpoint")
        if raw:
            host = _host(raw)
            (endpoints.append((service, host)) if host else bad.append(f"{section}.Endpoint={raw!r}"))
    domain = _get(data, "Agent", "ServiceDomain")
    problem = f"ignored malformed {', '.join(bad)}" if bad else ""
    dualstack = isinstance(data.get("Agent"), dict) and data["Agent"].get("UseDualStackEndpoint") is True
    region = _get(data, "Agent", "Region")
    return AgentConfig(shown, True, problem, tuple(endpoints), domain if domain and _host(domain) else None,
                       dualstack, region if re.match(r"^[a-z0-9-]{1,40}$", region) else None)


def _get(data: Dict, section: str, key: str) -> str:
    value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
    return value.strip() if isinstance(value, str) else ""


def _host(value: str) -> str:
    """The agent accepts a bare host or a URL; only the host decides what must resolve."""
    host = urlsplit(value if "://" in value else "https://" + value).hostname or ""
    return host if HOST_RE.match(host) else ""
