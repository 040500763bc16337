"""The process table, a process's environment, and bounded subprocess runs: the agent checks' window on the box."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .instance_files import read_bytes

ENVIRON_LIMIT = 256 * 1024
OUTPUT_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str                 # psutil's name: the 15-character comm for long names ("amazon-ssm-agen")
    exe: str                  # "" when unreadable
    username: str             # "" when unknown
    cmdline: Tuple[str, ...]
    create_time: float
    exe_trusted: Optional[bool] = None  # exe owned by root and writable by no one else; None: not known


def named(process: ProcessInfo, program: str) -> bool:
    """The process runs the installed `program`: its exe says so (and is a root-owned file, so no user can have
    planted it); only when the exe cannot be read, a root process whose comm or argv[0] says so.

    argv[0] and comm are whatever the process chose (`exec -a amazon-ssm-agent sleep 1d`): alone, they would let any
    user's process pass for the agent and fake its proxy environment or its user.
    """
    if process.exe:
        return os.path.basename(process.exe.removesuffix(" (deleted)")) == program and process.exe_trusted is not False
    argv0 = os.path.basename((process.cmdline or ("",))[0] or "")
    return process.username == "root" and (process.name in (program, program[:15]) or argv0 == program)


def _trusted(exe: str) -> Optional[bool]:
    try:
        info = os.stat(exe)
    except OSError:
        return None
    return info.st_uid == 0 and not info.st_mode & 0o022


def list_processes() -> Tuple[ProcessInfo, ...]:
    import psutil
    found: List[ProcessInfo] = []
    attrs = ["pid", "name", "exe", "username", "cmdline", "create_time"]
    for proc in psutil.process_iter(attrs=attrs, ad_value=None):
        try:
            info = proc.info
            exe = info["exe"] or ""
            found.append(ProcessInfo(int(info["pid"]), info["name"] or "", exe, info["username"] or "",
                                     tuple(info["cmdline"] or ()), float(info["create_time"] or 0.0),
                                     _trusted(exe) if exe else None))
        except (psutil.Error, OSError, KeyError, TypeError, ValueError):  # gone, zombie or denied: skip it
            continue
    return tuple(found)


def read_environ(pid: int, root: str = "/") -> Tuple[Dict[str, str], str]:
    """/proc/<pid>/environ as a dict, read at most ENVIRON_LIMIT bytes; (env, problem), never an exception."""
    path = Path(root) / "proc" / str(pid) / "environ"
    try:
        data = read_bytes(path, ENVIRON_LIMIT)
    except PermissionError:
        return {}, f"permission denied reading /proc/{pid}/environ: run the doctor as root"
    except FileNotFoundError:
        return {}, f"/proc/{pid}/environ does not exist: the process has exited"
    except OSError as error:
        return {}, f"/proc/{pid}/environ cannot be read: {error.strerror or error}"
    env: Dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = str(item, "utf-8", "replace").partition("=")
        if sep and key:
            env[key] = value
    return env, ""


@dataclass(frozen=True)
class Ran:
    """One command run: its exit code and (bounded) output, or why it has none."""
    argv: Tuple[str, ...]
    code: Optional[int] = None
    out: str = ""
    err: str = ""
    timed_out: bool = False
    error: str = ""           # it could not be started


def run_command(argv: Sequence[str], timeout: float, env: Optional[Mapping[str, str]] = None,
                limit: int = OUTPUT_LIMIT) -> Ran:
    """Run argv in its own session; past `timeout` the whole session is killed. Keeps at most `limit` bytes."""
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env) if env is not None else None, start_new_session=True)
    except OSError as error:
        return Ran(argv, error=error.strerror or str(error))
    chunks: Dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}
    readers = [threading.Thread(target=_drain, args=(stream, chunks[key], limit), daemon=True)
               for key, stream in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=max(0.01, timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait()
    for reader in readers:
        reader.join(timeout=0.5)  # a grandchild that escaped the session may hold a pipe: do not wait for it
    return Ran(argv, None if timed_out else proc.returncode, str(chunks["out"], "utf-8", "replace"),
               str(chunks["err"], "utf-8", "replace"), timed_out)


def _drain(stream, into: bytearray, limit: int) -> None:
    try:
        for block in iter(lambda: stream.read(65536), b""):
            if len(into) < limit:
                into.extend(block[: limit - len(into)])
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()
