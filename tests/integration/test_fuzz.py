"""Garbage at every input: the doctor finishes within its deadline, emits a schema-valid report, exits 0, 1 or 2
(64 only for usage errors), and never shows a traceback; the pure judges and parsers it feeds never raise.

The end-to-end properties run the doctor in-process against one long-lived loopback world (real IMDSv2, DNS and
TLS servers on 127.0.0.x), whose answers are swapped between examples instead of restarting servers.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Dict, List, Optional

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tests.conftest import validate_report
from tests.integration.conftest import ENIS, MAC, REGION, World, metadata
from tests.servers import DnsServer, ImdsServer, TlsServer, make_certs, server_context
from tests.unit.test_policy import DOCUMENT as POLICY_DOCUMENT, PATTERN as POLICY_PATTERN
from vpce_doctor import denials, facts, policy, settings as settings_mod
from vpce_doctor.aws import Call
from vpce_doctor.checks import agent_lines, agent_logs, api, diagnostics, session
from vpce_doctor.model import Remedy, Result, Status
from vpce_doctor.settings import UsageError

# Bounded: the whole file must stay well under the suite's budget.
E2E = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PURE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TIMEOUT = 3.0          # --timeout of the end-to-end runs
SLACK = 0.5            # the README's promise: the deadline is never exceeded by more than 0.5 s
SCHEDULING = 0.3       # what a loaded CI machine may add around the in-process call
CIDR = ipaddress.ip_network("127.0.0.0/24")  # the VPC CIDR the healthy world's IMDS gives
SERVICES = ("ssm", "ssmmessages", "ec2messages", "s3")


# --- one world for the whole module ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    """The integration `world`, built once: the same servers, certificates and helpers, module-scoped."""
    ca, leaf = make_certs([f"{s}.{REGION}.amazonaws.com" for s in ENIS] + [f"*.s3.{REGION}.amazonaws.com"])
    ca_file = tmp_path_factory.mktemp("fuzz-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    servers: Dict[str, TlsServer] = {}
    port = 0
    for service, address in ENIS.items():
        servers[service] = TlsServer(address, port, ssl_context=server_context(leaf)).start()
        port = servers[service].port
    with DnsServer(answers=healthy_answers()) as dns_server, ImdsServer(metadata=metadata()) as imds:
        yield World(dns_server, imds, port, str(ca_file), servers)
    for server in servers.values():
        server.stop()


def healthy_answers() -> Dict[str, object]:
    return {f"{s}.{REGION}.amazonaws.com": ip for s, ip in ENIS.items()}


def run_and_check(world: World, *args: str, only=("imds", "dns", "local", "tcp", "tls")):
    """One in-process run, with what must hold whatever the input: the deadline, a valid report, no traceback."""
    started = time.monotonic()
    run = world.doctor("--timeout", str(TIMEOUT), *args, only=only)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + SLACK + SCHEDULING, f"took {elapsed:.2f} s"
    for stream in (run.out, run.err):
        assert "Traceback" not in stream and 'File "' not in stream
    if run.code == 64:
        return run, None
    assert run.code in (0, 1, 2), (run.code, run.err)
    assert run.err == ""
    report = validate_report(json.loads(run.out))
    assert report["exit_code"] == run.code
    assert report["duration_s"] <= TIMEOUT + SLACK
    crashed = [(f["id"], f["summary"]) for f in report["findings"] if f["code"] == "crash"]
    assert not crashed, crashed  # a check that raised is a bug, even though the report survives it
    return run, report


# --- (a) IMDS answers ------------------------------------------------------------------------------------------

NET = f"meta-data/network/interfaces/macs/{MAC}/"
PATHS = {  # metadata key -> the facts.VALID pattern (or None) its value is judged by
    "meta-data/instance-id": facts.VALID["instance-id"],
    "meta-data/placement/region": facts.VALID["placement/region"],
    "meta-data/placement/availability-zone": facts.VALID["placement/availability-zone"],
    "meta-data/services/domain": facts.VALID["services/domain"],
    "meta-data/services/partition": facts.VALID["services/partition"],
    "meta-data/mac": facts.VALID["mac"],
    "meta-data/local-ipv4": None,
    "meta-data/iam/info": None,
    NET + "vpc-id": facts.VALID["vpc-id"],
    NET + "vpc-ipv4-cidr-blocks": None,
    NET + "subnet-id": facts.VALID["subnet-id"],
    NET + "subnet-ipv4-cidr-block": None,
    NET + "security-group-ids": None,
}
BYTESISH = st.binary(max_size=120).map(lambda b: b.decode("latin-1"))  # every byte value, as the server sends text
GARBAGE = (st.text(max_size=120) | BYTESISH
           | st.sampled_from(["", " ", "\n", "\r\n", "null", "{}", "[]", "\x00", "i-", "sg-", "vpc-", "\ufeff",
                              "127.0.0.0/24\n10.0.0.0/33", "::/0", "0.0.0.0/0", "1.2.3.4/8", "fe80::1%eth0",
                              "eu-west-1\n", "EU-WEST-1", "sg-0abc1234 sg-zz sg-0abc1234\n", "{\"Code\":"])
           | st.integers(min_value=60_000, max_value=70_000).map(lambda n: "x" * n))  # past facts.MAX_BODY
CIDRS = st.lists(st.ip_addresses().map(str) | st.from_regex(r"\d{1,3}(\.\d{1,3}){3}/\d{1,2}", fullmatch=True)
                 | GARBAGE, max_size=4).map("\n".join)
IAM_INFO = st.builds(
    lambda code, arn, extra: json.dumps({"Code": code, "InstanceProfileArn": arn, **extra}),
    st.sampled_from(["Success", "Failure"]) | st.text(max_size=10),
    st.from_regex(r"arn:aws[a-z-]{0,4}:iam::\d{12}:instance-profile/[A-Za-z0-9+=,.@_/\"-]{1,40}", fullmatch=True)
    | st.text(max_size=60),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=2))


def value_for(key: str):
    pattern = PATHS[key]
    shaped = st.from_regex(pattern, fullmatch=True) if pattern is not None else st.nothing()
    if key.endswith("iam/info"):
        shaped = IAM_INFO
    elif key.endswith(("cidr-blocks", "cidr-block")):
        shaped = CIDRS
    elif key.endswith("security-group-ids"):
        shaped = st.lists(st.from_regex(r"sg-[0-9a-f]{8,17}", fullmatch=True) | GARBAGE, max_size=3).map(" ".join)
    elif key.endswith("local-ipv4"):
        shaped = st.ip_addresses().map(str)
    return st.none() | shaped | GARBAGE  # None: the path is absent (404)


CHANGES = st.lists(st.sampled_from(sorted(PATHS)), unique=True, min_size=1, max_size=len(PATHS)).flatmap(
    lambda keys: st.fixed_dictionaries({k: value_for(k) for k in keys}))


def served_body(mode: str, served: Dict[str, str], key: str) -> Optional[str]:
    """The trimmed body the doctor reads for a path (IMDS bodies are cut at facts.MAX_BODY bytes), or None."""
    if mode not in ("v2", "v1") or key not in served:
        return None
    return served[key].encode()[:facts.MAX_BODY].decode("utf-8", "replace").strip()


def expected_value(mode: str, served: Dict[str, str], key: str) -> Optional[str]:
    """What the doctor must take from IMDS for a checked path: the trimmed value if it has IMDS's shape."""
    body = served_body(mode, served, key)
    pattern = facts.VALID[key[len(NET):] if key.startswith(NET) else key.split("/", 1)[1]]
    return body if body is not None and pattern.match(body) else None


@E2E
@given(changes=CHANGES, mode=st.sampled_from(["v2", "v2", "v2", "v1", "disabled", "garbage"]),
       region_flag=st.booleans())
def test_any_imds_answer_gives_a_valid_report_within_the_deadline(fuzz_world, changes, mode, region_flag):
    world = fuzz_world
    served = metadata()
    for key, value in changes.items():
        if value is None:
            served.pop(key, None)
        else:
            served[key] = value
    world.dns.reset(healthy_answers())
    world.dns.down = False
    world.imds.metadata, world.imds.mode = served, mode  # a new dict: lookup() copies whatever is current

    run, report = run_and_check(world, *(["--region", REGION] if region_flag else []))

    region = expected_value(mode, served, "meta-data/placement/region")
    if run.code == 64:  # the only usage error garbage may cause: no region from IMDS and none given
        assert not region_flag and region is None, run.err
        assert run.out == "" and run.err.startswith("vpce-doctor: the region is unknown") and run.err.count("\n") == 1
        return
    assert region_flag or region is not None
    instance = report["instance"]
    assert instance["region"] == (REGION if region_flag else region)
    assert instance["instance_id"] == expected_value(mode, served, "meta-data/instance-id")
    mac_followed = (served_body(mode, served, "meta-data/mac") or "").lower() == MAC  # the doctor lowercases it
    assert instance["vpc_id"] == (expected_value(mode, served, NET + "vpc-id") if mac_followed else None)
    for cidr in instance["vpc_cidrs"] + ([instance["subnet_cidr"]] if instance["subnet_cidr"] else []):
        assert str(ipaddress.ip_network(cidr)) == cidr
    assert all(re.fullmatch(r"sg-[0-9a-f]{8,17}", g) for g in instance["security_groups"])
    token = next(f for f in report["findings"] if f["id"] == "imds:token")
    if mode in ("disabled", "garbage"):
        assert (token["status"], token["code"]) == ("fail", "forbidden" if mode == "disabled" else "garbage")
    # Bodies may be credentials or junk: evidence keeps their size only.
    assert all(set(r) <= {"status", "error", "ms", "bytes"} for r in token["evidence"]["replies"].values())


# --- (b) DNS answers -------------------------------------------------------------------------------------------

ADDRESS = (st.ip_addresses(v=4, network="127.0.0.0/24") | st.ip_addresses(v=4) | st.ip_addresses(v=6)
           | st.sampled_from(["10.0.1.10", "172.31.255.254", "192.168.0.1", "127.0.0.1", "127.0.1.5", "0.0.0.0",
                              "255.255.255.255", "169.254.169.254", "203.0.113.10", "52.216.8.10", "::1", "::",
                              "fd00:ec2::253", "fe80::1", "2001:db8::1", "::ffff:127.0.0.10", "64:ff9b::7f00:a"])
           .map(ipaddress.ip_address)).map(str)
BEHAVIOUR = (st.sampled_from(["nxdomain", "nodata", "servfail", "refused", "timeout"])
             | st.lists(ADDRESS, max_size=6))
RCODES = ("nxdomain", "nodata", "servfail", "refused", "timeout")


DNS64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix


def _order(ip):
    return ip.version, int(ip)


def expected_dns(behaviour, gateway: bool):
    """(status, code, addresses) the doctor must report for one name, from what the resolver was told to say: every
    A and AAAA address, each against the VPC's CIDRs of its family (this world's VPC has no IPv6 CIDR)."""
    if isinstance(behaviour, str):
        return "fail", behaviour, []
    ips = [ipaddress.ip_address(a) for a in behaviour]
    addresses = [str(a) for a in ips if a.version == 4] + [str(a) for a in ips if a.version == 6]
    if not addresses:
        return "fail", "nodata", []
    mapped = [str(a) for a in ips if a.version == 6 and a.ipv4_mapped is not None]
    if mapped:  # an IPv4-mapped address is never an endpoint's answer
        return "fail", "bad-answer", [a for a in addresses if a not in mapped]
    dns64 = [a for a in ips if a.version == 6 and a in DNS64]
    if dns64:
        behind = gateway or any(ipaddress.IPv4Address(int(a) & 0xFFFFFFFF) in CIDR for a in dns64)
        return ("warn", "dns64", addresses) if behind else ("fail", "dns64-public", addresses)
    inside = [a for a in addresses if ipaddress.ip_address(a) in CIDR]
    if gateway or len(inside) == len(addresses):
        return "pass", "", addresses
    if not inside and all(_in_vpc_ranges(a) for a in addresses):
        return "pass", "outside-vpc", addresses  # another VPC's (shared) endpoint: TCP and TLS decide
    return "fail", "mixed-answer" if inside else "public-answer", addresses


# What a VPC can be numbered from ("VPC CIDR blocks" in the VPC user guide: RFC 1918, RFC 6598) and IPv6 ULAs.
VPC_RANGES = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                                "fc00::/7")]


def _in_vpc_ranges(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in VPC_RANGES)


@E2E
@given(answers=st.fixed_dictionaries({s: BEHAVIOUR for s in SERVICES}), default=BEHAVIOUR,
       down=st.sampled_from([False] * 9 + [True]))
def test_any_dns_answer_is_judged_as_what_it_is(fuzz_world, answers, default, down):
    world = fuzz_world
    world.imds.metadata, world.imds.mode = metadata(), "v2"
    world.dns.reset({world.name(s): b for s, b in answers.items()}, default=default)
    world.dns.down = down
    try:
        run, report = run_and_check(world, "--connect-timeout", "0.15", only=("dns",))
    finally:
        world.dns.down = False
    assert run.code != 64
    found = {f["id"]: f for f in report["findings"]}
    assert list(found) == ["dns:resolver"] + [f"dns:{s}" for s in SERVICES]
    # The resolver probe asks for the region's SOA, which only the default answers.
    dead = down or default in ("timeout", "refused")
    resolver = found["dns:resolver"]
    assert (resolver["status"], resolver["code"]) == (
        ("fail", "refused" if default == "refused" and not down else "timeout") if dead else ("pass", ""))
    for service in SERVICES:
        finding = found[f"dns:{service}"]
        if dead:
            assert (finding["status"], finding["code"]) == ("skip", "blocked")
            continue
        status, code, addresses = expected_dns(answers[service], gateway=service == "s3")
        assert (finding["status"], finding["code"]) == (status, code), (answers[service], finding["summary"])
        got = finding["evidence"]["addresses"]
        assert sorted(set(map(ipaddress.ip_address, got)), key=_order) == \
            sorted(set(map(ipaddress.ip_address, addresses)), key=_order)
    statuses = {f["status"] for f in found.values()}
    assert run.code == (1 if "fail" in statuses else 2 if statuses & {"skip", "error"} else 0)


# --- (c) AWS error bodies: api.judge and denials.parse ---------------------------------------------------------

KNOWN_CODES = ["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden", "403",
               "RequestTimeTooSkewed", "RequestExpired", "InvalidClientTokenId", "ExpiredToken",
               "SignatureDoesNotMatch", "AuthFailure", "NoSuchBucket", "ThrottlingException", "InternalError",
               "Client.AccessDenied"]
POLICY_WORDS = ["a VPC endpoint policy", "an identity-based policy", "a resource-based policy",
                "a service control policy", "a resource control policy", "a permissions boundary", "a session policy",
                "transitively through a service control policy", "the bucket policy", ""]
AWS_MESSAGE = st.builds(
    lambda principal, action, resource, how, words, tail: (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        + (f"with an explicit deny in {words}" if how else f"because no {words} allows the {action} action") + tail),
    st.text(max_size=40), st.text(max_size=30) | st.from_regex(r"[a-z0-9-]{1,12}:[A-Za-z*]{1,20}", fullmatch=True),
    st.text(max_size=40), st.booleans(), st.sampled_from(POLICY_WORDS) | st.text(max_size=30), st.text(max_size=40))
MESSAGE = st.none() | st.text(max_size=300) | st.binary(max_size=200) | AWS_MESSAGE | st.integers()
# Failed calls, with values of the wrong type too: the judge must explain anything without raising.
CALL = st.builds(
    Call, ok=st.just(False), ms=st.floats(0, 1e6),
    kind=st.sampled_from(["api", "timeout", "unreachable", "tls", "credentials", "client", ""])
    | st.text(max_size=10) | st.none(),
    code=st.sampled_from(KNOWN_CODES) | st.text(max_size=30) | st.none() | st.integers(),
    message=MESSAGE, status=st.none() | st.integers() | st.text(max_size=5),
    headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=2))
VERDICT_CODES = {"timeout", "unreachable", "tls", "no-credentials", "clock-skew", "invalid-credentials", "api-error",
                 "access-denied", "endpoint-policy", "not-endpoint-policy", "identity-policy", "resource-policy", "scp",
                 "rcp", "permissions-boundary", "session-policy"}


def assert_verdict(verdict) -> None:
    assert verdict.code in VERDICT_CODES
    assert isinstance(verdict.cause, str) and verdict.cause
    assert verdict.certainty in ("stated", "inferred", "unknown")
    assert verdict.remedy is None or isinstance(verdict.remedy, Remedy)
    json.dumps(verdict.evidence)


@PURE
@given(call=CALL, action=st.text(max_size=30) | st.sampled_from(["s3:PutObject", "ssm:GetDocument"]),
       resource=st.text(max_size=40), principal=st.none() | st.text(max_size=40),
       endpoint_policy=st.none() | st.text(max_size=100) | POLICY_DOCUMENT.map(json.dumps),
       endpoint_id=st.none() | st.text(max_size=20))
def test_api_judge_explains_any_error_body_without_raising(call, action, resource, principal, endpoint_policy,
                                                           endpoint_id):
    assert_verdict(api.judge(call, action, resource, principal, endpoint_policy, endpoint_id))
    denial = denials.parse(call.code, call.message)
    assert len(denial.message) <= denials.MAX_KEPT
    assert (denial.certainty == "unknown") is (denial.policy_type == "unknown")


@PURE
@given(message=AWS_MESSAGE, code=st.sampled_from(KNOWN_CODES[:5]))
def test_aws_shaped_denials_with_garbage_inside_are_attributed_or_left_unknown(message, code):
    denial = denials.parse(code, message)
    verdict = api.judge(Call(ok=False, kind="api", code=code, message=message), "s3:PutObject",
                        "arn:aws:s3:::b/k")
    assert_verdict(verdict)
    if denial.certainty == "stated" and denial.policy_type in api.DENIED:
        assert (verdict.code, verdict.certainty) == (api.DENIED[denial.policy_type][0], "stated")
    elif "Signature expired" not in message:
        # no type stated and no endpoint policy to evaluate: the doctor says it cannot tell
        assert (verdict.code, verdict.certainty) == ("access-denied", "unknown")


# --- (e) endpoint policies through api.judge -------------------------------------------------------------------

@PURE
@given(document=POLICY_DOCUMENT, action=POLICY_PATTERN, resource=POLICY_PATTERN,
       principal=st.none() | st.text(max_size=30), text_form=st.booleans(),
       message=st.sampled_from(["Access Denied", "", "You are not authorized to perform this operation."]))
def test_judge_attributes_bare_denials_by_evaluating_any_endpoint_policy(document, action, resource, principal,
                                                                       text_form, message):
    """A denial AWS does not attribute is attributed by evaluating the endpoint policy: the verdict agrees with
    policy.evaluate, and a policy that cannot be parsed leaves it unknown instead of raising."""
    raw = json.dumps(document) if text_form else document  # judge takes the text or the parsed JSON
    verdict = api.judge(Call(ok=False, kind="api", code="AccessDenied", message=message), action, resource,
                        principal, raw, "vpce-0abc")
    assert_verdict(verdict)
    try:
        decision = policy.evaluate(policy.parse(raw), action, resource, principal)
    except policy.PolicyError:
        assert (verdict.code, verdict.certainty) == ("access-denied", "unknown")
        assert verdict.cause.count("\n") == 0
        return
    if decision.allowed:
        assert (verdict.code, verdict.certainty) == ("not-endpoint-policy", "inferred")
    elif decision.effect == "unknown":
        assert (verdict.code, verdict.certainty) == ("access-denied", "unknown")
    else:
        assert (verdict.code, verdict.certainty) == ("endpoint-policy", "inferred")
        assert "vpce-0abc" in " ".join(verdict.remedy.commands)


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(min_value=500, max_value=200_000), opener=st.sampled_from(["[", '{"a":', '{"Statement":[']))
def test_deeply_nested_policy_text_raises_only_policy_error(depth, opener):
    with pytest.raises(policy.PolicyError) as raised:
        policy.parse(opener * depth)
    assert "\n" not in str(raised.value)
    verdict = api.judge(Call(ok=False, kind="api", code="AccessDenied", message="Access Denied"),
                        "s3:GetObject", "*", None, opener * depth)
    assert (verdict.code, verdict.certainty) == ("access-denied", "unknown")


# --- (d) Session Manager preference documents ------------------------------------------------------------------

JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                    max_size=3), max_leaves=10)
INPUT_KEYS = ["s3BucketName", "s3KeyPrefix", "s3EncryptionEnabled", "cloudWatchLogGroupName",
              "cloudWatchEncryptionEnabled", "cloudWatchStreamingEnabled", "kmsKeyId", "runAsEnabled",
              "runAsDefaultUser", "idleSessionTimeout", "shellProfile"]
INPUTS = st.dictionaries(st.sampled_from(INPUT_KEYS) | st.text(max_size=10),
                         JSONISH | st.sampled_from(["true", "True", " TRUE ", "false", "yes", ""]), max_size=8)
CONTENT = (st.text(max_size=200) | BYTESISH
           | st.builds(lambda inputs, extra: json.dumps({"schemaVersion": "1.0", "inputs": inputs, **extra}),
                       INPUTS | JSONISH, st.dictionaries(st.text(max_size=8), JSONISH, max_size=2))
           | JSONISH.map(json.dumps) | JSONISH
           | st.builds(lambda depth, opener: opener * depth, st.integers(min_value=1, max_value=100_000),
                       st.sampled_from(["[", '{"inputs":', '{"inputs":{"s3BucketName":['])))


@PURE
@given(document=st.text(max_size=40), content=CONTENT)
def test_any_session_document_content_is_judged_never_raised(document, content):
    result = session.assess_preferences(document, Call(ok=True, response={"Content": content}, ms=1))
    assert isinstance(result, Result)
    assert result.status in (Status.PASS, Status.WARN)
    if result.status is Status.PASS:
        assert result.summary.startswith(f"{document}: logs to ")
        inputs = result.evidence["inputs"]
        assert isinstance(inputs, dict)
        for flag in session.BOOLEANS:
            assert inputs.get(flag, False) in (True, False)
    else:
        assert result.code == "malformed"
        assert result.summary.startswith(f"{document} is not a valid session document: ")
    json.dumps(result.evidence, default=str)


@PURE
@given(document=st.text(max_size=40), call=CALL, missing=st.booleans())
def test_any_failed_session_document_read_is_a_warning(document, call, missing):
    if missing:
        call = replace(call, code="InvalidDocument")
    result = session.assess_preferences(document, call)
    assert isinstance(result, Result)
    if call.code == "InvalidDocument":
        assert (result.status, result.code) == (Status.PASS, "absent")
    else:
        assert (result.status, result.code) == (Status.WARN, "unreadable")


# --- (f) SSM agent log lines -----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, 0)
STAMP = (st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.strftime("%Y-%m-%d %H:%M:%S")) | st.from_regex(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", fullmatch=True)
    | st.just(""))
CATALOGUE_LINES = [
    "proxyconnect tcp: dial tcp 10.0.9.9:3128: i/o timeout", "x509: certificate signed by unknown authority",
    "lookup ssm.{x}.amazonaws.com on 10.0.0.2:53: i/o timeout", "lookup {x}: no such host",
    "dial tcp {x}:443: i/o timeout", "EC2RoleRequestError: no EC2 instance role found", "Entering SSM Agent hibernate",
    "Failed to get controlchannel token {x}", "Error when querying S3 bucket using address http://{x}",
    "Successfully opened websocket connection to {x}", "Proxy environment variables: https_proxy={x}",
]
LOG_LINE = (st.text(max_size=120) | BYTESISH
            | st.builds(lambda stamp, level, line, x: f"{stamp} {level} {line.replace('{x}', x)}", STAMP,
                        st.sampled_from(["INFO", "ERROR", "WARN", ""]), st.sampled_from(CATALOGUE_LINES),
                        st.text(max_size=30) | st.ip_addresses(v=4).map(str))
            | st.builds(lambda stamp, user: f"{stamp} ERROR proxyconnect tcp: dial tcp: lookup "
                                            f"http://{user}:hunter2@proxy.corp: no such host", STAMP,
                        st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)))
LOG_BYTES = st.lists(LOG_LINE, max_size=25).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))


@PURE
@given(chunks=st.lists(LOG_BYTES | st.binary(max_size=200), min_size=1, max_size=3), cut=st.booleans(),
       now=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)) | st.just(NOW),
       values=st.dictionaries(st.sampled_from(["instance", "region", "vpc", "subnet"]), st.text(max_size=20)))
def test_any_agent_log_lines_give_a_bounded_redacted_verdict(chunks, cut, now, values):
    data = b"\n".join(chunks)
    lines = agent_logs.split_tail(data, cut)
    assert all(line.strip() and "\n" not in line and "\r" not in line for line in lines)
    tails = [agent_logs.LogTail("/var/log/amazon/ssm/amazon-ssm-agent.log", lines, len(data)),
             agent_logs.LogTail("/var/log/amazon/ssm/errors.log", lines[-5:], 10)]
    result = agent_logs.assess_logs(tails, now, values)
    assert result.status in (Status.PASS, Status.WARN)
    codes = {code for _, code, _, _ in agent_lines.CAUSES}
    matches = result.evidence.get("matches", [])
    assert all(m["code"] in codes and 0 <= m["recent"] <= m["count"] for m in matches)
    assert all(len(m["example"]) <= agent_logs.EXAMPLE_CHARS for m in matches)
    causes = [m for m in matches if m["recent"] and next(r for _, c, _, r in agent_lines.CAUSES if c == m["code"])]
    assert (result.status is Status.WARN) is bool(causes)
    if causes:
        assert result.code in {m["code"] for m in causes}
    shown = json.dumps([result.summary, result.cause, result.evidence], default=str)
    assert "hunter2" not in shown
    diag = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", diagnostics.Ran(("ssm-cli",), 0,
                                                                             data.decode("utf-8", "replace")))
    assert diag.status in (Status.PASS, Status.WARN)


# --- (g) config files ------------------------------------------------------------------------------------------

KEYS = sorted(k.replace("_", "-") for k in settings_mod.FILE_KEYS)
INI_VALUE = (st.text(max_size=30) | st.sampled_from(["5", "0", "-1", "1e400", "nan", "inf", "3601", "0x10", "true",
                                                     "maybe", "ssm, s3", "ssm,,nope", "eu-west-1", "EU-WEST-1",
                                                     "json", "127.0.0.1:53", "[::1]:5353", "bad bucket", ""]))
INI = st.builds(
    lambda head, pairs, tail: head + "".join(f"{k} {sep} {v}\n" for k, sep, v in pairs) + tail,
    st.sampled_from(["[vpce-doctor]\n", "[vpce-doctor]\n[vpce-doctor]\n", "[DEFAULT]\n", "[other]\n", "",
                     "[vpce-doctor\n", "\ufeff[vpce-doctor]\n"]),
    st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=12), st.sampled_from(["=", ":"]), INI_VALUE),
             max_size=6),
    st.sampled_from(["", "  continued\n", "[vpce-doctor]\ntimeout = 1\n", "%(x)s\n", "timeout\n"]))
CONFIG = INI.map(lambda s: s.encode("utf-8", "surrogatepass")) | st.binary(max_size=300) | st.text(max_size=300).map(
    lambda s: s.encode("utf-8", "surrogatepass"))


@pytest.fixture(scope="module")
def config_dir():
    with tempfile.TemporaryDirectory(prefix="vpce-doctor-fuzz-") as path:
        yield path


@PURE
@given(content=CONFIG)
def test_any_config_file_loads_or_is_one_line_usage_error(config_dir, content):
    path = os.path.join(config_dir, "vpce-doctor.conf")
    with open(path, "wb") as handle:
        handle.write(content)
    try:
        loaded = settings_mod.load({"config": path}, {})
    except UsageError as error:
        message = str(error)
        assert message and len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message
        assert "Traceback" not in message
        return
    # What it accepted, it validated.
    assert 0 < loaded.connect_timeout <= loaded.timeout <= 3600
    assert loaded.services and all(s in settings_mod.KNOWN_SERVICES for s in loaded.services)
    assert loaded.output in ("text", "json")
    assert loaded.region is None or settings_mod.REGION_RE.match(loaded.region)


def test_a_config_file_that_is_a_directory_or_unreadable_is_a_usage_error(tmp_path):
    for path in (tmp_path, tmp_path / "missing.conf"):
        with pytest.raises(UsageError) as raised:
            settings_mod.load({"config": str(path)}, {})
        assert "\n" not in str(raised.value) and str(path) in str(raised.value)
