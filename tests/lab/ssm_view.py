"""What Systems Manager says about the lab's instance, derived from the lab's state as the real agent would make it
(never from the doctor, which this module does not import): DescribeInstanceInformation's PingStatus and
GetConnectionStatus's Status.

The agent's two conversations with Systems Manager (aws/amazon-ssm-agent, read at 1c217c89):
* PingStatus follows its health pings: UpdateInstanceInformation on the **ssm** endpoint at start and every 5 minutes
  (agent/health/healthcheck.go, updateHealth; agent/appconfig/constants.go, DefaultSsmHealthFrequencyMinutes). Its
  instance-profile credentials are verified with that same call (common/identity/credentialproviders/ec2roleprovider/
  ec2_role_provider.go), so nothing of the agent works without the ssm path. A broken ssmmessages or
  ec2messages path does not stop the pings: the instance stays Online.
* Session Manager reaches the agent over its control channel: CreateControlChannel and a WebSocket to the
  **ssmmessages** endpoint (agent/session/service/service.go, agent/session/controlchannel/controlchannel.go), with the role's
  ssmmessages:CreateControlChannel and OpenControlChannel; agents older than 2.3.68.0 have no Session Manager.
  GetConnectionStatus says connected | notconnected
  (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetConnectionStatus.html).
"""
from __future__ import annotations

import json

from tests.lab import iam, netpolicy

AGENT_CHANNELS = ("ssm", "ssmmessages", "ec2messages")
SESSION_MANAGER_SINCE = (2, 3, 68, 0)  # Session Manager prerequisites: SSM Agent 2.3.68.0 or later
CHANNEL_ACTIONS = ("ssmmessages:CreateControlChannel", "ssmmessages:OpenControlChannel")


def ping_status(sc: dict) -> str | None:
    """What SSM would report for the instance, given what the scenario breaks (None: never registered)."""
    agent = sc["agent"]
    no_credentials = not sc["iam"]["instance_profile"] or sc["imds"].get("mode") == "disabled"
    if agent["state"] == "absent" or (no_credentials and agent["credential_source"] == "EC2"):
        return None
    # a role that may not call UpdateInstanceInformation: the pings are refused (AccessDeniedException, as in
    # aws/amazon-ssm-agent#543), and without Default Host Management the agent has no other identity
    reports = _role_allows(sc, "ssm:UpdateInstanceInformation") or agent["credential_source"] == "SSM"
    return "Online" if _agent_works(sc) and reaches(sc, "ssm") and reports else "ConnectionLost"


def connection_status(sc: dict) -> str:
    """GetConnectionStatus for the instance: its agent pings (it has credentials) and holds a control channel."""
    if ping_status(sc) != "Online" or not reaches(sc, "ssmmessages"):
        return "notconnected"
    if _version(sc["agent"]["version"]) < SESSION_MANAGER_SINCE:
        return "notconnected"
    return "connected" if all(_role_allows(sc, action) for action in CHANNEL_ACTIONS) else "notconnected"


def _agent_works(sc: dict) -> bool:
    """What stops every call of the agent, whatever the endpoint: its process, its resolver, its clock, its proxy."""
    agent = sc["agent"]
    broken = sc["dns"]["resolver"] != "up" or sc["dhcp"]["dns_server"] != "10.0.0.2"  # its own DNS answers publicly
    broken |= not sc["iam"].get("trust_ec2", True)
    broken |= agent["state"] != "running" or abs(sc["clock"]["offset_seconds"]) > 300
    broken |= any(name.lower() in ("https_proxy", "http_proxy", "all_proxy") for name in agent["env"])
    return not broken


def reaches(sc: dict, svc: str) -> bool:
    """Does the agent get through to this endpoint (DNS, the ENIs, their security group, a pinned address)?"""
    endpoints = sc["endpoints"]
    if any(f".{svc}." in f".{line.split()[-1]}" for line in sc["hosts"]["entries"] if line.split()):
        return False  # the agent dials a pinned address
    hub = sc["hub"]["services"].get(svc)
    if hub:  # a shared endpoint in the hub VPC
        return sc["eni"].get(hub, {}).get("mode", "ok") == "ok" and sc["dns"].get(svc, "auto") == "auto"
    spec = endpoints.get(svc, {})
    if not (spec.get("present", True) and spec.get("private_dns", True) and spec.get("sg_ingress_443", True)
            and not netpolicy.sg_blocks(spec)):
        return False
    modes = [sc["eni"].get(ip, {}).get("mode", "ok") for ip in spec.get("addresses", [])]
    if modes and "ok" not in modes:  # with one good ENI of several, the agent gets through on a retry
        return False
    return sc["dns"].get(svc, "auto") in ("auto", "vpc")


def _role_allows(sc: dict, action: str) -> bool:
    from tests.lab.aws import baseline_role_policy
    policies = sc["iam"]["role_policies"]
    documents = list(policies.values()) if policies is not None else [baseline_role_policy()]
    verdicts = [iam.evaluate(d if isinstance(d, str) else json.dumps(d), action, "*") for d in documents]
    return "explicit" not in verdicts and "allow" in verdicts


def _version(text: str) -> tuple:
    try:
        return tuple(int(p) for p in str(text).split("."))
    except ValueError:
        return (0,)


def connection_answer(world, params: dict) -> dict:
    """GetConnectionStatus's answer (Target, Status) from the lab's state; another instance id is not connected."""
    target = str(params.get("Target") or "")
    pinging = target == world.facts.get("instance_id") and world.ssm_ping == "Online"
    return {"Target": target, "Status": connection_status(world.scenario) if pinging else "notconnected"}
