"""Which names must work: <service>.<region>.<domain>, unless the SSM agent's config overrides them."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

from .settings import GATEWAY_SERVICES

AGENT_CONFIG = "etc/amazon/ssm/amazon-ssm-agent.json"
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


def domain_for(region: str, imds_domain: Optional[str] = None) -> str:
    if imds_domain:
        return imds_domain
    if region.startswith("cn-"):
        return "amazonaws.com.cn"
    if region.startswith("eusc-"):
        return "amazonaws.eu"
    return "amazonaws.com"


def targets(services, region: str, domain: str, agent: AgentConfig) -> Tuple[Target, ...]:
    overrides = dict(agent.endpoints)
    domain = agent.service_domain or domain
    plan = []
    for service in services:
        override = overrides.get(service)
        name = override or f"{service}.{region}.{domain}"
        source = f"{AGENT_CONFIG.split('/')[-1]} {AGENT_OVERRIDES[service]}.Endpoint" if override else "default"
        plan.append(Target(service, name, service in GATEWAY_SERVICES, source))
    return tuple(plan)


def read_agent_config(root: str) -> AgentConfig:
    path = Path(root) / AGENT_CONFIG
    shown = "/" + AGENT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AgentConfig(shown)
    except (OSError, UnicodeDecodeError) as error:
        return AgentConfig(shown, found=True, problem=f"cannot be read: {error}")
    try:
        data = json.loads(text)
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
    return AgentConfig(shown, True, problem, tuple(endpoints), domain if domain and _host(domain) else None)


def _get(data: Dict, section: str, key: str) -> str:
    value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
    return value.strip() if isinstance(value, str) else ""


def _host(value: str) -> str:
    """The agent accepts a bare host or a URL; only the host decides what must resolve."""
    host = urlsplit(value if "://" in value else "https://" + value).hostname or ""
    return host if HOST_RE.match(host) else ""
