"""What ssm:agent reads from the box (checks/agent.py judges it): the binary, the processes, the systemd unit's state,
the version, the agent's own proxy environment, its identity file and the free disk."""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..processes import ProcessInfo, list_processes, named, read_environ, run_command
from . import agent_files
from .agent_files import IDENTITY, is_file, read_identity
from .local import NO_PROXY_VARS, PROXY_VARS

BINARIES = ("/usr/bin/amazon-ssm-agent", "/snap/amazon-ssm-agent/current/amazon-ssm-agent")
UNITS = {"deb/rpm": "amazon-ssm-agent.service", "snap": "snap.amazon-ssm-agent.amazon-ssm-agent.service"}
SYSTEMCTLS = ("/usr/bin/systemctl", "/bin/systemctl")
UNIT_STATES = ("active", "inactive", "failed", "activating", "deactivating", "reloading", "maintenance", "refreshing")
DISK_PATHS = ("/", "/var/lib/amazon/ssm")
VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)\.(\d+)")
LOG_VERSION_RE = re.compile(r"(?:amazon-ssm-agent - v|Agent Version:?\s*v?)(\d+\.\d+\.\d+\.\d+)")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def version_tuple(text: str) -> Optional[Tuple[int, ...]]:
    found = VERSION_RE.search(text or "")
    return tuple(int(x) for x in found.groups()) if found else None


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


def observe(ctx) -> AgentState:
    """What assess_agent judges, read from the box with one deadline per command."""
    problems: List[str] = []
    binary = next((p for p in BINARIES if is_file(ctx.path(p))), "")
    try:
        table = (ctx.host.processes or list_processes)()
    except Exception as error:  # noqa: BLE001 - a broken process table is an observation, not a crash
        table, problems = (), [f"process table unreadable: {error}"]
    agents = tuple(sorted((p for p in table if named(p, "amazon-ssm-agent")), key=lambda p: p.create_time))
    flavour = "snap" if (binary or (agents[0].exe if agents else "")).startswith("/snap/") else "deb/rpm"
    unit = UNITS[flavour]
    unit_state, systemd = _unit_state(ctx, unit)
    version, source = _version(ctx, binary)
    proxy_env, environ_problem = _proxy_env(ctx, agents)
    identity, identity_problem = read_identity(ctx.path(IDENTITY))
    disk_free = _disk_free(ctx, problems)
    return AgentState(binary, agents, unit, unit_state, systemd, version, source, proxy_env, environ_problem,
                      ctx.agent_config.endpoints, ctx.agent_config.problem, identity, identity_problem, disk_free,
                      tuple(problems), ctx.agent_config.region or "")


def _unit_state(ctx, unit: str) -> Tuple[str, str]:
    """(systemctl is-active's answer, "") or ("", why systemd could not be asked)."""
    systemctl = next((p for p in SYSTEMCTLS if is_file(ctx.path(p))), None)
    if systemctl is None:
        return "", "systemd not available (no systemctl)"
    ran = run_command([str(ctx.path(systemctl)), "is-active", unit], ctx.io_timeout(), ENV)
    answer = (ran.out.strip().splitlines() or [""])[0]
    if answer in UNIT_STATES:
        return answer, ""
    why = (ran.err.strip().splitlines() or [ran.error or answer or ("timed out" if ran.timed_out else "no answer")])[0]
    return "", "systemd not available: " + why[:200]


def _version(ctx, binary: str) -> Tuple[str, str]:
    """(version, where it was read): the binary's -version first, else the last version line of the agent's log."""
    if binary:
        ran = run_command([str(ctx.path(binary)), "-version"], ctx.io_timeout(), ENV)
        found = VERSION_RE.search(ran.out)
        if found:
            return found.group(0), f"{binary} -version"
    tail = agent_files.read_tail(ctx.path(agent_files.LOG_FILES[0]), agent_files.LOG_FILES[0])
    line = next((m for m in map(LOG_VERSION_RE.search, reversed(tail.lines)) if m), None)
    return (line.group(1), agent_files.LOG_FILES[0]) if line else ("", "")


def _proxy_env(ctx, agents: Sequence[ProcessInfo]) -> Tuple[Dict[str, str], str]:
    """The oldest agent process's proxy variables, and why they could not be read."""
    if not agents:
        return {}, ""
    env, problem = read_environ(agents[0].pid, ctx.host.root)
    return {k: v for k, v in env.items() if k in PROXY_VARS + NO_PROXY_VARS}, problem


def _disk_free(ctx, problems: List[str]) -> Dict[str, int]:
    disk_free = {}
    for shown in DISK_PATHS:
        path = ctx.path(shown)
        try:
            while not path.exists() and path != path.parent:
                path = path.parent
            disk_free[shown] = shutil.disk_usage(str(path)).free
        except OSError as error:
            problems.append(f"free space on {shown} unknown: {error.strerror or error}")
    return disk_free
