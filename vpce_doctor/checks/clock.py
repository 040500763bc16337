"""clock:skew: this instance's clock against the Date header of AWS's own responses."""
from __future__ import annotations

import statistics
from typing import Sequence, Tuple

from ..model import Check, Result, Severity, Status
from .api import TIME_SYNC

FAIL_S, WARN_S = 300, 60  # SigV4 rejects requests more than 5 minutes off


def check(after: Tuple[str, ...]) -> Check:
    return Check("clock:skew", "the clock agrees with AWS (within a minute)", Severity.HIGH, run, after=after)


def run(ctx, prior) -> Result:
    return assess(list(ctx.clients.dates), [c for c, r in prior.items() if r.status.value in ("skip", "error")])


def assess(dates: Sequence[Tuple[float, float]], not_run: Sequence[str] = ()) -> Result:
    """dates: (local epoch when the response arrived, the response's Date header); Date has 1 s resolution."""
    if not dates:
        return Result(Status.SKIP, "not measured: no AWS response to compare the clock with", code="unmeasured",
                      caused_by=tuple(not_run))
    skew = statistics.median(local - server for local, server in dates)
    evidence = {"skew_s": round(skew, 1), "responses": len(dates)}
    direction = "ahead of" if skew > 0 else "behind"
    seen = f"clock {abs(skew):.0f} s {direction} AWS ({len(dates)} responses)"
    if abs(skew) >= FAIL_S:
        return Result(Status.FAIL, seen, code="skew", evidence=evidence, remedy=TIME_SYNC,
                      cause="SigV4 rejects requests signed more than 5 minutes off: every AWS call, including the "
                            "SSM agent's, fails with 'Signature expired'.")
    if abs(skew) >= WARN_S:
        return Result(Status.WARN, seen, code="skew", evidence=evidence, remedy=TIME_SYNC,
                      cause="Still accepted, but drifting; at 5 minutes every signed request fails.")
    return Result(Status.PASS, f"clock within {max(1, round(abs(skew)))} s of AWS", evidence=evidence)
