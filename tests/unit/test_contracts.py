"""Typed contracts between checks (issue 13 item 2): what one check offers another is read through a function of the
producing module, fed here with what that module's own judge returns, so a change to the producer's evidence that
its reader would no longer understand fails here rather than silently downstream."""
import ast
from pathlib import Path

from vpce_doctor.aws import Call
from vpce_doctor.checks import dns, identity, names, tcp, vpc
from vpce_doctor.model import Check, Result, Severity, Status
from vpce_doctor.runner import blocker, run_checks

CHECKS = Path(__file__).resolve().parents[2] / "vpce_doctor" / "checks"


def test_tcp_offers_tls_the_addresses_that_opened():
    probes = {"10.0.1.10": {"result": "open", "ms": 1.0}, "10.0.2.10": {"result": "timeout", "ms": 1000.0}}
    partial = tcp.assess("ssm", 443, False, probes, {})
    assert partial.status is Status.WARN and tcp.open_addresses(partial) == ["10.0.1.10"]
    closed = tcp.assess("ssm", 443, False, {"10.0.1.10": {"result": "refused", "ms": 1.0}}, {})
    assert closed.status is Status.FAIL and tcp.open_addresses(closed) == []


def test_dns_offers_tcp_the_addresses_it_resolved():
    found = dns.assess("ssm.eu-west-1.amazonaws.com", False,
                       {"type": "A", "code": "answer", "addresses": ["10.0.1.10"], "cnames": []}, {}, ["10.0.0.0/16"])
    assert dns.addresses(found) == ["10.0.1.10"]
    assert dns.addresses(dns.assess("x.eu-west-1.amazonaws.com", False, {"type": "A", "code": "nxdomain"}, {},
                                    ["10.0.0.0/16"])) == []


def test_sts_identity_offers_its_caller_arn():
    role = "arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0"
    passed = identity.assess_identity(Call(True, 5.0, {"Arn": role, "Account": "123456789012"}), "https://sts", {})
    failed = identity.assess_identity(Call(False, 5.0, kind="api", code="AccessDenied", status=403), "https://sts", {})
    assert (identity.arn(passed), identity.arn(failed), identity.arn(None)) == (role, None, None)


def test_vpc_endpoints_offers_each_service_endpoint_and_what_its_problems_explain():
    seen = {"endpoints": Call(ok=True, response={"VpcEndpoints": [
        {"VpcEndpointId": "vpce-0s3", "ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Gateway",
         "State": "available", "PolicyDocument": "{}"}]}),
        "routes": Call(ok=True, response={"RouteTables": [{"RouteTableId": "rtb-0a", "Associations": [
            {"SubnetId": "subnet-1"}], "Routes": []}]})}
    result = vpc.assess(seen, ["s3"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], [], "10.0.1.5", subnet="subnet-1",
                        addresses={"s3": ["52.218.1.1"]})
    assert vpc.endpoint(result, "s3") == {"id": "vpce-0s3", "policy": "{}", "type": "Gateway"}
    assert vpc.endpoint(result, "kms") == vpc.endpoint(None, "s3") == {"id": None, "policy": None, "type": None}
    assert vpc.explains(result) == ["tcp:s3"] and vpc.explains(None) == []


def test_names_dialled_offers_whether_the_sdks_imds_mode_is_broken():
    broken = Result(Status.FAIL, "x", code="imds-mode-ipv6")
    assert names.imds_mode_broken(broken) and not names.imds_mode_broken(Result(Status.PASS, "x"))
    assert not names.imds_mode_broken(None)


def test_the_runner_names_the_prerequisite_that_blocked_a_check():
    def failing(ctx, prior):
        return Result(Status.FAIL, "broken")
    checks = (Check("a:one", "a", Severity.LOW, failing),
              Check("b:two", "b", Severity.LOW, failing, needs=("a:one",)))
    findings = run_checks(checks, None, deadline=float("inf")).findings
    assert [blocker(f.result) for f in findings] == [None, "a:one"]


def test_no_check_reads_the_evidence_of_a_result_it_was_handed():
    """prior[...] and prior.get(...) are other checks' results: their evidence is read only by their producers."""
    offenders = []
    for path in sorted(CHECKS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "evidence" and _from_prior(node.value):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def _from_prior(node: ast.AST) -> bool:
    if isinstance(node, ast.Subscript):
        node = node.value
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        node = node.func.value
    return isinstance(node, ast.Name) and node.id == "prior"


def test_caused_by_is_a_field_of_the_finding_that_the_report_shows_and_compares():
    """Issue 13 item 2: the reason a finding names is Result.caused_by, shown as the finding's caused_by in JSON; a
    report written when it was evidence.caused_by fingerprints the same, so `changes` sees no difference."""
    from vpce_doctor.changes import record
    from vpce_doctor.checks import run_command
    from vpce_doctor.model import Finding, Report
    from vpce_doctor.render import document
    fallback = run_command.assess("fail", "pass", (3, 3, 40, 0), {})
    tls = Result(Status.FAIL, "handshake timed out", code="timeout")
    report = Report("0", "2026-11-29T00:00:00Z", 1.0, {}, (
        Finding(Check("tls:ssmmessages", "t", Severity.CRITICAL, lambda ctx, prior: tls), tls),
        Finding(Check("ssm:run_command", "r", Severity.HIGH, lambda ctx, prior: fallback), fallback)))
    assert fallback.caused_by == ("tls:ssmmessages",) and report.root_causes[0].check.id == "tls:ssmmessages"
    shown = document.to_dict(report)["findings"][1]
    assert shown["caused_by"] == ["tls:ssmmessages"] and "caused_by" not in shown["evidence"]
    assert "caused_by" not in document.to_dict(report)["findings"][0]
    old = {**shown, "evidence": {**shown["evidence"], "caused_by": shown.pop("caused_by")}}
    new = document.to_dict(report)["findings"][1]
    assert record({"findings": [old]})["checks"] == record({"findings": [new]})["checks"]
    assert record({"findings": [new]})["checks"]["ssm:run_command"]["seen"]["caused_by"] == ["tls:ssmmessages"]
