"""Everything a check may touch, in one place, so tests can point it at local servers."""
from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from .facts import Facts
from .plan import AgentConfig, Target
from .settings import Settings


_SSL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Context:
    settings: Settings
    facts: Facts
    targets: Tuple[Target, ...]
    agent_config: AgentConfig
    environ: Mapping[str, str]
    deadline: float                                   # clock() value after which nothing new starts
    clock: Callable[[], float] = time.monotonic
    processes: Optional[Callable[[], Sequence[object]]] = None  # the process table; None: psutil's (a test seam)
    clients: Optional[object] = None                  # vpce_doctor.aws.Clients, when an authenticated check is planned
    _cache: Dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def io_timeout(self, limit: Optional[float] = None) -> float:
        """One operation's timeout: the configured one, cut to what is left of the run."""
        wanted = self.settings.connect_timeout if limit is None else limit
        return max(0.05, min(wanted, self.remaining() - 0.05))

    def path(self, absolute: str) -> Path:
        return Path(self.settings.root) / absolute.lstrip("/")

    def target(self, service: str) -> Target:
        return next(t for t in self.targets if t.service == service)

    @property
    def region(self) -> str:
        return self.settings.region or self.facts.region or ""

    @property
    def domain(self) -> str:
        from .plan import domain_for
        return domain_for(self.region, self.facts.domain)

    def service_name(self, service: str) -> str:
        from .plan import service_name
        return service_name(service, self.region, self.domain)

    def endpoint_service_name(self, service: str) -> str:
        from .plan import endpoint_service_name
        return endpoint_service_name(service, self.region, self.domain)

    def ssl_context(self) -> ssl.SSLContext:
        """Full verification, always; the trust store is AWS_CA_BUNDLE's when set, as botocore does. Built once:
        loading a CA bundle costs tens of milliseconds, and every TLS probe asks at the same moment."""
        with _SSL_LOCK:
            if "ssl" not in self._cache:
                cafile = self.settings.ca_bundle or self.environ.get("AWS_CA_BUNDLE") or None
                self._cache["ssl"] = ssl.create_default_context(cafile=cafile)
        return self._cache["ssl"]  # type: ignore[return-value]

    def resolver(self):
        """A dnspython resolver on the configured server, or on the one resolv.conf names."""
        import dns.resolver
        resolver = dns.resolver.Resolver(configure=False)
        if self.settings.resolver:
            host, port = split_host_port(self.settings.resolver, 53)
            resolver.nameservers, resolver.port = [host], port
        else:
            resolver.nameservers = list(self.nameservers()) or ["127.0.0.1"]
        resolver.cache = None
        return resolver

    def nameservers(self) -> Tuple[str, ...]:
        from .checks.resolver import read_resolv_conf
        return read_resolv_conf(self.path("/etc/resolv.conf"))[0]


def split_host_port(value: str, default_port: int) -> Tuple[str, int]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port
