"""The lab's IAM: policy evaluation as AWS does it, written apart from vpce_doctor (never imported here), so the
doctor's evaluator is judged against an independent one, and both against AWS's documentation.

Sources: IAM policy evaluation logic (https://docs.aws.amazon.com/IAM/latest/UserGuide/
reference_policies_evaluation-logic.html); condition operators and keys absent from the request
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html), Numeric
and Date operators, ForAnyValue/ForAllValues over multivalued keys (https://docs.aws.amazon.com/IAM/latest/UserGuide/
reference_policies_condition-single-vs-multi-valued-context-keys.html); gateway
endpoint principals (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html, "Principals for
gateway endpoints"); S3's AccessDenied wording (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
troubleshoot-403-errors.html, "Access denied message examples").
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import ipaddress
import json
import re


def evaluate(policy, action: str, resource: str, principals: set | None = None, context: dict | None = None) -> str:
    """'allow', 'implicit' or 'explicit' (deny). `principals`: every name the caller matches as a Principal (None:
    an identity policy, which has none); `context`: the request's condition keys, lower-case; a key not in it is
    absent from the request, as it is in AWS."""
    document = json.loads(policy) if isinstance(policy, str) else policy
    statements = document.get("Statement", [])
    context = {k.lower(): v for k, v in (context or {}).items()}
    allowed = False
    for st in statements if isinstance(statements, list) else [statements]:
        if not _covers(st, action, resource, principals, context):
            continue
        if st.get("Effect") == "Deny":
            return "explicit"
        allowed |= st.get("Effect") == "Allow"
    return "allow" if allowed else "implicit"


def _covers(st: dict, action: str, resource: str, principals: set | None, context: dict) -> bool:
    if principals is not None and not _principal_matches(st, principals):
        return False
    return (_element_matches(st, "Action", action, fold=True) and _element_matches(st, "Resource", resource)
            and all(_condition(op, key, values, context) for op, block in st.get("Condition", {}).items()
                    for key, values in block.items()))


def _element_matches(st: dict, name: str, value: str, fold: bool = False) -> bool:
    def hit(patterns) -> bool:
        patterns = [patterns] if isinstance(patterns, str) else patterns
        return any(re.fullmatch(re.escape(p).replace(r"\*", ".*").replace(r"\?", "."), value,
                                re.IGNORECASE | re.DOTALL if fold else re.DOTALL) for p in patterns)
    if name in st:
        return hit(st[name])
    if "Not" + name in st:
        return not hit(st["Not" + name])
    return name == "Resource"  # a statement without Resource applies to every resource


def _principal_matches(st: dict, principals: set) -> bool:
    if "NotPrincipal" in st:
        return not _named(st["NotPrincipal"], principals)
    return "Principal" not in st or _named(st["Principal"], principals)


def _named(principal, principals: set) -> bool:
    if principal == "*":
        return True
    values = principal.get("AWS", []) if isinstance(principal, dict) else []
    return any(v == "*" or v in principals for v in ([values] if isinstance(values, str) else values))


def _condition(operator: str, key: str, values, context: dict) -> bool:
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in (values if isinstance(values, list)
                                                                         else [values])]
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        return _set_condition(operator, values, context.get(key.lower()))
    if_exists = operator.endswith("IfExists")
    base = operator[:-len("IfExists")] if if_exists else operator
    value = context.get(key.lower())
    if base == "Null":
        return any((value is None) == (v.lower() == "true") for v in values)
    negated = "Not" in base
    if value is None:  # absent: only negated operators and ...IfExists hold
        return negated or if_exists
    hit = _matches(base, values, value)
    return hit != negated


def _set_condition(operator: str, values: list, requested) -> bool:
    """ForAllValues: every value in the request matches the operator (true when the key is absent or its set is
    empty); ForAnyValue: at least one does (false when absent). A single value is a set of one (IAM User Guide,
    reference_policies_condition-single-vs-multi-valued-context-keys.html)."""
    qualifier, base = operator.split(":", 1)
    base = base.removesuffix("IfExists")
    members = [] if requested is None else requested if isinstance(requested, list) else [requested]
    outcomes = [_matches(base, values, member) != ("Not" in base) for member in members]
    if qualifier == "ForAllValues":
        return all(outcomes)
    return any(outcomes)


def _matches(base: str, values: list, value: str) -> bool:
    if base.startswith("Ip") or base == "NotIpAddress":
        return any(ipaddress.ip_address(value) in ipaddress.ip_network(v, strict=False) for v in values)
    if base.startswith("Arn"):  # each of the six colon-separated parts is matched on its own
        return any(len(v.split(":", 5)) == len(value.split(":", 5)) == 6 and all(
            fnmatch.fnmatchcase(have, want.replace("[", "[[]"))
            for want, have in zip(v.split(":", 5), value.split(":", 5))) for v in values)
    if base.startswith(("StringLike", "StringNotLike")):
        return any(fnmatch.fnmatchcase(value, v.replace("[", "[[]")) for v in values)
    if base == "Bool" or base.startswith(("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase")):
        return value.lower() in (v.lower() for v in values)
    if base.startswith(("StringEquals", "StringNotEquals")):
        return value in values
    for family, parse in (("Numeric", float), ("Date", _instant)):
        if base.startswith(family):
            compare = COMPARE[base[len(family):].replace("Not", "", 1)]
            return any(compare(parse(value), parse(v)) for v in values)
    raise ValueError(f"the lab does not evaluate the condition operator {base}")


# Numeric and Date operators: Equals, NotEquals (negated by the caller), LessThan, LessThanEquals, GreaterThan,
# GreaterThanEquals (condition operators reference).
COMPARE = {"Equals": lambda a, b: a == b, "LessThan": lambda a, b: a < b, "LessThanEquals": lambda a, b: a <= b,
           "GreaterThan": lambda a, b: a > b, "GreaterThanEquals": lambda a, b: a >= b}


def _instant(text: str) -> float:
    """A date as IAM takes it: epoch seconds or ISO 8601 in UTC (e.g. 2026-01-01T00:00:00Z, or a date alone)."""
    if re.fullmatch(r"\d+", text):
        return float(text)
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)).timestamp()


def combine(endpoint: str, identity: str, resource: str | None) -> tuple[str, str] | None:
    """Same-account S3 semantics: an explicit deny anywhere wins; otherwise the identity policy or the bucket policy
    must allow. Returns (kind, policy type) of the denial, or None when allowed. The endpoint policy is a separate
    gate that must allow on its own."""
    if endpoint != "allow":
        return endpoint, "VPC endpoint policy"
    if identity == "explicit":
        return "explicit", "identity-based policy"
    if resource == "explicit":
        return "explicit", "resource-based policy"
    if identity != "allow" and resource != "allow":
        return "implicit", "identity-based policy"
    return None


def denial_message(arn: str, action: str, resource: str | None, kind: str, policy_type: str) -> str:
    """IAM's wording; S3 quotes the resource. policy_type: "VPC endpoint policy", "identity-based policy",
    "resource-based policy" (S3 user guide, troubleshoot-403-errors, "Access denied message examples")."""
    quoted = f'"{resource}"' if action.startswith("s3:") else resource
    on = f" on resource: {quoted}" if resource else ""
    article = "an" if policy_type[0] in "aeiou" else "a"
    context = (f"with an explicit deny in {article} {policy_type}" if kind == "explicit"
               else f"because no {policy_type} allows the {action} action")
    return f"User: {arn} is not authorized to perform: {action}{on} {context}"
