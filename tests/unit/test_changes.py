"""Fingerprints and the run-to-run diff, pure, with literal reports (the evidence shapes the checks write)."""
import copy
import json

from hypothesis import given, settings, strategies as st

from vpce_doctor import changes, fingerprint, history

INSTANCE = {"instance_id": "i-0123456789abcdef0", "region": "eu-west-1", "vpc_id": "vpc-0abc1234",
            "vpc_cidrs": ["10.0.0.0/16"], "subnet_id": "subnet-0abc1234", "security_groups": ["sg-0abc1234"]}


def report(started, exit_code, findings):
    return {"schema": "vpce-doctor/report/1", "started_at": started, "exit_code": exit_code, "instance": INSTANCE,
            "findings": [{"id": i, "status": s, "code": c, "needs": n, "summary": "", "evidence": e}
                         for i, s, c, n, e in findings]}


def dns(addresses, ms):
    return {"name": "ssm.eu-west-1.amazonaws.com", "name_source": "default",
            "A": {"type": "A", "code": "answer", "addresses": addresses, "cnames": [], "ms": ms, "timeout_s": 1.0},
            "addresses": addresses, "vpc_cidrs": ["10.0.0.0/16"]}


def tls(issuer, ms):
    return {"name": "ssm.eu-west-1.amazonaws.com", "port": 443, "handshakes": {"10.0.1.10": {
        "result": "ok", "version": "TLSv1.3", "issuer": issuer, "subject": "ssm.eu-west-1.amazonaws.com",
        "not_after": "Jan  1 00:00:00 2027 GMT", "ms": ms}}}


HEALTHY = report("2026-11-28T12:00:00.000Z", 0, [
    ("dns:ssm", "pass", "", ["dns:resolver"], dns(["10.0.1.10"], 3.1)),
    ("tcp:ssm", "pass", "", ["dns:ssm"], {"port": 443, "probes": {"10.0.1.10": {"result": "open", "ms": 0.4}}}),
    ("tls:ssm", "pass", "", ["tcp:ssm"], tls("Amazon RSA 2048 M02", 12.0))])
# The same instance 15 minutes later: private DNS was switched off on the ssm endpoint, so the name now resolves to
# a public address (the "ssm now resolves to 52.x"); 52.94.0.0/22-style space, here 52.119.196.10.
BROKEN = report("2026-11-28T12:15:00.000Z", 1, [
    ("dns:ssm", "fail", "public-answer", ["dns:resolver"], dns(["52.119.196.10"], 2.9)),
    ("tcp:ssm", "skip", "", ["dns:ssm"], {}), ("tls:ssm", "skip", "", ["tcp:ssm"], {})])


def test_a_new_failure_names_the_evidence_that_changed_behind_it():
    change = changes.diff(changes.record(HEALTHY), changes.record(BROKEN))
    assert change["new_failures"] == ["dns:ssm"] and change["fixed"] == []
    assert change["changed"][0] == {"id": "dns:ssm", "what": "addresses", "was": ["10.0.1.10"],
                                    "now": ["52.119.196.10"]}
    assert len(change["changed"]) == 1  # A.addresses and inside/outside repeat the answer: it is named once


def test_fixed_is_the_other_way_round():
    change = changes.diff(changes.record(BROKEN), changes.record(HEALTHY))
    assert change["fixed"] == ["dns:ssm"] and change["new_failures"] == []


def test_timings_and_ports_are_not_changes():
    later = copy.deepcopy(HEALTHY)
    later["findings"][0]["evidence"] = dns(["10.0.1.10"], 900.0)
    later["findings"][2]["evidence"] = tls("Amazon RSA 2048 M02", 1500.0)
    assert changes.empty(changes.diff(changes.record(HEALTHY), changes.record(later)))


def test_a_new_issuer_is_a_change_of_tls():
    later = copy.deepcopy(HEALTHY)
    later["findings"][2]["evidence"] = tls("Corp Proxy Inspection CA", 12.0)  # TLS interception appeared
    change = changes.diff(changes.record(HEALTHY), changes.record(later))
    assert [(c["id"], c["what"], c["now"]) for c in change["changed"]] == [
        ("tls:ssm", "handshakes.10.0.1.10.issuer", "Corp Proxy Inspection CA")]


def test_lines_say_what_changed_and_since_when():
    change = changes.compare("healthy", changes.record(HEALTHY), changes.record(BROKEN), changes.record(BROKEN))
    text = "\n".join(changes.lines(change))
    assert text.startswith("since the last healthy run (2026-11-28T12:00:00.000Z, exit 0):")
    assert "first broken run 2026-11-28T12:15:00.000Z" in text and "now failing: dns:ssm" in text
    assert "dns:ssm addresses: now 52.119.196.10 (was 10.0.1.10)" in text


def test_kept_runs_of_another_instance_are_not_compared():
    other = changes.record({**HEALTHY, "instance": {**INSTANCE, "instance_id": "i-0fedcba9876543210"}})
    found, notes = history.comparisons(changes.record(BROKEN), {"last": other, "healthy": other})
    assert found == [] and "another instance" in notes[0]


def test_the_healthy_comparison_is_left_out_when_the_last_run_was_the_healthy_one():
    healthy = changes.record(HEALTHY)
    found, _ = history.comparisons(changes.record(BROKEN), {"last": healthy, "healthy": healthy})
    assert [c["against"] for c in found] == ["last"]
    assert found[0]["first_broken_at"] == "2026-11-28T12:15:00.000Z"  # this run is the first broken one


def test_a_kept_record_is_valid_and_a_tampered_one_is_not():
    rec = changes.record(HEALTHY)
    assert history.valid(json.loads(json.dumps(rec)))
    assert not history.valid({**rec, "exit_code": True}) and not history.valid({**rec, "checks": []})
    assert not history.valid({**rec, "checks": {"dns:ssm": {"status": 1}}})


def test_the_imds_fingerprint_is_where_the_instance_sits_not_how_fast_imds_answered():
    fast = {"token": {"status": 200, "error": "", "ms": 1.0, "bytes": 56}}
    slow = {"token": {"status": 200, "error": "", "ms": 900.0, "bytes": 56}}
    assert fingerprint.of("imds:token", fast, INSTANCE) == fingerprint.of("imds:token", slow, INSTANCE)
    moved = {**INSTANCE, "security_groups": ["sg-0def5678"]}
    assert fingerprint.seen("imds:token", fast, moved)["security_groups"] == ["sg-0def5678"]


def test_a_policy_document_is_kept_as_a_hash():
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                                "Action": "*", "Resource": "*"}]})
    seen = fingerprint.seen("vpc:endpoints", {"endpoints": {"ssm": {"id": "vpce-0abc", "policy": policy}}})
    assert seen["endpoints"]["ssm"]["policy"].startswith("sha256:")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)
check_ids = st.sampled_from(["dns:ssm", "tcp:ssm", "tls:ssm", "imds:token", "ssm:agent-logs", "clock:skew",
                             "vpc:endpoints", "ssm:agent"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(check_ids, st.sampled_from(["pass", "fail", "warn", "skip"]),
                          st.dictionaries(st.text(), json_values, max_size=5)), max_size=6))
def test_a_report_compared_with_itself_changed_nothing(findings):
    rep = report("2026-11-28T12:00:00.000Z", 1, [(i, s, "x", [], e) for i, s, e in findings])
    assert changes.empty(changes.diff(changes.record(rep), changes.record(copy.deepcopy(rep))))


SECRETS = ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE",
           "hunter2-proxy-pass"]  # the access key pair is AWS's documented example (IAM user guide, access keys)


@settings(max_examples=200, deadline=None)
@given(check_ids, st.sampled_from(SECRETS), st.sampled_from(["password", "SecretAccessKey", "Token", "x-amz-security"
                                                             "-token", "aws_session_token", "Authorization"]),
       st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_no_secret_survives_in_a_fingerprint(check_id, secret, key, other):
    evidence = {**other, key: secret, "nested": {key: [secret]},
                "proxy": f"http://user:{secret}@proxy.internal:3128", "value": secret if secret[:4] in ("AKIA", "ASIA")
                or len(secret) >= 40 else "-"}
    seen = json.dumps(fingerprint.seen(check_id, evidence, INSTANCE))
    assert secret not in seen


# Issue 12 round 3 (robustness pass): --since FILE is any file an operator names, and a kept record may be edited by
# hand. A finding whose "needs" was a number made record() raise TypeError (exit 70); a kept record whose "needs"
# held a list passed valid() and made the diff raise (unhashable).
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=12)
FINDING = st.fixed_dictionaries({"id": st.sampled_from(["dns:ssm", "tcp:ssm", "tls:ssm", "imds:token", "x"])},
                                optional={"status": JSON, "code": JSON, "needs": JSON, "summary": JSON,
                                          "evidence": JSON})


@given(st.fixed_dictionaries({"schema": st.just("vpce-doctor/report/1"),
                              "findings": st.one_of(JSON, st.lists(st.one_of(FINDING, JSON), max_size=4))},
                             optional={"instance": JSON, "exit_code": JSON, "started_at": JSON}))
@settings(max_examples=300)
def test_any_report_shaped_json_reduces_to_a_record_and_compares(report_like):
    rec = changes.record(report_like)
    json.dumps(rec)
    assert history.valid({**rec, "exit_code": 1})
    changes.compare("file", rec, changes.record(BROKEN))
    changes.compare("file", changes.record(HEALTHY), {**rec, "exit_code": 1})


def test_a_kept_record_whose_needs_are_not_names_is_not_valid():
    rec = changes.record(BROKEN)
    assert not history.valid({**rec, "checks": {"dns:ssm": {"status": "fail", "seen": {}, "needs": [[]]}}})
    assert changes.record({**BROKEN, "findings": [{"id": "dns:ssm", "status": "fail", "needs": 1}]})["checks"][
        "dns:ssm"]["needs"] == []


# A --since FILE's started_at, ids, codes and evidence keys of any length reached the report (text, JSON, and the
# shipped event, which CloudWatch refuses above 256 KB, blocking the spool's queue behind it).
def test_a_since_files_odd_lengths_are_cut_before_they_reach_the_report():
    huge = "x" * 100_000
    rec = changes.record({"schema": "vpce-doctor/report/1", "started_at": huge, "exit_code": 1,
                          "instance": {"instance_id": huge},
                          "findings": [{"id": "dns:ssm", "status": "fail", "code": huge, "evidence": {huge: "v"}},
                                       {"id": huge, "status": "fail"}]})
    assert list(rec["checks"]) == ["dns:ssm"] and rec["checks"]["dns:ssm"]["code"] == "x" * changes.SHORT
    change = changes.compare("file", rec, changes.record(HEALTHY))
    assert change["fixed"] == ["dns:ssm"] and len(json.dumps(change)) < 2_000
    assert len(json.dumps(rec)) < 2_000
