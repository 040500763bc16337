"""ssm:agent: the SSM agent on this box (domain.md §4 H): installed, running as root, recent enough, its own proxy
environment, endpoint overrides, credential source and free disk."""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ..model import Check, Remedy, Result, Severity, Status
from ..processes import ProcessInfo, list_processes, named, read_environ, run_command
from . import agent_files
from .agent_files import IDENTITY, is_file, read_identity  # noqa: F401 - tests read them here
from .imds import ATTACH_PROFILE
from .local import IMDS_ADDRESS, NO_PROXY_VARS, PROXY_VARS, bypassed
from .local import _redact as redact

BINARIES = ("/usr/bin/amazon-ssm-agent", "/snap/amazon-ssm-agent/current/amazon-ssm-agent")
UNITS = {"deb/rpm": "amazon-ssm-agent.service", "snap": "snap.amazon-ssm-agent.amazon-ssm-agent.service"}
SYSTEMCTLS = ("/usr/bin/systemctl", "/bin/systemctl")
UNIT_STATES = ("active", "inactive", "failed", "activating", "deactivating", "reloading", "maintenance", "refreshing")
# core/app/credentialrefresher/credentialrefresher.go:404 (aws/amazon-ssm-agent@1c217c89) writes CredentialSource only
# after credentials succeed; runtimeconfiginit.go writes the file empty at start-up: a stale "EC2" proves nothing now.
IDENTITY_NOTE = ("identity_config.json's CredentialSource is written only after the agent's last success: "
                 "imds:profile and ssm:agent-logs say whether it holds now")
DISK_PATHS = ("/", "/var/lib/amazon/ssm")
MiB = 1024 * 1024
DISK_FAIL, DISK_WARN = 100 * MiB, 500 * MiB
VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)\.(\d+)")
LOG_VERSION_RE = re.compile(r"(?:amazon-ssm-agent - v|Agent Version:?\s*v?)(\d+\.\d+\.\d+\.\d+)")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
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


@dataclass(frozen=True)
class AgentState:
    """What the box shows of the agent: literal observations, for assess_agent."""
    binary: str = ""                                   # path as on the instance, "" when absent
    processes: Tuple[ProcessInfo, ...] = ()
    unit: str = UNITS["deb/rpm"]
    unit_state: str = ""                               # systemctl is-active's answer, "" when unknown
    systemd: str = ""                                  # why systemd could not be asked
    version: str = ""
    version_source: str = ""
    proxy_env: Mapping[str, str] = field(default_factory=dict)  # the agent's proxy variables only
    environ_problem: str = ""
    endpoints: Tuple[Tuple[str, str], ...] = ()
    config_problem: str = ""
    identity: Mapping[str, object] = field(default_factory=dict)
    identity_problem: str = ""
    disk_free: Mapping[str, int] = field(default_factory=dict)  # path → free bytes
    problems: Tuple[str, ...] = ()                     # observations that failed (process table, …)
    agent_region: str = ""                             # amazon-ssm-agent.json Agent.Region, "" when unset


def version_tuple(text: str) -> Optional[Tuple[int, ...]]:
    found = VERSION_RE.search(text or "")
    return tuple(int(x) for x in found.groups()) if found else None


def run_agent(ctx, prior) -> Result:
    problems = []
    binary = next((p for p in BINARIES if is_file(ctx.path(p))), "")
    try:
        table = (ctx.processes or list_processes)()
    except Exception as error:  # noqa: BLE001 - a broken process table is an observation, not a crash
        table, problems = (), [f"process table unreadable: {error}"]
    agents = tuple(sorted((p for p in table if named(p, "amazon-ssm-agent")), key=lambda p: p.create_time))
    flavour = "snap" if (binary or (agents[0].exe if agents else "")).startswith("/snap/") else "deb/rpm"
    unit, unit_state, systemd = UNITS[flavour], "", ""
    systemctl = next((p for p in SYSTEMCTLS if is_file(ctx.path(p))), None)
    if systemctl is None:
        systemd = "systemd not available (no systemctl)"
    else:
        ran = run_command([str(ctx.path(systemctl)), "is-active", unit], ctx.io_timeout(), ENV)
        answer = (ran.out.strip().splitlines() or [""])[0]
        if answer in UNIT_STATES:
            unit_state = answer
        else:
            systemd = "systemd not available: " + ((ran.err.strip().splitlines() or [ran.error or answer or
                                                    ("timed out" if ran.timed_out else "no answer")])[0])[:200]
    version, source = "", ""
    if binary:
        ran = run_command([str(ctx.path(binary)), "-version"], ctx.io_timeout(), ENV)
        if version_tuple(ran.out):
            version, source = VERSION_RE.search(ran.out).group(0), f"{binary} -version"
    if not version:
        tail = agent_files.read_tail(ctx.path(agent_files.LOG_FILES[0]), agent_files.LOG_FILES[0])
        found = next((m for m in map(LOG_VERSION_RE.search, reversed(tail.lines)) if m), None)
        version, source = (found.group(1), agent_files.LOG_FILES[0]) if found else ("", "")
    proxy_env, environ_problem = {}, ""
    if agents:
        env, environ_problem = read_environ(agents[0].pid, ctx.settings.root)
        proxy_env = {k: v for k, v in env.items() if k in PROXY_VARS + NO_PROXY_VARS}
    identity, identity_problem = read_identity(ctx.path(IDENTITY))
    disk_free = {}
    for shown in DISK_PATHS:
        path = ctx.path(shown)
        try:
            while not path.exists() and path != path.parent:
                path = path.parent
            disk_free[shown] = shutil.disk_usage(str(path)).free
        except OSError as error:
            problems.append(f"free space on {shown} unknown: {error.strerror or error}")
    state = AgentState(binary, agents, unit, unit_state, systemd, version, source, proxy_env, environ_problem,
                       ctx.agent_config.endpoints, ctx.agent_config.problem, identity, identity_problem, disk_free,
                       tuple(problems), ctx.agent_config.region or "")
    return assess_agent(state, [t.name for t in ctx.targets], ctx.placeholders())


def assess_agent(state: AgentState, names: Sequence[str], values: Optional[Dict[str, str]] = None) -> Result:
    values = {"unit": state.unit, **(values or {})}
    agent = state.processes[0] if state.processes else None
    notes = [p for p in (*state.problems, state.systemd, state.environ_problem, state.identity_problem) if p]
    evidence = {"binary": state.binary or None, "version": state.version or None,
                "version_source": state.version_source,
                "processes": [{"pid": p.pid, "user": p.username, "exe": p.exe} for p in state.processes],
                "unit": state.unit, "unit_state": state.unit_state or None, "proxy_env": {k: redact(v) for k, v in
                                                                                     state.proxy_env.items()},
                "endpoint_overrides": dict(state.endpoints), "identity": dict(state.identity),
                "disk_free_mib": {k: v // MiB for k, v in state.disk_free.items()}, "notes": notes}
    found = []  # (status, code, summary, cause, remedy)
    if not state.binary and agent is None:
        found.append((Status.FAIL, "not-installed", "the SSM agent is not installed (no binary, no process)",
                      "Without the agent the instance never becomes a managed instance.", INSTALL))
    elif agent is None and state.unit_state != "active":
        seen = f"{state.unit} is {state.unit_state}" if state.unit_state else state.systemd or "systemd state unknown"
        found.append((Status.FAIL, "not-running", f"the SSM agent is installed but not running ({seen})",
                      "A stopped agent registers nothing and opens no session.",
                      START["snap" if state.binary.startswith("/snap/") else "deb/rpm"]))
    if agent and agent.username and agent.username != "root":
        found.append((Status.FAIL, "not-root", f"the SSM agent runs as {agent.username} (pid {agent.pid})",
                      "Run as another user it cannot read its state, run commands or start sessions.", AS_ROOT))
    full = {k: v for k, v in state.disk_free.items() if v < DISK_WARN}
    if full:
        shown = ", ".join(f"{k} {v // MiB} MiB free" for k, v in full.items())
        bad = min(full.values()) < DISK_FAIL
        found.append((Status.FAIL if bad else Status.WARN, "disk-full" if bad else "disk-low", shown,
                      "With the disk full a session opens on a blank screen and commands fail to start (I-170)."
                      if bad else "Below 500 MiB, session logs and updates will soon fill the disk.", DISK))
    proxies = {k: v for k, v in state.proxy_env.items() if k in PROXY_VARS and v}
    if proxies:
        no_proxy = next((state.proxy_env[v] for v in NO_PROXY_VARS if state.proxy_env.get(v) is not None), "")
        through = [h for h in (IMDS_ADDRESS, *names) if not bypassed(h, no_proxy)]
        evidence["through_proxy"] = through
        if through:
            found.append((Status.FAIL, "agent-proxy", f"the agent's environment sets {', '.join(proxies)} and its "
                          f"no_proxy={no_proxy or '(unset)'} does not cover {', '.join(through)}",
                          "The agent's calls go to the proxy, not to IMDS and the endpoints: a proxy without a route "
                          "to them leaves the agent offline whatever the network checks say.", NO_PROXY))
    version = version_tuple(state.version)
    if version:
        lacks = [(status, feature) for limit, status, feature in VERSIONS if version < version_tuple(limit)]
        if lacks:
            status = Status.FAIL if any(s is Status.FAIL for s, _ in lacks) else Status.WARN
            found.append((status, "too-old" if status is Status.FAIL else "outdated",
                          f"SSM agent {state.version} lacks {', '.join(f for _, f in lacks)}",
                          f"Agent {state.version} is older than {VERSIONS[len(VERSIONS) - len(lacks)][0]}.", UPDATE))
    source = state.identity.get("CredentialSource")
    if source == "None":
        found.append((Status.WARN, "no-credentials", "the agent has no credentials (identity_config.json: "
                      "CredentialSource None)", "Neither the instance profile nor Default Host Management gave it "
                      "credentials.", ATTACH_PROFILE))
    elif source == "SSM":
        notes.append("identity_config.json says Default Host Management: session-logging permissions (S3, "
                     "CloudWatch Logs, KMS) must be on the DHMC role; the doctor's own probes use the instance profile")
    notes.append(IDENTITY_NOTE)
    found.extend(_agent_region(state.agent_region, str(values.get("region") or "")))
    if state.config_problem:
        found.append((Status.WARN, "config-malformed", f"amazon-ssm-agent.json {state.config_problem}",
                      "The agent may ignore its endpoint overrides.", CONFIG))
    if not found:
        creds = {"EC2": "instance profile", "SSM": "Default Host Management"}.get(str(source))
        creds = f"{creds} at its last success (identity_config.json)" if creds else \
            "none yet (identity_config.json has no source)" if source == "" else "source unknown"
        where = f"pid {agent.pid} as {agent.username or 'unknown user'}" if agent else state.unit + " active"
        overrides = f", overrides {', '.join(h for _, h in state.endpoints)}" if state.endpoints else ""
        return Result(Status.PASS, f"SSM agent {state.version or '(version unknown)'} running ({where}), "
                      f"credentials: {creds}{overrides}", evidence=evidence)
    found.sort(key=lambda f: f[0] is not Status.FAIL)
    status, code, summary, cause, remedy = found[0]
    evidence["problems"] = [{"code": f[1], "summary": f[2]} for f in found]
    also = " Also: " + "; ".join(f[2] for f in found[1:]) + "." if found[1:] else ""
    return Result(status, summary, cause=cause + also, code=code, remedy=remedy.filled(**values), evidence=evidence)


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
