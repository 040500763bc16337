"""Which policy denied a call, as far as the AWS error message says (domain.md §5). No I/O here.

AWS names at most one policy type even when several deny, and many services (and S3 across accounts) name none,
so "unknown" is a normal answer: the caller then attributes by evaluating the endpoint policy itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple

MAX_INPUT = 4_096   # only this much of a message is examined, so a huge or hostile one costs no more than a normal one
MAX_KEPT = 500
DENIAL_CODES = frozenset({"accessdenied", "accessdeniedexception", "unauthorizedoperation", "forbidden", "403"})

# The IAM form "User: <arn> is not authorized to perform: <action> [on resource: <arn>]" and S3's
# 'User <arn> is not authorized to perform <action> on "<arn>"'. No nested quantifiers: linear in the input.
_REQUEST = re.compile(r'(?:User:? (?P<principal>\S+) )?is not authorized to perform:? (?P<action>[\w-]+:[\w*-]+)'
                      r'(?: on (?:resource:? )?"?(?P<resource>[^"\s]+))?', re.IGNORECASE)
_EXPLICIT = re.compile(r"with an explicit deny(?: in (?P<kind>[^.;\n]{0,120}))?", re.IGNORECASE)
_IMPLICIT = re.compile(r"because no (?P<kind>[^.;\n]{0,80}?) allows?\b(?: the (?P<action>[\w-]+:[\w*-]+) action)?",
                       re.IGNORECASE)
_ENCODED = re.compile(r"encoded authori[sz]ation failure message", re.IGNORECASE)
# Words that name a policy type, most specific first; "transitively through <type>" names the one that denied.
_KINDS: Tuple[Tuple[str, str], ...] = (
    ("vpc endpoint", "vpc-endpoint"), ("service control polic", "scp"), ("resource control polic", "rcp"),
    ("identity-based", "identity"), ("identity based", "identity"), ("resource-based", "resource"),
    ("resource based", "resource"), ("trust policy", "resource"), ("permissions boundar", "permissions-boundary"),
    ("session polic", "session"), ("sessions polic", "session"))
# Outside the standard phrases these only suggest a type: the message may mention a policy without blaming it.
_HINTS: Tuple[Tuple[str, str], ...] = _KINDS + (("bucket policy", "resource"), ("key policy", "resource"))


@dataclass(frozen=True)
class Denial:
    policy_type: str            # "vpc-endpoint", "identity", "resource", "scp", "rcp", "permissions-boundary",
    #                             "session", "unknown"
    explicit: Optional[bool]    # True: an explicit deny; False: no policy of that type allows; None: not said
    action: Optional[str]       # e.g. "s3:PutObject"
    resource: Optional[str]
    principal: Optional[str]    # what follows "User:", usually an ARN
    certainty: str              # "stated": the message names the type; "inferred": only mentions it; "unknown"
    message: str                # the original message, at most 500 characters


def is_denial(code: Any, message: Any = None) -> bool:
    """An authorization failure, by error code or, for services with their own codes, by the message's wording."""
    text = _text(message)[:MAX_INPUT].lower()
    return (_text(code).strip().lower().rpartition(".")[2] in DENIAL_CODES
            or "is not authorized to perform" in text or "access denied" in text)


def parse(code: Any, message: Any) -> Denial:
    """Never raises: garbage, binary, None or 10 MB in gives a Denial with whatever could be recognised."""
    full = _text(message)
    text = full[:MAX_INPUT]
    kept = full if len(full) <= MAX_KEPT else full[:MAX_KEPT - 1] + "…"
    request = _REQUEST.search(text)
    action = request.group("action") if request else None
    resource = (request.group("resource") or "").rstrip(".,;") or None if request else None
    # KMS through S3 says "on this resource" without naming the key (buildkite/docs#2344)
    resource = None if resource == "this" else resource
    principal = request.group("principal") if request else None
    explicit, policy_type, certainty = None, "unknown", "unknown"
    explicit_match, implicit_match = _EXPLICIT.search(text), _IMPLICIT.search(text)
    if explicit_match:
        explicit = True
        policy_type = _kind(explicit_match.group("kind") or "", _KINDS)
    elif implicit_match:
        explicit = False
        policy_type = _kind(implicit_match.group("kind"), _KINDS)
        action = action or implicit_match.group("action")
    if policy_type != "unknown":
        certainty = "stated"
        if policy_type == "scp" and explicit:
            explicit = None  # AWS writes "explicit deny in a service control policy" for implicit SCP denies too
    elif is_denial(code, text) and not _ENCODED.search(text):  # an encoded blob needs sts:DecodeAuthorizationMessage
        policy_type = _kind(text, _HINTS)
        certainty = "inferred" if policy_type != "unknown" else "unknown"
    return Denial(policy_type, explicit, action, resource, principal, certainty, kept)


def _kind(phrase: str, table: Tuple[Tuple[str, str], ...]) -> str:
    phrase = phrase.lower()
    _, through, rest = phrase.partition("transitively through")
    phrase = rest if through else phrase
    return next((kind for words, kind in table if words in phrase), "unknown")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:MAX_INPUT * 4]).decode("utf-8", "replace")
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # a __str__ that raises is no reason to lose the diagnosis
        return ""
