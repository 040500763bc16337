"""Instance facts from IMDSv2, gathered once before any check: token PUT, then GETs. Never IMDSv1."""
from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .addresses import IMDS_V6
from .settings import INSTANCE_RE, REGION_RE
from .watchdog import Watchdog

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL = "60"  # the doctor runs for seconds; a short-lived token is all it needs
MAX_BODY = 64 * 1024
PER_REQUEST_S = 1.0
TOO_LITTLE_S = 0.01  # less is no time for a request: say timeout without dialling
ROLE_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")  # IAM role names (CreateRole RoleName pattern)
CODE_RE = re.compile(r"^[A-Za-z]{1,64}$")  # "Success", "AssumeRoleUnauthorizedAccess" (aws/aws-cli#2060)
TOKEN_RE = re.compile(r"^[\x21-\x7e]{1,1024}$")  # printable ASCII: anything else cannot go in a header

TOP_PATHS = ("instance-id", "placement/region", "placement/availability-zone", "services/domain",
             "services/partition", "mac", "local-ipv4", "iam/info", "iam/security-credentials/")
# The IPv6 paths are documented under network/interfaces/macs/mac/ in "Instance metadata categories"
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html); an IPv4-only VPC answers
# them 404, an IPv6-only subnet answers local-ipv4 404.
MAC_PATHS = ("vpc-id", "vpc-ipv4-cidr-blocks", "subnet-id", "subnet-ipv4-cidr-block", "security-group-ids",
             "vpc-ipv6-cidr-blocks", "subnet-ipv6-cidr-blocks", "ipv6s")
IPV6_ENDPOINT = f"http://[{IMDS_V6}]"  # botocore utils.METADATA_BASE_URL_IPv6; HttpProtocolIpv6 must be enabled
VALID = {
    "instance-id": INSTANCE_RE,
    # Region names of every partition (botocore/data/partitions.json: eusc-de-east-1, us-isob-east-1, us-gov-west-1).
    "placement/region": REGION_RE,
    # An AZ is its Region plus a letter, or a Local Zone (us-west-2-lax-1a,
    # https://docs.aws.amazon.com/local-zones/latest/ug/available-local-zones.html) or a Wavelength Zone
    # (us-east-1-wl1-bos-wlz-1, https://docs.aws.amazon.com/wavelength/latest/developerguide/available-wavelength-zones.html).
    "placement/availability-zone": re.compile(r"^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}([a-z]|(-[a-z0-9]{1,8}){1,4})$"),
    "services/domain": re.compile(r"^[a-z0-9.-]{3,64}$"),
    "services/partition": re.compile(r"^aws[a-z-]{0,16}$"),
    "mac": re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"),
    "vpc-id": re.compile(r"^vpc-[0-9a-f]{8,17}$"),
    "subnet-id": re.compile(r"^subnet-[0-9a-f]{8,17}$"),
}


@dataclass(frozen=True)
class Reply:
    """One IMDS exchange: an HTTP status and body, or the network error that replaced them."""
    status: Optional[int] = None
    body: str = ""
    error: str = ""        # "timeout", "refused", "unreachable", or the exception text
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class Imds:
    """Everything IMDS said, raw, for checks/imds.py to judge."""
    endpoint: str
    disabled_by_env: bool = False
    token: Optional[Reply] = None
    replies: Mapping[str, Reply] = field(default_factory=dict)
    tokens: Mapping[str, Reply] = field(default_factory=dict)  # endpoint → its token PUT, when both families were tried


@dataclass(frozen=True)
class Facts:
    imds: Imds
    instance_id: Optional[str] = None
    region: Optional[str] = None
    az: Optional[str] = None
    domain: Optional[str] = None
    partition: Optional[str] = None
    vpc_id: Optional[str] = None
    vpc_cidrs: Tuple[str, ...] = ()
    subnet_id: Optional[str] = None
    subnet_cidr: Optional[str] = None
    security_groups: Tuple[str, ...] = ()
    private_ip: Optional[str] = None
    instance_profile_arn: Optional[str] = None
    role_name: Optional[str] = None        # listed under iam/security-credentials/
    credentials_code: Optional[str] = None  # the Code of iam/security-credentials/<role>, never its keys
    malformed: Tuple[str, ...] = ()  # IMDS paths whose answers were not what IMDS returns
    vpc_ipv6_cidrs: Tuple[str, ...] = ()
    subnet_ipv6_cidrs: Tuple[str, ...] = ()
    ipv6s: Tuple[str, ...] = ()      # this interface's IPv6 addresses

    def families(self) -> Tuple[str, ...]:
        """The address families this instance has, by IMDS ("IPv4", "IPv6"); empty when IMDS did not say."""
        return tuple(f for f, has in (("IPv4", self.private_ip), ("IPv6", self.ipv6s)) if has)

    def as_dict(self) -> Dict[str, object]:
        return {"instance_id": self.instance_id, "region": self.region, "availability_zone": self.az,
                "domain": self.domain, "partition": self.partition, "vpc_id": self.vpc_id,
                "vpc_cidrs": list(self.vpc_cidrs), "subnet_id": self.subnet_id, "subnet_cidr": self.subnet_cidr,
                "security_groups": list(self.security_groups), "private_ip": self.private_ip,
                "instance_profile_arn": self.instance_profile_arn, "vpc_ipv6_cidrs": list(self.vpc_ipv6_cidrs),
                "ipv6_addresses": list(self.ipv6s), "imds_endpoint": self.imds.endpoint}


def gather(environ: Mapping[str, str], remaining: Callable[[], float]) -> Facts:
    override = (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "").rstrip("/")
    endpoint = override or DEFAULT_ENDPOINT
    if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return Facts(Imds(endpoint, disabled_by_env=True))
    # Without an override both families are asked at once: an IPv6-only subnet has no IPv4 IMDS, and asking one
    # after the other would cost a whole timeout.
    endpoints = (override,) if override else (DEFAULT_ENDPOINT, IPV6_ENDPOINT)
    tokens = _tokens(endpoints, remaining)
    endpoint = next((e for e in endpoints if _usable(tokens[e])), endpoint)
    token, tokens = tokens[endpoint], (tokens if len(tokens) > 1 else {})
    client = _Client(endpoint, remaining)
    if not _usable(token):
        return Facts(Imds(endpoint, token=token, tokens=tokens))
    headers = {"X-aws-ec2-metadata-token": token.body}
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = dict(zip(TOP_PATHS, pool.map(
            lambda p: client.request("GET", "/latest/meta-data/" + p, headers), TOP_PATHS)))
        mac = replies["mac"].body.strip().lower() if replies["mac"].status == HTTPStatus.OK else ""
        second = {p: f"network/interfaces/macs/{mac}/{p}" for p in MAC_PATHS} if VALID["mac"].match(mac) else {}
        role = _role(replies["iam/security-credentials/"])
        if role:  # iam/info can say Success while the role's credentials cannot be issued (trust policy)
            second["credentials"] = "iam/security-credentials/" + role
        replies.update(zip(second, pool.map(
            lambda p: client.request("GET", "/latest/meta-data/" + p, headers), second.values())))
        if "credentials" in replies:
            replies["credentials"] = _code_only(replies["credentials"])
    return interpret(Imds(endpoint, token=token, replies=replies, tokens=tokens))


def _tokens(endpoints, remaining: Callable[[], float]) -> Dict[str, Reply]:
    """Token PUTs to every endpoint at once; once the first (IPv4) one has a token the others are not waited for:
    with HttpProtocolIpv6 off (the default) [fd00:ec2::254] may stay silent for a whole request timeout. Daemon
    threads, so an unanswered request never holds the doctor's exit either (each ends at its own deadline)."""
    results: Dict[str, Reply] = {}
    threads = [threading.Thread(target=lambda e=e: results.__setitem__(e, _Client(e, remaining).request(
        "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})), daemon=True)
        for e in endpoints]
    for thread in threads:
        thread.start()
    threads[0].join()
    if not _usable(results.get(endpoints[0], Reply(error="timeout"))):
        for thread in threads[1:]:
            thread.join()
    return {e: results[e] for e in endpoints if e in results}


def token(endpoint: str, remaining: Callable[[], float]) -> Reply:
    """One token PUT to this IMDS endpoint (names:dialled asks [fd00:ec2::254] when SDKs are told to use it)."""
    return _Client(endpoint, remaining).request("PUT", "/latest/api/token",
                                                {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})


def usable(reply: Reply) -> bool:
    return _usable(reply)


def _usable(token: Reply) -> bool:
    return token.status == HTTPStatus.OK and bool(TOKEN_RE.match(token.body))


def interpret(imds: Imds) -> Facts:
    """Turn raw replies into facts, dropping anything that is not shaped like what IMDS returns."""
    malformed = []

    def value(path: str) -> Optional[str]:
        reply = imds.replies.get(path)
        if reply is None or reply.status != HTTPStatus.OK:
            return None
        text = reply.body.strip()
        pattern = VALID.get(path)
        if pattern and not pattern.match(text):
            malformed.append(path)
            return None
        return text

    cidrs = _networks(value("vpc-ipv4-cidr-blocks"), "vpc-ipv4-cidr-blocks", malformed)
    subnet = _networks(value("subnet-ipv4-cidr-block"), "subnet-ipv4-cidr-block", malformed)
    groups = tuple(g for g in (value("security-group-ids") or "").split() if re.match(r"^sg-[0-9a-f]{8,17}$", g))
    v6_cidrs = _networks(value("vpc-ipv6-cidr-blocks"), "vpc-ipv6-cidr-blocks", malformed)
    v6_subnets = _networks(value("subnet-ipv6-cidr-blocks"), "subnet-ipv6-cidr-blocks", malformed)
    ipv6s = tuple(a for a in (_address(t) for t in (value("ipv6s") or "").split()) if a and ":" in a)
    return Facts(
        imds=imds, instance_id=value("instance-id"), region=value("placement/region"),
        az=value("placement/availability-zone"), domain=value("services/domain"),
        partition=value("services/partition"), vpc_id=value("vpc-id"), vpc_cidrs=cidrs,
        subnet_id=value("subnet-id"), subnet_cidr=subnet[0] if subnet else None, security_groups=groups,
        private_ip=_address(value("local-ipv4")), instance_profile_arn=_profile_arn(value("iam/info")),
        role_name=_role(imds.replies.get("iam/security-credentials/") or Reply()),
        credentials_code=(imds.replies.get("credentials") or Reply()).body or None,
        malformed=tuple(malformed), vpc_ipv6_cidrs=v6_cidrs, subnet_ipv6_cidrs=v6_subnets, ipv6s=ipv6s)


def _role(reply: Reply) -> Optional[str]:
    """The role name IMDS lists under iam/security-credentials/ (IAM's role-name characters, 1-64)."""
    name = reply.body.strip().split("\n")[0].strip() if reply.status == HTTPStatus.OK else ""
    return name if ROLE_RE.match(name) else None


def _code_only(reply: Reply) -> Reply:
    """Keep only the Code of a security-credentials answer: the body holds the role's secret keys."""
    try:
        code = json.loads(reply.body).get("Code") if reply.status == HTTPStatus.OK else None
    except (ValueError, AttributeError, RecursionError):
        code = None
    unreadable = "unreadable" if reply.status == HTTPStatus.OK else ""
    shown = code if isinstance(code, str) and CODE_RE.match(code) else unreadable
    return Reply(reply.status, shown, reply.error, reply.elapsed_ms)


def _networks(text: Optional[str], path: str, malformed: list) -> Tuple[str, ...]:
    try:
        return tuple(str(ipaddress.ip_network(line.strip())) for line in (text or "").split() if line.strip())
    except ValueError:
        malformed.append(path)
        return ()


def _address(text: Optional[str]) -> Optional[str]:
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:
        return None


def _profile_arn(text: Optional[str]) -> Optional[str]:
    match = re.search(r'"InstanceProfileArn"\s*:\s*"(arn:aws[a-z-]*:iam::\d{12}:instance-profile/[^"]{1,512})"',
                      text or "")
    return match.group(1) if match else None


class _Client:
    """http.client, not requests: it never consults proxy variables, so IMDS is always reached directly."""

    def __init__(self, endpoint: str, remaining: Callable[[], float]):
        # Userinfo ends at the last @: a password holding / # ? would otherwise be taken for the host and port.
        hostport = endpoint.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
        try:
            parts = urlsplit("http://" + hostport)
            self.host, self.port = parts.hostname or "169.254.169.254", parts.port or 80
        except ValueError:  # a port that is no number: every request fails, as IMDS would not answer
            self.host, self.port = "", 0
        self.remaining = remaining

    def request(self, method: str, path: str, headers: Mapping[str, str]) -> Reply:
        timeout = min(PER_REQUEST_S, self.remaining())
        if not self.host:
            return Reply(error="AWS_EC2_METADATA_SERVICE_ENDPOINT is not a URL with a numeric port")
        if timeout <= TOO_LITTLE_S:
            return Reply(error="timeout")
        started = time.monotonic()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        with Watchdog(timeout, lambda: (conn.sock,)) as dog:
            try:
                conn.request(method, path, headers=dict(headers))
                response = conn.getresponse()
                body = response.read(MAX_BODY).decode("utf-8", "replace")
                if dog.fired.is_set():
                    return Reply(error="timeout", elapsed_ms=_ms(started))
                return Reply(response.status, body, elapsed_ms=_ms(started))
            except (OSError, http.client.HTTPException, ValueError) as error:  # socket.timeout is an OSError
                timed_out = dog.fired.is_set() or isinstance(error, socket.timeout)
                return Reply(error="timeout" if timed_out else _kind(error), elapsed_ms=_ms(started))
            finally:
                conn.close()


def _kind(error: Exception) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, OSError) and not isinstance(error, http.client.HTTPException):
        return "unreachable" if error.errno in (101, 113) else f"{error.__class__.__name__}: {error}"
    return f"not HTTP: {error.__class__.__name__}"


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
