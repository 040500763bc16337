"""ssm:diagnostics: ssm-cli get-diagnostics rows as the agent writes them (agent/cli/diagnostics/*.go at
aws/amazon-ssm-agent@1c217c89: "Connectivity to %s endpoint", "AWS Credentials" with "STS call timed out", "EC2
IMDS"; agent/cli/cli.go:63 "Invalid command %v." with exit code 2)."""
import json

from vpce_doctor.checks import diagnostics
from vpce_doctor.model import Status
from vpce_doctor.processes import Ran

# Notes filled from the format strings of connectivity_check.go / credentials_check.go / metadata_check.go
ROWS = [{"Check": "EC2 IMDS", "Status": "Success", "Note": "IMDS is accessible and has instance id i-0123456789abcdef0 "
                                                          "in Region eu-west-1"},
        {"Check": "Hybrid instance registration", "Status": "Skipped", "Note": "Instance does not have hybrid "
                                                                              "registration"},
        {"Check": "Connectivity to ssm endpoint", "Status": "Success", "Note": "ssm.eu-west-1.amazonaws.com is "
                                                                              "reachable"},
        {"Check": "Connectivity to ssmmessages endpoint", "Status": "Failed",
         "Note": "ssmmessages.eu-west-1.amazonaws.com is not reachable: dial tcp 10.0.1.11:443: i/o timeout"},
        {"Check": "Proxy configuration", "Status": "Success", "Note": "https_proxy=http://u:s3cret@proxy:3128"},
        {"Check": "SSM Agent version", "Status": "Success", "Note": "SSM Agent version is 3.3.1142.0"}]
# A minimal healthy instance (ssm, ssmmessages, ec2messages endpoints only): ssm-cli still tests kms, logs,
# monitoring and s3 (connectivity_check.go init) and STS (credentials_check.go, 2 s timeout).
MINIMAL = [{"Check": f"Connectivity to {s} endpoint", "Status": "Success", "Note": f"{s}.eu-west-1.amazonaws.com is "
            "reachable"} for s in ("ssm", "ec2messages", "ssmmessages")] + \
          [{"Check": f"Connectivity to {s} endpoint", "Status": "Failed", "Note": f"{s}.eu-west-1.amazonaws.com is "
            "not reachable: dial tcp 52.94.1.1:443: i/o timeout"} for s in ("s3", "kms", "logs", "monitoring")] + \
          [{"Check": "AWS Credentials", "Status": "Failed", "Note": "STS call timed out"}]
PLANNED = ("ssm", "ssmmessages", "ec2messages")


def ran(out="", code=0, **kw):
    return Ran(("ssm-cli",), code, out, **kw)


def test_rows_map_to_our_checks():
    assert diagnostics.ours("Connectivity to ssmmessages endpoint") == "tcp:ssmmessages"
    assert diagnostics.ours("EC2 IMDS") == "imds:token" and diagnostics.ours("Agent service") == "ssm:agent"
    assert diagnostics.ours("AWS Credentials", "STS call timed out") == "sts:identity"
    assert diagnostics.ours("AWS Credentials", "No credentials available") == "imds:profile"
    assert diagnostics.ours("Hybrid instance registration") is None


def test_failed_row_for_a_planned_service_warns_with_its_note_and_our_check():
    result = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran(json.dumps({"DiagnosticsOutput": ROWS})),
                                            planned=PLANNED)
    assert (result.status, result.code) == (Status.WARN, "diagnostics-failed")
    assert "Connectivity to ssmmessages endpoint" in result.summary and "(see tcp:ssmmessages)" in result.cause
    assert "s3cret" not in repr(result.evidence)


def test_rows_for_unplanned_services_and_sts_without_an_endpoint_do_not_count():
    result = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran(json.dumps({"DiagnosticsOutput": MINIMAL})),
                                            planned=PLANNED)
    assert result.status is Status.PASS and "none failed for what this run uses" in result.summary
    assert "not among this run's services" in result.summary
    notes = {r["check"]: r["counts"] for r in result.evidence["rows"]}
    assert "plans no sts endpoint" in notes["AWS Credentials"]
    with_sts = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran(json.dumps({"DiagnosticsOutput": MINIMAL})),
                                              planned=PLANNED + ("sts",))
    assert with_sts.status is Status.WARN and "see sts:identity" in with_sts.cause


def test_invalid_command_means_get_diagnostics_is_not_on_this_agent():
    out = "\nInvalid command get-diagnostics.  The following commands are supported:\n\n"  # cli.go:63
    result = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran(out, code=2))
    assert (result.status, result.code) == (Status.PASS, "unavailable") and "3.1.501.0" in result.summary


def test_all_success_passes_even_after_log_noise():
    ok = [dict(r, Status="Success") for r in ROWS]
    out = "2026/11/28 12:00:00 some log {not json}\n" + json.dumps({"DiagnosticsOutput": ok}, indent=2)
    result = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran(out))
    assert result.status is Status.PASS and "6 checks, none failed" in result.summary


def test_absent_garbage_root_and_timeout_are_distinct():
    absent = diagnostics.assess_diagnostics(None, None)
    assert "ssm-cli not present" in absent.summary and "3.1.501.0" not in absent.summary
    garbage = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran("<html>" + "x" * 500))
    assert garbage.code == "garbage" and len(garbage.summary) < 260 and "<html>xxx" in garbage.summary
    root = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", ran("ssm-cli binary needs to be executed by root"))
    assert root.code == "needs-root"
    slow = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", Ran(("ssm-cli",), None, "", timed_out=True), 4.5)
    assert (slow.status, slow.code) == (Status.WARN, "timeout") and "4.5 s and was killed" in slow.summary
    broken = diagnostics.assess_diagnostics("/usr/bin/ssm-cli", Ran(("ssm-cli",), error="Exec format error"))
    assert broken.code == "unrunnable"
