"""What the operator asked for: flags > environment > config file > defaults, validated once."""
from __future__ import annotations

import configparser
import ipaddress
import re
from dataclasses import dataclass, fields
from typing import Dict, Mapping, Optional, Tuple

DEFAULT_CONFIG = "/etc/vpce-doctor/vpce-doctor.conf"
SECTION = "vpce-doctor"
DEFAULT_SERVICES = ("ssm", "ssmmessages", "ec2messages", "s3")
GATEWAY_SERVICES = ("s3", "dynamodb")
# Interface-endpoint services an operator of private instances commonly needs; ids with dots are real.
KNOWN_SERVICES = frozenset(GATEWAY_SERVICES + (
    "ssm", "ssmmessages", "ec2messages", "logs", "kms", "sts", "ec2", "monitoring", "secretsmanager", "ecr.api",
    "ecr.dkr", "sqs", "sns", "events", "lambda", "elasticloadbalancing", "autoscaling", "cloudformation",
    "execute-api", "xray", "ssm-contacts", "ssm-incidents", "elasticfilesystem", "ebs", "codeartifact.api",
    "codeartifact.repositories", "s3-global.accesspoint", "kinesis-streams", "athena", "glue", "rds", "ecs",
    "ecs-agent", "ecs-telemetry", "states", "application-autoscaling", "servicecatalog", "backup", "ssm-quicksetup",
))
# Every pattern is ASCII-only: Python's \d and \w also match "٣" and "é", which no AWS identifier contains.
# Region names of every partition, as facts.py accepts them from IMDS (eusc-de-east-1, us-isob-east-1).
REGION_RE = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$", re.ASCII)
INSTANCE_RE = re.compile(r"^i-[0-9a-f]{8,17}$", re.ASCII)  # 8 (older) or 17 hex digits, as IMDS instance-id says
# "[\.\-_/#A-Za-z0-9]+", 1-512 characters: the logGroupName pattern of CreateLogGroup
# (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html).
LOG_GROUP_RE = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$", re.ASCII)
NUMBER_RE = re.compile(r"^\s*-?[0-9]{1,6}(\.[0-9]{1,6})?\s*$", re.ASCII)
CONFIG_LIMIT = 64 * 1024
CA_BUNDLE_LIMIT = 16 * 1024 * 1024  # a full system trust store is about 220 KB
DEFAULT_CONNECT_TIMEOUT = 2.0
MAX_TIMEOUT_S = 3600  # a run longer than an hour is not a diagnosis; the systemd timer's own limit is far below
MAX_PORT = 65535
# S3 object keys are at most 1,024 bytes of UTF-8 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
# object-keys.html); the prefix keeps half for the instance id and the probe's name.
MAX_KEY_PREFIX = 512


class UsageError(ValueError):
    """Bad input from the operator: reported as one line, exit 64."""


@dataclass(frozen=True)
class Settings:
    region: Optional[str] = None            # None: take it from IMDS
    services: Tuple[str, ...] = DEFAULT_SERVICES
    only: Tuple[str, ...] = ()              # check ids (or prefixes) to run, plus what they need
    output: str = "text"
    timeout: float = 20.0                   # the whole run's deadline, seconds
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # one TCP connect, TLS handshake, DNS lifetime or HTTP request
    resolver: Optional[str] = None          # "IP" or "IP:PORT": query this server instead of resolv.conf's
    ca_bundle: Optional[str] = None         # PEM file of trusted CAs (else AWS_CA_BUNDLE, else the system store)
    color: Optional[bool] = None            # None: on a terminal without NO_COLOR
    bucket: Optional[str] = None            # the bucket the S3 probe may use (through the gateway endpoint)
    key_prefix: str = ""                    # the probe writes only <key_prefix>vpce-doctor/<instance-id>.probe
    no_write: bool = False                  # never write: the S3 probe only reads
    session_document: str = "SSM-SessionManagerRunShell"  # Session Manager preferences to read
    ship: bool = False                      # send the JSON report to CloudWatch Logs after local output
    log_group: str = "/vpce-doctor/reports"  # where --ship sends it, one stream per instance id
    spool_dir: str = "/var/lib/vpce-doctor/spool"  # reports that could not be shipped wait here


BOOLEANS = ("no_write", "ship")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", re.ASCII)
FLOATS = ("timeout", "connect_timeout")
LISTS = ("services", "only")
# What the doctor observes (its filesystem root, the endpoints' port, the process table) is no setting: tests give
# it to main() (context.Host), so no config file or environment can point a real run elsewhere.
FILE_KEYS = frozenset(f.name for f in fields(Settings)) - {"color"}


def load(flags: Mapping[str, object], environ: Mapping[str, str]) -> Settings:
    """Merge the three sources; every value is checked and a bad one raises UsageError naming it."""
    config_path = str(flags.get("config") or environ.get("VPCE_DOCTOR_CONFIG") or "")
    raw: Dict[str, object] = dict(read_config(config_path or DEFAULT_CONFIG, required=bool(config_path)))
    for name in FILE_KEYS:
        value = environ.get("VPCE_DOCTOR_" + name.upper())
        if value not in (None, ""):
            raw[name] = value
    raw.update({k: v for k, v in flags.items() if k in FILE_KEYS and v is not None})
    values = {k: _coerce(k, v) for k, v in raw.items()}
    if "connect_timeout" not in values and "timeout" in values:  # --timeout 1 alone is a valid request
        values["connect_timeout"] = min(DEFAULT_CONNECT_TIMEOUT, float(str(values["timeout"])))
    return validate(values)


def read_config(path: str, required: bool) -> Dict[str, str]:
    from .instance_files import read_bytes
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_bytes(path, CONFIG_LIMIT, whole=True).decode("utf-8"), path)
    except FileNotFoundError:
        if required:
            raise UsageError(f"config file {path} does not exist") from None
        return {}
    except OSError as error:
        raise UsageError(f"config file {path} cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} cannot be read: it is not UTF-8 text") from None
    except configparser.Error as error:
        raise UsageError(f"config file {path} is malformed: {str(error).splitlines()[0]}") from None
    if not parser.has_section(SECTION):
        raise UsageError(f"config file {path} has no [{SECTION}] section")
    values = {key.replace("-", "_"): value for key, value in parser.items(SECTION)}
    unknown = sorted(set(values) - FILE_KEYS)
    if unknown:
        raise UsageError(f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(FILE_KEYS))})")
    return values


def _coerce(name: str, value: object) -> object:
    if isinstance(value, str):
        _check_text(name, value)
    if name in LISTS and isinstance(value, str):
        return tuple(part.strip() for part in re.split(r"[,\s]+", value) if part.strip())
    if name in LISTS:
        return tuple(value)  # type: ignore[arg-type]
    if name in BOOLEANS and isinstance(value, str):
        if value.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise UsageError(f"{name.replace('_', '-')} must be true or false, not {value!r}")
        return value.strip().lower() in ("1", "true", "yes", "on")
    if name in FLOATS:
        # float() takes "٣", "1_0", "inf" and "nan"
        if not isinstance(value, (str, int, float)) or isinstance(value, str) and not NUMBER_RE.match(value):
            raise UsageError(f"{name.replace('_', '-')} must be a number, not {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{name.replace('_', '-')} must be a number, not {value!r}") from None
    return value


def validate(values: Dict[str, object]) -> Settings:
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.region is not None and not REGION_RE.fullmatch(str(settings.region)):
        raise UsageError(f"region {settings.region!r} is not a region name like eu-west-1")
    unknown = [s for s in settings.services if s not in KNOWN_SERVICES]
    if unknown:
        raise UsageError(f"unknown service {unknown[0]!r}; known: {', '.join(sorted(KNOWN_SERVICES))}")
    if not settings.services:
        raise UsageError("services is empty: name at least one, e.g. ssm,ssmmessages,ec2messages,s3")
    if settings.output not in ("text", "json", "summary"):
        raise UsageError(f"output must be text, json or summary, not {settings.output!r}")
    if not LOG_GROUP_RE.match(settings.log_group):
        raise UsageError(f"log-group {settings.log_group!r} is not a CloudWatch Logs group name")
    if not 0 < settings.timeout <= MAX_TIMEOUT_S:
        raise UsageError(f"timeout must be between 0 and {MAX_TIMEOUT_S} seconds, not {settings.timeout}")
    if not 0 < settings.connect_timeout <= settings.timeout:
        raise UsageError(f"connect-timeout must be positive and at most the timeout ({settings.timeout} s)")
    if settings.resolver is not None:
        resolver_address(str(settings.resolver))
    if settings.ca_bundle == "":  # --ca-bundle '' : the default trust store (AWS_CA_BUNDLE, else the system's)
        settings = _replace(settings, ca_bundle=None)
    if settings.ca_bundle is not None:
        check_ca_bundle(str(settings.ca_bundle))
    if settings.bucket is not None and not BUCKET_RE.fullmatch(str(settings.bucket)):
        raise UsageError(f"bucket {settings.bucket!r} is not a valid S3 bucket name")
    if len(settings.key_prefix.encode("utf-8")) > MAX_KEY_PREFIX or not settings.key_prefix.isprintable():
        raise UsageError("key-prefix must be at most 512 bytes of printable characters")
    return _replace(settings, services=tuple(dict.fromkeys(settings.services)))


def _check_text(name: str, value: str) -> None:
    """Text from argv, the environment or the config: UTF-8 without control characters, or a usage error.

    Undecodable argv bytes arrive as lone surrogates ("\\udcff") that crash the first encode far from here.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{name.replace('_', '-')} is not valid UTF-8: {value.encode('utf-8', 'replace')!r}") from None
    shown = " ".join(value.split()) if name in LISTS else value  # lists may span lines in the config file
    if not shown.isprintable():  # control, escape and bidi (Cf) characters
        raise UsageError(f"{name.replace('_', '-')} holds control characters: {value!r}")


def resolver_address(value: str) -> Tuple[str, int]:
    """(IP, port) from "IP", "IPv4:PORT", "[IPv6]" or "[IPv6]:PORT"; anything else is a usage error."""
    wrong = UsageError(f"resolver must be an IP address, IPv4:PORT or [IPv6]:PORT, not {value!r}")
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise wrong
        port_text = rest[1:] if rest else "53"
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, "53"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise wrong from None
    if not re.fullmatch(r"[0-9]{1,5}", port_text, re.ASCII) or not 0 < int(port_text) <= MAX_PORT:
        raise UsageError(f"resolver port must be 1-65535, not {port_text!r}")
    return str(address), int(port_text)


def check_ca_bundle(path: str) -> None:
    """A PEM bundle the operator named must be a readable regular file with a certificate in it, or exit 64."""
    from .instance_files import read_bytes
    try:
        data = read_bytes(path, CA_BUNDLE_LIMIT, whole=True)
    except OSError as error:
        raise UsageError(f"ca-bundle {path} cannot be read: {error.strerror or error}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise UsageError(f"ca-bundle {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


def _replace(settings: Settings, **changes) -> Settings:
    from dataclasses import replace
    return replace(settings, **changes)
