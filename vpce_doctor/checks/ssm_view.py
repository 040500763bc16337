"""ssm:registration on the instance: what Systems Manager itself says about this instance, reconciled with what the
instance sees. DescribeInstanceInformation's PingStatus follows the agent's health pings to the ssm endpoint;
GetConnectionStatus says whether Session Manager can reach the agent (its control channel over ssmmessages). When
they disagree with the local checks, the finding names the side that explains it, and the runs kept beside the spool
say when it began. Observing is two calls and a read of the kept runs; judging (`assess`) is pure and shares
DescribeInstanceInformation's judge with `vpce-doctor remote` (remote.assess_registration)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional

from .. import history as kept_runs
from ..aws import Call, call
from ..model import Check, Remedy, Result, Severity, Status
from . import api
from .remote import assess_registration

# GetConnectionStatus: Status connected | notconnected, "whether it is running and ready to receive Session Manager
# connections" (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetConnectionStatus.html).
NOT_CONNECTED = "notconnected"
# The agent reports its health with UpdateInstanceInformation on the ssm endpoint, at start and then every 5 minutes
# by default (aws/amazon-ssm-agent agent/health/healthcheck.go, updateHealth; agent/appconfig/constants.go,
# DefaultSsmHealthFrequencyMinutes = 5): PingStatus follows that path, not ssmmessages or ec2messages.
PING_MINUTES = 5
PING_PATH = ("imds:token", "imds:profile", "dns:resolver", "local:hosts", "local:proxy", "ssm:agent", "names:dialled",
             "dns:ssm", "tcp:ssm", "tls:ssm")
# Session Manager reaches the agent over its control channel: CreateControlChannel, then a WebSocket, both to the
# ssmmessages endpoint (aws/amazon-ssm-agent agent/session/service/service.go, agent/session/controlchannel/
# controlchannel.go).
CHANNEL_PATH = ("dns:ssmmessages", "tcp:ssmmessages", "tls:ssmmessages")
LOGS = "ssm:agent-logs"
SECOND = len("2026-11-28T12:00:00")
# What the doctor calls here, both on "*" (no resource-level permissions: the Session Manager quickstart policies grant
# ssm:GetConnectionStatus on "*", https://docs.aws.amazon.com/systems-manager/latest/userguide/
# getting-started-restrict-access-quickstart.html); the SsmView statement of packaging/iam/vpce-doctor-policy.json.
ACTIONS = ("ssm:DescribeInstanceInformation", "ssm:GetConnectionStatus")
DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation")
VIEW_POLICY = '{"Version":"2012-10-17","Statement":[{"Sid":"SsmView","Effect":"Allow","Action":' \
              '["ssm:DescribeInstanceInformation","ssm:GetConnectionStatus"],"Resource":"*"}]}'
RESTART = Remedy("Restart the agent so it reports and opens its channels now (a snap install: sudo snap restart "
                 "amazon-ssm-agent), then read what it says.",
                 ("sudo systemctl restart amazon-ssm-agent",
                  "sudo tail -n 50 /var/log/amazon/ssm/amazon-ssm-agent.log /var/log/amazon/ssm/errors.log"))


def check() -> Check:
    return Check("ssm:registration", "Systems Manager's own view of this instance agrees with what it sees",
                 Severity.CRITICAL, run, needs=("tls:ssm", "creds:source"), after=(*PING_PATH, *CHANNEL_PATH, LOGS),
                 clients=("ssm",))


def run(ctx, prior) -> Result:
    ssm, iid = ctx.clients.client("ssm"), ctx.facts.instance_id or ""
    # both at once (one round trip less on every run); the connection counts only when SSM's list could be read
    with ThreadPoolExecutor(1, thread_name_prefix="ssm-view") as pool:
        asked = pool.submit(call, ssm, "get_connection_status", Target=iid)
        listed = call(ssm, "describe_instance_information", Filters=[{"Key": "InstanceIds", "Values": [iid]}])
        connection = asked.result() if listed.ok else None
    kept, _ = kept_runs.load(ctx.settings.spool_dir, set_aside=False)
    local = {i: {"status": r.status.value, "code": r.code, "summary": r.summary} for i, r in prior.items()}
    result = assess(listed, connection, iid, local, timeline(kept, iid))
    return replace(result, remedy=result.remedy.filled(role=ctx.facts.role_name or "<role>")) if result.remedy \
        else result


def timeline(kept: Mapping[str, Mapping[str, Any]], instance_id: str) -> Dict[str, Any]:
    """From the runs kept beside the spool (history.load): the last healthy run, the first broken one and what
    failed in it. Runs kept for another instance (a copied image) say nothing about this one."""
    same = {k: r for k, r in kept.items() if r.get("instance_id") == instance_id}
    out: Dict[str, Any] = {}
    if same.get("healthy"):
        out["last_healthy"] = _second(same["healthy"].get("started_at"))
    first = same.get("first-broken")
    if first:
        out["first_broken"] = _second(first.get("started_at"))
        checks = first.get("checks")
        out["first_failed"] = sorted(i for i, c in (checks if isinstance(checks, Mapping) else {}).items()
                                     if isinstance(c, Mapping) and c.get("status") == "fail")[:6]
    return out


def assess(listed: Call, connection: Optional[Call], instance_id: str, local: Mapping[str, Mapping[str, str]],
           history: Mapping[str, Any]) -> Result:
    """listed, connection: vpce_doctor.aws.call() of DescribeInstanceInformation and GetConnectionStatus (None: not
    asked); local: the local checks' status, code and summary by id; history: timeline()."""
    if not listed.ok:
        return _unread(listed)
    broken = [i for i in PING_PATH if _failed(local, i)]
    base = assess_registration(listed, instance_id, broken, _unexplained(local))
    if base.code in ("not-registered", "connection-lost"):
        return _lost(base, instance_id, broken, local, history)
    channel = broken + [i for i in CHANNEL_PATH if _failed(local, i)]
    return _online(base, instance_id, connection, channel, local)


def _second(value: Any) -> Optional[str]:
    """A record's started_at ("2026-11-28T12:00:00.000Z") to the second, as LastPingDateTime is shown."""
    text = str(value or "")
    return text[:SECOND] + "Z" if len(text) >= SECOND else text or None


def _failed(local: Mapping[str, Mapping[str, str]], check_id: str) -> bool:
    return (local.get(check_id) or {}).get("status") in ("fail", "error")


def _unread(listed: Call) -> Result:
    verdict = api.judge(listed, ACTIONS[0])
    error = {k: v for k, v in (("kind", listed.kind), ("code", listed.code)) if v}
    if listed.code in DENIED:
        remedy = verdict.remedy if verdict.code == "endpoint-policy" else Remedy(
            "Allow the instance role to read SSM's view of this instance (the SsmView statement of "
            "packaging/iam/vpce-doctor-policy.json).",
            ("aws iam put-role-policy --role-name {role} --policy-name vpce-doctor-ssm-view --policy-document '"
             + VIEW_POLICY.replace("{", "{{").replace("}", "}}") + "'",))
        return Result(Status.WARN, f"SSM's view of this instance was not read: {ACTIONS[0]} is not permitted",
                      code="not-permitted", remedy=remedy, evidence={"error": error, **verdict.evidence},
                      cause=f"{verdict.cause} Nothing is wrong with the path; only the comparison with what Systems "
                            "Manager sees is missing.")
    return Result(Status.WARN, f"SSM's view of this instance was not read: {listed.code or listed.kind}",
                  code="unavailable", cause=verdict.cause, remedy=verdict.remedy,
                  evidence={"error": error, **verdict.evidence})


def _unexplained(local: Mapping[str, Mapping[str, str]]) -> str:
    said = (local.get(LOGS) or {}).get("summary") if (local.get(LOGS) or {}).get("status") == "warn" else None
    return ("Every probe of the agent's path to the ssm endpoint passes here, so it is the agent that does not "
            f"report: it pings every {PING_MINUTES} minutes with the instance role's credentials. Look at what only "
            "it knows: its credentials (the role needs ssm:UpdateInstanceInformation, in "
            "AmazonSSMManagedInstanceCore), a hibernating agent (hibernate.log), its Region (Agent.Region); a "
            f"repair made less than {PING_MINUTES} minutes ago shows at the next ping."
            + (f" Its logs say: {said}" if said else ""))


def _lost(base: Result, instance_id: str, broken: List[str], local: Mapping[str, Mapping[str, str]],
          history: Mapping[str, Any]) -> Result:
    ping, status = base.evidence.get("last_ping"), base.evidence.get("PingStatus")
    said = (f"SSM says {instance_id} is {status} (last ping {ping})" if base.code == "connection-lost"
            else f"SSM has never heard from {instance_id}")
    if broken:
        summary = f"{said}, and {broken[0]} fails here: {local[broken[0]].get('summary')}"
    else:
        summary = f"{said} while every probe of the agent's path to ssm passes here"
    cause = " ".join(p for p in (base.cause, _when(ping, history, bool(broken))) if p)
    return replace(base, summary=summary, cause=cause, remedy=None if broken else RESTART,
                   evidence={**base.evidence, "history": dict(history)})


def _when(ping: Optional[str], history: Mapping[str, Any], broken: bool) -> str:
    """When it began, from SSM's last ping and the kept runs: the last healthy one and the first broken one."""
    healthy, first = history.get("last_healthy"), history.get("first_broken")
    parts = [f"SSM last heard from the agent at {ping}"] if ping else []
    if healthy:
        parts.append(f"this instance's last healthy run was {healthy}")
    if first:
        failed = history.get("first_failed") or []
        parts.append(f"its first broken run {first}" + (f", when {', '.join(failed)} began to fail" if failed else ""))
    elif healthy and broken:
        parts.append("this run is the first broken one")
    text = "; ".join(parts) + "." if parts else ""
    if ping and healthy and ping < healthy:  # both UTC "YYYY-MM-DDTHH:MM:SSZ"
        text += (" SSM lost the agent before that healthy run, when every probe still passed: the agent stopped "
                 "reporting, not the path.")
    return text


def _online(base: Result, instance_id: str, connection: Optional[Call], channel: List[str],
            local: Mapping[str, Mapping[str, str]]) -> Result:
    ping, version = base.evidence.get("last_ping"), base.evidence.get("AgentVersion")
    status = connection.response.get("Status") if connection and connection.ok else None
    unread = None if connection is None or connection.ok else str(connection.code or "failed")
    head = f"SSM says {instance_id} is Online (last ping {ping}, agent {version})"
    evidence = {**base.evidence, "connection": status or {"error": unread}}
    first = f"{channel[0]} failed here: {local[channel[0]].get('summary')}" if channel else ""
    if status == NOT_CONNECTED:
        return _not_connected(head, first, channel, evidence)
    if channel and status is None:
        return Result(Status.FAIL, f"{head} but no session channel works: {first}", code="online-channel-broken",
                      evidence=evidence, caused_by=tuple(channel),
                      cause=f"Explained by {', '.join(channel)} above. Online says only that the agent's pings "
                            "reach ssm; Session Manager needs the control channel to ssmmessages. (GetConnectionStatus "
                            f"was not read: {unread}.)")
    if channel:
        return Result(Status.WARN, f"{head} and Session Manager connected, yet {first}", code="channel-outlives-path",
                      evidence=evidence, caused_by=tuple(channel),
                      cause="The agent's control channel was opened before the path broke (an open WebSocket "
                            "outlives a DNS or rule change) or it goes another way (its own proxy): sessions work now, "
                            "and stop when the channel drops and cannot be reopened.")
    note = f"; Session Manager {status}" if status else f"; Session Manager's status not read ({unread})"
    return Result(Status.PASS, head + note, evidence=evidence)


def _not_connected(head: str, first: str, channel: List[str], evidence: Dict[str, Any]) -> Result:
    if channel:
        return Result(Status.FAIL, f"{head} but Session Manager says notconnected: {first}",
                      code="session-not-connected", evidence=evidence, caused_by=tuple(channel),
                      cause=f"Explained by {', '.join(channel)} above: the agent's pings go to ssm, Session Manager's "
                            "control channel to ssmmessages.")
    return Result(Status.FAIL, f"{head} but Session Manager says notconnected, while this instance reaches "
                  "ssmmessages", code="session-not-connected", evidence=evidence, remedy=RESTART,
                  cause="The agent reports, yet has no control channel open although the path to ssmmessages works "
                        "here: the role may lack ssmmessages:CreateControlChannel and OpenControlChannel (in "
                        "AmazonSSMManagedInstanceCore), or the agent has not reconnected since the path was repaired.")
