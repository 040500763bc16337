"""A directory the doctor owns, and the files in it: every write is safe from a planted symlink or a loose mode.

The directory is created 0700, opened without following a symlink and refused unless owned by the doctor's user;
every file in it is handled relative to that descriptor, with O_NOFOLLOW, created O_EXCL and 0600 whatever the umask
(Run Command's is 022), and read only if it is a regular file of the same user.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat

DIR_MODE = 0o700  # the doctor's own directories: nobody else reads or writes them


class NotOwned(OSError):
    """The directory or a file in it is not the doctor's own (a symlink, another owner, not a regular file)."""


def open_dir(path: str) -> int:
    """The directory, opened without following a symlink; created 0700; refused unless ours."""
    try:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        reason = "is a symlink" if os.path.islink(path) else error.strerror or str(error)
        raise NotOwned(error.errno or errno.EACCES, f"{path} cannot be used: {reason}") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        os.close(fd)
        raise NotOwned(errno.EPERM, f"{path} is owned by uid {info.st_uid}, not by this user")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:  # made under Run Command's umask, or loosened by hand
        os.fchmod(fd, DIR_MODE)
    return fd


def open_own(fd: int, name: str, flags: int, mode: int = 0o600) -> int:
    """A file in the directory: never through a symlink, never a FIFO or device, never someone else's."""
    handle = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=fd)
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(handle)
        raise NotOwned(errno.EPERM, f"{name} is not a regular file of this user")
    return handle


def read_own(fd: int, name: str, limit: int) -> bytes:
    handle = open_own(fd, name, os.O_RDONLY)
    try:
        data = os.read(handle, limit + 1)
    finally:
        os.close(handle)
    if len(data) > limit:
        raise ValueError("too large")
    return data


def write_new(fd: int, name: str, data: bytes) -> None:
    """Write a new file in full under a temporary name, then rename it: a reader never sees half a file."""
    temporary = f".{name.rsplit('.', 1)[0]}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=fd)
    try:
        os.fchmod(handle, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
        os.fsync(handle)
    except BaseException:
        os.close(handle)
        unlink(fd, temporary)
        raise
    os.close(handle)
    os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)


def rename(fd: int, name: str, new: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # a concurrent run got there first
        os.rename(name, new, src_dir_fd=fd, dst_dir_fd=fd)


def unlink(fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)
