"""Evidence fingerprints: what each check saw, compact and stable, so two runs can say what changed between them.

A fingerprint keeps what identifies the path (addresses, certificate issuer and names, the resolver, the agent's
version, endpoint ids, security groups, routes, policy hashes) and drops what differs from run to run on a healthy
instance (timings, byte counts, ports, free disk, notes and messages with request ids). Nothing secret survives:
keys that name a secret are dropped, credentials in URLs are hidden, and long strings (a policy document) are kept
only as a hash. Pure: no I/O.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import redact

# Differ between two runs of a healthy instance, or are prose: never part of what was seen.
VOLATILE = frozenset({"ms", "timeout_s", "port", "bytes", "bytes_read", "lines", "duration_s", "responses", "pid",
                      "disk_free_mib", "notes", "message", "summary", "cause", "skew_s", "not_after", "last",
                      "example", "silence", "files", "version_source", "last_ping", "history",
                      "stream"})  # session:logs' CreateLogStream: created by the first run, "already exists" after
SECRET_KEY = re.compile(r"secret|passw|token|credential|authoriz|signature|cookie", re.IGNORECASE | re.ASCII)
# AWS access key ids (AKIA long-term, ASIA temporary) and anything base64-like of a secret key's length or more.
SECRET_VALUE = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{12,}|[A-Za-z0-9/+=]{40,}", re.ASCII)
LONG, ITEMS, DEPTH = 96, 32, 5
INSTANCE_FACTS = ("region", "availability_zone", "vpc_id", "vpc_cidrs", "subnet_id", "subnet_cidr",
                  "security_groups", "private_ip", "instance_profile_arn")


def seen(check_id: str, evidence: Mapping[str, Any], instance: Optional[Mapping[str, Any]] = None,
         caused_by: Sequence[str] = ()) -> Dict[str, Any]:
    """The stable part of one check's evidence and of the findings it names as its cause, as a small JSON-safe dict."""
    evidence = _with_causes(evidence if isinstance(evidence, Mapping) else {}, caused_by)
    special = _SPECIAL[check_id] if check_id in _SPECIAL else _dns_name if check_id.startswith("dns:") else None
    if special is not None:
        return special(evidence, instance or {})
    value = _stable(evidence, 0)
    return value if isinstance(value, dict) else {}


def digest(values: Mapping[str, Any]) -> str:
    """A short hash of what was seen: equal evidence, equal fingerprint."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def of(check_id: str, evidence: Mapping[str, Any], instance: Optional[Mapping[str, Any]] = None,
       caused_by: Sequence[str] = ()) -> str:
    return digest(seen(check_id, evidence, instance, caused_by))


def _with_causes(evidence: Mapping[str, Any], caused_by: Sequence[str]) -> Dict[str, Any]:
    """A finding's caused_by (an evidence key in reports before it became a field of its own) counts as part of what
    it saw, whichever report it comes from; an empty one is no cause at all."""
    causes = list(caused_by) or (evidence.get("caused_by") if isinstance(evidence.get("caused_by"), list) else [])
    rest = {k: v for k, v in evidence.items() if k != "caused_by"}
    return {**rest, "caused_by": [str(c) for c in causes]} if causes else rest


def _stable(value: Any, depth: int) -> Any:
    if depth > DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {str(k)[:LONG]: _stable(v, depth + 1)
                for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))[:ITEMS * 2]
                if str(k) not in VOLATILE and not SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        items = [_stable(v, depth + 1) for v in list(value)[:ITEMS]]
        scalars = all(isinstance(i, (str, int, float, bool)) or i is None for i in items)
        return sorted(items, key=lambda i: (str(type(i)), str(i))) if scalars else items
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 3)
    return _text(str(value))


def _text(value: str) -> str:
    value = redact.secrets(value)  # URL userinfo, secret-named pairs, this run's known passwords
    value = SECRET_VALUE.sub(lambda m: "sha256:" + hashlib.sha256(m.group().encode()).hexdigest()[:12], value)
    if len(value) > LONG:  # a policy document or a certificate name: its hash says whether it changed
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _imds_token(evidence: Mapping[str, Any], instance: Mapping[str, Any]) -> Dict[str, Any]:
    """What IMDS told about the instance (where it sits and which groups it has), not how fast it answered."""
    token = _mapping(evidence.get("token"))
    facts = {k: _stable(instance.get(k), 1) for k in INSTANCE_FACTS if instance.get(k) not in (None, "", [])}
    return {"token_status": token.get("status"), "token_error": _stable(token.get("error"), 1), **facts}


def _dns_name(evidence: Mapping[str, Any], instance: Mapping[str, Any]) -> Dict[str, Any]:
    """The answer (addresses, CNAMEs, each type's outcome), once: inside/outside and per-type lists repeat it."""
    out = {"name": _stable(evidence.get("name"), 1), "addresses": _stable(evidence.get("addresses") or [], 1)}
    for kind in ("A", "AAAA"):
        answer = _mapping(evidence.get(kind))
        if answer:
            out[kind] = _stable(answer.get("code"), 1)
            cnames = _list(answer.get("cnames"))
            out["cnames"] = sorted(set(out.get("cnames", [])) | {str(c) for c in cnames})[:ITEMS]
    return out


def _agent_logs(evidence: Mapping[str, Any], instance: Mapping[str, Any]) -> Dict[str, Any]:
    """The causes the agent's logs showed in the last 24 h, not their times or counts."""
    matches = _list(evidence.get("matches"))
    codes = {str(m.get("code")) for m in matches if isinstance(m, Mapping) and m.get("recent")}
    caused = _list(evidence.get("caused_by"))
    return {"recent_causes": sorted(codes)[:ITEMS], "caused_by": sorted(str(c) for c in caused)[:ITEMS]}


def _clock(evidence: Mapping[str, Any], instance: Mapping[str, Any]) -> Dict[str, Any]:
    """The skew's band (the thresholds clock:skew judges by), not its exact value, which moves every run."""
    skew = evidence.get("skew_s")
    if not isinstance(skew, (int, float)) or isinstance(skew, bool):
        return {"skew": None}
    from .checks.clock import FAIL_S, WARN_S
    size = abs(skew)
    return {"skew": "≥ 5 min" if size >= FAIL_S else "≥ 1 min" if size >= WARN_S else "< 1 min"}


_SPECIAL: Dict[str, Any] = {"dns:resolver": None, "imds:token": _imds_token, "ssm:agent-logs": _agent_logs,
                            "clock:skew": _clock}
