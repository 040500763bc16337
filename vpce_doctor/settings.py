"""What the operator asked for: flags > environment > config file > defaults, validated once."""
from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field, fields
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
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class UsageError(ValueError):
    """Bad input from the operator: reported as one line, exit 64."""


@dataclass(frozen=True)
class Settings:
    region: Optional[str] = None            # None: take it from IMDS
    services: Tuple[str, ...] = DEFAULT_SERVICES
    only: Tuple[str, ...] = ()              # check ids (or prefixes) to run, plus what they need
    output: str = "text"
    timeout: float = 20.0                   # the whole run's deadline, seconds
    connect_timeout: float = 2.0            # one TCP connect, TLS handshake, DNS lifetime or HTTP request
    resolver: Optional[str] = None          # "IP" or "IP:PORT": query this server instead of resolv.conf's
    port: int = 443                         # the endpoints' port; changed only to test against local servers
    ca_bundle: Optional[str] = None         # PEM file of trusted CAs (else AWS_CA_BUNDLE, else the system store)
    root: str = "/"                         # where /etc and /var are read from; changed only in tests
    color: Optional[bool] = None            # None: on a terminal without NO_COLOR
    bucket: Optional[str] = None            # the bucket the S3 probe may use (through the gateway endpoint)
    key_prefix: str = ""                    # the probe writes only <key_prefix>vpce-doctor/<instance-id>.probe
    no_write: bool = False                  # never write: the S3 probe only reads
    session_document: str = "SSM-SessionManagerRunShell"  # Session Manager preferences to read
    ship: bool = False                      # send the JSON report to CloudWatch Logs after local output
    log_group: str = "/vpce-doctor/reports"  # where --ship sends it, one stream per instance id
    spool_dir: str = "/var/lib/vpce-doctor/spool"  # reports that could not be shipped wait here

    def with_region(self, region: str) -> "Settings":
        return _replace(self, region=region)


INTEGERS = ("port",)
BOOLEANS = ("no_write", "ship")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
FLOATS = ("timeout", "connect_timeout")
LISTS = ("services", "only")
FILE_KEYS = frozenset(f.name for f in fields(Settings)) - {"color", "root"}


def load(flags: Mapping[str, object], environ: Mapping[str, str]) -> Settings:
    """Merge the three sources; every value is checked and a bad one raises UsageError naming it."""
    config_path = flags.get("config") or environ.get("VPCE_DOCTOR_CONFIG")
    raw: Dict[str, object] = dict(read_config(config_path or DEFAULT_CONFIG, required=bool(config_path)))
    for name in FILE_KEYS | {"root"}:  # root only from the environment: it exists for tests
        value = environ.get("VPCE_DOCTOR_" + name.upper())
        if value not in (None, ""):
            raw[name] = value
    raw.update({k: v for k, v in flags.items() if k in FILE_KEYS and v is not None})
    return validate({k: _coerce(k, v) for k, v in raw.items()})


def read_config(path: str, required: bool) -> Dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        if required:
            raise UsageError(f"config file {path} does not exist") from None
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"config file {path} cannot be read: {error}") from None
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
    if name in LISTS and isinstance(value, str):
        return tuple(part.strip() for part in re.split(r"[,\s]+", value) if part.strip())
    if name in LISTS:
        return tuple(value)  # type: ignore[arg-type]
    if name in BOOLEANS and isinstance(value, str):
        if value.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise UsageError(f"{name.replace('_', '-')} must be true or false, not {value!r}")
        return value.strip().lower() in ("1", "true", "yes", "on")
    if name in FLOATS or name in INTEGERS:
        kind = int if name in INTEGERS else float
        try:
            return kind(value)  # type: ignore[arg-type]
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
    if not re.fullmatch(r"[\w./#-]{1,512}", settings.log_group):
        raise UsageError(f"log-group {settings.log_group!r} is not a CloudWatch Logs group name")
    if not 0 < settings.timeout <= 3600:
        raise UsageError(f"timeout must be between 0 and 3600 seconds, not {settings.timeout}")
    if not 0 < settings.connect_timeout <= settings.timeout:
        raise UsageError(f"connect-timeout must be positive and at most the timeout ({settings.timeout} s)")
    if not 0 < settings.port < 65536:
        raise UsageError(f"port must be 1-65535, not {settings.port}")
    if settings.resolver is not None and not re.fullmatch(r"[0-9a-fA-F.:\[\]]+", str(settings.resolver)):
        raise UsageError(f"resolver must be an IP address or IP:PORT, not {settings.resolver!r}")
    if settings.bucket is not None and not BUCKET_RE.fullmatch(str(settings.bucket)):
        raise UsageError(f"bucket {settings.bucket!r} is not a valid S3 bucket name")
    if len(settings.key_prefix) > 512 or any(ord(c) < 32 for c in settings.key_prefix):
        raise UsageError("key-prefix must be at most 512 printable characters")
    return _replace(settings, services=tuple(dict.fromkeys(settings.services)))


def _replace(settings: Settings, **changes) -> Settings:
    from dataclasses import replace
    return replace(settings, **changes)
