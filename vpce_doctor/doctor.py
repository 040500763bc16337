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
from .checks import api_services, authenticated
from .context import THIS_HOST, Context, Host
from .model import Finding, Report, Result, Status
from .runner import run_checks
from .settings import Settings, UsageError


def prepare(settings: Settings, environ: Mapping[str, str], host: Host = THIS_HOST,
            clock: Callable[[], float] = time.monotonic, started: Optional[float] = None) -> Context:
    """The one wiring step of a run: the facts, then its Region and domain, targets, the selected checks and the AWS
    clients they declare, each built once. Raises UsageError when the region can be had from nowhere."""
    started = clock() if started is None else started
    # Shipping happens after the checks and must fit in the same deadline: keep it a slice of the run.
    deadline = started + settings.timeout - (ship_reserve(settings) if settings.ship else 0.0)
    # Imports are the slowest part of a healthy run: start them now, while IMDS answers. A run not narrowed by --only
    # (the timer's, Run Command's) calls AWS; a narrowed one imports botocore when its plan declares a client.
    aws = settings.ship or not settings.only
    threading.Thread(target=_import_early, args=(aws,), name="imports", daemon=True).start()
    facts = facts_mod.gather(environ, lambda: deadline - clock())
    region = settings.region or facts.region
    if not region:
        raise UsageError("the region is unknown: IMDS did not give it (see imds:token) and --region was not given")
    ctx = planned(settings, environ, host, facts, region, deadline, clock)
    if authenticated(ctx.checks):
        clients = clients_for(ctx)
        clients.prewarm(api_services(ctx.checks) + (("logs",) if settings.ship else ()))
        ctx = replace(ctx, clients=clients)
    return ctx


def planned(settings: Settings, environ: Mapping[str, str], host: Host, facts: facts_mod.Facts, region: str,
            deadline: float, clock: Callable[[], float] = time.monotonic) -> Context:
    """The run's plan on what is known of the instance: the agent's config read once, the names to test in the
    Region's domain (plan.domain_for, as Context.domain gives it), and the checks --only selects."""
    agent_config = plan.read_agent_config(host.root)
    targets = plan.targets(settings.services, region, plan.domain_for(region, facts.domain), agent_config,
                           facts.families() == ("IPv6",))
    return Context(settings, facts, targets, agent_config, environ, deadline, clock, host,
                   checks_for(targets, settings, environ))


def clients_for(ctx: Context):
    """The AWS clients of a run: each goes to the name the network checks tested, on the endpoints' port."""
    from .aws import Clients
    settings = ctx.settings
    port = "" if ctx.port == HTTPS_PORT else f":{ctx.port}"
    return Clients(ctx.region, {t.service: f"https://{t.name}{port}" for t in ctx.targets}, settings.connect_timeout,
                   ctx.remaining, settings.ca_bundle, ctx.domain, ctx.port)


def _import_early(aws: bool) -> None:
    import dns.resolver  # noqa: F401
    if aws:
        import botocore.client  # noqa: F401
        import botocore.session  # noqa: F401


def ship_reserve(settings: Settings) -> float:
    return min(max(2 * settings.connect_timeout, 1.0), settings.timeout / 4)


def checks_for(targets, settings: Settings, environ: Mapping[str, str]):
    """The catalogue for these targets, narrowed by --only (plus what the checks named need)."""
    from .aws import other_credential_sources
    from .checks import catalogue, select
    try:
        return select(catalogue(targets, settings, not other_credential_sources(environ)), settings.only)
    except LookupError as error:
        raise UsageError(f"--only {error.args[0]!r} matches no check; see --list-checks") from None


def diagnose(ctx: Context, started_at: datetime, started: float,
             on_finding: Optional[Callable[[Finding], None]] = None) -> Report:
    """Run the plan's checks; Ctrl-C or SIGTERM still yields a full report (interrupted ones are ERROR)."""
    ran = run_checks(ctx.checks, ctx, deadline=ctx.deadline, clock=ctx.clock, on_finding=on_finding)
    return Report(__version__, started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  round(ctx.clock() - started, 3), instance_facts(ctx), ran.findings)


def interrupted_report(settings: Settings, environ: Mapping[str, str], started_at: datetime, started: float,
                       ctx: Optional[Context] = None, clock: Callable[[], float] = time.monotonic,
                       host: Host = THIS_HOST) -> Report:
    """Ctrl-C or SIGTERM before any check started: every check of the plan is ERROR. While IMDS was being asked
    (ctx None) there is no plan yet: it is made from what is known, the Region only if --region gave it."""
    if ctx is None:
        endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or facts_mod.DEFAULT_ENDPOINT
        ctx = planned(settings, environ, host, facts_mod.Facts(facts_mod.Imds(endpoint)),
                      settings.region or "<region>", started + settings.timeout, clock)
    stopped = Result(Status.ERROR, "interrupted: the run was stopped before this check started", code="interrupted")
    return Report(__version__, started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  round(clock() - started, 3), instance_facts(ctx), tuple(Finding(c, stopped) for c in ctx.checks))


def instance_facts(ctx: Context) -> dict:
    return {**ctx.facts.as_dict(), "region": ctx.region,
            "targets": [{"service": t.service, "name": t.name, "type": "gateway" if t.gateway else "interface",
                         "source": t.source} for t in ctx.targets]}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
