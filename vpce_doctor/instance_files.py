"""Bounded reads of the instance's files: regular files only, a size cap, bounded JSON. Never a hang, never GBs.

Every file the doctor reads from the instance (its config, the agent's config and logs, /etc/hosts, resolv.conf,
/etc/passwd, /proc/<pid>/environ) may be a FIFO, a device or huge, by accident or by an attacker's hand; the doctor
runs as root, so each read goes through here.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from typing import Tuple

MAX_DEPTH = 64  # JSON nesting; json.loads recurses once per level and dies of RecursionError near 1,000
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


class NotRegular(OSError):
    """The path is a FIFO, device, socket or directory: reading it could block for ever or never end."""


class TooLarge(OSError):
    """The file is larger than the caller's cap and only the whole file makes sense."""


def read_bytes(path, limit: int, whole: bool = False) -> bytes:
    """At most `limit` bytes from the start of a regular file; with `whole`, a longer file raises TooLarge.

    The open is non-blocking so that a FIFO with no writer cannot hold the doctor: its type is checked on the open
    descriptor (no race with a rename) before a single byte is read.
    """
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _regular(fd, path)
        data = _read_upto(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        if whole:
            raise TooLarge(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
        data = data[:limit]
    return data


def read_text(path, limit: int, whole: bool = False) -> str:
    return read_bytes(path, limit, whole).decode("utf-8", "replace")


def read_tail(path, limit: int) -> Tuple[bytes, bool]:
    """The last `limit` bytes of a regular file, and whether the file was longer (the first line may be cut)."""
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        size = _regular(fd, path).st_size
        cut = size > limit
        os.lseek(fd, size - limit if cut else 0, os.SEEK_SET)
        return _read_upto(fd, limit), cut
    finally:
        os.close(fd)


def read_json(path, limit: int):
    """The whole file as JSON, bounded in size and depth; ValueError when it is not plain, finite JSON."""
    return parse_json(read_bytes(path, limit, whole=True).decode("utf-8"))


def parse_json(text: str, max_depth: int = MAX_DEPTH):
    """json.loads without its three traps: deep nesting (RecursionError), NaN/Infinity, and 1e999 (inf)."""
    if nesting(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def nesting(text: str) -> int:
    """The deepest bracket nesting outside strings (an unbalanced text only ever over-counts)."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _regular(fd: int, path) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise NotRegular(errno.EINVAL, f"is {kind}, not a regular file", os.fspath(path))
    return info


def _read_upto(fd: int, count: int) -> bytes:
    chunks, left = [], count
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
