"""One run: facts, plan, checks, report. The CLI wraps it; tests call it directly."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from http.client import HTTPS_PORT
from typing import Callable, Mapping, Optional

from . import __version__, plan
from . import facts as facts_mod
from .checks import api_services, catalogue, select
from .context import Context
from .model import Finding, Report, Result, Status
from .runner import Interrupted, run_checks
from .settings import Settings, UsageError


def prepare(settings: Settings, environ: Mapping[str, str], clock: Callable[[], float] = time.monotonic,
            started: Optional[float] = None) -> Context:
    """Gather facts and build the plan; raise UsageError when the region can be had from nowhere."""
    started = clock() if started is None else started
    # Shipping happens after the checks and must fit in the same deadline: keep it a slice of the run.
    deadline = started + settings.timeout - (ship_reserve(settings) if settings.ship else 0.0)
    # Imports are the slowest part of a healthy run: start them now, while IMDS answers.
    threading.Thread(target=_import_early, args=(_plans_aws(settings),), name="imports", daemon=True).start()
    facts = facts_mod.gather(environ, lambda: deadline - clock())
    region = settings.region or facts.region
    if not region:
        raise UsageError("the region is unknown: IMDS did not give it (see imds:token) and --region was not given")
    agent_config = plan.read_agent_config(settings.root)
    targets = plan.targets(settings.services, region, plan.domain_for(region, facts.domain), agent_config,
                           facts.families() == ("IPv6",))
    ctx = Context(settings, facts, targets, agent_config, environ, deadline, clock)
    checks = checks_for(ctx)
    if any(c.id == "creds:source" for c in checks):
        clients = clients_for(ctx)
        clients.prewarm(api_services(checks) + (("logs",) if settings.ship else ()))
        ctx = replace(ctx, clients=clients)
    return ctx


def clients_for(ctx: Context):
    """The AWS clients of a run: each goes to the name the network checks tested, on the configured port."""
    from .aws import Clients
    settings = ctx.settings
    port = "" if settings.port == HTTPS_PORT else f":{settings.port}"
    return Clients(ctx.region, {t.service: f"https://{t.name}{port}" for t in ctx.targets}, settings.connect_timeout,
                   ctx.remaining, settings.ca_bundle, plan.domain_for(ctx.region, ctx.facts.domain), settings.port)


def _plans_aws(settings: Settings) -> bool:
    """Will this run make AWS calls? The plan's shape does not depend on the region, so any region will do."""
    targets = plan.targets(settings.services, "us-east-1", "amazonaws.com", plan.AgentConfig(""))
    try:
        return settings.ship or any(c.id == "creds:source" for c in select(catalogue(targets, settings),
                                                                             settings.only))
    except LookupError:
        return False  # a bad --only: checks_for() says so in a moment


def _import_early(aws: bool) -> None:
    import dns.resolver  # noqa: F401
    if aws:
        import botocore.client  # noqa: F401
        import botocore.session  # noqa: F401


def ship_reserve(settings: Settings) -> float:
    return min(max(2 * settings.connect_timeout, 1.0), settings.timeout / 4)


def checks_for(ctx: Context):
    try:
        from .aws import other_credential_sources
        imds_only = not other_credential_sources(ctx.environ)
        return select(catalogue(ctx.targets, ctx.settings, imds_only), ctx.settings.only)
    except LookupError as error:
        raise UsageError(f"--only {error.args[0]!r} matches no check; see --list-checks") from None


def diagnose(ctx: Context, started_at: datetime, started: float,
             on_finding: Optional[Callable[[Finding], None]] = None) -> Report:
    """Run every selected check; Ctrl-C or SIGTERM still yields a full report (interrupted ones are ERROR)."""
    checks = checks_for(ctx)
    interrupted = None
    try:
        findings = run_checks(checks, ctx, deadline=ctx.deadline, clock=ctx.clock, on_finding=on_finding)
    except Interrupted as stop:
        findings, interrupted = stop.findings, stop
    report = Report(__version__, started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    round(ctx.clock() - started, 3), instance_facts(ctx), findings)
    if interrupted:
        raise ReportInterrupted(report)
    return report


def interrupted_report(settings: Settings, environ: Mapping[str, str], started_at: datetime, started: float,
                       ctx: Optional[Context] = None, clock: Callable[[], float] = time.monotonic) -> Report:
    """Ctrl-C or SIGTERM before any check started (while IMDS was being asked, ctx None): every check is ERROR."""
    if ctx is None:
        region = settings.region or "<region>"
        agent_config = plan.read_agent_config(settings.root)
        targets = plan.targets(settings.services, region, plan.domain_for(region), agent_config)
        endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or facts_mod.DEFAULT_ENDPOINT
        ctx = Context(settings, facts_mod.Facts(facts_mod.Imds(endpoint)), targets, agent_config, environ,
                      started + settings.timeout, clock)
    stopped = Result(Status.ERROR, "interrupted: the run was stopped before this check started", code="interrupted")
    return Report(__version__, started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  round(clock() - started, 3), instance_facts(ctx), tuple(Finding(c, stopped) for c in checks_for(ctx)))


class ReportInterrupted(Exception):
    def __init__(self, report: Report):
        super().__init__("interrupted")
        self.report = report


def instance_facts(ctx: Context) -> dict:
    return {**ctx.facts.as_dict(), "region": ctx.region,
            "targets": [{"service": t.service, "name": t.name, "type": "gateway" if t.gateway else "interface",
                         "source": t.source} for t in ctx.targets]}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
