"""The doctor's endpoint-policy evaluator (vpce_doctor/policy.py) against the lab's, written apart (tests/lab/iam.py,
which never imports the doctor): on every generated policy over the condition keys both know, whenever the doctor
decides (not "unknown"), it decides as the lab does. Where they disagree, the facts in both modules' citations
(IAM condition operators, PrivateLink "Principals for gateway endpoints") decide which one is wrong."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.lab import iam
from vpce_doctor import policy

ACCT = "123456789012"
ROLE = f"arn:aws:iam::{ACCT}:role/vpclab-instance-role"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/vpclab-instance-role/i-0abc"
VPCE, VPC, IP = "vpce-0s3gw", "vpc-0lab", "10.0.1.100"
OBJECT = "arn:aws:s3:::vpclab-probe/vpce-doctor/i-0abc.probe"
# Keys for the numeric, date and set operators: a time (aws:CurrentTime, aws:EpochTime), a multivalued key with two
# members (aws:TagKeys) and an absent multivalued one (aws:CalledVia, absent from a direct call: IAM global condition
# keys). Both evaluators get them in the lab's shape.
MORE = {"aws:CurrentTime": "2026-11-29T12:00:00Z", "aws:EpochTime": "1795953600", "aws:TagKeys": ["team", "env"]}
# The keys of a request through an endpoint, as the lab builds them (aws:SourceIp absent) ...
LAB_CONTEXT = {"aws:PrincipalArn": ROLE, "aws:PrincipalAccount": ACCT, "aws:SecureTransport": "true",
               "aws:SourceVpce": VPCE, "aws:SourceVpc": VPC, "aws:VpcSourceIp": IP, **MORE}
# ... and as the doctor knows them.
DOCTOR_CONTEXT = {**policy.request_context(SESSION, VPCE, VPC, IP), **MORE, "aws:CalledVia": None}

KEYS = {"aws:SourceVpce": [VPCE, "vpce-0other", "vpce-0*"], "aws:SourceVpc": [VPC, "vpc-0hub"],
        "aws:PrincipalAccount": [ACCT, "444455556666"], "aws:PrincipalArn": [ROLE, f"arn:aws:iam::{ACCT}:role/*",
                                                                           f"arn:aws:iam::{ACCT}:role/other"],
        "aws:SourceIp": ["198.51.100.0/24", "10.0.0.0/8"], "aws:VpcSourceIp": ["10.0.1.0/24", "10.9.0.0/16"],
        "aws:SecureTransport": ["true", "false"],
        "aws:CurrentTime": ["2026-01-01T00:00:00Z", "2027-01-01", "1795953600", "2026-11-29T12:00:00Z"],
        "aws:EpochTime": ["1795953600", "1700000000", "1800000000"],
        "aws:TagKeys": ["team", "env", "owner", "t*"], "aws:CalledVia": ["athena.amazonaws.com"]}
ORDER = ["Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals"]
OPERATORS = {"aws:SourceIp": ["IpAddress", "NotIpAddress"], "aws:VpcSourceIp": ["IpAddress", "NotIpAddress"],
             "aws:SecureTransport": ["Bool"], "aws:PrincipalArn": ["ArnLike", "ArnNotLike", "StringEquals"],
             "aws:CurrentTime": [f"Date{o}" for o in ORDER],
             "aws:EpochTime": [f"Numeric{o}" for o in ORDER] + [f"Date{o}" for o in ORDER]}
STRINGS = ["StringEquals", "StringNotEquals", "StringLike", "StringNotLike"]
SETS = ("aws:TagKeys", "aws:CalledVia")  # multivalued: only with ForAnyValue:/ForAllValues:


@st.composite
def conditions(draw):
    out = {}
    for key in draw(st.lists(st.sampled_from(sorted(KEYS)), max_size=2, unique=True)):
        operator = draw(st.sampled_from(OPERATORS.get(key, STRINGS) + ([] if key in SETS else ["Null"])))
        operator += draw(st.sampled_from(["", "IfExists"])) if operator != "Null" else ""
        if operator.startswith("String") and (key in SETS or draw(st.booleans())):  # a single value: a set of one
            operator = draw(st.sampled_from(["ForAnyValue:", "ForAllValues:"])) + operator
        values = ["true"] if operator == "Null" and draw(st.booleans()) else ["false"] if operator == "Null" \
            else draw(st.lists(st.sampled_from(KEYS[key]), min_size=1, max_size=2))
        out.setdefault(operator, {})[key] = values
    return out


PRINCIPALS = st.sampled_from(["*", {"AWS": "*"}, {"AWS": ACCT}, {"AWS": f"arn:aws:iam::{ACCT}:root"},
                              {"AWS": ROLE}, {"AWS": f"arn:aws:iam::{ACCT}:role/other"}])
STATEMENT = st.builds(
    lambda effect, principal, action, resource, condition: {
        "Effect": effect, "Principal": principal, "Action": action, "Resource": resource,
        **({"Condition": condition} if condition else {})},
    st.sampled_from(["Allow", "Deny"]), PRINCIPALS, st.sampled_from(["*", "s3:*", "s3:GetObject", "s3:Put*"]),
    st.sampled_from(["*", "arn:aws:s3:::vpclab-probe/*", "arn:aws:s3:::other/*"]), conditions())


@settings(max_examples=400, deadline=None)
@given(statements=st.lists(STATEMENT, min_size=1, max_size=3), gateway=st.booleans(),
       action=st.sampled_from(["s3:GetObject", "s3:PutObject"]))
def test_the_doctor_decides_as_the_lab_does(statements, gateway, action):
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    doctor = policy.evaluate(policy.parse(document), action, OBJECT, SESSION, DOCTOR_CONTEXT, gateway)
    principals = {SESSION, ROLE} | (set() if gateway else {ACCT, f"arn:aws:iam::{ACCT}:root"})
    lab = iam.evaluate(document, action, OBJECT, principals, LAB_CONTEXT)
    if doctor.effect != "unknown":
        assert (doctor.effect, lab) in (("allow", "allow"), ("explicit-deny", "explicit"),
                                        ("implicit-deny", "implicit")), (doctor, lab)
