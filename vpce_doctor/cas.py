"""botocore's CA bundle loaded once per process instead of once per TLS connection.

botocore hands urllib3 the bundle's path for every new connection (URLLib3Session._setup_ssl_cert sets conn.ca_certs),
and urllib3 parses the whole bundle into that connection's context again: 20-45 ms of CPU each (a 2-CPU VM),
and a diagnosis opens 8-18 connections, more CPU than the rest of the run. bench/run.py decided it: without this the
default run took 0.91 s of CPU instead of 0.50 s, the full diagnosis 1.16 s instead of 0.58 s (same machine, same
load; README, Benchmarks).

install() is idempotent and thread-safe; vpce_doctor.aws calls it before it makes its one botocore session (so never
at import: --version and the network-only runs never import botocore). tests/lab/test_clients.py proves it on the
oldest (1.33) and the newest botocore claimed: still verified (untrusted and wrong-name certificates fail), bundle
loaded once.
"""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    import ssl

_lock = threading.Lock()


def install() -> None:
    """Every client's connections share one SSL context per CA bundle path, loaded once: verification exactly as
    strict, the work done once. Skipped on a botocore whose internals differ: then it is only slower."""
    from botocore import httpsession
    session_cls = httpsession.URLLib3Session
    needed = (hasattr(session_cls, "_get_ssl_context") and hasattr(session_cls, "_setup_ssl_cert")
              and hasattr(httpsession, "get_cert_path"))
    with _lock:
        if needed and not getattr(session_cls, "_vpce_doctor_cas_once", False):
            _patch(httpsession, session_cls)


def _patch(httpsession, session_cls) -> None:
    original_context, original_setup = session_cls._get_ssl_context, session_cls._setup_ssl_cert
    shared: Dict[str, ssl.SSLContext] = {}  # CA bundle path → one context for every client (SSLContexts are shareable)
    loaded = set()  # ... loaded at the first TLS connection, not when a session is made: botocore's IMDS and
    lock = threading.Lock()  # container credential fetchers make sessions that only ever speak plain HTTP

    def get_ssl_context(self):
        if not getattr(self, "_verify", None):
            return original_context(self)
        path = httpsession.get_cert_path(self._verify)
        with lock:
            if path not in shared:
                shared[path] = original_context(self)
            return shared[path]

    def setup_ssl_cert(self, conn, url, verify):
        original_setup(self, conn, url, verify)
        path = httpsession.get_cert_path(verify) if verify else None
        if path not in shared or getattr(conn, "cert_reqs", None) != "CERT_REQUIRED":
            return
        with lock:
            if path not in loaded:
                if os.path.isdir(path):
                    shared[path].load_verify_locations(capath=path)
                else:
                    shared[path].load_verify_locations(cafile=path)
                loaded.add(path)
        conn.ca_certs = conn.ca_cert_dir = None  # already in the shared context; verification stays required

    session_cls._get_ssl_context, session_cls._setup_ssl_cert = get_ssl_context, setup_ssl_cert
    session_cls._vpce_doctor_cas_once = True
