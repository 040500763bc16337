"""After local output: the spool first, then this run's report, to CloudWatch Logs; spool whatever fails."""
from __future__ import annotations

import time
from typing import Dict

from . import ship
from .doctor import clients_for, ship_reserve


def deliver(ctx, report: Dict) -> str:
    """Ship and return the one line that tells the operator what happened (never raises)."""
    settings = ctx.settings
    group = settings.log_group
    stream = report["instance"].get("instance_id") or "unknown-instance"
    spool = ship.Spool(settings.spool_dir)
    deadline = ctx.deadline + ship_reserve(settings)
    try:
        client = _client(ctx, deadline)
        sent, dropped = spool.drain(lambda batch: ship.ship(client, group, stream, batch))
        if dropped:
            report = {**report, "shipping": {"spool_dropped": dropped}}
        ship.ship(client, group, stream, ship.events(report))
    except Exception as error:  # a broken logs path must never cost the report: keep it for the next run
        try:
            lost = spool.add(ship.events(report))
        except OSError as spool_error:
            return f"vpce-doctor: report not shipped ({_short(error)}) and not spooled: {spool_error}"
        extra = f"; the spool was full, {lost} older report(s) dropped" if lost else ""
        return f"vpce-doctor: report not shipped ({_short(error)}); spooled in {settings.spool_dir}{extra}"
    earlier = f" with {sent} spooled report(s)" if sent else ""
    note = f"; {dropped} report(s) had been dropped from a full spool" if dropped else ""
    return f"vpce-doctor: report shipped to {group} stream {stream}{earlier}{note}"


def _client(ctx, deadline: float):
    clients = ctx.clients or clients_for(ctx)  # --only may have left no authenticated check, and so no clients
    clients.remaining = lambda: deadline - time.monotonic()  # shipping has its own slice of the deadline
    return clients.client("logs")


def _short(error: Exception) -> str:
    return f"{error.__class__.__name__}: {error}"[:200]
