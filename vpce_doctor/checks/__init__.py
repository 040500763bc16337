"""The catalogue: every check, in the order the report shows them. The only registry there is."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence, Tuple

from ..model import Check
from . import (
    agent,
    agent_logs,
    aws_buckets,
    clock,
    diagnostics,
    dns,
    identity,
    imds,
    local,
    names,
    remote,
    resolver,
    run_command,
    s3,
    session,
    session_logs,
    ssm_view,
    tcp,
    tls,
    vpc,
    vpc_remote,
)


def catalogue(targets, settings, imds_only: bool = True) -> Tuple[Check, ...]:
    """Layer by layer, as domain.md orders them: instance, local configuration, the SSM agent, DNS, TCP, TLS, then the
    authenticated layer (credentials, the control plane, S3, Session Manager), and the clock judged from every
    AWS answer. imds_only: nothing but the instance profile can supply credentials here."""
    services = {t.service for t in targets}
    network = _network(targets)
    authenticated = _authenticated(targets, settings)
    if not authenticated and "sts" not in services:
        return _resolve_after(network)
    # Every API call takes the proxy local:proxy judged (botocore honours the environment's proxies, for IMDS
    # credentials too): behind a broken one the authenticated layer is skipped, one verdict instead of a timeout each.
    # names:dialled knows when the SDKs' IMDS endpoint mode keeps botocore from the instance profile.
    api = tuple(replace(c, needs=(*c.needs, "local:proxy"), after=(*c.after, "names:dialled"))
                if c.id == "creds:source" else c
                for c in (*identity.checks("sts" in services, imds_only), *authenticated))
    return _resolve_after((*network, *api, clock.check(tuple(c.id for c in api if c.id != "creds:source"))))


def _network(targets) -> Tuple[Check, ...]:
    """The instance, its configuration, the agent, then DNS, TCP and TLS for each target."""
    services = {t.service for t in targets}
    ssm = "ssm" in services
    return (
        *imds.checks(),
        *resolver.checks(),
        *local.checks(),
        *(agent.checks() if ssm else ()),
        *(_channel(ssm, dns.check(t)) for t in targets),
        names.check(tuple(t.service for t in targets)),
        *(_channel(ssm, tcp.check(t)) for t in targets),
        *(_channel(ssm, tls.check(t)) for t in targets),
        *(_agent_said(targets) if ssm else ()),
        *((run_command.check(),) if ssm else ()),
        # s3:aws-buckets probes anonymously on every run; with the cross-check it waits for the policy it also judges.
        *((aws_buckets.check(),) if "s3" in services and "ec2" not in services else ()),
    )


def _authenticated(targets, settings) -> Tuple[Check, ...]:
    """The checks that sign their calls, for the services the plan has (credentials and the clock come apart)."""
    services = {t.service for t in targets}
    return (
        *((vpc.check(tuple(t.service for t in targets)),) if "ec2" in services else ()),
        *s3.checks(settings.bucket if "s3" in services else None, "ec2" in services,
                   ("sts:identity",) if "sts" in services else ()),
        *((aws_buckets.check(),) if {"ec2", "s3"} <= services else ()),
        *(_session(settings.session_document) if "ssm" in services else ()),
        *((ssm_view.check(),) if "ssm" in services else ()),
    )


def _channel(ssm: bool, check: Check) -> Check:
    """ec2messages is only the agent's fallback channel from 3.3.40.0 on: run_command judges its failures."""
    return run_command.as_fallback(check) if ssm and check.id.endswith(":ec2messages") else check


def _agent_said(targets) -> Tuple[Check, ...]:
    """The agent's logs and ssm-cli, judged after the layers they talk about (their lines name those layers)."""
    network = ("imds:token", "imds:profile", "dns:resolver", "local:proxy", "ssm:agent",
               *(f"{layer}:{t.service}" for layer in ("dns", "tcp", "tls") for t in targets))
    return (*agent_logs.checks(after=network), diagnostics.check())


def remote_catalogue(targets, described, settings) -> Tuple[Check, ...]:
    """`vpce-doctor remote`: what the control plane says about the instance (described: its DescribeInstances),
    in the same layer order; vpc:endpoints, session:preferences and s3:aws-buckets judge as on the instance."""
    services = tuple(t.service for t in targets)
    return _resolve_after((*remote.checks(described), *vpc_remote.checks(services, settings.session_document)))


def _session(document: str) -> Tuple[Check, ...]:
    preferences, *rest = session.checks(document, agent_planned=True)
    return (preferences, *session_logs.checks(), *rest)


def _resolve_after(checks: Sequence[Check]) -> Tuple[Check, ...]:
    """Checks name what they would like to wait for; keep only what this plan has (earlier in it)."""
    from dataclasses import replace
    seen, resolved = set(), []
    for check in checks:
        resolved.append(replace(check, after=tuple(a for a in check.after if a in seen)))
        seen.add(check.id)
    return tuple(resolved)


def api_services(checks: Sequence[Check]) -> Tuple[str, ...]:
    """The services whose clients these checks will call (each declares its own), to create them ahead of time."""
    return tuple(dict.fromkeys(service for check in checks for service in check.clients))


def authenticated(checks: Sequence[Check]) -> bool:
    """Does this plan make AWS calls? Every check that does needs creds:source, and so does the clock's."""
    return any(c.id == "creds:source" for c in checks)


def select(checks: Sequence[Check], wanted: Sequence[str]) -> Tuple[Check, ...]:
    """The checks named (an id, or a prefix such as "tls" or "dns:"), plus everything they need."""
    if not wanted:
        return tuple(checks)
    by_id = {c.id: c for c in checks}
    chosen = set()
    for word in wanted:
        matches = [c.id for c in checks if c.id == word or c.id.startswith(word.rstrip(":") + ":")]
        if not matches:
            raise LookupError(word)
        chosen.update(matches)
    pending = list(chosen)
    while pending:
        for need in by_id[pending.pop()].needs:
            if need not in chosen:
                chosen.add(need)
                pending.append(need)
    # "after" is ordering only: keep it when present, never pull it in
    return tuple(_trim_after(c, chosen) for c in checks if c.id in chosen)


def _trim_after(check: Check, chosen) -> Check:
    from dataclasses import replace
    return replace(check, after=tuple(a for a in check.after if a in chosen))
