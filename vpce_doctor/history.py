"""The runs kept beside the spool (the last one, the last healthy one, the first broken one) and --since FILE.

The records live in the spool directory under names the spool never touches, with its rules: the directory is the
doctor's own (0700, its user, no symlink), each record is written whole under a temporary name (O_EXCL|O_NOFOLLOW,
0600) and renamed, under the spool's lock. Runs that ship (the timer's, State Manager's) keep them; every run reads
them. A record that is not one the doctor wrote is set aside as *.bad and named in a note, never a crash, and never
deleted.
"""
from __future__ import annotations

import errno
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from . import changes
from .instance_files import parse_json, read_bytes
from .owned_dir import read_own, rename, unlink, write_new
from .settings import UsageError
from .spool import Spool

KINDS = ("last", "healthy", "first-broken")
MAX_RECORD = 1024 * 1024   # a record of ~60 checks is about 20 KB
MAX_REPORT = 4 * 1024 * 1024  # --since FILE: a JSON report (a shipped one is at most 256 KB)


def name(kind: str) -> str:
    return f".vpce-doctor.{kind}.json"


def load(spool_dir: str, set_aside: bool) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """The kept records by kind, and notes on what could not be read. Writes nothing unless `set_aside` (a run
    that keeps records moves a bad one out of its way, as *.bad)."""
    try:
        fd = _existing(spool_dir)
    except FileNotFoundError:
        return {}, []
    except OSError as error:
        return {}, [f"earlier runs in {spool_dir} cannot be read: {error.strerror or error}"]
    kept, notes = {}, []
    try:
        for kind in KINDS:
            rec, problem = _read_record(fd, name(kind))
            if rec is not None:
                kept[kind] = rec
            elif problem:
                aside = name(kind)[:-5] + ".bad"
                if set_aside:
                    rename(fd, name(kind), aside)
                notes.append(f"the kept {kind} run in {spool_dir} is not a record vpce-doctor wrote ({problem})"
                             + (f"; set aside as {aside}" if set_aside else ""))
    finally:
        os.close(fd)
    return kept, notes


def _existing(path: str) -> int:
    """The spool directory for reading: never created here, never through a symlink, only when it is ours."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise PermissionError(errno.EPERM, "it is not owned by this user")
    return fd


def keep(spool_dir: str, current: Mapping[str, Any], kept: Mapping[str, Mapping[str, Any]]) -> Optional[str]:
    """Record this run as the last (and the healthy or first broken one); returns a problem, or None."""
    try:
        with Spool(spool_dir)._locked() as fd:
            _replace(fd, "last", current)
            if changes.healthy(current):
                _replace(fd, "healthy", current)
                unlink(fd, name("first-broken"))
            elif current.get("exit_code") == 1 and "first-broken" not in kept:
                _replace(fd, "first-broken", current)
    except OSError as error:
        return f"this run was not kept for the next one's comparison: {error.strerror or error}"
    return None


def comparisons(current: Mapping[str, Any], kept: Mapping[str, Mapping[str, Any]],
                since: Optional[Mapping[str, Any]] = None) -> Tuple[List[Dict[str, Any]], List[str]]:
    """What changed since the last run, since the last healthy one (when this one is not healthy), and since FILE."""
    out, notes = [], []
    same = {k: r for k, r in kept.items() if r.get("instance_id") == current.get("instance_id")}
    if len(same) < len(kept):
        notes.append("runs kept for another instance (a copied spool directory or image) were not compared")
    last, good = same.get("last"), same.get("healthy")
    first = same.get("first-broken") or (current if current.get("exit_code") == 1 else None)
    if last is not None:
        out.append(changes.compare("last", last, current, first if not changes.healthy(current) else None))
    if good is not None and not changes.healthy(current) and (last is None or good["started_at"] != last["started_at"]):
        out.append(changes.compare("healthy", good, current, first))
    if since is not None:
        out.append(changes.compare("file", since, current))
    return out, notes


def read_since(path: str) -> Dict[str, Any]:
    """--since FILE: an earlier JSON report (any version's), as a record; a usage error when it is not one."""
    try:
        data = parse_json(read_bytes(path, MAX_REPORT, whole=True).decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--since {path} does not exist") from None
    except OSError as error:
        why = "larger than 4 MiB" if error.errno == errno.EFBIG else error.strerror or str(error)
        raise UsageError(f"--since {path} cannot be read: {why}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UsageError(f"--since {path} is not a JSON report of vpce-doctor (not JSON, or nested too deep)") \
            from None
    if not (isinstance(data, dict) and str(data.get("schema", "")).startswith("vpce-doctor/report/")
            and isinstance(data.get("findings"), list)):
        raise UsageError(f"--since {path} is not a JSON report of vpce-doctor (no vpce-doctor/report schema)")
    return changes.record(data)


def _read_record(fd: int, filename: str) -> Tuple[Optional[Dict[str, Any]], str]:
    try:
        data = parse_json(read_own(fd, filename, MAX_RECORD).decode("utf-8"), max_depth=12)
    except FileNotFoundError:
        return None, ""
    except OSError as error:  # a symlink (ELOOP), a FIFO, another user's file
        return None, str(error.strerror or error)
    except ValueError as error:  # too large, not UTF-8, not JSON, nested too deep, Infinity
        return None, "larger than 1 MiB" if str(error) == "too large" else "not JSON"
    if not valid(data):
        return None, "not a vpce-doctor record"
    return data, ""


def valid(data: Any) -> bool:
    """The shape changes.diff relies on: a record, a time, an exit code and per check a status."""
    if not (isinstance(data, dict) and data.get("schema") == changes.RECORD and isinstance(data.get("checks"), dict)
            and isinstance(data.get("started_at"), str) and type(data.get("exit_code")) is int):
        return False
    return all(isinstance(k, str) and isinstance(c, dict) and isinstance(c.get("status"), str)
               and isinstance(c.get("seen", {}), dict) and isinstance(c.get("needs", []), list)
               and all(isinstance(n, str) for n in c.get("needs", [])) for k, c in data["checks"].items())


def _replace(fd: int, kind: str, rec: Mapping[str, Any]) -> None:
    import json
    temporary = f".{name(kind).rsplit('.', 1)[0]}.tmp"  # owned_dir.write_new's
    unlink(fd, temporary)  # a run killed mid-write left it; we hold the lock, so it is no one else's
    write_new(fd, name(kind), json.dumps(rec, sort_keys=True, default=str).encode())
