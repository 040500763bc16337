"""The --ship spool: reports wait here until CloudWatch Logs has accepted them. Nothing is lost while it has room.

Every report is written here first and deleted only once PutLogEvents accepted it, so an interruption at any point
(SIGTERM, a dead endpoint, a crash) leaves it for the next run. The directory is the doctor's own: created 0700,
owned by the doctor's user (checked), opened without following symlinks, and every file in it is handled through
that directory descriptor with O_NOFOLLOW. Only files whose names the doctor makes are ever read, renamed or
deleted, so a spool-dir pointed at a directory holding other files leaves them alone.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from . import owned_dir
from .instance_files import parse_json

SPOOL_FILES, SPOOL_BYTES = 50, 5 * 1024 * 1024
MAX_FILE = 2 * 1024 * 1024         # larger than any batch the doctor writes (a report event is at most 256 KB)
# One PutLogEvents call: at most 1,048,576 bytes (each event's UTF-8 size plus 26), 10,000 events, within 24 hours
# (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html).
PUT_MAX_BYTES, PUT_MAX_EVENTS, EVENT_OVERHEAD, PUT_MAX_SPAN_MS = 1_048_576, 10_000, 26, 24 * 3600 * 1000
STALE_S = 3600  # a temporary file this old is a killed run's, never one being written
LOCK, COUNTER = ".vpce-doctor.lock", ".vpce-doctor.dropped"
# 0.1.0 counted the reports it dropped for lack of room in "dropped" (the digits of a number), beside the ".lock" it
# created empty on every run (git show 851df2c:vpce_doctor/ship.py, Spool.add and Spool._lock). Those are its names,
# not ours to delete: LEGACY_SEEN remembers which count was carried over, so it is told once.
LEGACY_LOCK, LEGACY_COUNTER, LEGACY_SEEN = ".lock", "dropped", ".vpce-doctor.legacy-dropped"
# report-<timestamp ms>-<pid>-<ns>.json; 0.1.0 wrote the same without "report-": still drained, never made.
REPORT_RE = re.compile(r"^(?:report-)?[0-9]{15}-[0-9]{1,10}-[0-9]{1,20}\.json\Z", re.ASCII)
SET_ASIDE_RE = re.compile(r"^report-[0-9]{15}-[0-9]{1,10}-[0-9]{1,20}\.(?:bad|rejected)\Z", re.ASCII)
TEMPORARY_RE = re.compile(r"^\.report-[0-9]{15}-[0-9]{1,10}-[0-9]{1,20}\.tmp\Z", re.ASCII)
Event = Tuple[int, str]


class SpoolError(OSError):
    """The spool directory cannot be used safely (not ours, a symlink, not a directory, read-only)."""


class Spool:
    """Reports waiting to be shipped, oldest first, bounded in count and bytes; safe for concurrent runs."""

    def __init__(self, directory: str):
        self.dir = directory

    @contextmanager
    def _locked(self) -> Iterator[int]:
        try:
            fd = owned_dir.open_dir(self.dir)
        except OSError as error:
            raise SpoolError(error.errno or errno.EIO, f"spool {error.strerror or error}") from None
        try:
            try:
                lock = owned_dir.open_own(fd, LOCK, os.O_RDWR | os.O_CREAT)
            except OSError as error:  # read-only, full, or a symlink planted as the lock
                raise _unusable(self.dir, error) from None
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(lock)
        finally:
            os.close(fd)

    def add(self, batch: Sequence[Event]) -> Tuple[str, int]:
        """Keep a batch; returns (its file name, how many old files had to go to make room)."""
        with self._locked() as fd:
            name = f"report-{batch[0][0]:015d}-{os.getpid()}-{time.monotonic_ns()}.json"
            try:
                owned_dir.write_new(fd, name, _encode(batch))
            except OSError as error:
                raise _unusable(self.dir, error) from None
            return name, self._trim(fd, keep=name)

    def drain(self, send: Callable[[List[Event]], "Rejected"], remaining: Callable[[], float],
              reserve: float = 0.2) -> "Drained":
        """Send spooled batches oldest first, several files per PutLogEvents call; delete a file only when every
        event of it was accepted. Stops at the first failure (it propagates) or when less than `reserve` seconds
        are left. A file CloudWatch will never accept (too old, expired) is set aside as .rejected."""
        result = Drained()
        with self._locked() as fd:
            queue = [(name, events) for name, events in self._readable(fd, result)]
            while queue and remaining() > reserve:
                group, queue = _one_call(queue)
                events = sorted((ts, message, index) for index, (_, batch) in enumerate(group) for ts, message in batch)
                rejected = send([(ts, message) for ts, message, _ in events])
                for index, (name, _) in enumerate(group):
                    verdicts = {rejected.verdict(i) for i, e in enumerate(events) if e[2] == index}
                    _settle(fd, name, verdicts, result)
            result.left = len(queue)
            result.dropped = _take_counter(fd) + _take_legacy_counter(fd)  # after the sends: a failure keeps them
        return result

    def _readable(self, fd: int, result: "Drained"):
        for name in sorted(n for n in os.listdir(fd) if REPORT_RE.match(n)):
            batch = _read_batch(fd, name)
            if batch is None:
                owned_dir.rename(fd, name, _set_aside_name(name, "bad"))  # kept for a human, never blocks the queue
                result.outcome[name] = "bad"
            else:
                yield name, batch

    def _trim(self, fd: int, keep: str) -> int:
        """Drop the oldest files until within SPOOL_FILES and SPOOL_BYTES: one listing, one stat each (linear)."""
        listing = os.listdir(fd)
        _remove_stale_temporaries(fd, [n for n in listing if TEMPORARY_RE.match(n)])
        sizes = {}
        for name in (n for n in listing if REPORT_RE.match(n) or SET_ASIDE_RE.match(n)):
            try:
                sizes[name] = os.stat(name, dir_fd=fd, follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
        names = sorted(sizes, key=lambda n: (n.replace("report-", "").split("-")[0], n))
        total, dropped = sum(sizes.values()), 0
        for name in names:
            if len(sizes) - dropped <= SPOOL_FILES and total <= SPOOL_BYTES:
                break
            if name == keep:
                continue
            owned_dir.unlink(fd, name)
            total, dropped = total - sizes[name], dropped + 1
        if dropped:
            _add_counter(fd, dropped)
        return dropped


class Drained:
    """What one drain did: each file's outcome (accepted, too-new, rejected, bad), how many were left for later
    (time ran out), and how many reports earlier runs had dropped for lack of room."""

    def __init__(self) -> None:
        self.outcome: Dict[str, str] = {}
        self.left = self.dropped = 0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcome.values() if o == outcome)


class Rejected:
    """PutLogEvents' rejectedLogEventsInfo for one call: which events CloudWatch did not store, and why.
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html"""

    def __init__(self, info: Optional[dict] = None):
        info = info or {}
        self.too_new_from = _index(info.get("tooNewLogEventStartIndex"))
        self.too_old_to = _index(info.get("tooOldLogEventEndIndex"))
        self.expired_to = _index(info.get("expiredLogEventEndIndex"))

    def verdict(self, i: int) -> str:
        """accepted, too-new (may be accepted later) or too-old/expired (never)."""
        if self.too_new_from is not None and i >= self.too_new_from:
            return "too-new"
        if self.expired_to is not None and i <= self.expired_to:
            return "expired"
        if self.too_old_to is not None and i <= self.too_old_to:
            return "too-old"
        return "accepted"

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.too_new_from, self.too_old_to, self.expired_to))


def _index(value) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _settle(fd: int, name: str, verdicts: set, result: Drained) -> None:
    if verdicts <= {"accepted"}:
        owned_dir.unlink(fd, name)
        result.outcome[name] = "accepted"
    elif "too-new" in verdicts:  # the instance clock runs ahead: CloudWatch takes it once time catches up
        result.outcome[name] = "too-new"
    else:
        owned_dir.rename(fd, name, _set_aside_name(name, "rejected"))
        result.outcome[name] = "rejected"


def _one_call(queue):
    """The files that fit one PutLogEvents call: at most 1,048,576 bytes (each event's UTF-8 size plus 26), 10,000
    events, spanning at most 24 hours (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
    API_PutLogEvents.html). The first file always goes, so an odd one cannot block the queue."""
    taken: List[Tuple[str, list]] = []
    size, count, first = 0, 0, None
    for name, batch in queue:
        grow = sum(len(message.encode()) + EVENT_OVERHEAD for _, message in batch)
        low, high = min(ts for ts, _ in batch), max(ts for ts, _ in batch)
        first = low if first is None else min(first, low)
        if taken and (size + grow > PUT_MAX_BYTES or count + len(batch) > PUT_MAX_EVENTS
                      or high - first > PUT_MAX_SPAN_MS):
            break
        taken.append((name, batch))
        size, count = size + grow, count + len(batch)
    return taken, queue[len(taken):]


def _read_batch(fd: int, name: str) -> Optional[List[Event]]:
    """A spooled batch, or None when it is not one the doctor could have written (hostile or damaged)."""
    try:
        text = owned_dir.read_own(fd, name, MAX_FILE).decode("utf-8")
        data = parse_json(text, max_depth=3)
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or not data or len(data) > PUT_MAX_EVENTS:
        return None
    batch = []
    for item in data:
        if not (isinstance(item, list) and [type(v) for v in item] == [int, str]
                and 0 < item[0] < 10 ** 15 and 0 < len(item[1].encode()) <= 256 * 1024):
            return None
        batch.append((item[0], item[1]))
    return batch


def _encode(batch: Sequence[Event]) -> bytes:
    import json
    return json.dumps([[ts, message] for ts, message in batch]).encode()


def _unusable(path: str, error: OSError) -> SpoolError:
    reason = "a symlink is in the way" if error.errno == errno.ELOOP else error.strerror or str(error)
    return SpoolError(error.errno or errno.EIO, f"spool {path} cannot be used: {reason}")


def _remove_stale_temporaries(fd: int, names: Sequence[str]) -> None:
    """Half-written files of runs killed mid-write (SIGKILL): ours by name, and an hour old at least."""
    for name in names:
        try:
            if time.time() - os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime > STALE_S:
                owned_dir.unlink(fd, name)
        except FileNotFoundError:
            continue


def _set_aside_name(name: str, kind: str) -> str:
    stem = name[:-5] if name.startswith("report-") else "report-" + name[:-5]
    return f"{stem}.{kind}"


def _take_counter(fd: int) -> int:
    """How many reports earlier runs dropped for lack of room (then reset). Anything but digits counts as 0."""
    try:
        text = owned_dir.read_own(fd, COUNTER, 32).decode("ascii")
    except (OSError, ValueError):
        text = ""
    owned_dir.unlink(fd, COUNTER)
    return int(text) if re.fullmatch(r"[0-9]{1,12}", text, re.ASCII) else 0


def _take_legacy_counter(fd: int) -> int:
    """0.1.0's count of dropped reports, carried over once: only a regular file of ours holding digits, beside
    0.1.0's empty .lock (a foreign "dropped" in a shared spool-dir is not 0.1.0's). If 0.1.0 ran again and raised
    the same file's count, only the rise is new."""
    try:
        lock = os.stat(LEGACY_LOCK, dir_fd=fd, follow_symlinks=False)
        text = owned_dir.read_own(fd, LEGACY_COUNTER, 32).decode("ascii")
        inode = os.stat(LEGACY_COUNTER, dir_fd=fd, follow_symlinks=False).st_ino
    except (OSError, ValueError):
        return 0
    if not (stat.S_ISREG(lock.st_mode) and lock.st_size == 0 and lock.st_uid == os.geteuid()
            and re.fullmatch(r"[0-9]{1,12}", text, re.ASCII)):
        return 0
    try:
        seen_inode, _, seen_count = owned_dir.read_own(fd, LEGACY_SEEN, 64).decode("ascii").partition(" ")
    except (OSError, ValueError):
        seen_inode = seen_count = ""
    told = int(seen_count) if seen_inode == str(inode) and seen_count.isdigit() else 0
    if int(text) <= told:
        return 0
    _replace(fd, LEGACY_SEEN, f"{inode} {int(text)}")
    return int(text) - told


def _add_counter(fd: int, dropped: int) -> None:
    _replace(fd, COUNTER, str(_take_counter(fd) + dropped))


def _replace(fd: int, name: str, text: str) -> None:
    """A small file of ours, replaced whole: written under a temporary name, renamed over."""
    temporary = f".{name}.{os.getpid()}.tmp"
    owned_dir.unlink(fd, temporary)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=fd)
    try:
        os.write(handle, text.encode())
    finally:
        os.close(handle)
    os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
