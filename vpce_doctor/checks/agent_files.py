"""The SSM agent's files as the doctor reads them: bounded, regular files only, never blocking."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

from ..instance_files import read_json
from ..instance_files import read_tail as read_file_tail

LOG_DIR = "/var/log/amazon/ssm"
# agent/log/logger/defaultconfig.go (amazon-ssm-agent.log, errors.log) and agent/hibernation/hibernatelogger_unix.go
# (hibernate.log) of aws/amazon-ssm-agent at 1c217c89
LOG_FILES = (LOG_DIR + "/amazon-ssm-agent.log", LOG_DIR + "/errors.log", LOG_DIR + "/hibernate.log")
TAIL_LIMIT = 256 * 1024          # bytes read from the end of each log, never more


@dataclass(frozen=True)
class LogTail:
    """The end of one log file, as read."""
    path: str                     # as on the instance
    lines: Tuple[str, ...] = ()
    bytes_read: int = 0
    missing: bool = False
    problem: str = ""             # unreadable


def read_tail(path: Path, shown: str, limit: int = TAIL_LIMIT) -> LogTail:
    """The last `limit` bytes of a regular file at most, as lines; a line cut by the start of the read is dropped."""
    try:
        data, cut = read_file_tail(path, limit)  # regular files only, never blocking (instance_files)
    except FileNotFoundError:
        return LogTail(shown, missing=True)
    except PermissionError:
        return LogTail(shown, problem="permission denied")
    except OSError as error:
        return LogTail(shown, problem=error.strerror or str(error))
    return LogTail(shown, split_tail(data, cut), len(data))


def split_tail(data: bytes, cut: bool) -> Tuple[str, ...]:
    """Bytes from the end of a log as lines. With `cut` (the file is longer), the first byte only says whether the
    next line is whole (it is a newline) or cut (then the partial line is dropped)."""
    if cut:
        data = data[1:] if data[:1] == b"\n" else data.partition(b"\n")[2]
    text = data.decode("utf-8", errors="replace").replace("\r", "")
    return tuple(line for line in text.split("\n") if line.strip())


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a directory on the way that only root may enter
        return False


IDENTITY = "/var/lib/amazon/ssm/runtimeconfig/identity_config.json"  # the agent's record of its last credential source


def read_identity(path) -> Tuple[Dict[str, object], str]:
    try:
        data = read_json(path, 65536)
    except FileNotFoundError:
        return {}, f"{IDENTITY} does not exist (older agents do not write it; newer ones once they have credentials)"
    except OSError as error:
        return {}, f"{IDENTITY} cannot be read: {error.strerror or error}"
    except ValueError as error:
        return {}, f"{IDENTITY} is not valid JSON ({error}); the agent rewrites it when it next gets credentials"
    if not isinstance(data, dict):
        return {}, f"{IDENTITY} is not a JSON object"
    return {k: data[k] for k in ("IdentityType", "CredentialSource") if isinstance(data.get(k), str)}, ""
