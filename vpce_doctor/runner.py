"""Run checks concurrently in dependency order, within the run's deadline."""
from __future__ import annotations

import queue
import threading
import time
import traceback
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

from .model import MET, Check, Finding, Result, Status

Clock = Callable[[], float]
# The main thread never blocks longer than this: a SIGINT/SIGTERM the kernel handed to a probe thread only marks
# the signal pending, and Python runs the handler (KeyboardInterrupt) when the main thread next wakes up.
POLL_S = 0.1


class CatalogueError(ValueError):
    """The catalogue itself is wrong: a duplicate id, an unknown prerequisite, or a cycle."""


def validate(checks: Sequence[Check]) -> None:
    """Every prerequisite must come earlier in the catalogue, which also rules out cycles."""
    seen = set()
    for check in checks:
        if check.id in seen:
            raise CatalogueError(f"duplicate check id {check.id}")
        missing = [need for need in check.needs + check.after if need not in seen]
        if missing:
            raise CatalogueError(f"{check.id} needs {', '.join(missing)}, which is not earlier in the catalogue")
        seen.add(check.id)


class Ran(NamedTuple):
    findings: Tuple[Finding, ...]  # one per check, in catalogue order
    interrupted: bool = False      # Ctrl-C or SIGTERM cut the run short: the unfinished checks are ERROR


def run_checks(checks: Sequence[Check], ctx, *, deadline: float, clock: Clock = time.monotonic,
               on_finding: Optional[Callable[[Finding], None]] = None,
               max_workers: int = 32) -> Ran:
    """Return one finding per check, in catalogue order, and whether Ctrl-C or SIGTERM stopped the run.

    A check whose prerequisite did not pass is SKIP and names its blocker; one that raises, is still running
    at the deadline, or is cut short by Ctrl-C/SIGTERM is ERROR. on_finding sees each finding as soon as it
    and every finding before it are settled, so live output keeps catalogue order. An interruption is no exception
    here: the findings are the report either way, and the report alone decides the exit code.
    """
    validate(checks)
    findings: Dict[str, Finding] = {}
    done: "queue.Queue[Tuple[Check, Result, float]]" = queue.Queue()
    slots = threading.Semaphore(max_workers)
    started = set()
    emitted = 0

    def settle(check: Check, result: Result, duration_s: float = 0.0) -> None:
        nonlocal emitted
        findings[check.id] = Finding(check, result, round(duration_s, 4))
        while emitted < len(checks) and checks[emitted].id in findings:
            emitted += 1
            if on_finding:
                on_finding(findings[checks[emitted - 1].id])

    def start_ready() -> None:
        for check in checks:
            if check.id in started or not all(need in findings for need in check.needs + check.after):
                continue
            started.add(check.id)
            blocker = next((n for n in check.needs if findings[n].status not in MET), None)
            if blocker:
                settle(check, Result(Status.SKIP, f"not run: {blocker} is {findings[blocker].status.value}",
                                     code="blocked", evidence={"blocked_by": blocker}))
            elif clock() >= deadline:
                settle(check, Result(Status.ERROR, "not started: the run deadline had passed", code="deadline"))
            else:
                prior = {need: findings[need].result for need in check.needs + check.after}
                # Daemon threads: a probe stuck past the deadline must not hold the process open.
                threading.Thread(target=_run_one, args=(check, ctx, prior, done, slots, clock),
                                 name=check.id, daemon=True).start()

    try:
        start_ready()
        while len(findings) < len(checks):
            remaining = deadline - clock()
            try:
                check, result, duration = done.get(timeout=max(0.0, min(remaining, POLL_S)))
            except queue.Empty:
                if remaining > POLL_S:
                    continue
                break
            settle(check, result, duration)
            start_ready()
    except KeyboardInterrupt:
        _settle_rest(checks, findings, settle, "interrupted: the run was stopped before this check finished",
                     "interrupted")
        return Ran(tuple(findings[c.id] for c in checks), interrupted=True)
    for check in checks:
        if check.id not in findings:
            summary = ("timed out: still running at the run deadline" if check.id in started
                       else "not started: the run deadline had passed")
            settle(check, Result(Status.ERROR, summary, code="deadline"))
    return Ran(tuple(findings[c.id] for c in checks))


def blocker(result: Result) -> Optional[str]:
    """The prerequisite that kept a skipped check from running (what the runner named when it skipped it)."""
    named = result.evidence.get("blocked_by") if result.status is Status.SKIP else None
    return str(named) if named else None


def _settle_rest(checks, findings, settle, summary: str, code: str) -> None:
    for check in checks:
        if check.id not in findings:
            settle(check, Result(Status.ERROR, summary, code=code))


def _run_one(check: Check, ctx, prior, done, slots, clock) -> None:
    with slots:
        started = clock()
        try:
            result = check.run(ctx, prior)
            if not isinstance(result, Result):
                raise TypeError(f"check returned {type(result).__name__}, not Result")
        except Exception as error:  # a crashing check is a finding, never a crashed doctor
            result = Result(Status.ERROR, f"check crashed: {error.__class__.__name__}: {error}", code="crash",
                            cause="This is a bug in vpce-doctor; the evidence carries the traceback.",
                            evidence={"exception": repr(error), "traceback": traceback.format_exc(limit=8)})
        done.put((check, result, clock() - started))
