"""Everything a check may touch, in one place: the run's plan and the host it observes (tests point that at theirs)."""
from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from .facts import Facts
from .instance_files import read_bytes
from .plan import AgentConfig, Target
from .settings import CA_BUNDLE_LIMIT, Settings, resolver_address

_SSL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Host:
    """What the doctor observes of the machine it runs on. An operator never sets these: main() takes them as
    parameters (as httpie's Environment), so tests point the doctor at a directory of instance files, at endpoints
    on a loopback port and at a process table of their own."""
    root: str = "/"                                   # where /etc, /var and /proc are read from
    port: int = 443                                   # the endpoints' TCP port
    processes: Optional[Callable[[], Sequence[object]]] = None  # the process table; None: psutil's


THIS_HOST = Host()  # the machine the doctor runs on: what every real run observes


@dataclass(frozen=True)
class Context:
    settings: Settings
    facts: Facts
    targets: Tuple[Target, ...]
    agent_config: AgentConfig
    environ: Mapping[str, str]
    deadline: float                                   # clock() value after which nothing new starts
    clock: Callable[[], float] = time.monotonic
    host: Host = THIS_HOST
    # The run's plan: the selected model.Check objects, in catalogue order (model names Context in its hints, so
    # context does not import model: no cycle).
    checks: Tuple[Any, ...] = ()
    clients: Optional[object] = None                  # vpce_doctor.aws.Clients, when an authenticated check is planned
    _cache: Dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def port(self) -> int:
        return self.host.port

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def io_timeout(self, limit: Optional[float] = None) -> float:
        """One operation's timeout: the configured one, cut to what is left of the run."""
        wanted = self.settings.connect_timeout if limit is None else limit
        return max(0.05, min(wanted, self.remaining() - 0.05))

    def path(self, absolute: str) -> Path:
        return Path(self.host.root) / absolute.lstrip("/")

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

    def endpoint_service_name(self, service: str, gateway: bool = False) -> str:
        from .plan import endpoint_service_name
        return endpoint_service_name(service, self.region, self.domain, gateway)

    def placeholders(self, **extra: Optional[str]) -> Dict[str, str]:
        """What a remedy is filled with (plan.placeholders): this instance's Region, domain, names and ids."""
        from .plan import placeholders
        facts = self.facts
        return placeholders(self.region, self.domain, vpc=facts.vpc_id, subnet=facts.subnet_id,
                            instance=facts.instance_id, **extra)

    def ssl_context(self) -> ssl.SSLContext:
        """Full verification, always; the trust store is AWS_CA_BUNDLE's when set, as botocore does. Built once:
        loading a CA bundle costs tens of milliseconds, and every TLS probe asks at the same moment.
        Raises CaBundleError when the bundle cannot serve (missing, a FIFO, a directory, no PEM certificate)."""
        with _SSL_LOCK:
            if "ssl" not in self._cache:
                self._cache["ssl"] = _ssl_context(self.settings.ca_bundle, self.environ.get("AWS_CA_BUNDLE"))
        if isinstance(self._cache["ssl"], CaBundleError):
            raise self._cache["ssl"]
        return self._cache["ssl"]  # type: ignore[return-value]

    def resolver(self):
        """A dnspython resolver on the configured server, or on the one resolv.conf names."""
        import dns.resolver
        resolver = dns.resolver.Resolver(configure=False)
        if self.settings.resolver:
            host, port = resolver_address(self.settings.resolver)
            resolver.nameservers, resolver.port = [host], port
        else:
            resolver.nameservers = list(self.nameservers()) or ["127.0.0.1"]
        resolver.cache = None
        return resolver

    def nameservers(self) -> Tuple[str, ...]:
        from .resolv_conf import read_resolv_conf
        return read_resolv_conf(self.path("/etc/resolv.conf"))[0]


class CaBundleError(ValueError):
    """The CA bundle named by --ca-bundle or AWS_CA_BUNDLE cannot be used; the message says why."""


def _ssl_context(flag: Optional[str], variable: Optional[str]) -> object:
    """The verifying context, or the CaBundleError that replaces it. Read through the bounded reader: a FIFO
    named as the bundle must not hold every TLS check until the deadline."""
    cafile, source = (flag, "--ca-bundle") if flag else (variable, "AWS_CA_BUNDLE")
    if not cafile:
        return ssl.create_default_context()
    try:
        data = read_bytes(cafile, CA_BUNDLE_LIMIT, whole=True)
        return ssl.create_default_context(cadata=data.decode("ascii", "replace"))
    except OSError as error:
        return CaBundleError(f"{source} {cafile} cannot be read: {error.strerror or error}")
    except (ssl.SSLError, ValueError):
        return CaBundleError(f"{source} {cafile} holds no usable PEM certificate")
