"""Would a VPC endpoint policy let this request through? Local evaluation for attribution (domain.md §4 G). No I/O.

It answers only from what it is shown: a condition on a key it was not given is reported as unevaluated, never
guessed, so "unknown" is an answer. It knows only the endpoint policy; identity and resource policies are elsewhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

MAX_CHARS = 20_480      # the service's limit for an endpoint policy (PL-POLICY), counted without layout whitespace
MAX_STATEMENTS = 1_000
MAX_PATTERN = 1_000     # longer patterns are compared literally, so one match never costs more than ~1000 x text
_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike",
              "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike")
# Object-level S3 actions whose names lack "object"; names with "bucket" are bucket-level even with "object" in them.
_OBJECT_ACTIONS = ("abortmultipartupload", "listmultipartuploadparts")


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
    grants: Tuple[str, ...] = ()  # what each Allow statement grants, for describe_denial


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


def evaluate(policy: Policy, action: str, resource: str, principal_arn: Optional[str] = None,
             context: Optional[Mapping[str, str]] = None) -> Decision:
    ctx = {str(k).lower(): str(v) for k, v in (context or {}).items()}  # condition keys are case-insensitive
    allows: List[Tuple[Statement, Optional[bool], Tuple[str, ...]]] = []
    denies: List[Tuple[Statement, Optional[bool], Tuple[str, ...]]] = []
    for st in policy.statements:
        applies, keys = _applies(st, action.lower(), resource, principal_arn, ctx)
        if applies is not False:
            (allows if st.allow else denies).append((st, applies, keys))
    grants = tuple(_grant(st) for st in policy.statements if st.allow)
    what = f"{action} on {resource}"
    sure_deny = next((st for st, applies, _ in denies if applies), None)
    if sure_deny:
        return Decision(False, "explicit-deny", sure_deny.label, f'Statement "{sure_deny.label}" denies {what}',
                        (), grants)
    if not allows:  # a Deny that may apply changes nothing when no Allow could
        return Decision(False, "implicit-deny", None, f"no Allow statement matches {what}", (), grants)
    sure_allow = next((st for st, applies, _ in allows if applies), None)
    if denies:
        st, _, keys = denies[0]
        unknown = [k for _, _, ks in denies for k in ks]
        unknown += [] if sure_allow else [k for _, _, ks in allows for k in ks]
        return Decision(False, "unknown", st.label, f'Statement "{st.label}" denies {what} if its conditions on '
                        f'{", ".join(keys)} hold, and they could not be evaluated', _unique(unknown), grants)
    if sure_allow:
        return Decision(True, "allow", sure_allow.label, f'Statement "{sure_allow.label}" allows {what}', (), grants)
    st, _, keys = allows[0]
    return Decision(False, "unknown", st.label, f'Statement "{st.label}" allows {what} only if its conditions on '
                    f'{", ".join(keys)} hold, and they could not be evaluated',
                    _unique(k for _, _, ks in allows for k in ks), grants)


def describe_denial(decision: Decision) -> str:
    """The endpoint policy's part in a denial, as a sentence an operator reads."""
    if decision.effect == "allow":
        return "the endpoint policy allows this request"
    if decision.effect == "explicit-deny":
        return f'the endpoint policy denies this request explicitly in statement "{decision.statement}"'
    if decision.effect == "unknown":
        keys = ", ".join(decision.unevaluated) or "its conditions"
        return f"the endpoint policy may deny this request: it depends on {keys}, which could not be evaluated here"
    if not decision.grants:
        return "the endpoint policy has no Allow statement, so it allows nothing"
    return _show("the endpoint policy allows only " + "; ".join(decision.grants), 200)


def allowed_actions(policy: Policy) -> Tuple[str, ...]:
    """The Action patterns of the Allow statements, as written; a NotAction Allow reads "* except <patterns>"."""
    out: List[str] = []
    for st in (st for st in policy.statements if st.allow):
        out += [f"* except {', '.join(st.actions)}" if st.actions else "*"] if st.not_action else st.actions
    return _unique(out)


def only_object_actions(policy: Policy) -> bool:
    """Every Allow grants only S3 object-level actions (False when nothing is allowed at all)."""
    allows = [st for st in policy.statements if st.allow]
    return bool(allows) and all(not st.not_action and st.actions and all(map(_object_action, st.actions))
                                for st in allows)


def _object_action(pattern: str) -> bool:
    service, _, name = pattern.lower().partition(":")
    return service == "s3" and (name in _OBJECT_ACTIONS or ("object" in name and "bucket" not in name))


def _applies(st: Statement, action: str, resource: str, principal: Optional[str],
             ctx: Dict[str, str]) -> Tuple[Optional[bool], Tuple[str, ...]]:
    """Does the statement cover this request: True, False, or None with the keys that would decide it."""
    if any(_like(p.lower(), action) for p in st.actions) == st.not_action:
        return False, ()
    unknown: List[str] = []
    literal = [p for p in st.resources if "${" not in p]  # a policy variable's value is not known here
    if any(_like(p, resource) for p in literal):
        hit: Optional[bool] = True
    else:
        hit = None if len(literal) < len(st.resources) else False
    if hit is not None and hit == st.not_resource:
        return False, ()
    if hit is None:
        unknown += [p.split("${", 1)[1].split("}", 1)[0] for p in st.resources if "${" in p]
    if st.principals is None:
        if st.not_principal:  # NotPrincipal "*" excludes everyone
            return False, ()
    elif principal is None:
        unknown.append("aws:PrincipalArn")
    elif any(_principal_matches(p, principal) for p in st.principals) == st.not_principal:
        return False, ()
    for cond in st.conditions:
        result = _condition(cond, ctx)
        if result is False:
            return False, ()
        if result is None:
            unknown.append(cond.key)
    return (None, _unique(unknown)) if unknown else (True, ())


def _condition(cond: Condition, ctx: Dict[str, str]) -> Optional[bool]:
    # IfExists cannot help: a key missing from ctx is unknown to us, not absent from the request.
    base = cond.operator[:-len("IfExists")] if cond.operator.endswith("IfExists") else cond.operator
    value = ctx.get(cond.key.lower())
    if base not in _OPERATORS or value is None or any("${" in v for v in cond.values):
        return None  # ForAnyValue:/ForAllValues:, Bool, Numeric*, IpAddress… are not evaluated here
    if base.startswith("Arn"):
        hit = any(_arn_like(v, value) for v in cond.values)
    elif base.endswith("Like"):
        hit = any(_like(v, value) for v in cond.values)
    else:
        hit = value in cond.values
    return hit != ("Not" in base)


def _principal_matches(pattern: str, arn: str) -> bool:
    if pattern == arn:
        return True
    want, have = _arn(pattern), _arn(arn)
    if have is None:
        return False
    if len(pattern) == 12 and pattern.isdigit():
        return have[4] == pattern
    if want is None or want[1] != have[1] or want[4] != have[4]:
        return False
    if want[2] == "iam" and want[5] == "root":  # the account, as a principal, covers its roles and users
        return True
    # A role session arn:aws:sts::A:assumed-role/ROLE/SESSION is that role; role ARNs may carry a path.
    return (want[2] == "iam" and want[5].startswith("role/") and have[2] == "sts"
            and have[5].startswith("assumed-role/") and want[5].rsplit("/", 1)[-1] == have[5].split("/")[1])


def _arn(text: str) -> Optional[List[str]]:
    parts = text.split(":", 5)
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnEquals and ArnLike alike: each of the six colon-separated parts is matched on its own, with wildcards."""
    want, have = pattern.split(":", 5), _arn(arn)
    return have is not None and len(want) == 6 and all(map(_like, want, have))


def _like(pattern: str, text: str) -> bool:
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
        for key, values in block.items():
            values = values if isinstance(values, list) else [values]
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


def _grant(st: Statement) -> str:
    actions, resources = ", ".join(st.actions), ", ".join(st.resources)
    text = (f"every action except {actions}" if st.not_action else actions) + " on " + (
        f"every resource except {resources}" if st.not_resource else resources)
    if st.principals is not None:
        text += f" for {'everyone except ' if st.not_principal else ''}{', '.join(st.principals) or 'no IAM caller'}"
    if st.conditions:
        text += f" (with conditions on {', '.join(_unique(c.key for c in st.conditions))})"
    return text


def _unique(items) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _show(value: Any, limit: int) -> str:
    """One line, at most `limit` characters: policy text is user input and may be long or multi-line."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
