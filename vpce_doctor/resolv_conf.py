"""/etc/resolv.conf as glibc reads it: the nameservers the instance's software will ask. Read by dns:resolver and by
the Context that builds the doctor's own resolver, so it lives apart from both."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Tuple

from .instance_files import read_text

# glibc queries only the first MAXNS = 3 nameservers and ignores the rest: "Up to MAXNS (currently 3, see
# <resolv.h>) name servers may be listed" (resolv.conf(5), https://man7.org/linux/man-pages/man5/resolv.conf.5.html).
MAXNS = 3
RESOLV_CONF_LIMIT = 64 * 1024  # glibc's own parser stops caring long before this


def read_resolv_conf(path: Path) -> Tuple[Tuple[str, ...], str]:
    """(nameservers, problem): a missing or unreadable file is a problem, never an exception."""
    try:
        lines = read_text(path, RESOLV_CONF_LIMIT).splitlines()
    except OSError as error:
        return (), f"{path} cannot be read: {error.strerror or error}"
    servers = []
    for line in lines:
        parts = line.split("#")[0].split()
        if parts[:1] == ["nameserver"] and parts[1:] and _is_ip(parts[1]):
            servers.append(parts[1])
    servers = servers[:MAXNS]
    return tuple(servers), "" if servers else f"{path} names no nameserver"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", maxsplit=1)[0])
        return True
    except ValueError:
        return False
