"""The fleet's reads at the scale of a real estate: paced to each API's rate, backing off when throttled.

Listing every invocation page (50 per page) every half second is, at 10,000 instances, about 400 requests a second.
Instead the fleet follows the command's own counts (one ListCommands per poll), lists the invocations once they
are done, with their output (Details), in pages of 50 at a paced rate, and reads the shipped reports with one
paginated FilterLogEvents over the log group instead of one call per instance.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from .aws import Call

# Systems Manager publishes no request rate for ListCommands or ListCommandInvocations (its quotas page lists none);
# it answers ThrottlingException when "the service is throttling requests"
# (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_ListCommandInvocations.html). The fleet paces
# them at the rate CloudWatch Logs documents for its reads, and slows down further on every throttle.
SSM_RATE = 5.0
# FilterLogEvents: 5 transactions per second per account and Region, a hard limit
# (https://repost.aws/knowledge-center/cloudwatch-logs-throttling).
FILTER_RATE = 5.0
# ListCommandInvocations' MaxResults: 1 to 50 (API reference above).
PAGE = 50
# The error codes AWS services throttle with (botocore's retry handler treats the same codes as throttles:
# botocore/retries/standard.py, _THROTTLED_ERROR_CODES); and server faults worth another try.
THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
                       "TooManyRequestsException", "ProvisionedThroughputExceededException",
                       "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
                       "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
                       "EC2ThrottledException"})
TRANSIENT = frozenset({"InternalServerError", "InternalFailure", "ServiceUnavailable", "InternalServerException"})
# Exponential backoff with full jitter: sleep a random time up to min(cap, base * 2**attempt)
# (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
BACKOFF_BASE, BACKOFF_CAP, ATTEMPTS = 0.5, 20.0, 10
STEP = "runVpceDoctor"  # the Run document's one step
TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")  # a command's or an invocation's Status


class Paced:
    """One API's calls, no faster than its rate; a throttled call waits (backoff) and is made again."""

    def __init__(self, rate: float, deadline: float = float("inf"), clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random):
        self.interval, self.deadline = 1.0 / rate, deadline
        self.clock, self.sleep, self.jitter = clock, sleep, jitter
        self.next_at = 0.0
        self.requests = self.throttled = 0

    def __call__(self, client, operation: str, **params) -> Call:
        from .aws import call
        for attempt in range(1, ATTEMPTS + 1):
            self._wait()
            self.requests += 1
            got = call(client, operation, **params)
            if got.ok or got.code not in THROTTLED | TRANSIENT:
                return got
            self.throttled += got.code in THROTTLED
            pause = self.jitter() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt)
            if self.clock() + pause > self.deadline:
                break
            self.next_at = max(self.next_at, self.clock() + pause)
        return got

    def _wait(self) -> None:
        now = self.clock()
        if self.next_at > now:
            self.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


def pages(paced: Paced, client, operation: str, token: str, **params) -> Iterator[Mapping[str, Any]]:
    """Every page of a paginated call, paced; the caller stops early by not asking for more. An error ends it,
    raised as FleetReadError so what was read stays with the caller."""
    next_token: Optional[str] = None
    while True:
        got = paced(client, operation, **params, **({token: next_token} if next_token else {}))
        if not got.ok:
            raise FleetReadError(f"{_name(operation)}: {got.code}: {got.message}")
        response = got.response
        yield response
        next_token = response.get("NextToken") or response.get("nextToken")
        if not next_token:
            return


def invocations(paced: Paced, ssm, command_id: str) -> Tuple[List[Dict], Optional[str]]:
    """Every invocation of the command with its plugins' output and exit code (Details), in pages of 50."""
    found: List[Dict] = []
    try:
        for page in pages(paced, ssm, "list_command_invocations", "NextToken", CommandId=command_id, Details=True,
                          MaxResults=PAGE):
            found += page.get("CommandInvocations", [])
    except FleetReadError as error:
        return found, str(error)
    return found, None


def shipped(paced: Paced, logs, group: str, since_ms: int, parse: Callable[[str, str], Optional[Dict]],
            wanted: set) -> Tuple[Dict[str, Dict], Optional[str]]:
    """The newest report each wanted instance shipped since since_ms, from one paginated FilterLogEvents over the
    group (the report events only: a term every report carries); each kept parsed, never the whole message."""
    newest: Dict[str, Tuple[int, Dict]] = {}
    try:
        for page in pages(paced, logs, "filter_log_events", "nextToken", logGroupName=group, startTime=since_ms,
                          filterPattern='"vpce-doctor/report/1"'):
            for event in page.get("events", []):
                stream, stamp = str(event.get("logStreamName")), int(event.get("timestamp") or 0)
                if stream in wanted and stamp >= newest.get(stream, (-1, None))[0]:
                    parsed = parse(str(event.get("message", "")), stream)
                    if parsed is not None:
                        newest[stream] = (stamp, parsed)
    except FleetReadError as error:
        return {k: v for k, (_, v) in newest.items()}, str(error)
    return {k: v for k, (_, v) in newest.items()}, None


def plugin(invocation: Dict) -> Tuple[Optional[int], str]:
    """The doctor's exit code and output from a listed invocation's runVpceDoctor step (packaging/ssm/
    vpce-doctor-run.yaml). Its Output holds up to 2,500 characters (CommandPluginOutput, max 2500, in botocore's
    data/ssm/2014-11-06/service-2.json), as much as the doctor's --output summary prints: no GetCommandInvocation."""
    plugins = [p for p in invocation.get("CommandPlugins") or () if isinstance(p, dict)]
    first = next((p for p in plugins if p.get("Name") == STEP), plugins[-1] if plugins else {})
    code = first.get("ResponseCode")
    code = code if isinstance(code, int) and not isinstance(code, bool) and code >= 0 else None
    return code, str(first.get("Output") or "")


class FleetReadError(Exception):
    pass


def _name(operation: str) -> str:
    return "".join(part.title() for part in operation.split("_"))


def poll(ssm, command_id: str, deadline: float, interval: float, stderr, paced: Optional[Paced] = None) -> List[Dict]:
    """Follow the command by its own counts (one ListCommands a poll: TargetCount, CompletedCount, ErrorCount,
    DeliveryTimedOutCount, https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Command.html) until
    every target is done or the deadline; then list the invocations once. Progress on stderr: one line rewritten on a
    terminal, else one line per change."""
    paced = paced or Paced(SSM_RATE, deadline)
    tty, shown, said = stderr.isatty(), "", None
    try:
        while True:
            got = paced(ssm, "list_commands", CommandId=command_id)
            error = None if got.ok else f"ListCommands: {got.code}: {got.message}"
            if error and error != said:  # tried again at the next interval; said once
                stderr.write(("\n" if tty and shown else "") + f"vpce-doctor fleet: {error}\n")
            said = error
            info = (got.response.get("Commands") or [{}])[0] if got.ok else {}
            shown = _progress(stderr, tty, shown, _counted(info))
            if not error and _complete(info) or time.monotonic() + interval > deadline:
                break
            time.sleep(interval)
    except KeyboardInterrupt:  # stop waiting and show what is known; the command goes on in SSM
        stderr.write("\nvpce-doctor fleet: interrupted, showing what is known so far\n")
    found, error = invocations(paced, ssm, command_id)
    if error:
        stderr.write(("\n" if tty and shown else "") + f"vpce-doctor fleet: {error}\n")
    shown = _progress(stderr, tty, shown, _listed(found))
    if tty and shown:
        stderr.write("\n")
    return found


def _complete(info: Dict) -> bool:
    target, completed = int(info.get("TargetCount") or 0), int(info.get("CompletedCount") or 0)
    return info.get("Status") in TERMINAL or (info.get("Status") not in (None, "Pending") and 0 < target <= completed)


def _counted(info: Dict) -> str:
    """Progress from the command's counts (ErrorCount: Failed or Execution Timed Out)."""
    parts = [f"{info.get(k)} {what}" for k, what in (("ErrorCount", "failed or timed out"),
                                                      ("DeliveryTimedOutCount", "delivery timed out")) if info.get(k)]
    head = f"{int(info.get('CompletedCount') or 0)}/{int(info.get('TargetCount') or 0)} done"
    return head + (": " + ", ".join(parts) if parts else "")


def _listed(found: List[Dict]) -> str:
    from collections import Counter
    done = Counter(i.get("StatusDetails") or i.get("Status") for i in found if i.get("Status") in TERMINAL)
    return f"{sum(done.values())}/{len(found)} done" + (": " if done else "") + ", ".join(
        f"{n} {s}" for s, n in done.most_common())


def _progress(stderr, tty: bool, shown: str, line: str) -> str:
    if line != shown:
        stderr.write(f"\r{line}\033[K" if tty else line + "\n")
        stderr.flush()
    return line
