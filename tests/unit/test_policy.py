"""Local endpoint-policy evaluation (domain.md §4 G): what is allowed, what is denied and by which statement, and
what cannot be told from here. Pure: no AWS, no fixtures."""
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpce_doctor import policy
from vpce_doctor.policy import Decision, PolicyError

ACCT = "111122223333"
ROLE = f"arn:aws:iam::{ACCT}:role/ssm-instance"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/ssm-instance/i-0abc1234"
OTHER_SESSION = "arn:aws:sts::444455556666:assumed-role/ssm-instance/i-0abc1234"
BUCKET = "arn:aws:s3:::vpclab-probe"
OBJECT = "arn:aws:s3:::vpclab-probe/doctor/probe.txt"


def doc(*statements, **top):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements), **top})


def allow(sid=None, **fields):
    return {**({"Sid": sid} if sid else {}), "Effect": "Allow", "Principal": "*", **fields}


def deny(sid=None, **fields):
    return {**({"Sid": sid} if sid else {}), "Effect": "Deny", "Principal": "*", **fields}


DEFAULT = doc({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})
GET_PUT = doc(allow("ProbeOnly", Action=["s3:GetObject", "s3:PutObject"], Resource=f"{BUCKET}/*"))
PIN_VPCE = deny("PinVpce", Action="s3:*", Resource="*",
                Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b"}})
PINNED = doc(allow("Probe", Action="s3:*", Resource="*"),
             deny("NoDeletes", Action="s3:DeleteObject", Resource=f"{BUCKET}/*"))


# (policy, action, resource, principal, context) -> (allowed, effect, statement, unevaluated)
CASES = {
    "default policy allows anything": (
        DEFAULT, "ssm:GetDocument", "*", SESSION, None, (True, "allow", "Statement[0]", ())),
    "get/put-only allows PutObject on its bucket": (
        GET_PUT, "s3:PutObject", OBJECT, SESSION, None, (True, "allow", "ProbeOnly", ())),
    "get/put-only does not allow ListAllMyBuckets": (
        GET_PUT, "s3:ListAllMyBuckets", "*", SESSION, None, (False, "implicit-deny", None, ())),
    "get/put-only does not allow PutObject on another bucket": (
        GET_PUT, "s3:PutObject", "arn:aws:s3:::other-bucket/k", SESSION, None, (False, "implicit-deny", None, ())),
    "get/put-only does not cover the bucket itself": (
        GET_PUT, "s3:GetObject", BUCKET, SESSION, None, (False, "implicit-deny", None, ())),
    "explicit deny beats allow and is named": (
        PINNED, "s3:DeleteObject", OBJECT, SESSION, None, (False, "explicit-deny", "NoDeletes", ())),
    "deny on another action leaves the allow": (
        PINNED, "s3:PutObject", OBJECT, SESSION, None, (True, "allow", "Probe", ())),
    "statements may be a single object": (
        json.dumps({"Statement": allow("One", Action="s3:GetObject", Resource="*")}), "s3:GetObject", OBJECT, None,
        None, (True, "allow", "One", ())),
    "NotAction allows everything else": (
        doc(allow("AllButDelete", NotAction="s3:Delete*", Resource="*")), "s3:PutObject", OBJECT, None, None,
        (True, "allow", "AllButDelete", ())),
    "NotAction excludes what it names": (
        doc(allow("AllButDelete", NotAction="s3:Delete*", Resource="*")), "s3:DeleteObject", OBJECT, None, None,
        (False, "implicit-deny", None, ())),
    "NotResource allows other resources": (
        doc(allow("NotSecret", Action="s3:*", NotResource="arn:aws:s3:::secret/*")), "s3:GetObject", OBJECT, None,
        None, (True, "allow", "NotSecret", ())),
    "NotResource excludes what it names": (
        doc(allow("NotSecret", Action="s3:*", NotResource="arn:aws:s3:::secret/*")), "s3:GetObject",
        "arn:aws:s3:::secret/k", None, None, (False, "implicit-deny", None, ())),
    "Deny with NotResource protects everything but one bucket": (
        doc(allow("All", Action="*", Resource="*"),
            deny("OnlyProbe", Action="s3:*", NotResource=[BUCKET, f"{BUCKET}/*"])),
        "s3:GetObject", "arn:aws:s3:::elsewhere/k", None, None, (False, "explicit-deny", "OnlyProbe", ())),
    "s3:Get* matches GetObject": (
        doc(allow("Reads", Action="s3:Get*", Resource="*")), "s3:GetObject", OBJECT, None, None,
        (True, "allow", "Reads", ())),
    "s3:Get* does not match PutObject": (
        doc(allow("Reads", Action="s3:Get*", Resource="*")), "s3:PutObject", OBJECT, None, None,
        (False, "implicit-deny", None, ())),
    "? matches exactly one character": (
        doc(allow("Q", Action="s3:GetObjec?", Resource="arn:aws:s3:::bucket-?/*")), "s3:GetObject",
        "arn:aws:s3:::bucket-a/k", None, None, (True, "allow", "Q", ())),
    "? does not match two characters": (
        doc(allow("Q", Action="s3:GetObject", Resource="arn:aws:s3:::bucket-?/*")), "s3:GetObject",
        "arn:aws:s3:::bucket-ab/k", None, None, (False, "implicit-deny", None, ())),
    "actions match case-insensitively": (
        doc(allow("Caps", Action="S3:getobject", Resource="*")), "s3:GetObject", OBJECT, None, None,
        (True, "allow", "Caps", ())),
    "resources match case-sensitively": (
        doc(allow("Case", Action="s3:*", Resource="arn:aws:s3:::VPCLAB-PROBE/*")), "s3:GetObject", OBJECT, None,
        None, (False, "implicit-deny", None, ())),
    "a literal * in the resource is still matched by a pattern *": (
        doc(allow("Star", Action="s3:*", Resource="arn:aws:s3:::b/*")), "s3:GetObject", "arn:aws:s3:::b/*x", None,
        None, (True, "allow", "Star", ())),
    "principal {AWS: *}": (
        doc(allow("Any", Principal={"AWS": "*"}, Action="*", Resource="*")), "s3:GetObject", OBJECT, SESSION, None,
        (True, "allow", "Any", ())),
    "principal as an account id matches its sessions": (
        doc(allow("Acct", Principal={"AWS": ACCT}, Action="*", Resource="*")), "s3:GetObject", OBJECT, SESSION, None,
        (True, "allow", "Acct", ())),
    "principal as the account root ARN matches its sessions": (
        doc(allow("Root", Principal={"AWS": [f"arn:aws:iam::{ACCT}:root"]}, Action="*", Resource="*")),
        "s3:GetObject", OBJECT, SESSION, None, (True, "allow", "Root", ())),
    "role ARN matches an assumed-role session of it": (
        doc(allow("Role", Principal={"AWS": ROLE}, Action="*", Resource="*")), "s3:GetObject", OBJECT, SESSION, None,
        (True, "allow", "Role", ())),
    "role ARN with a path matches the session": (
        doc(allow("Role", Principal={"AWS": f"arn:aws:iam::{ACCT}:role/ops/ssm-instance"}, Action="*", Resource="*")),
        "s3:GetObject", OBJECT, SESSION, None, (True, "allow", "Role", ())),
    "another role does not match": (
        doc(allow("Role", Principal={"AWS": f"arn:aws:iam::{ACCT}:role/other"}, Action="*", Resource="*")),
        "s3:GetObject", OBJECT, SESSION, None, (False, "implicit-deny", None, ())),
    "a different account does not match": (
        doc(allow("Acct", Principal={"AWS": ACCT}, Action="*", Resource="*")), "s3:GetObject", OBJECT,
        OTHER_SESSION, None, (False, "implicit-deny", None, ())),
    "a service principal never matches an IAM caller": (
        doc(allow("Svc", Principal={"Service": "ssm.amazonaws.com"}, Action="*", Resource="*")), "s3:GetObject",
        OBJECT, SESSION, None, (False, "implicit-deny", None, ())),
    "a named principal without a known caller is unknown": (
        doc(allow("Role", Principal={"AWS": ROLE}, Action="*", Resource="*")), "s3:GetObject", OBJECT, None, None,
        (False, "unknown", "Role", ("aws:PrincipalArn",))),
    "missing Principal means everyone": (
        doc({"Sid": "NoPrincipal", "Effect": "Allow", "Action": "*", "Resource": "*"}), "s3:GetObject", OBJECT,
        SESSION, None, (True, "allow", "NoPrincipal", ())),
    "NotPrincipal excludes the named role": (
        doc({"Sid": "NotMe", "Effect": "Allow", "NotPrincipal": {"AWS": ROLE}, "Action": "*", "Resource": "*"}),
        "s3:GetObject", OBJECT, SESSION, None, (False, "implicit-deny", None, ())),
    "StringEquals on a known key that matches": (
        doc(allow("Org", Action="*", Resource="*", Condition={"StringEquals": {"aws:PrincipalAccount": ACCT}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:PrincipalAccount": ACCT}, (True, "allow", "Org", ())),
    "StringEquals on a known key that does not match": (
        doc(allow("Org", Action="*", Resource="*", Condition={"StringEquals": {"aws:PrincipalAccount": ACCT}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:principalaccount": "444455556666"},
        (False, "implicit-deny", None, ())),
    "StringNotEquals deny pins the endpoint": (
        doc(allow("All", Action="*", Resource="*"),
            PIN_VPCE),
        "s3:GetObject", OBJECT, SESSION, {"aws:SourceVpce": "vpce-9999"}, (False, "explicit-deny", "PinVpce", ())),
    "StringNotEquals deny lets the right endpoint through": (
        doc(allow("All", Action="*", Resource="*"),
            PIN_VPCE),
        "s3:GetObject", OBJECT, SESSION, {"aws:SourceVpce": "vpce-1a2b"}, (True, "allow", "All", ())),
    "a deny on a key not in context is unknown and names the key": (
        doc(allow("All", Action="*", Resource="*"),
            PIN_VPCE),
        "s3:GetObject", OBJECT, SESSION, None, (False, "unknown", "PinVpce", ("aws:SourceVpce",))),
    "an unconditional deny wins over an unknown one": (
        doc(allow("All", Action="*", Resource="*"),
            deny("Maybe", Action="s3:*", Resource="*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}}),
            deny("Always", Action="s3:GetObject", Resource="*")),
        "s3:GetObject", OBJECT, SESSION, None, (False, "explicit-deny", "Always", ())),
    "an allow on a key not in context is unknown": (
        doc(allow("FromVpce", Action="s3:*", Resource="*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
        "s3:GetObject", OBJECT, SESSION, {}, (False, "unknown", "FromVpce", ("aws:SourceVpce",))),
    "an unconditional allow settles an unknown one": (
        doc(allow("FromVpce", Action="s3:*", Resource="*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}}),
            allow("Plain", Action="s3:GetObject", Resource="*")),
        "s3:GetObject", OBJECT, SESSION, {}, (True, "allow", "Plain", ())),
    "a maybe-deny changes nothing when nothing is allowed": (
        doc(allow("Other", Action="ssm:*", Resource="*"),
            deny("Maybe", Action="s3:*", Resource="*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
        "s3:GetObject", OBJECT, SESSION, None, (False, "implicit-deny", None, ())),
    # Numeric, Date and set operators (IAM User Guide, condition operators; single- vs multivalued context keys)
    "an unsupported operator is unknown even with the key known": (
        doc(allow("Bin", Action="*", Resource="*", Condition={"BinaryEquals": {"s3:max-keys": "QmluYXJ5"}})),
        "s3:GetObject", OBJECT, SESSION, {"s3:max-keys": "5"}, (False, "unknown", "Bin", ("s3:max-keys",))),
    "NumericLessThan compares numbers": (
        doc(allow("Num", Action="*", Resource="*", Condition={"NumericLessThan": {"s3:max-keys": "10"}})),
        "s3:GetObject", OBJECT, SESSION, {"s3:max-keys": "5"}, (True, "allow", "Num", ())),
    "DateLessThan on aws:CurrentTime: an expired grant": (
        doc(allow("Until", Action="*", Resource="*", Condition={"DateLessThan": {"aws:CurrentTime":
                                                                                   "2026-01-01T00:00:00Z"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:CurrentTime": "2026-11-29T12:00:00Z"},
        (False, "implicit-deny", None, ())),
    "ForAnyValue on a single value is a set of one": (
        doc(allow("Tags", Action="*", Resource="*",
                  Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:TagKeys": "a"}, (True, "allow", "Tags", ())),
    "ForAllValues holds for an absent key, ForAnyValue does not": (
        doc(allow("All", Action="*", Resource="*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}),
            deny("Any", Action="*", Resource="*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:TagKeys": None}, (True, "allow", "All", ())),
    "ForAllValues needs every member, ForAnyValue:StringNotEquals one": (
        doc(allow("All", Action="*", Resource="*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}),
            deny("Other", Action="*", Resource="*",
                 Condition={"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a", "b"]}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:TagKeys": ["a", "c"]}, (False, "explicit-deny", "Other", ())),
    "IfExists with the key known evaluates like the base operator": (
        doc(allow("Acct", Action="*", Resource="*",
                  Condition={"StringEqualsIfExists": {"aws:PrincipalAccount": [ACCT, "999988887777"]}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:PrincipalAccount": ACCT}, (True, "allow", "Acct", ())),
    "StringLike with wildcards": (
        doc(allow("Like", Action="*", Resource="*", Condition={"StringLike": {"aws:userid": "AROA*:i-*"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:userid": "AROAEXAMPLE:i-0abc"}, (True, "allow", "Like", ())),
    "StringNotLike with a match fails the condition": (
        doc(allow("NotLike", Action="*", Resource="*", Condition={"StringNotLike": {"aws:userid": "AROA*"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:userid": "AROAEXAMPLE:i-0abc"}, (False, "implicit-deny", None, ())),
    "ArnLike matches per ARN part": (
        doc(allow("Arn", Action="*", Resource="*",
                  Condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCT}:role/*"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:PrincipalArn": ROLE}, (True, "allow", "Arn", ())),
    "ArnEquals does not let * cross into another ARN part": (
        doc(allow("Arn", Action="*", Resource="*", Condition={"ArnEquals": {"aws:PrincipalArn": "arn:aws:*"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:PrincipalArn": ROLE}, (False, "implicit-deny", None, ())),
    "every condition must hold: one false settles it despite an unknown": (
        doc(allow("Two", Action="*", Resource="*", Condition={
            "StringEquals": {"aws:PrincipalAccount": "999988887777", "aws:SourceVpce": "vpce-1"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:PrincipalAccount": ACCT}, (False, "implicit-deny", None, ())),
    "a policy variable in the resource is unknown": (
        doc(allow("Home", Action="s3:*", Resource="arn:aws:s3:::home/${aws:userid}/*")), "s3:GetObject",
        "arn:aws:s3:::home/AROA:i-1/k", SESSION, None, (False, "unknown", "Home", ("aws:userid",))),
    "a deny with no Allow at all is still implicit": (
        doc(deny("Nothing", Action="s3:PutObject", Resource="*")), "s3:GetObject", OBJECT, SESSION, None,
        (False, "implicit-deny", None, ())),
    "unnamed statements are labelled by index": (
        doc(allow(Action="ssm:*", Resource="*"), deny(Action="s3:*", Resource="*")), "s3:GetObject", OBJECT, None,
        None, (False, "explicit-deny", "Statement[1]", ())),
}


@pytest.mark.parametrize("document, action, resource, principal, context, expected", CASES.values(), ids=CASES)
def test_evaluate(document, action, resource, principal, context, expected):
    decision = policy.evaluate(policy.parse(document), action, resource, principal, context)
    assert (decision.allowed, decision.effect, decision.statement, decision.unevaluated) == expected
    assert action in decision.reason and resource in decision.reason
    if decision.statement:
        assert f'"{decision.statement}"' in decision.reason


def test_reasons_are_sentences_with_values():
    get_put = policy.parse(GET_PUT)
    assert policy.evaluate(get_put, "s3:PutObject", OBJECT).reason == \
        f'Statement "ProbeOnly" allows s3:PutObject on {OBJECT}'
    assert policy.evaluate(get_put, "s3:ListAllMyBuckets", "*").reason == \
        "no Allow statement matches s3:ListAllMyBuckets on *"
    assert policy.evaluate(policy.parse(PINNED), "s3:DeleteObject", OBJECT).reason == \
        f'Statement "NoDeletes" denies s3:DeleteObject on {OBJECT}'


MALFORMED = {
    "not JSON": ("{'Statement': ", "not JSON: "),
    "empty": ("", "not JSON: "),
    "a JSON list": ("[]", "a policy is a JSON object, got list"),
    "a JSON string": ('"Allow"', "a policy is a JSON object, got str"),
    "None": (None, "a policy is a JSON object, got NoneType"),
    "bytes": (b"{}", "a policy is a JSON object, got bytes"),
    "no Statement": ('{"Version": "2012-10-17"}', "no Statement: "),
    "Statement a string": ('{"Statement": "Allow"}', "Statement must be an object or a list, got str"),
    "Statement null": ('{"Statement": null}', "Statement must be an object or a list, got NoneType"),
    "statement not an object": ('{"Statement": [1]}', "Statement[0] must be an object, got int"),
    "missing Effect": (doc({"Action": "*", "Resource": "*"}),
                       'Statement[0]: Effect must be "Allow" or "Deny", got None'),
    # IAM documents the Effect value as case-sensitive, so "allow" is refused rather than guessed at.
    "lower-case allow": (doc({"Effect": "allow", "Action": "*", "Resource": "*"}),
                         "Statement[0]: Effect must be \"Allow\" or \"Deny\", got allow"),
    "Effect a list": (doc({"Effect": ["Allow"], "Action": "*", "Resource": "*"}), "got ['Allow']"),
    "Sid a number": (doc({"Sid": 7, "Effect": "Allow", "Action": "*", "Resource": "*"}),
                     "Statement[0].Sid must be a string, got int"),
    "Action of wrong type": (doc(allow(Action=5, Resource="*")),
                             "Statement[0].Action must be a string or a list of strings, got 5"),
    "Action list with a number": (doc(allow(Action=["s3:GetObject", 5], Resource="*")),
                                  "Statement[0].Action must be a string or a list of strings"),
    "no Action nor NotAction": (doc(allow(Resource="*")), "Statement[0] needs exactly one of Action and NotAction"),
    "both Action and NotAction": (doc(allow(Action="*", NotAction="s3:*", Resource="*")),
                                  "Statement[0] needs exactly one of Action and NotAction"),
    "no Resource": (doc(allow(Action="*")), "Statement[0] needs exactly one of Resource and NotResource"),
    "Principal a bare ARN": (doc(allow(Principal=ROLE, Action="*", Resource="*")),
                             'Statement[0].Principal must be "*" or an object like {"AWS": ...}'),
    "Principal AWS a number": (doc(allow(Principal={"AWS": 111122223333}, Action="*", Resource="*")),
                               "Statement[0].Principal.AWS must be a string or a list of strings"),
    "Principal and NotPrincipal": (doc(allow(NotPrincipal="*", Action="*", Resource="*")),
                                   "Statement[0] has both Principal and NotPrincipal"),
    "Condition a list": (doc(allow(Action="*", Resource="*", Condition=[])),
                         "Statement[0].Condition must be an object"),
    "Condition block a string": (doc(allow(Action="*", Resource="*", Condition={"StringEquals": "x"})),
                                 "Statement[0].Condition.StringEquals must map keys to values"),
    "Condition value an object": (doc(allow(Action="*", Resource="*", Condition={"StringEquals": {"k": {"a": 1}}})),
                                  "the values of k must be strings, numbers or booleans"),
    "Condition value null": (doc(allow(Action="*", Resource="*", Condition={"StringEquals": {"k": None}})),
                             "the values of k must be strings"),
    "huge policy": (doc(*[allow(Action="s3:GetObject", Resource=f"arn:aws:s3:::b{i}/*") for i in range(400)]),
                    "too large: "),
    "huge raw text": (" " * 400_000 + "{}", "too large: 400002 characters"),
    "deep nesting, huge": ("[" * 200_000 + "]" * 200_000, "too large: "),
    "deep nesting, small": ('{"Statement": ' + "[" * 5000 + "]" * 5000 + "}", "not JSON"),
    "dict that is not JSON-shaped": ({"Statement": [{"Effect": "Allow", "Action": {1, 2}}]}, "not JSON-shaped: "),
}


@pytest.mark.parametrize("document, fragment", MALFORMED.values(), ids=MALFORMED)
def test_malformed_policies_raise_one_line_policy_errors(document, fragment):
    with pytest.raises(PolicyError) as raised:
        policy.parse(document)
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message and len(message) <= 300


def test_statement_count_is_bounded():
    # Compact statements so the count, not the size, is what trips.
    many = {"Statement": [{}] * 1001}
    with pytest.raises(PolicyError, match="too large"):
        policy.parse(many)


def test_a_parsed_dict_and_its_json_text_agree():
    data = json.loads(GET_PUT)
    assert policy.parse(data) == policy.parse(GET_PUT)


def test_matching_is_never_exponential():
    star_heavy = "*a" * 400 + "b"
    parsed = policy.parse(doc(allow("Slow", Action="s3:GetObject", Resource=star_heavy)))
    started = time.perf_counter()
    decision = policy.evaluate(parsed, "s3:GetObject", "a" * 2000)
    assert decision.effect == "implicit-deny"
    assert time.perf_counter() - started < 1.0


def test_an_overlong_pattern_is_compared_literally():
    pattern = "arn:aws:s3:::b/" + "*" * 1000
    parsed = policy.parse(doc(allow("Long", Action="s3:*", Resource=pattern)))
    assert policy.evaluate(parsed, "s3:GetObject", "arn:aws:s3:::b/k").effect == "implicit-deny"
    assert policy.evaluate(parsed, "s3:GetObject", pattern).effect == "allow"


def test_decision_is_frozen():
    decision = policy.evaluate(policy.parse(DEFAULT), "s3:GetObject", OBJECT)
    assert isinstance(decision, Decision)
    with pytest.raises(AttributeError):
        decision.allowed = False


# --- properties: parse raises only PolicyError; what it accepts, evaluate decides without raising ---

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
PATTERN = st.text(alphabet="s3:*?aGetObjc/-", max_size=14)
STRINGS = PATTERN | st.lists(PATTERN, max_size=3)
OPERATOR = st.sampled_from(["StringEquals", "StringNotLike", "ArnLike", "ArnNotEqualsIfExists", "Bool",
                            "ForAnyValue:StringLike", "StringLikeIfExists"])
KEY = st.sampled_from(["aws:SourceVpce", "aws:PrincipalAccount", "aws:PrincipalArn"])
STATEMENT = st.fixed_dictionaries(
    {"Effect": st.sampled_from(["Allow", "Deny", "allow"]) | JSON},
    optional={"Sid": st.text(max_size=6) | JSON, "Action": STRINGS | JSON, "NotAction": STRINGS,
              "Resource": STRINGS | JSON, "NotResource": STRINGS,
              "Principal": st.just("*") | st.fixed_dictionaries({"AWS": st.sampled_from([ACCT, ROLE, SESSION, "*"])})
              | JSON, "NotPrincipal": st.just("*"),
              "Condition": st.dictionaries(OPERATOR, st.dictionaries(KEY, STRINGS | JSON, max_size=2), max_size=2)
              | JSON})
CONDITION = st.dictionaries(OPERATOR, st.dictionaries(KEY, STRINGS, min_size=1, max_size=2), max_size=2)
PRINCIPAL = st.sampled_from(["*", {"AWS": "*"}, {"AWS": ACCT}, {"AWS": [ROLE, OTHER_SESSION]},
                             {"Service": "ssm.amazonaws.com"}])
WELL_FORMED = st.builds(
    lambda effect, action, resource, extra: {"Effect": effect, **action, **resource, **extra},
    st.sampled_from(["Allow", "Deny"]),
    st.dictionaries(st.sampled_from(["Action", "NotAction"]), STRINGS, min_size=1, max_size=1),
    st.dictionaries(st.sampled_from(["Resource", "NotResource"]), STRINGS, min_size=1, max_size=1),
    st.fixed_dictionaries({}, optional={"Sid": st.text(max_size=6), "Principal": PRINCIPAL,
                                        "Condition": CONDITION}))
DOCUMENT = (st.fixed_dictionaries({"Statement": st.lists(WELL_FORMED | STATEMENT, max_size=4) | WELL_FORMED | JSON})
            | JSON)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(document=DOCUMENT, action=PATTERN, resource=PATTERN,
       principal=st.none() | st.sampled_from([SESSION, OTHER_SESSION, ROLE, "anonymous"]),
       context=st.dictionaries(KEY, PATTERN, max_size=3))
def test_property_parse_raises_only_policy_error_and_evaluate_always_decides(document, action, resource, principal,
                                                                              context):
    for form in (document, json.dumps(document)):
        try:
            parsed = policy.parse(form)
        except PolicyError as exc:
            assert "\n" not in str(exc)
            continue
        decision = policy.evaluate(parsed, action, resource, principal, context)
        assert decision.effect in ("allow", "explicit-deny", "implicit-deny", "unknown")
        assert decision.allowed is (decision.effect == "allow")
        assert (decision.unevaluated != ()) <= (decision.effect == "unknown")


@FAST
@given(text=st.text(max_size=200) | st.from_regex(r'\{"Statement": ?[\[{].*', fullmatch=True))
def test_property_parse_of_arbitrary_text_raises_only_policy_error(text):
    try:
        policy.parse(text)
    except PolicyError:
        pass


# --- what AWS does that 0.1.0 got wrong (fidelity.md §D) ---------------------------------------------------------
# Gateway principals: PrivateLink guide, "Principals for gateway endpoints"
# (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html#vpc-endpoint-policies-gateway).
# aws:SourceIp absent through an endpoint: https://repost.aws/knowledge-center/iam-restrict-access-policy.
# Operators on absent keys: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
ROOT = f"arn:aws:iam::{ACCT}:root"
KNOWN = policy.request_context(SESSION, "vpce-0s3gw", "vpc-0lab", "10.0.1.100")
# The bucket-policy lock-out pattern of the S3 user guide ("Restricting access to a specific IP address"), here in
# an endpoint policy: through an endpoint aws:SourceIp is absent, so the NotIpAddress deny always applies.
IP_LOCK = deny("OnlyOffice", Action="s3:*", Resource="*",
               Condition={"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}})
ACCOUNT_ONLY = doc(allow("OurAccount", Principal={"AWS": ACCT}, Action="s3:*", Resource="*"))
ROOT_ONLY = doc(allow("OurRoot", Principal={"AWS": ROOT}, Action="s3:*", Resource="*"))
BY_ARN = doc(allow("OurRole", Action="s3:*", Resource="*",
                   Condition={"ArnEquals": {"aws:PrincipalArn": ROLE}}))

FIDELITY = {
    "gateway: an account id grants the root user only, not a role": (
        ACCOUNT_ONLY, SESSION, KNOWN, True, (False, "implicit-deny", "OurAccount", ())),
    "gateway: the root ARN grants the root user only": (
        ROOT_ONLY, SESSION, KNOWN, True, (False, "implicit-deny", "OurRoot", ())),
    "gateway: the root user itself is allowed": (
        ROOT_ONLY, ROOT, {}, True, (True, "allow", "OurRoot", ())),
    "interface: an account id grants every principal of the account": (
        ACCOUNT_ONLY, SESSION, KNOWN, False, (True, "allow", "OurAccount", ())),
    "gateway: Principal * with an aws:PrincipalArn condition grants the role": (
        BY_ARN, SESSION, KNOWN, True, (True, "allow", "OurRole", ())),
    "a pathed role in aws:PrincipalArn cannot be told from the session ARN": (
        doc(allow("Pathed", Action="s3:*", Resource="*",
                  Condition={"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCT}:role/ops/ssm-instance"}})),
        SESSION, KNOWN, True, (False, "unknown", "Pathed", ("aws:PrincipalArn",))),
    "aws:PrincipalAccount is known from the session": (
        doc(allow("Acct", Action="s3:*", Resource="*", Condition={"StringEquals": {"aws:PrincipalAccount": ACCT}})),
        SESSION, KNOWN, True, (True, "allow", "Acct", ())),
    "aws:SourceVpce is this endpoint": (
        doc(allow("All", Action="*", Resource="*"),
            deny("Pin", Action="s3:*", Resource="*", Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-0s3gw"}})),
        SESSION, KNOWN, True, (True, "allow", "All", ())),
    "aws:SourceVpc of another VPC denies": (
        doc(allow("All", Action="*", Resource="*"),
            deny("OnlyHub", Action="s3:*", Resource="*", Condition={"StringNotEquals": {"aws:SourceVpc": "vpc-0hub"}})),
        SESSION, KNOWN, True, (False, "explicit-deny", "OnlyHub", ())),
    "NotIpAddress on aws:SourceIp always applies through an endpoint": (
        doc(allow("All", Action="*", Resource="*"), IP_LOCK), SESSION, KNOWN, True,
        (False, "explicit-deny", "OnlyOffice", ())),
    "IpAddress on aws:SourceIp never matches through an endpoint": (
        doc(allow("Office", Action="s3:*", Resource="*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
        SESSION, KNOWN, True, (False, "implicit-deny", None, ())),
    "IpAddress on aws:VpcSourceIp matches the private address": (
        doc(allow("Subnet", Action="s3:*", Resource="*", Condition={"IpAddress": {"aws:VpcSourceIp": "10.0.1.0/24"}})),
        SESSION, KNOWN, True, (True, "allow", "Subnet", ())),
    "NotIpAddress on aws:VpcSourceIp of our subnet does not deny": (
        doc(allow("All", Action="*", Resource="*"),
            deny("NotSubnet", Action="s3:*", Resource="*",
                 Condition={"NotIpAddress": {"aws:VpcSourceIp": ["10.0.1.0/24", "2001:db8::/32"]}})),
        SESSION, KNOWN, True, (True, "allow", "All", ())),
    "IfExists on an absent key holds": (
        doc(allow("Maybe", Action="s3:*", Resource="*",
                  Condition={"IpAddressIfExists": {"aws:SourceIp": "198.51.100.0/24"}})),
        SESSION, KNOWN, True, (True, "allow", "Maybe", ())),
    "Null true on the absent aws:SourceIp holds": (
        doc(allow("ViaEndpoint", Action="s3:*", Resource="*", Condition={"Null": {"aws:SourceIp": "true"}})),
        SESSION, KNOWN, True, (True, "allow", "ViaEndpoint", ())),
    "Null false on the present aws:SourceVpce holds": (
        doc(allow("HasVpce", Action="s3:*", Resource="*", Condition={"Null": {"aws:SourceVpce": "false"}})),
        SESSION, KNOWN, True, (True, "allow", "HasVpce", ())),
    "Bool aws:SecureTransport false does not deny the doctor's TLS": (
        doc(allow("All", Action="*", Resource="*"),
            deny("TlsOnly", Action="s3:*", Resource="*", Condition={"Bool": {"aws:SecureTransport": "false"}})),
        SESSION, KNOWN, True, (True, "allow", "All", ())),
    "a malformed range is not guessed": (
        doc(allow("Bad", Action="s3:*", Resource="*", Condition={"IpAddress": {"aws:VpcSourceIp": "10.0.1/99"}})),
        SESSION, KNOWN, True, (False, "unknown", "Bad", ("aws:VpcSourceIp",))),
    "keys the doctor cannot know stay unknown": (
        doc(allow("Org", Action="s3:*", Resource="*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-1"}})),
        SESSION, KNOWN, True, (False, "unknown", "Org", ("aws:PrincipalOrgID",))),
}


@pytest.mark.parametrize("document, principal, context, gateway, expected", FIDELITY.values(), ids=FIDELITY)
def test_evaluate_as_aws_does(document, principal, context, gateway, expected):
    decision = policy.evaluate(policy.parse(document), "s3:GetObject", OBJECT, principal, context, gateway)
    assert (decision.allowed, decision.effect, decision.statement, decision.unevaluated) == expected


def test_the_gateway_root_only_trap_is_explained():
    decision = policy.evaluate(policy.parse(ACCOUNT_ONLY), "s3:GetObject", OBJECT, SESSION, KNOWN, gateway=True)
    assert 'statement "OurAccount" names the account as its principal' in decision.reason
    assert "root user only" in decision.reason and "aws:PrincipalArn" in decision.reason


def test_request_context_knows_what_the_doctor_knows():
    assert KNOWN == {"aws:sourceip": None, "aws:securetransport": "true", "aws:principalaccount": ACCT,
                     "aws:principalarn": ROLE, "aws:sourcevpce": "vpce-0s3gw", "aws:sourcevpc": "vpc-0lab",
                     "aws:vpcsourceip": "10.0.1.100"}
    assert policy.request_context(None) == {"aws:sourceip": None, "aws:securetransport": "true"}
    assert policy.request_context("garbage")["aws:sourceip"] is None
