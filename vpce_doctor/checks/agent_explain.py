"""An agent log line judged with the network checks of the same run: which failing check explains it, and what a
line that lost its cause (agent >= 3.3.1230.0, fidelity.md §A.7) means on this instance. Pure functions."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

from ..model import MET, Remedy
from .agent_lines import IMDS, PROFILE, RESET

# The endpoint a line is about: the URL it posted to, or the name it looked up (Go net/url, net.DNSError texts).
SERVICE_RE = re.compile(r"(?:https?://|lookup )([a-z0-9-]+)\.(?:[a-z0-9-]+\.)+[a-z]{2,}")
IMDS_CHAIN = ("imds:token", "imds:profile")
SSM_PATH = ("dns:resolver", "dns:ssm", "tcp:ssm", "tls:ssm")
# Which checks look at the layer a code is about; "{svc}" is the endpoint the line names.
LAYERS = {
    "dns-timeout": ("dns:resolver", "dns:{svc}"), "nxdomain": ("dns:{svc}",),
    "dial-timeout": ("dns:{svc}", "tcp:{svc}"), "connection-refused": ("tcp:{svc}",),
    "connection-reset": ("tcp:{svc}", "tls:{svc}"), "tls-untrusted": ("tls:{svc}",),
    "tls-name-mismatch": ("tls:{svc}",), "tls-handshake-timeout": ("tcp:{svc}", "tls:{svc}"),
    "proxyconnect": ("ssm:agent",), "proxy-auth": ("ssm:agent",),
    "imds-token": ("imds:token",), "imds-unreachable": ("imds:token",), "no-identity": ("imds:token",),
    "no-role": IMDS_CHAIN, "dhmc-failed": IMDS_CHAIN,
    "profile-network-error": IMDS_CHAIN + SSM_PATH, "credentials-retry": IMDS_CHAIN + SSM_PATH,
    "hibernate": IMDS_CHAIN + SSM_PATH,
    "control-channel": ("dns:ssmmessages", "tcp:ssmmessages", "tls:ssmmessages"),
    "websocket": ("dns:ssmmessages", "tcp:ssmmessages", "tls:ssmmessages"),
    "data-channel": ("dns:ssmmessages", "tcp:ssmmessages", "tls:ssmmessages"),
    "logs-api": ("dns:logs", "tcp:logs", "tls:logs"), "log-group": ("dns:logs", "tcp:logs", "tls:logs"),
    "encryption-not-set-up": ("dns:logs", "tcp:logs", "tls:logs"),
    "s3-encryption": ("dns:s3", "tcp:s3", "tls:s3"), "bucket-region": ("dns:s3", "tcp:s3", "tls:s3"),
    "s3-upload": ("dns:s3", "tcp:s3", "tls:s3"), "kms-handshake": ("dns:kms", "tcp:kms", "tls:kms"),
}
DEFAULT_SERVICE = {"dns-timeout": "ssm", "nxdomain": "ssm", "dial-timeout": "ssm", "connection-refused": "ssm",
                   "connection-reset": "ssm", "tls-untrusted": "ssm", "tls-name-mismatch": "ssm",
                   "tls-handshake-timeout": "ssm"}
GO_PQ_SINCE = (3, 3, 2299, 0)  # first agent built with Go 1.23 (fidelity.md §A.8; aws/amazon-ssm-agent#640)
# credentialrefresher.go:270-276 (minLog) at 1c217c89: from the 4th failed try on, an EC2 instance's credential
# errors are logged at DEBUG, which the default log level (defaultconfig.go: seelog.InfoStr) drops.
SILENCE = (" Silence is not health: after 3 failed tries the agent logs its credential errors at DEBUG "
           "(core/app/credentialrefresher/credentialrefresher.go, minLog), so an agent without credentials for "
           "more than a day may log nothing in this window.")


@dataclass(frozen=True)
class Judged:
    caused_by: Tuple[str, ...] = ()
    meaning: str = ""             # replaces the catalogue's meaning when the network checks change it
    note: str = ""                # appended to the cause
    remedy: Optional[Remedy] = None


def observed(prior: Mapping) -> dict:
    """check id -> (status, code) of the results this check waited for."""
    return {k: (v.status.value, v.code) for k, v in prior.items()}


def service_of(code: str, text: str) -> str:
    found = SERVICE_RE.search(text)
    return found.group(1) if found and found.group(1) != "169" else DEFAULT_SERVICE.get(code, "ssm")


def failing(ids: Sequence[str], network: Mapping[str, Tuple[str, str]]) -> Tuple[str, ...]:
    return tuple(i for i in ids if network.get(i, ("", ""))[0] in ("fail", "error"))


def passing(check_id: str, network: Mapping[str, Tuple[str, str]]) -> bool:
    return network.get(check_id, ("", ""))[0] in [s.value for s in MET]


def judge(code: str, text: str, network: Mapping[str, Tuple[str, str]], version: str = "") -> Judged:
    svc = service_of(code, text)
    ids = tuple(i.format(svc=svc) for i in LAYERS.get(code, ()))
    caused_by = failing(ids, network)
    if code in ("no-role", "dhmc-failed", "hibernate", "profile-network-error", "credentials-retry"):
        return _credentials(code, caused_by, network)
    if code == "connection-reset" and not caused_by and passing(f"tls:{svc}", network):
        return Judged(note=go_tls_note(svc, version), remedy=RESET)
    return Judged(caused_by, dial_meaning(text) if code == "dial-timeout" else "")


def dial_meaning(text: str) -> str:
    """A dial timeout means different things on a private and on a public address."""
    found = re.search(r"dial tcp (\d+\.\d+\.\d+\.\d+):\d+", text)
    if not found:
        return ""
    address = found.group(1)
    if ipaddress.ip_address(address).is_private:
        return f"TCP 443 to {address} times out: a private address, so a security group or network ACL drops it"
    return (f"TCP 443 to {address} times out: a public address, so the name resolved without the endpoint's "
            "private DNS and there is no way out")


def _credentials(code: str, caused_by: Tuple[str, ...], network: Mapping[str, Tuple[str, str]]) -> Judged:
    """Lines that no longer carry their cause (agent >= 3.3.1230.0): IMDS reachable? profile attached? ssm path?"""
    if "imds:token" in caused_by:
        return Judged(("imds:token",), "the agent cannot reach IMDS (imds:token fails here), so it has no "
                      "credentials: since agent 3.3.1230.0 'no EC2 instance role found' says this too", remedy=IMDS)
    if "imds:profile" in caused_by and network.get("imds:profile", ("", ""))[1] == "none":
        return Judged(("imds:profile",), "the instance has no instance profile (imds:profile), so the agent has "
                      "no credentials; the Default Host Management lines follow from that", remedy=PROFILE)
    if caused_by:
        return Judged(caused_by, note=" The network checks named here explain it.")
    if code == "no-role" and passing("imds:profile", network):
        return Judged(meaning="the agent found no instance role, but IMDS shows a profile attached now: the line "
                      "predates the profile, or IMDS did not answer the agent then (agent >= 3.3.1230.0 says "
                      "'no EC2 instance role found' for both); restart the agent if it persists",
                      note=SILENCE)
    return Judged(note=SILENCE if code in ("hibernate", "credentials-retry", "profile-network-error") else "")


def go_tls_note(svc: str, version: str) -> str:
    parts = tuple(int(x) for x in re.findall(r"\d+", version)[:4]) if version else ()
    if len(parts) == len(GO_PQ_SINCE) and parts < GO_PQ_SINCE:
        return (f" The doctor's own TLS to {svc} passes while the agent's connections are reset: something between "
                "them resets some connections and not others.")
    return (f" The doctor's own TLS handshake with {svc} passes while the agent's connections are reset: the "
            "agent's TLS ClientHello differs. Agents built with Go >= 1.23 (3.3.2299.0 and later) offer a "
            "post-quantum key share (X25519Kyber768Draft00) that some proxies and firewalls reset "
            "(aws/amazon-ssm-agent#640); Python's TLS does not send it. Test with GODEBUG=tlskyber=0 in the "
            "agent's environment; agents built with Go >= 1.24 (3.3.3572.0 names Go 1.24.11 in its release notes) "
            "send X25519MLKEM768 instead, reverted by GODEBUG=tlsmlkem=0 (golang/go#69985).")


def silence(network: Mapping[str, Tuple[str, str]], older_codes: Sequence[str]) -> str:
    """Why a quiet log does not clear the agent: it cannot have credentials, or it failed before this window."""
    broken = failing(IMDS_CHAIN + SSM_PATH, network)
    credential_codes = {"no-role", "dhmc-failed", "profile-rejected", "credentials-retry", "profile-network-error",
                        "hibernate", "imds-token", "imds-unreachable", "no-identity", "access-denied"}
    if broken:
        return f"{', '.join(broken)} fail{'s' if len(broken) == 1 else ''} here, yet the agent logged nothing about "\
               "it in 24 h." + SILENCE
    if credential_codes & set(older_codes):
        return "The agent logged credential problems before this 24-hour window and nothing since." + SILENCE
    return ""
