"""Would a VPC endpoint policy let this request through? Local evaluation for attribution (domain.md §4 G). No I/O.

It answers only from what it is shown: a condition on a key it was not given is reported as unevaluated, never
guessed, so "unknown" is an answer. It knows only the endpoint policy; identity and resource policies are elsewhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from . import matching
from .matching import account_form, like, principal_matches, role_of, split_arn

MAX_CHARS = 20_480      # the service's limit for an endpoint policy (PL-POLICY), counted without layout whitespace
MAX_STATEMENTS = 1_000
class PolicyError(ValueError):
    """The document is not a policy this module understands. The message is one line."""


@dataclass(frozen=True)
class Condition:
    operator: str                 # as written, e.g. "StringNotEqualsIfExists"
    key: str
    values: Tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    label: str                    # its Sid, else "Statement[i]"
    allow: bool
    actions: Tuple[str, ...]
    not_action: bool
    resources: Tuple[str, ...]
    not_resource: bool
    principals: Optional[Tuple[str, ...]]  # the AWS principals; None means everyone
    not_principal: bool
    conditions: Tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    statements: Tuple[Statement, ...]


@dataclass(frozen=True)
class Decision:
    allowed: bool                 # True only if some Allow matches and no Deny matches
    effect: str                   # "allow", "explicit-deny", "implicit-deny", "unknown"
    statement: Optional[str]      # the deciding statement's label
    reason: str                   # one sentence, with the action and resource
    unevaluated: Tuple[str, ...] = ()  # condition keys it could not evaluate, e.g. ("aws:SourceVpce",)


_Match = Tuple[Statement, Optional[bool], Tuple[str, ...]]


def parse(document: Union[str, Mapping[str, Any]]) -> Policy:
    if isinstance(document, str):
        if len(document) > 16 * MAX_CHARS:  # refuse before parsing: layout alone never makes a policy this long
            raise PolicyError(f"too large: {len(document)} characters, an endpoint policy has at most {MAX_CHARS}")
        try:
            document = json.loads(document)
        except (ValueError, RecursionError) as exc:
            raise PolicyError(f"not JSON: {_show(str(exc), 120)}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"a policy is a JSON object, got {type(document).__name__}")
    try:
        size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise PolicyError(f"not JSON-shaped: {_show(str(exc), 120)}") from None
    if size > MAX_CHARS:
        raise PolicyError(f"too large: {size} characters without layout, an endpoint policy has at most {MAX_CHARS}")
    if "Statement" not in document:
        raise PolicyError("no Statement: a policy needs at least one statement")
    raw = document["Statement"]
    raw = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw, list):
        raise PolicyError(f"Statement must be an object or a list, got {type(raw).__name__}")
    if len(raw) > MAX_STATEMENTS:
        raise PolicyError(f"too large: {len(raw)} statements, at most {MAX_STATEMENTS} are evaluated")
    return Policy(tuple(_statement(s, f"Statement[{i}]") for i, s in enumerate(raw)))


def request_context(principal_arn: Optional[str], endpoint_id: Optional[str] = None, vpc_id: Optional[str] = None,
                    private_ip: Optional[str] = None) -> Dict[str, Optional[str]]:
    """The condition keys the doctor knows for its own request through a VPC endpoint; None: absent from it.

    aws:SourceIp is absent from a request through a VPC endpoint, whose private source address is aws:VpcSourceIp
    ("The aws:SourceIp condition key is always included in the request, except for requests that use an Amazon VPC
    endpoint": https://repost.aws/knowledge-center/iam-restrict-access-policy; IAM User Guide, global condition
    keys: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html). An assumed
    role's aws:PrincipalArn is the role's ARN (its path is not in the session ARN, see matching.pathed_role).
    """
    ctx: Dict[str, Optional[str]] = {"aws:sourceip": None, "aws:securetransport": "true"}  # the doctor uses TLS only
    parts = split_arn(principal_arn or "")
    if parts is not None:
        ctx["aws:principalaccount"] = parts[4]
        ctx["aws:principalarn"] = role_of(parts) or principal_arn
    for key, value in (("aws:sourcevpce", endpoint_id), ("aws:sourcevpc", vpc_id), ("aws:vpcsourceip", private_ip)):
        if value:
            ctx[key] = value
    return ctx


def evaluate(policy: Policy, action: str, resource: str, principal_arn: Optional[str] = None,
             context: Optional[Mapping[str, Optional[str]]] = None, gateway: bool = False) -> Decision:
    """`context`: the condition keys known (None: absent from the request, see request_context); `gateway`: the
    policy is a gateway endpoint's, where an account principal means its root user only."""
    ctx = {str(k).lower(): _value(v) for k, v in (context or {}).items()}
    allows: List[_Match] = []
    denies: List[_Match] = []
    for st in policy.statements:
        applies, keys = _applies(st, action.lower(), resource, principal_arn, ctx, gateway)
        if applies is not False:
            (allows if st.allow else denies).append((st, applies, keys))
    decision = _decide(allows, denies, f"{action} on {resource}")
    if gateway and decision.effect == "implicit-deny":
        return _root_only(policy, decision, action.lower(), resource, principal_arn, ctx)
    return decision


def _value(value: Any) -> matching.Value:
    """A context key's value: absent (None), one string, or a multivalued key's set (a list or tuple)."""
    if value is None:
        return None
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _decide(allows: List[_Match], denies: List[_Match], what: str) -> Decision:
    sure_deny = next((st for st, applies, _ in denies if applies), None)
    if sure_deny:
        return Decision(False, "explicit-deny", sure_deny.label, f'Statement "{sure_deny.label}" denies {what}')
    if not allows:  # a Deny that may apply changes nothing when no Allow could
        return Decision(False, "implicit-deny", None, f"no Allow statement matches {what}")
    sure_allow = next((st for st, applies, _ in allows if applies), None)
    if denies:
        st, _, keys = denies[0]
        unknown = [k for _, _, ks in denies for k in ks]
        unknown += [] if sure_allow else [k for _, _, ks in allows for k in ks]
        return Decision(False, "unknown", st.label, f'Statement "{st.label}" denies {what} if its conditions on '
                        f'{", ".join(keys)} hold, and they could not be evaluated', _unique(unknown))
    if sure_allow:
        return Decision(True, "allow", sure_allow.label, f'Statement "{sure_allow.label}" allows {what}')
    st, _, keys = allows[0]
    return Decision(False, "unknown", st.label, f'Statement "{st.label}" allows {what} only if its conditions on '
                    f'{", ".join(keys)} hold, and they could not be evaluated',
                    _unique(k for _, _, ks in allows for k in ks))


def _root_only(policy: Policy, decision: Decision, action: str, resource: str, principal: Optional[str],
               ctx: Dict[str, matching.Value]) -> Decision:
    """Name the Allow that would match on an interface endpoint: the classic gateway-policy trap."""
    for st in policy.statements:
        if st.allow and st.principals and not st.not_principal and any(map(account_form, st.principals)) \
                and _applies(st, action, resource, principal, ctx, False)[0]:
            return Decision(False, "implicit-deny", st.label, f'{decision.reason}: statement "{st.label}" names the '
                            "account as its principal, which on a gateway endpoint means the account's root user "
                            'only; allow roles with "Principal": "*" and an aws:PrincipalArn condition')
    return decision


def _applies(st: Statement, action: str, resource: str, principal: Optional[str],
             ctx: Dict[str, matching.Value], gateway: bool) -> Tuple[Optional[bool], Tuple[str, ...]]:
    """Does the statement cover this request: True, False, or None with the keys that would decide it."""
    if any(like(p.lower(), action) for p in st.actions) == st.not_action:
        return False, ()
    unknown: List[str] = []
    for hit, keys in (_resource_hit(st, resource), _principal_hit(st, principal, gateway), _conditions_hold(st, ctx)):
        if hit is False:
            return False, ()
        unknown += keys
    return (None, _unique(unknown)) if unknown else (True, ())


def _resource_hit(st: Statement, resource: str) -> Tuple[Optional[bool], List[str]]:
    literal = [p for p in st.resources if "${" not in p]  # a policy variable's value is not known here
    if any(like(p, resource) for p in literal):
        return not st.not_resource, []
    if len(literal) == len(st.resources):
        return st.not_resource, []
    return None, [p.split("${", 1)[1].split("}", 1)[0] for p in st.resources if "${" in p]


def _principal_hit(st: Statement, principal: Optional[str], gateway: bool) -> Tuple[Optional[bool], List[str]]:
    if st.principals is None:
        return not st.not_principal, []  # NotPrincipal "*" excludes everyone
    if principal is None:
        return None, ["aws:PrincipalArn"]
    return any(principal_matches(p, principal, gateway) for p in st.principals) != st.not_principal, []


def _conditions_hold(st: Statement, ctx: Dict[str, matching.Value]) -> Tuple[Optional[bool], List[str]]:
    unknown = []
    for cond in st.conditions:
        result = matching.holds(cond.operator, cond.key, cond.values, ctx)
        if result is False:
            return False, []
        if result is None:
            unknown.append(cond.key)
    return (None if unknown else True), unknown


def _statement(raw: Any, where: str) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be an object, got {type(raw).__name__}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"{where}.Sid must be a string, got {type(sid).__name__}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):  # case-sensitive in IAM, so "allow" is as wrong as "Permit"
        raise PolicyError(f'{where}: Effect must be "Allow" or "Deny", got {_show(effect, 40)}')
    actions, not_action = _either(raw, "Action", where)
    resources, not_resource = _either(raw, "Resource", where)
    principals, not_principal = _principal(raw, where)
    return Statement(sid or where, effect == "Allow", actions, not_action, resources, not_resource, principals,
                     not_principal, _conditions(raw.get("Condition"), where))


def _either(raw: Dict[str, Any], name: str, where: str) -> Tuple[Tuple[str, ...], bool]:
    negated = "Not" + name
    if (name in raw) == (negated in raw):
        raise PolicyError(f"{where} needs exactly one of {name} and {negated}")
    key = name if name in raw else negated
    return _strings(raw[key], f"{where}.{key}"), key == negated


def _principal(raw: Dict[str, Any], where: str) -> Tuple[Optional[Tuple[str, ...]], bool]:
    if "Principal" in raw and "NotPrincipal" in raw:
        raise PolicyError(f"{where} has both Principal and NotPrincipal")
    key = "NotPrincipal" if "NotPrincipal" in raw else "Principal"
    if key not in raw:
        return None, False  # an endpoint policy statement without Principal applies to everyone
    value = raw[key]
    if value == "*":
        return None, key == "NotPrincipal"
    if not isinstance(value, dict) or not value:
        raise PolicyError(f'{where}.{key} must be "*" or an object like {{"AWS": ...}}, got {_show(value, 40)}')
    # Service, Federated and CanonicalUser principals are checked for shape but never match an IAM caller.
    found = [p for kind, ids in value.items() for p in _strings(ids, f"{where}.{key}.{kind}") if kind == "AWS"]
    return (None if "*" in found else tuple(found)), key == "NotPrincipal"


def _conditions(raw: Any, where: str) -> Tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}.Condition must be an object, got {type(raw).__name__}")
    out = []
    for operator, block in raw.items():
        if not isinstance(block, dict):
            raise PolicyError(f"{where}.Condition.{_show(operator, 40)} must map keys to values")
        for key, value in block.items():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, (str, int, float)) for v in values):
                raise PolicyError(f"{where}.Condition: the values of {_show(str(key), 60)} must be strings, numbers "
                                  "or booleans")
            out.append(Condition(str(operator), str(key),
                                 tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in values)))
    return tuple(out)


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{where} must be a string or a list of strings, got {_show(value, 40)}")
    return tuple(values)


def _unique(items) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _show(value: Any, limit: int) -> str:
    """One line, at most `limit` characters: policy text is user input and may be long or multi-line."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
