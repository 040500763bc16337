"""How IAM matches, for policy.py: globs, ARNs, principals and condition operators. Pure; no I/O."""
from __future__ import annotations

import ipaddress
import operator as op
import re
from datetime import datetime, timezone
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

MAX_PATTERN = 1_000     # longer patterns are compared literally, so one match never costs more than ~1000 x text
# PrivateLink guide, "Principals for gateway endpoints": on a gateway endpoint "AWS": "<account-id>" and
# "AWS": "arn:aws:iam::<account-id>:root" grant the account's root user only; on an interface endpoint they grant
# every principal of the account (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html
# #vpc-endpoint-policies-gateway).
GATEWAY_PRINCIPALS_DOC = "https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html"
# arn:partition:service:region:account-id:resource (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html)
ARN_PARTS = 6
# an AWS account id is a 12-digit number (https://docs.aws.amazon.com/accounts/latest/reference/manage-acct-identifiers.html)
ACCOUNT_ID_DIGITS = 12
_ACCOUNT_ROOT = re.compile(r"arn:[\w-]+:iam::(\d{12}):root")


Value = Union[None, str, Tuple[str, ...]]  # a key's value in the request: absent, one value, or a multivalued set


def holds(operator: str, key: str, values: Tuple[str, ...], ctx: Mapping[str, Value]) -> Optional[bool]:
    """True, False, or None (cannot tell). A key absent from the request fails every operator but the negated ones
    (StringNotEquals, NotIpAddress, ...) and ...IfExists, which hold, and Null (IAM User Guide, condition operators:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
    ForAnyValue:/ForAllValues: compare each member of the request's set (_set_holds)."""
    qualifier, _, rest = operator.rpartition(":")
    if_exists = rest.endswith("IfExists")
    base = rest[:-len("IfExists")] if if_exists else rest
    key = key.lower()
    if key not in ctx or any("${" in v for v in values) or (key == "aws:principalarn" and
                                                                  pathed_role(values)):
        return None
    value = ctx[key]
    if base == "Null" and not qualifier:
        return any((value is None) == (v.lower() == "true") for v in values)
    test = _OPERATORS.get(base)
    if test is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return None
    negated = "Not" in base
    if qualifier:
        return _set_holds(qualifier == "ForAllValues", test, negated, values, value)
    if value is None:
        return negated or if_exists
    if isinstance(value, tuple):
        return None  # a single-valued operator on a multivalued key: AWS's own docs advise against it
    hit = test(values, value)
    return None if hit is None else hit != negated


def _set_holds(every: bool, test: Callable[[Tuple[str, ...], str], Optional[bool]], negated: bool,
               values: Tuple[str, ...], value: Value) -> Optional[bool]:
    """ForAllValues: every member of the request's set matches (and an absent key or an empty set holds);
    ForAnyValue: at least one member matches (an absent key fails). A negated operator is applied to each member.
    A single-valued key is a set of one (IAM User Guide, "Single-valued vs. multivalued context keys":
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys
    .html)."""
    members = () if value is None else value if isinstance(value, tuple) else (value,)
    if not members:
        return every
    hits = [test(values, member) for member in members]
    if None in hits:
        return None
    matched = [hit != negated for hit in hits]
    return all(matched) if every else any(matched)


def _strings_equal(values: Tuple[str, ...], value: str) -> Optional[bool]:
    return value in values


def _strings_like(values: Tuple[str, ...], value: str) -> Optional[bool]:
    return any(like(v, value) for v in values)


def _arns_like(values: Tuple[str, ...], value: str) -> Optional[bool]:
    return any(arn_like(v, value) for v in values)


def _bools(values: Tuple[str, ...], value: str) -> Optional[bool]:
    return value.lower() in (v.lower() for v in values)


def _ips(values: Tuple[str, ...], value: str) -> Optional[bool]:
    try:
        address = ipaddress.ip_address(value)
        return any(address in ipaddress.ip_network(v, strict=False) for v in values)
    except ValueError:
        return None  # a malformed address or range: AWS would have refused the policy, so do not guess


def _ordered(parse: Callable[[str], float], compare: Callable[[float, float], bool]):
    """Numeric* and Date*: the request's value against each policy value (any one suffices); a value that does not
    parse cannot be decided."""
    def test(values: Tuple[str, ...], value: str) -> Optional[bool]:
        try:
            have = parse(value)
            return any(compare(have, parse(v)) for v in values)
        except (ValueError, OverflowError):
            return None
    return test


def _date(text: str) -> float:
    """A Date* operand: epoch seconds, or ISO 8601 (a date alone is midnight UTC; no zone is UTC), as IAM takes them
    (condition operators, "Date condition operators")."""
    text = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


_COMPARISONS = {"Equals": op.eq, "LessThan": op.lt, "LessThanEquals": op.le, "GreaterThan": op.gt,
                "GreaterThanEquals": op.ge}
_OPERATORS: Dict[str, Callable[[Tuple[str, ...], str], Optional[bool]]] = {
    "StringEquals": _strings_equal, "StringNotEquals": _strings_equal,
    "StringLike": _strings_like, "StringNotLike": _strings_like,
    "ArnEquals": _arns_like, "ArnNotEquals": _arns_like, "ArnLike": _arns_like, "ArnNotLike": _arns_like,
    "Bool": _bools, "IpAddress": _ips, "NotIpAddress": _ips,
    "NumericNotEquals": _ordered(float, op.eq), "DateNotEquals": _ordered(_date, op.eq),
    **{f"Numeric{name}": _ordered(float, compare) for name, compare in _COMPARISONS.items()},
    **{f"Date{name}": _ordered(_date, compare) for name, compare in _COMPARISONS.items()}}


def pathed_role(values: Tuple[str, ...]) -> bool:
    """A role ARN with a path: the session ARN names the role but not its path, so such a value is not decided."""
    return any(v.split(":", 5)[-1].startswith("role/") and v.split(":", 5)[-1].count("/") > 1 for v in values)


def split_arn(text: str) -> Optional[List[str]]:
    parts = text.split(":", 5)
    return parts if len(parts) == ARN_PARTS and parts[0] == "arn" else None


def arn_like(pattern: str, arn: str) -> bool:
    """ArnEquals and ArnLike alike: each of the six colon-separated parts is matched on its own, with wildcards."""
    want, have = pattern.split(":", 5), split_arn(arn)
    return have is not None and len(want) == ARN_PARTS and all(map(like, want, have))


def like(pattern: str, text: str) -> bool:
    """Glob match with * and ?: one backtrack point, so O(len(pattern) * len(text)) at worst, never exponential."""
    if len(pattern) > MAX_PATTERN:
        return pattern == text
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":  # before the literal test: "*" in text is no escape
            star, mark, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return pattern[p:].strip("*") == ""


def role_of(parts: List[str]) -> Optional[str]:
    kind, _, rest = parts[5].partition("/")  # assumed-role/ROLE/SESSION
    role, slash, _ = rest.partition("/")
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}" if parts[2] == "sts" and kind == "assumed-role" and slash \
        else None


def account_form(pattern: str) -> bool:
    return (len(pattern) == ACCOUNT_ID_DIGITS and pattern.isdigit()) or bool(_ACCOUNT_ROOT.fullmatch(pattern))


def principal_matches(pattern: str, arn: str, gateway: bool = False) -> bool:
    if pattern == arn:
        return True
    want, have = split_arn(pattern), split_arn(arn)
    if have is None:
        return False
    if account_form(pattern):  # the account: on a gateway endpoint its root user only (GATEWAY_PRINCIPALS_DOC)
        account = pattern if pattern.isdigit() else pattern.split(":")[4]
        return have[4] == account and (not gateway or (have[2] == "iam" and have[5] == "root"))
    if want is None or want[1] != have[1] or want[4] != have[4]:
        return False
    # A role session arn:aws:sts::A:assumed-role/ROLE/SESSION is that role; role ARNs may carry a path.
    return (want[2] == "iam" and want[5].startswith("role/") and have[2] == "sts"
            and have[5].startswith("assumed-role/") and want[5].rsplit("/", 1)[-1] == have[5].split("/")[1])
