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
    "an unsupported operator is unknown even with the key known": (
        doc(allow("Ip", Action="*", Resource="*", Condition={"IpAddress": {"aws:VpcSourceIp": "10.0.0.0/16"}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:VpcSourceIp": "10.0.1.5"},
        (False, "unknown", "Ip", ("aws:VpcSourceIp",))),
    "ForAnyValue is not evaluated": (
        doc(allow("Tags", Action="*", Resource="*",
                  Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}})),
        "s3:GetObject", OBJECT, SESSION, {"aws:TagKeys": "a"}, (False, "unknown", "Tags", ("aws:TagKeys",))),
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


DENIALS = {
    "implicit lists what is allowed": (
        GET_PUT, "s3:ListAllMyBuckets", "*",
        "the endpoint policy allows only s3:GetObject, s3:PutObject on arn:aws:s3:::vpclab-probe/*"),
    "explicit names the statement": (
        PINNED, "s3:DeleteObject", OBJECT,
        'the endpoint policy denies this request explicitly in statement "NoDeletes"'),
    "unknown names the key": (
        doc(allow("V", Action="*", Resource="*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
        "s3:GetObject", OBJECT,
        "the endpoint policy may deny this request: it depends on aws:SourceVpce, which could not be evaluated here"),
    "no Allow statement": (
        doc(deny("D", Action="ssm:*", Resource="*")), "s3:GetObject", OBJECT,
        "the endpoint policy has no Allow statement, so it allows nothing"),
    "NotAction and conditions are spelled out": (
        doc(allow("N", NotAction="s3:Delete*", Resource=BUCKET), allow("C", Action="ssm:*", Resource="*",
            Condition={"StringEquals": {"aws:PrincipalAccount": ACCT}})), "kms:Decrypt", "*",
        "the endpoint policy allows only every action except s3:Delete* on arn:aws:s3:::vpclab-probe; "
        "ssm:* on * (with conditions on aws:PrincipalAccount)"),
    "allowed": (DEFAULT, "s3:GetObject", OBJECT, "the endpoint policy allows this request"),
}


@pytest.mark.parametrize("document, action, resource, expected", DENIALS.values(), ids=DENIALS)
def test_describe_denial(document, action, resource, expected):
    assert policy.describe_denial(policy.evaluate(policy.parse(document), action, resource)) == expected


def test_describe_denial_is_trimmed():
    many = doc(*(allow(f"S{i}", Action=f"s3:GetObjectVersion{i}", Resource=f"arn:aws:s3:::bucket-{i}/*")
                 for i in range(40)))
    text = policy.describe_denial(policy.evaluate(policy.parse(many), "s3:ListAllMyBuckets", "*"))
    assert len(text) == 200 and text.endswith("…")
    assert text.startswith("the endpoint policy allows only s3:GetObjectVersion0 on arn:aws:s3:::bucket-0/*; ")


ACTIONS = {
    "get/put": (GET_PUT, ("s3:GetObject", "s3:PutObject"), True),
    "wildcard object names": (doc(allow(Action=["s3:GetObject*", "s3:*Object*", "s3:AbortMultipartUpload",
                                                "S3:ListMultipartUploadParts"], Resource="*")),
                              ("s3:GetObject*", "s3:*Object*", "s3:AbortMultipartUpload",
                               "S3:ListMultipartUploadParts"), True),
    "s3:*": (doc(allow(Action="s3:*", Resource="*")), ("s3:*",), False),
    "*": (DEFAULT, ("*",), False),
    "a bucket action among object actions": (
        doc(allow(Action=["s3:GetObject", "s3:ListBucket"], Resource="*")), ("s3:GetObject", "s3:ListBucket"), False),
    "object-lock config is a bucket action": (
        doc(allow(Action="s3:GetBucketObjectLockConfiguration", Resource="*")),
        ("s3:GetBucketObjectLockConfiguration",), False),
    "another service's object": (doc(allow(Action="s3-object-lambda:GetObject", Resource="*")),
                                 ("s3-object-lambda:GetObject",), False),
    "deny statements do not count": (PINNED, ("s3:*",), False),
    "NotAction": (doc(allow(NotAction=["s3:DeleteObject", "s3:DeleteBucket"], Resource="*")),
                  ("* except s3:DeleteObject, s3:DeleteBucket",), False),
    "no allow at all": (doc(deny(Action="s3:GetObject", Resource="*")), (), False),
    "duplicates collapse": (doc(allow(Action="s3:GetObject", Resource="a"), allow(Action="s3:GetObject", Resource="b")),
                            ("s3:GetObject",), True),
}


@pytest.mark.parametrize("document, actions, object_only", ACTIONS.values(), ids=ACTIONS)
def test_allowed_actions_and_object_only(document, actions, object_only):
    parsed = policy.parse(document)
    assert policy.allowed_actions(parsed) == actions
    assert policy.only_object_actions(parsed) is object_only


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
        assert isinstance(policy.describe_denial(decision), str)
        assert isinstance(policy.only_object_actions(parsed), bool)


@FAST
@given(text=st.text(max_size=200) | st.from_regex(r'\{"Statement": ?[\[{].*', fullmatch=True))
def test_property_parse_of_arbitrary_text_raises_only_policy_error(text):
    try:
        policy.parse(text)
    except PolicyError:
        pass
