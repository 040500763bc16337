"""ssm:agent: the SSM agent on this box (domain.md §4 H): installed, running as root, recent enough, its own proxy
environment, endpoint overrides, credential source and free disk."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..model import Check, Remedy, Result, Severity, Status
from ..processes import ProcessInfo
from . import agent_observe
from .agent_files import IDENTITY, read_identity  # noqa: F401 - tests read them here
from .agent_observe import UNITS, AgentState, version_tuple  # noqa: F401 - tests and run_command read them here
from .imds import ATTACH_PROFILE
from .local import IMDS_ADDRESS, NO_PROXY_VARS, PROXY_VARS, bypassed
from .local import _redact as redact

# core/app/credentialrefresher/credentialrefresher.go:404 (aws/amazon-ssm-agent@1c217c89) writes CredentialSource only
# after credentials succeed; runtimeconfiginit.go writes the file empty at start-up: a stale "EC2" proves nothing now.
IDENTITY_NOTE = ("identity_config.json's CredentialSource is written only after the agent's last success: "
                 "imds:profile and ssm:agent-logs say whether it holds now")
MiB = 1024 * 1024
DISK_FAIL, DISK_WARN = 100 * MiB, 500 * MiB
# (below this version, status, what the agent lacks)
VERSIONS = (("2.3.68.0", Status.FAIL, "Session Manager"), ("3.1.501.0", Status.WARN, "ssm-cli get-diagnostics"),
            ("3.1.821.0", Status.WARN, "Run Command over ssmmessages (it gets commands over ec2messages only)"),
            ("3.2.582.0", Status.WARN, "Default Host Management"),
            ("3.3.2746.0", Status.WARN, "ENV_VAR parameter interpolation"))
DOCS = "https://docs.aws.amazon.com/systems-manager/latest/userguide/"
DOC = DOCS + "ssm-agent-status-and-restart.html"
INSTALL = Remedy("Install the agent; from a private subnet the package comes from the regional S3 bucket through "
                 "the S3 gateway endpoint.",
                 ("sudo yum install -y https://{name_s3}/amazon-ssm-{region}/latest/linux_amd64/"
                  "amazon-ssm-agent.rpm", "sudo snap install amazon-ssm-agent --classic"),
                 (DOCS + "manually-install-ssm-agent-linux.html",))
START = {"deb/rpm": Remedy("Start the agent and enable it at boot; its journal says why it stopped.",
                           ("sudo journalctl -u amazon-ssm-agent -n 50 --no-pager",
                            "sudo systemctl enable --now amazon-ssm-agent"), (DOC,)),
         "snap": Remedy("Start the agent and enable it at boot; its journal says why it stopped.",
                        ("sudo snap logs amazon-ssm-agent -n 50", "sudo snap start --enable amazon-ssm-agent"), (DOC,))}
AS_ROOT = Remedy("The agent must run as root: remove the User= setting from its unit's drop-ins and restart it.",
                 ("sudo systemctl cat {unit}", "sudo systemctl revert {unit}", "sudo systemctl restart {unit}"))
UPDATE = Remedy("Update the agent with the AWS-UpdateSSMAgent document (or the package manager).",
                ("aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids {instance}",),
                ("https://docs.aws.amazon.com/systems-manager/latest/userguide/agent-release-notes.html",))
NO_PROXY = Remedy("Give the agent a no_proxy covering IMDS and the endpoint names with a systemd drop-in, then "
                  "restart it.",
                  ("sudo mkdir -p /etc/systemd/system/{unit}.d",
                   "printf '[Service]\\nEnvironment=\"no_proxy=169.254.169.254,.{domain}\"\\n' | "
                   "sudo tee /etc/systemd/system/{unit}.d/no-proxy.conf",
                   "sudo systemctl daemon-reload && sudo systemctl restart {unit}"),
                  ("https://docs.aws.amazon.com/systems-manager/latest/userguide/configure-proxy-ssm-agent.html",))
DISK = Remedy("Free space on the root file system: sessions need it to start.",
              ("df -h / /var/lib/amazon/ssm", "sudo du -xsh /var/log/* /var/lib/amazon/ssm/* | sort -h | tail",
               "sudo journalctl --vacuum-size=100M"))
CONFIG = Remedy("Fix or remove the agent's config file (the agent then uses its defaults), and restart it.",
                ("sudo python3 -m json.tool /etc/amazon/ssm/amazon-ssm-agent.json",))


Found = Tuple[Status, str, str, str, Remedy]  # (status, code, summary, cause, remedy)


def run_agent(ctx, prior) -> Result:
    return assess_agent(agent_observe.observe(ctx), [t.name for t in ctx.targets], ctx.placeholders())


def assess_agent(state: AgentState, names: Sequence[str], values: Optional[Dict[str, str]] = None) -> Result:
    """One function per problem, in the order the summary names them (FAILs first, then WARNs, stably)."""
    values = {"unit": state.unit, **(values or {})}
    evidence = _evidence(state)
    notes = evidence["notes"]
    found = [*_presence(state), *_root(state), *_disk(state), *_proxy(state, names, evidence), *_outdated(state),
             *_credentials(state, notes), *_agent_region(state.agent_region, str(values.get("region") or "")),
             *_config(state)]
    notes.append(IDENTITY_NOTE)
    if not found:
        return _healthy(state, evidence)
    found.sort(key=lambda f: f[0] is not Status.FAIL)
    status, code, summary, cause, remedy = found[0]
    evidence["problems"] = [{"code": f[1], "summary": f[2]} for f in found]
    also = " Also: " + "; ".join(f[2] for f in found[1:]) + "." if found[1:] else ""
    return Result(status, summary, cause=cause + also, code=code, remedy=remedy.filled(**values), evidence=evidence)


def _evidence(state: AgentState) -> Dict[str, Any]:
    notes = [p for p in (*state.problems, state.systemd, state.environ_problem, state.identity_problem) if p]
    return {"binary": state.binary or None, "version": state.version or None, "version_source": state.version_source,
            "processes": [{"pid": p.pid, "user": p.username, "exe": p.exe} for p in state.processes],
            "unit": state.unit, "unit_state": state.unit_state or None,
            "proxy_env": {k: redact(v) for k, v in state.proxy_env.items()},
            "endpoint_overrides": dict(state.endpoints), "identity": dict(state.identity),
            "disk_free_mib": {k: v // MiB for k, v in state.disk_free.items()}, "notes": notes}


def _agent(state: AgentState) -> Optional[ProcessInfo]:
    return state.processes[0] if state.processes else None


def _presence(state: AgentState) -> List[Found]:
    if not state.binary and _agent(state) is None:
        return [(Status.FAIL, "not-installed", "the SSM agent is not installed (no binary, no process)",
                 "Without the agent the instance never becomes a managed instance.", INSTALL)]
    if _agent(state) is None and state.unit_state != "active":
        seen = f"{state.unit} is {state.unit_state}" if state.unit_state else state.systemd or "systemd state unknown"
        return [(Status.FAIL, "not-running", f"the SSM agent is installed but not running ({seen})",
                 "A stopped agent registers nothing and opens no session.",
                 START["snap" if state.binary.startswith("/snap/") else "deb/rpm"])]
    return []


def _root(state: AgentState) -> List[Found]:
    agent = _agent(state)
    if agent is None or not agent.username or agent.username == "root":
        return []
    return [(Status.FAIL, "not-root", f"the SSM agent runs as {agent.username} (pid {agent.pid})",
             "Run as another user it cannot read its state, run commands or start sessions.", AS_ROOT)]


def _disk(state: AgentState) -> List[Found]:
    full = {k: v for k, v in state.disk_free.items() if v < DISK_WARN}
    if not full:
        return []
    shown = ", ".join(f"{k} {v // MiB} MiB free" for k, v in full.items())
    if min(full.values()) < DISK_FAIL:
        return [(Status.FAIL, "disk-full", shown, "With the disk full a session opens on a blank screen and commands "
                 "fail to start (I-170).", DISK)]
    return [(Status.WARN, "disk-low", shown, "Below 500 MiB, session logs and updates will soon fill the disk.", DISK)]


def _proxy(state: AgentState, names: Sequence[str], evidence: Dict[str, Any]) -> List[Found]:
    proxies = {k: v for k, v in state.proxy_env.items() if k in PROXY_VARS and v}
    if not proxies:
        return []
    no_proxy = next((state.proxy_env[v] for v in NO_PROXY_VARS if state.proxy_env.get(v) is not None), "")
    through = [h for h in (IMDS_ADDRESS, *names) if not bypassed(h, no_proxy)]
    evidence["through_proxy"] = through
    if not through:
        return []
    return [(Status.FAIL, "agent-proxy", f"the agent's environment sets {', '.join(proxies)} and its "
             f"no_proxy={no_proxy or '(unset)'} does not cover {', '.join(through)}",
             "The agent's calls go to the proxy, not to IMDS and the endpoints: a proxy without a route "
             "to them leaves the agent offline whatever the network checks say.", NO_PROXY)]


def _outdated(state: AgentState) -> List[Found]:
    version = version_tuple(state.version)
    lacks = [(status, feature) for limit, status, feature in VERSIONS
             if version and version < (version_tuple(limit) or ())]
    if not lacks:
        return []
    status = Status.FAIL if any(s is Status.FAIL for s, _ in lacks) else Status.WARN
    return [(status, "too-old" if status is Status.FAIL else "outdated",
             f"SSM agent {state.version} lacks {', '.join(f for _, f in lacks)}",
             f"Agent {state.version} is older than {VERSIONS[len(VERSIONS) - len(lacks)][0]}.", UPDATE)]


def _credentials(state: AgentState, notes: List[str]) -> List[Found]:
    source = state.identity.get("CredentialSource")
    if source == "None":
        return [(Status.WARN, "no-credentials", "the agent has no credentials (identity_config.json: "
                 "CredentialSource None)", "Neither the instance profile nor Default Host Management gave it "
                 "credentials.", ATTACH_PROFILE)]
    if source == "SSM":
        notes.append("identity_config.json says Default Host Management: session-logging permissions (S3, "
                     "CloudWatch Logs, KMS) must be on the DHMC role; the doctor's own probes use the instance profile")
    return []


def _config(state: AgentState) -> List[Found]:
    if not state.config_problem:
        return []
    return [(Status.WARN, "config-malformed", f"amazon-ssm-agent.json {state.config_problem}",
             "The agent may ignore its endpoint overrides.", CONFIG)]


def _healthy(state: AgentState, evidence: Dict[str, Any]) -> Result:
    source = state.identity.get("CredentialSource")
    creds = {"EC2": "instance profile", "SSM": "Default Host Management"}.get(str(source))
    creds = f"{creds} at its last success (identity_config.json)" if creds else \
        "none yet (identity_config.json has no source)" if source == "" else "source unknown"
    agent = _agent(state)
    where = f"pid {agent.pid} as {agent.username or 'unknown user'}" if agent else state.unit + " active"
    overrides = f", overrides {', '.join(h for _, h in state.endpoints)}" if state.endpoints else ""
    return Result(Status.PASS, f"SSM agent {state.version or '(version unknown)'} running ({where}), "
                  f"credentials: {creds}{overrides}", evidence=evidence)


def _agent_region(agent_region: str, region: str):
    """Agent.Region only re-signs: the agent dials its identity's Region's names (agent/sdkutil/awsconfig.go:31) but
    signs ssm and ec2messages calls for Agent.Region (agent/ssm/service.go:97, agent/runcommand/mds/service.go:95)."""
    if not agent_region or not region or region.startswith("<") or agent_region == region:
        return []
    return [(Status.WARN, "agent-region", f"amazon-ssm-agent.json sets Agent.Region {agent_region}, but this "
             f"instance is in {region}", f"The agent still dials the {region} endpoints, but signs its ssm and "
             f"ec2messages calls for {agent_region}: AWS refuses them (a credential scope for the wrong Region) "
             "and the instance does not come online.", CONFIG)]


def version_of(prior) -> str:
    """The agent version ssm:agent found, "" when it did not run or found none."""
    found = prior.get("ssm:agent") if prior else None
    return str(found.evidence.get("version") or "") if found is not None else ""


def checks():
    """ssm:agent; its logs and ssm-cli are judged later, with the network checks (agent_logs, diagnostics)."""
    return (Check("ssm:agent", "the SSM agent is installed, running as root, recent, and not sent to a proxy",
                  Severity.CRITICAL, run_agent),)
