"""The vocabulary of a doctor run: checks, what they saw, and the report. No I/O here."""
from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

from . import plan

if TYPE_CHECKING:
    from .context import Context


class Status(str, enum.Enum):
    PASS = "pass"    # looked, and it works
    WARN = "warn"    # works, but something is off
    FAIL = "fail"    # looked, and it is broken
    SKIP = "skip"    # not run: a check it needs did not pass
    ERROR = "error"  # could not look: the check crashed, was interrupted or ran out of time


MET = (Status.PASS, Status.WARN)  # a prerequisite in one of these states lets dependents run


class Severity(str, enum.Enum):
    """What breaks if this check fails."""
    CRITICAL = "critical"  # the instance cannot reach the service at all
    HIGH = "high"          # a feature fails, e.g. session logging
    LOW = "low"            # works today, but fragile


class ExitCode(enum.IntEnum):
    OK = 0          # every check passed or warned
    PROBLEMS = 1    # at least one check failed
    INCOMPLETE = 2  # nothing failed, but some checks could not run
    USAGE = 64      # bad arguments or configuration (sysexits EX_USAGE)
    INTERNAL = 70   # the doctor itself failed (sysexits EX_SOFTWARE)


@dataclass(frozen=True)
class Remedy:
    text: str
    commands: Tuple[str, ...] = ()
    links: Tuple[str, ...] = ()

    def filled(self, **values: object) -> "Remedy":
        """This remedy with {placeholders} replaced by real ids; an unknown one stays visible as <name>. Names are
        derived from {region} (and {domain}) by plan's one naming computation: {name_<service>} (ssm.<region>.
        <domain>), {endpoint_<service>} and {gateway_<service>} (the interface and gateway endpoint service names,
        which differ by partition and, in some Regions, by service). In the commands, a value that is not a plain
        id is shell-quoted: values come from IMDS, AWS, files and the environment, and an operator pastes these
        commands into a root shell. Checks fill from Context.placeholders (plan.placeholders)."""
        quoted = _Placeholders({k: _shell_word(v) for k, v in values.items()})
        return Remedy(self.text.format_map(_Placeholders(values)), tuple(c.format_map(quoted) for c in self.commands),
                      self.links)


class _Placeholders(dict):
    def __missing__(self, key: str) -> str:
        return _derived(key, self) or f"<{key}>"


def _derived(key: str, values: Mapping[str, object]) -> Optional[str]:
    kind, _, service = key.partition("_")
    region = str(values.get("region") or "")
    if kind not in ("name", "endpoint", "gateway") or not _SERVICE.match(service) or not _REGION.match(region):
        return None
    domain = str(values.get("domain") or "") or plan.domain_for(region)
    if kind == "name":
        return plan.service_name(service, region, domain)
    return plan.endpoint_service_name(service, region, domain, gateway=kind == "gateway")


_SERVICE = re.compile(r"\A[a-z0-9][a-z0-9.-]{0,40}\Z")
_REGION = re.compile(r"\A[a-z]{2,4}(?:-[a-z0-9]+){2,3}\Z")  # a Region's shape: eu-west-1, eusc-de-east-1


_PLAIN = re.compile(r"\A(?:[A-Za-z0-9._:/@%+=,-]*|<[a-z0-9_-]+>)\Z", re.ASCII)  # ids, names, ARNs, <placeholders>


def _shell_word(value: object) -> str:
    text = str(value)
    return text if _PLAIN.match(text) else shlex.quote(text)


@dataclass(frozen=True)
class Result:
    """What one check saw. Checks return this and never print."""
    status: Status
    summary: str                 # the observation, one line, with the observed values
    cause: str = ""              # why, when not PASS
    code: str = ""               # a stable slug for the cause ("timeout", "nxdomain"), for machines
    remedy: Optional[Remedy] = None
    evidence: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe facts behind the verdict
    # The checks this one names as the reason it did not pass, when the dependency is known only at run time (a
    # session-log bucket's path, the channel Run Command fell back to): Report.root_causes leaves it out behind them.
    caused_by: Tuple[str, ...] = ()


Prior = Mapping[str, Result]  # results of the checks named in `needs`, and nothing else


@dataclass(frozen=True)
class Check:
    id: str                      # stable, e.g. "tcp:ssmmessages"; used by --only and in JSON
    title: str
    severity: Severity
    run: Callable[["Context", Prior], Result]
    needs: Tuple[str, ...] = ()  # ids that must PASS or WARN before this runs
    after: Tuple[str, ...] = ()  # ids that must have finished, whatever their status (their results are passed in)
    clients: Tuple[str, ...] = ()  # the AWS services run() calls: their clients are made ahead, while the probes run


@dataclass(frozen=True)
class Finding:
    check: Check
    result: Result
    duration_s: float = 0.0

    @property
    def status(self) -> Status:
        return self.result.status


@dataclass(frozen=True)
class Report:
    tool_version: str
    started_at: str              # ISO 8601, UTC
    duration_s: float
    instance: Dict[str, Any]     # instance facts, as far as they are known
    findings: Tuple[Finding, ...]  # catalogue order, not completion order
    mode: str = "instance"       # "remote": judged from the control plane by `vpce-doctor remote`
    not_seen: Tuple[str, ...] = ()  # remote: what only the instance can see (its DNS answers, TLS, agent logs)

    @property
    def exit_code(self) -> ExitCode:
        """FAIL wins; a check that could not run (ERROR, or SKIP behind one) makes the run incomplete."""
        statuses = {f.status for f in self.findings}
        if Status.FAIL in statuses:
            return ExitCode.PROBLEMS
        if statuses & {Status.ERROR, Status.SKIP}:
            return ExitCode.INCOMPLETE
        return ExitCode.OK

    @property
    def root_causes(self) -> Tuple[Finding, ...]:
        """Failures whose prerequisites passed and that nothing else explains: a skipped check, or one that
        names a finding that did not pass as its reason (Result.caused_by), is a consequence. A warning that
        explains a failure (credentials shadowing the instance profile) is a root cause itself."""
        status = {f.check.id: f.status for f in self.findings}

        def explained(f: Finding) -> bool:
            return any(status.get(c, Status.PASS) is not Status.PASS for c in caused_by(f))

        failing = [f for f in self.findings if f.status in (Status.FAIL, Status.ERROR)]
        reasons = {c for f in failing for c in caused_by(f) if status.get(c) is Status.WARN}
        return tuple(f for f in self.findings if (f in failing and not explained(f)) or f.check.id in reasons)

    def explained_by(self, check_id: str) -> Optional[Tuple[Finding, Mapping[str, Any]]]:
        """A warning that names the resources behind this failure (vpc:endpoints: the rule, table or endpoint, with
        its ids and the command that fixes it), as (finding, {"problem", "command"}); the failure stays the root
        cause, and its fix leads with what the evidence points to."""
        for finding in self.findings:
            named = finding.result.evidence.get("explained") if finding.status is Status.WARN else None
            if isinstance(named, Mapping) and isinstance(named.get(check_id), Mapping):
                return finding, named[check_id]
        return None

    def blocked_by(self, check_id: str) -> Tuple[Finding, ...]:
        """Every finding that follows from check_id: skipped behind it, or failed because of it, transitively."""
        frontier, grew = {check_id}, True
        while grew:  # caused_by may point forward (a signature rejected before clock:skew ran), so iterate
            grew = False
            for finding in self.findings:
                skipped = finding.status is Status.SKIP and frontier & set(finding.check.needs)
                if finding.check.id not in frontier and (skipped or frontier & set(caused_by(finding))):
                    frontier.add(finding.check.id)
                    grew = True
        return tuple(f for f in self.findings if f.check.id in frontier - {check_id})


def caused_by(finding: Finding) -> Tuple[str, ...]:
    """The checks a finding names as the reason it did not pass (Result.caused_by); none when it passed."""
    return () if finding.status in MET else finding.result.caused_by
