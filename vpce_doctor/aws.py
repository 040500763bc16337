"""AWS clients for the authenticated checks: one botocore session, each client made once and shared.

Creation starts in the background when the run starts, so importing botocore and building clients overlaps the
DNS, TCP and TLS probes instead of following them. Every client goes to the exact name the network checks tested,
makes exactly one attempt, and has its timeouts cut to the run's budget.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.client import HTTPS_PORT
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from . import __version__

# botocore's names for how credentials were found → what an operator calls them
PROVIDERS = {"env": "environment variables", "shared-credentials-file": "~/.aws/credentials",
             "config-file": "~/.aws/config", "iam-role": "instance profile (IMDS)",
             "assume-role": "assume-role profile",
             "container-role": "container credentials", "sso": "SSO profile", "custom-process": "credential_process"}


CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE")


def other_credential_sources(environ: Mapping[str, str]) -> Tuple[str, ...]:
    """What could supply credentials besides the instance profile: variables, or ~/.aws files."""
    found = [v for v in CREDENTIAL_VARIABLES if environ.get(v)]
    home = environ.get("HOME") or ""
    files = [environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"),
             environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")]
    return tuple(found + [f for f in files if home and os.path.isfile(f)])


@dataclass(frozen=True)
class Call:
    """One API call as data: the answer, or why there is none (never an exception, never a secret).

    kind says why a call failed: "api" (AWS answered with an error: code, message, status and headers are AWS's),
    or, when no answer came, "timeout", "unreachable", "tls", "credentials" or "client" (code is botocore's exception
    name). matches is set only by the S3 probe: the object read back equals what was written."""
    ok: bool
    ms: float = 0.0
    response: Mapping[str, Any] = field(default_factory=dict, repr=False)
    kind: str = ""
    code: str = ""
    message: str = ""
    status: Optional[int] = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    matches: Optional[bool] = None

    def summary(self) -> Dict[str, object]:
        """For evidence: no body, response or headers (large, and presigned URLs must never leak)."""
        return self._fields(headers=False)

    def evidence(self) -> Dict[str, object]:
        """For evidence where the error's HTTP headers help (a request id to quote to AWS Support)."""
        return self._fields(headers=True)

    def _fields(self, headers: bool) -> Dict[str, object]:
        out: Dict[str, object] = {"ok": self.ok}
        if not self.ok:
            out.update(kind=self.kind, code=self.code, message=self.message)
        if self.kind == "api":
            out.update(status=self.status, **({"headers": dict(self.headers)} if headers else {}))
        out["ms"] = self.ms
        if self.matches is not None:
            out["matches"] = self.matches
        return out


class Clients:
    def __init__(self, region: str, endpoints: Mapping[str, Optional[str]], connect_timeout: float,
                 remaining: Callable[[], float], ca_bundle: Optional[str] = None, domain: str = "amazonaws.com",
                 port: int = HTTPS_PORT):
        self.region, self.endpoints = region, dict(endpoints)
        self.suffix = f"{region}.{domain}" + ("" if port == HTTPS_PORT else f":{port}")
        self.connect_timeout, self.remaining, self.ca_bundle = connect_timeout, remaining, ca_bundle
        self.dates: List[Tuple[float, float]] = []  # (local epoch at receipt, the response's Date header)
        self._session_lock, self._client_lock, self._credentials_lock = (threading.Lock() for _ in range(3))
        self._clients: Dict[str, object] = {}
        self._session: Any = None
        self._credentials: Optional[Tuple[Optional[str], str]] = None

    def prewarm(self, services) -> None:
        """Import botocore, make the session and the clients on a daemon thread; resolve credentials too."""
        def work():
            try:
                for service in services:
                    self.client(service)
                self.credentials()
            except Exception:  # pragma: no cover - the check that asks for the client meets the same error
                pass
        threading.Thread(target=work, name="clients", daemon=True).start()

    def session(self):
        with self._session_lock:
            if self._session is None:
                import botocore.session

                from . import cas
                cas.install()
                session = botocore.session.Session()
                session.set_config_variable("data_path", data_path(session.get_config_variable("data_path")))
                session.set_config_variable("region", self.region)
                # IMDSv2 only: botocore would otherwise fall back to IMDSv1 when the token PUT fails.
                session.set_config_variable("ec2_metadata_v1_disabled", True)
                session.set_config_variable("sts_regional_endpoints", "regional")
                # The doctor dials the names the network checks tested (endpoint_url); with FIPS or dual-stack also
                # set, botocore's rule sets refuse a custom endpoint. Those settings are names:dialled's to judge.
                session.set_config_variable("use_fips_endpoint", False)
                session.set_config_variable("use_dualstack_endpoint", False)
                session.register("after-call", self._record_date)
                self._session = session
            return self._session

    def client(self, service: str):
        session = self.session()
        with self._client_lock:
            if service not in self._clients:
                from botocore.config import Config
                timeout = max(0.1, min(self.connect_timeout, self.remaining()))
                config = Config(connect_timeout=timeout, read_timeout=max(timeout, min(5.0, self.remaining())),
                                retries={"total_max_attempts": 1}, user_agent_extra=f"vpce-doctor/{__version__}",
                                s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
                                parameter_validation=False)
                self._clients[service] = session.create_client(
                    service, region_name=self.region, endpoint_url=self.endpoint(service), config=config,
                    verify=self.ca_bundle or None)
            return self._clients[service]

    def endpoint(self, service: str) -> Optional[str]:
        """The name the network checks tested; else the regional name (never a global one such as sts.amazonaws.com).
        None where endpoints says so: botocore's own choice (`vpce-doctor remote` on a workstation, IAM's global
        name, AWS_ENDPOINT_URL_<SERVICE>)."""
        if service in self.endpoints and self.endpoints[service] is None:
            return None
        return self.endpoints.get(service) or f"https://{service}.{self.suffix}"

    def credentials(self) -> Tuple[Optional[str], str]:
        """(botocore's provider method or None, problem): which provider won, never the keys themselves."""
        session = self.session()
        with self._credentials_lock:
            if self._credentials is None:
                try:
                    found = session.get_credentials()
                    self._credentials = (found.method, "") if found else (None, "no provider found credentials")
                except Exception as error:  # a broken ~/.aws/config is a finding, not a crash
                    self._credentials = (None, f"{error.__class__.__name__}: {error}"[:300])
            return self._credentials

    def _record_date(self, http_response=None, **_):
        date = getattr(http_response, "headers", {}).get("Date") if http_response is not None else None
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.dates.append((time.time(), parsedate_to_datetime(date).timestamp()))


MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def data_path(configured: Optional[str]) -> str:
    """The doctor's reduced service models (packaging/reduce-models.py) first, then AWS_DATA_PATH's, then botocore's.

    botocore's loader takes each file from the first search path that holds it, so only the reduced service-2.json
    files and endpoints.json are replaced; rule sets, paginators and the rest still come from botocore.
    """
    return os.pathsep.join([MODELS] + ([configured] if configured else []))


def call(client, operation: str, **params) -> Call:
    """One API call as data: the response, or the error's kind, code, message and HTTP status."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .redact import secrets
    started = time.monotonic()
    try:
        return Call(True, _ms(started), getattr(client, operation)(**params))
    except ClientError as error:
        info = error.response.get("Error", {})
        meta = error.response.get("ResponseMetadata", {})
        return Call(False, _ms(started), kind="api", code=str(info.get("Code", "")),
                    message=secrets(str(info.get("Message", "")))[:1000], status=meta.get("HTTPStatusCode"),
                    headers=dict(meta.get("HTTPHeaders") or {}))
    except BotoCoreError as error:  # "Failed to parse: <proxy URL>" carries the proxy's password: redacted
        return Call(False, _ms(started), kind=_network_kind(error), code=error.__class__.__name__,
                    message=secrets(str(error))[:500])


def _network_kind(error) -> str:
    name = error.__class__.__name__
    if name in ("ConnectTimeoutError", "ReadTimeoutError"):
        return "timeout"
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ProxyConnectionError"):
        return "unreachable"
    if name == "SSLError":
        return "tls"
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return "credentials"
    return "client"


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
