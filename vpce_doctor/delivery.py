"""After local output: this run's report into the spool, then the spool to CloudWatch Logs, within the deadline.

Spooling first makes every interruption safe: whatever stops the run after that (SIGTERM, a dead endpoint, the
deadline), the report is on disk and goes with the next run. A report leaves the spool only when CloudWatch
accepted it. When the spool cannot be used (read-only, not ours), the report is still sent, straight from memory.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable, ContextManager, Dict

from . import ship
from .doctor import clients_for, ship_reserve
from .spool import Drained, Spool


def deliver(ctx, report: Dict, shield: Callable[[], ContextManager] = nullcontext) -> str:
    """Ship and return the one line that tells the operator what happened (never raises, not even on Ctrl-C).
    `shield` defers SIGTERM/SIGINT while the report is written to the spool, so it is written whole or not at all."""
    settings = ctx.settings
    group, stream = settings.log_group, report["instance"].get("instance_id") or "unknown-instance"
    batch = ship.events(report)
    deadline = ctx.deadline + ship_reserve(settings)
    spool = Spool(settings.spool_dir)
    try:
        with shield():
            name, lost = spool.add(batch)
    except KeyboardInterrupt:  # raised as the shield lifts: the report is whole in the spool
        return f"vpce-doctor: interrupted before shipping; the report waits in {settings.spool_dir} for the next run"
    except OSError as error:  # SpoolError too: still send it, from memory
        return _direct(ctx, deadline, group, stream, batch, error)
    try:
        client = _client(ctx, deadline)
        drained = spool.drain(lambda events: ship.put(client, group, stream, events),
                              lambda: deadline - time.monotonic())
    except KeyboardInterrupt:
        return f"vpce-doctor: interrupted while shipping; the report waits in {settings.spool_dir} for the next run"
    except Exception as error:  # a broken logs path must never cost the report: it stays spooled
        extra = f"; the spool was full, {lost} older report(s) dropped" if lost else ""
        return f"vpce-doctor: report not shipped ({_short(error)}); spooled in {settings.spool_dir}{extra}"
    return _told(drained, name, group, stream, settings.spool_dir, lost)


def _told(drained: Drained, name: str, group: str, stream: str, spool_dir: str, lost: int) -> str:
    outcome = drained.outcome.get(name)
    others = [o for n, o in drained.outcome.items() if n != name]
    earlier = f" with {others.count('accepted')} spooled report(s)" if others.count("accepted") else ""
    notes = [f"{drained.dropped + lost} report(s) had been dropped from a full spool"] if drained.dropped + lost else []
    notes += [f"{others.count(k)} spooled report(s) {what}" for k, what in (
        ("rejected", f"rejected by CloudWatch (too old), set aside in {spool_dir} as *.rejected"),
        ("too-new", "still ahead of CloudWatch's clock, kept"), ("bad", "unreadable, set aside as *.bad"))
        if others.count(k)]
    notes += [f"{drained.left} spooled report(s) left for the next run (time ran out)"] if drained.left else []
    tail = "".join(f"; {n}" for n in notes)
    if outcome == "accepted":
        return f"vpce-doctor: report shipped to {group} stream {stream}{earlier}{tail}"
    why = {"too-new": "CloudWatch rejected its timestamp as more than 2 hours ahead; kept in the spool",
           "rejected": f"CloudWatch rejected its timestamp as too old; set aside in {spool_dir}",
           None: f"no time left in the run's deadline; spooled in {spool_dir}"}.get(outcome, f"kept in {spool_dir}")
    sent = f"; {others.count('accepted')} spooled report(s) sent" if others.count("accepted") else ""
    return f"vpce-doctor: report not shipped ({why}){sent}{tail}"


def _direct(ctx, deadline: float, group: str, stream: str, batch, spool_error: OSError) -> str:
    """The spool is unusable: send this run's report anyway (the spooled ones wait for a usable spool)."""
    problem = str(spool_error.strerror or spool_error)
    try:
        rejected = ship.put(_client(ctx, deadline), group, stream, batch)
    except KeyboardInterrupt:
        return f"vpce-doctor: report not shipped (interrupted) and not spooled: {problem}"
    except Exception as error:
        return f"vpce-doctor: report not shipped ({_short(error)}) and not spooled: {problem}"
    if rejected:
        return f"vpce-doctor: report rejected by CloudWatch (timestamp out of range) and not spooled: {problem}"
    return f"vpce-doctor: report shipped to {group} stream {stream}; not spooled first: {problem}"


def _client(ctx, deadline: float):
    clients = ctx.clients or clients_for(ctx)  # --only may have left no authenticated check, and so no clients
    clients.remaining = lambda: deadline - time.monotonic()  # shipping has its own slice of the deadline
    return clients.client("logs")


def _short(error: Exception) -> str:
    return f"{error.__class__.__name__}: {error}"[:200]
