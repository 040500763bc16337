"""The SSM agent on the box (domain.md §4 H, A4), its log lines (§6) and ssm-cli's rows, judged from literals."""
import json
from datetime import datetime, timedelta

import pytest

from vpce_doctor.checks import agent, agent_logs
from vpce_doctor.checks.agent import AgentState
from vpce_doctor.checks.agent_logs import LogTail
from vpce_doctor.model import Status
from vpce_doctor.processes import ProcessInfo, Ran, named

NAMES = ["ssm.eu-west-1.amazonaws.com", "ssmmessages.eu-west-1.amazonaws.com"]
VALUES = {"instance": "i-0123456789abcdef0", "region": "eu-west-1", "vpc": "vpc-0abc1234", "subnet": "subnet-0abc"}
BIN = "/usr/bin/amazon-ssm-agent"
GiB = 1024 ** 3
NOW = datetime(2026, 11, 28, 12, 0, 0)


def proc(user="root", pid=812, name="amazon-ssm-agen"):
    return ProcessInfo(pid, name, BIN, user, (BIN,), 1700000000.0)


def healthy(**overrides):
    base = dict(binary=BIN, processes=(proc(),), unit_state="active", version="3.3.2746.0",
                identity={"IdentityType": "EC2", "CredentialSource": "EC2"}, disk_free={"/": 8 * GiB,
                                                                                   "/var/lib/amazon/ssm": 8 * GiB})
    base.update(overrides)
    return AgentState(**base)


def judge(state):
    return agent.assess_agent(state, NAMES, VALUES)


def test_healthy_agent_passes_with_version_user_and_credential_source():
    result = judge(healthy())
    assert result.status is Status.PASS
    assert "3.3.2746.0" in result.summary and "pid 812 as root" in result.summary
    assert "instance profile" in result.summary
    json.dumps(result.evidence)


def test_not_installed_fails_with_install_commands_for_the_region():
    result = judge(AgentState())
    assert (result.status, result.code) == (Status.FAIL, "not-installed")
    assert any("amazon-ssm-eu-west-1" in c for c in result.remedy.commands)


def test_installed_but_stopped_fails_with_the_systemd_command():
    result = judge(healthy(processes=(), unit_state="inactive"))
    assert (result.status, result.code) == (Status.FAIL, "not-running")
    assert "amazon-ssm-agent.service is inactive" in result.summary
    assert "sudo systemctl enable --now amazon-ssm-agent" in result.remedy.commands


def test_snap_agent_stopped_gets_the_snap_commands():
    snap = "/snap/amazon-ssm-agent/current/amazon-ssm-agent"
    result = judge(healthy(binary=snap, processes=(), unit_state="failed",
                           unit="snap.amazon-ssm-agent.amazon-ssm-agent.service"))
    assert result.code == "not-running" and "sudo snap start --enable amazon-ssm-agent" in result.remedy.commands


def test_without_systemd_the_process_table_decides_and_systemd_is_evidence():
    result = judge(healthy(unit_state="", systemd="systemd not available (no systemctl)"))
    assert result.status is Status.PASS
    assert "systemd not available (no systemctl)" in result.evidence["notes"]
    stopped = judge(healthy(processes=(), unit_state="", systemd="systemd not available (no systemctl)"))
    assert stopped.code == "not-running" and "systemd not available" in stopped.summary


def test_unit_active_without_a_visible_process_counts_as_running():
    assert judge(healthy(processes=())).status is Status.PASS


def test_agent_not_running_as_root_fails_naming_the_user_and_unit():
    result = judge(healthy(processes=(proc(user="ssm-user"),)))
    assert (result.status, result.code) == (Status.FAIL, "not-root")
    assert "ssm-user" in result.summary
    assert "sudo systemctl revert amazon-ssm-agent.service" in result.remedy.commands


@pytest.mark.parametrize("version, status, code, lacks, not_lacks", [
    ("2.3.50.0", Status.FAIL, "too-old", "Session Manager", ""),
    ("3.1.400.0", Status.WARN, "outdated", "ssm-cli get-diagnostics", "Session Manager"),
    ("3.1.700.0", Status.WARN, "outdated", "Run Command over ssmmessages", "ssm-cli"),
    ("3.2.500.0", Status.WARN, "outdated", "Default Host Management", "Run Command"),
    ("3.3.1142.0", Status.WARN, "outdated", "ENV_VAR parameter interpolation", "Default Host Management"),
])
def test_each_version_threshold(version, status, code, lacks, not_lacks):
    result = judge(healthy(version=version))
    assert (result.status, result.code) == (status, code)
    assert lacks in result.summary
    assert not not_lacks or not_lacks not in result.summary
    assert "aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids i-0123456789abcdef0" in \
        result.remedy.commands


def test_versions_at_the_thresholds_lack_nothing():
    assert judge(healthy(version="3.3.2746.0")).status is Status.PASS
    assert "ENV_VAR" in judge(healthy(version="3.3.2745.99")).summary
    assert agent.version_tuple("SSM Agent version: 3.3.1142.0") == (3, 3, 1142, 0)
    assert agent.version_tuple("garbage") is None


def test_agent_proxy_without_no_proxy_fails_and_hides_credentials():
    result = judge(healthy(proxy_env={"https_proxy": "http://svc:pa55w0rd@proxy.corp:3128"}))
    assert (result.status, result.code) == (Status.FAIL, "agent-proxy")
    assert "169.254.169.254" in result.summary and "ssm.eu-west-1.amazonaws.com" in result.summary
    assert "pa55w0rd" not in repr(result) and "***@proxy.corp:3128" in repr(result.evidence)
    assert any("no-proxy.conf" in c and "amazon-ssm-agent.service.d" in c for c in result.remedy.commands)


def test_agent_proxy_with_covering_no_proxy_passes():
    env = {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "169.254.169.254,.amazonaws.com"}
    result = judge(healthy(proxy_env=env))
    assert result.status is Status.PASS and result.evidence["through_proxy"] == []


def test_agent_proxy_covering_endpoints_but_not_imds_still_fails():
    result = judge(healthy(proxy_env={"http_proxy": "http://proxy:3128", "NO_PROXY": ".amazonaws.com"}))
    assert result.code == "agent-proxy" and result.evidence["through_proxy"] == ["169.254.169.254"]


def test_dhmc_credential_source_passes_with_a_note_about_the_dhmc_role():
    result = judge(healthy(identity={"IdentityType": "EC2", "CredentialSource": "SSM"}))
    assert result.status is Status.PASS and "Default Host Management" in result.summary
    assert any("DHMC role" in note for note in result.evidence["notes"])


def test_no_credential_source_warns():
    result = judge(healthy(identity={"CredentialSource": "None"}))
    assert (result.status, result.code) == (Status.WARN, "no-credentials")
    assert "associate-iam-instance-profile --instance-id i-0123456789abcdef0" in result.remedy.commands[0]


def test_malformed_identity_config_is_a_clear_note(tmp_path):
    path = tmp_path / "identity_config.json"
    path.write_text('{"CredentialSource": "EC2"')
    identity, problem = agent.read_identity(path)
    assert identity == {} and "is not valid JSON" in problem and "rewrites it" in problem
    result = judge(healthy(identity=identity, identity_problem=problem))
    assert result.status is Status.PASS and problem in result.evidence["notes"]
    assert "does not exist (older agents do not write it" in agent.read_identity(tmp_path / "absent")[1]
    (tmp_path / "list.json").write_text("[1, 2]")
    assert agent.read_identity(tmp_path / "list.json") == ({}, f"{agent.IDENTITY} is not a JSON object")


@pytest.mark.parametrize("free_mib, status, code", [(50, Status.FAIL, "disk-full"), (300, Status.WARN, "disk-low")])
def test_disk_full_and_low(free_mib, status, code):
    result = judge(healthy(disk_free={"/": free_mib * 1024 * 1024, "/var/lib/amazon/ssm": 8 * GiB}))
    assert (result.status, result.code) == (status, code)
    assert f"/ {free_mib} MiB free" in result.summary
    assert "df -h / /var/lib/amazon/ssm" in result.remedy.commands


def test_several_problems_report_the_failure_first_and_list_the_rest():
    result = judge(healthy(processes=(proc(user="nobody"),), version="3.2.0.0"))
    assert result.code == "not-root" and "Also: SSM agent 3.2.0.0 lacks" in result.cause
    assert [p["code"] for p in result.evidence["problems"]] == ["not-root", "outdated"]


def test_endpoint_overrides_are_reported_and_a_malformed_config_warns():
    passed = judge(healthy(endpoints=(("ssm", "vpce-1.ssm.eu-west-1.vpce.amazonaws.com"),)))
    assert "overrides vpce-1.ssm.eu-west-1.vpce.amazonaws.com" in passed.summary
    assert passed.evidence["endpoint_overrides"] == {"ssm": "vpce-1.ssm.eu-west-1.vpce.amazonaws.com"}
    bad = judge(healthy(config_problem="is not valid JSON: Expecting value"))
    assert (bad.status, bad.code) == (Status.WARN, "config-malformed")


def test_process_matching_uses_comm_exe_and_argv0_but_not_workers():
    assert named(ProcessInfo(1, "amazon-ssm-agen", "", "root", (), 0.0), "amazon-ssm-agent")
    assert named(ProcessInfo(1, "python3", "/usr/bin/python3", "root", ("/usr/bin/amazon-ssm-agent",), 0),
                 "amazon-ssm-agent")
    assert named(ProcessInfo(1, "x", "/snap/amazon-ssm-agent/9/amazon-ssm-agent", "", (), 0), "amazon-ssm-agent")
    assert not named(ProcessInfo(2, "ssm-agent-worke", "/usr/bin/ssm-agent-worker", "root",
                                 ("/usr/bin/ssm-agent-worker",), 0), "amazon-ssm-agent")
    assert not named(ProcessInfo(3, "bash", "/bin/bash", "root", ("bash", "amazon-ssm-agent"), 0), "amazon-ssm-agent")


# --- the agent's log lines (domain.md §6) ---------------------------------------------------------------------

def stamp(delta=timedelta(minutes=5)):
    return (NOW - delta).strftime("%Y-%m-%d %H:%M:%S")


def logs(*lines, errors=()):
    return [LogTail("/var/log/amazon/ssm/amazon-ssm-agent.log", tuple(lines), 100),
            LogTail("/var/log/amazon/ssm/errors.log", tuple(errors), 10)]


KNOWN = [
    ("ERROR [HealthCheck] Health ping failed with error - RequestError: send request failed\ncaused by: Post "
     "\"https://ssm.eu-west-1.amazonaws.com/\": dial tcp: lookup ssm.eu-west-1.amazonaws.com on 10.0.0.2:53: "
     "i/o timeout", "dns-timeout"),
    ("ERROR [HealthCheck] Health ping failed with error - Post \"https://ssm.eu-west-1.amazonaws.com/\": dial tcp: "
     "lookup ssm.eu-west-1.amazonaws.com on 10.0.0.2:53: no such host", "nxdomain"),
    ("ERROR [MessageService] Post \"https://ec2messages.eu-west-1.amazonaws.com/\": dial tcp 52.95.120.8:443: "
     "i/o timeout", "dial-timeout"),
    ("ERROR [MessageGatewayService] Post \"https://ssmmessages.eu-west-1.amazonaws.com/\": x509: certificate "
     "signed by unknown authority", "tls-untrusted"),
    ("ERROR [HealthCheck] Post \"https://ssm.eu-west-1.amazonaws.com/\": proxyconnect tcp: dial tcp "
     "10.0.5.5:3128: connect: connection refused", "proxyconnect"),
    ("ERROR EC2RoleProvider Failed to connect to Systems Manager with SSM role credentials. error calling "
     "RequestManagedInstanceRoleToken: AccessDeniedException", "dhmc-failed"),
    ("ERROR [CredentialRefresher] EC2RoleRequestError: no EC2 instance role found", "no-role"),
    ("INFO [CredentialRefresher] Entering SSM Agent hibernate - EC2RoleRequestError: no EC2 instance role found",
     "no-role"),
    ("INFO [amazon-ssm-agent] Entering SSM Agent hibernate", "hibernate"),
    ("WARN EC2RoleProvider Failed to connect to Systems Manager with instance profile role credentials. Err: "
     "AccessDeniedException: not authorized to perform ssm:UpdateInstanceInformation", "profile-rejected"),
    ("ERROR EC2RoleProvider unexpected error getting instance profile role credentials or calling "
     "UpdateInstanceInformation. Skipping default host management fallback: RequestError", "profile-network-error"),
    ("ERROR [MessageGatewayService] Failed to get controlchannel token, error: CreateControlChannel failed with "
     "error: unexpected response from the service <AccessDeniedException>", "control-channel"),
    ("ERROR [MessageGatewayService] Failed to dial websocket: read: connection reset by peer", "websocket"),
    ("ERROR [MessageGatewayService] Reach the retry limit for opening websocket", "websocket"),
    ("ERROR [ssm-session-worker] Validation failed, err: We couldn't start the session because encryption is not "
     "set up on the selected CloudWatch Logs log group", "encryption-not-set-up"),
    ("ERROR [ssm-session-worker] Validation failed, err: runAsUser does not exist", "session-validation"),
    ("ERROR [ssm-session-worker] The CloudWatch log group specified in session preferences either does not exist "
     "or unable to validate its existence", "log-group"),
    ("ERROR [ssm-session-worker] Error in calling DescribeLogGroups: RequestError", "logs-api"),
    ("ERROR [ssm-session-worker] Error in PutLogEvents: AccessDenied", "logs-api"),
    ("ERROR [ssm-session-worker] Encountered an error while calling S3 API GetBucketEncryption", "s3-encryption"),
    ("WARN [ssm-session-worker] HTTP HEAD request failed: url=https://logs-bucket.s3.amazonaws.com", "bucket-region"),
    ("WARN [ssm-session-worker] Signed HeadBucket request failed, continuing to fallback logic", "bucket-region"),
    ("ERROR [ssm-session-worker] Failed uploading /var/lib/amazon/ssm/x.log to s3://logs-bucket/x.log - retrying",
     "s3-upload"),
    ("ERROR [ssm-session-worker] Failed to upload shell session logs to S3: RequestError", "s3-upload"),
    ("ERROR [ssm-session-worker] Encountered error while initiating handshake. Fetching data key failed: "
     "AccessDeniedException", "kms-handshake"),
    ("ERROR [ssm-session-worker] Encountered error while initiating handshake. Handshake timed out.",
     "kms-handshake"),
    ("WARN Error when querying S3 bucket using address http://logs-bucket.s3.amazonaws.com. Retrying with the "
     "generic regional endpoint s3.amazonaws.com", "s3-port-80"),
]


@pytest.mark.parametrize("line, code", KNOWN)
def test_each_known_log_line_is_a_warning_with_its_code(line, code):
    result = agent_logs.assess_logs(logs(f"{stamp()} {line}"), NOW, VALUES)
    assert (result.status, result.code) == (Status.WARN, code), result.summary
    assert result.remedy is not None and result.cause
    assert "<instance-id>" not in " ".join(result.remedy.commands)
    json.dumps(result.evidence)


def test_informational_lines_are_evidence_only():
    lines = [f"{stamp()} INFO EC2RoleProvider Successfully connected with instance profile role credentials",
             f"{stamp()} INFO [MessageGatewayService] Successfully opened websocket connection to: wss://x",
             f"{stamp()} INFO Proxy environment variables:", "https_proxy: http://u:secret@proxy:3128",
             f"{stamp()} ERROR Failed to load instance info from vault. RegistrationKey does not exist."]
    result = agent_logs.assess_logs(logs(*lines), NOW)
    assert result.status is Status.PASS
    assert {m["code"] for m in result.evidence["matches"]} == {"profile-ok", "websocket-ok", "proxy-env",
                                                               "vault-empty"}


def test_log_lines_older_than_24h_are_evidence_only():
    line = f"{stamp(timedelta(hours=30))} ERROR [CredentialRefresher] EC2RoleRequestError: no EC2 instance role found"
    result = agent_logs.assess_logs(logs(line), NOW)
    assert result.status is Status.PASS and "1 older known problem" in result.summary
    match = result.evidence["matches"][0]
    assert (match["code"], match["count"], match["recent"]) == ("no-role", 1, 0)


def test_newest_cause_wins_and_repeats_are_counted_with_the_last_timestamp():
    timeout = "ERROR [MessageService] dial tcp 10.0.1.10:443: i/o timeout"
    lines = [f"{stamp(timedelta(hours=2))} {timeout}", f"{stamp(timedelta(hours=1))} {timeout}",
             f"{stamp(timedelta(minutes=10))} ERROR EC2RoleRequestError: no EC2 instance role found",
             f"{stamp(timedelta(minutes=3))} {timeout}"]
    result = agent_logs.assess_logs(logs(*lines, errors=lines), NOW)  # errors.log repeats the ERROR lines
    assert result.code == "dial-timeout" and "3× in 24 h" in result.summary
    assert stamp(timedelta(minutes=3)) in result.summary and "no-role (1×)" in result.cause
    assert [m["code"] for m in result.evidence["matches"]] == ["dial-timeout", "no-role"]


def test_continuation_lines_take_the_timestamp_of_their_entry():
    old = stamp(timedelta(days=3))
    result = agent_logs.assess_logs(logs(f"{old} ERROR [HealthCheck] Health ping failed with error - ",
                                         "caused by: dial tcp: lookup ssm.x on 10.0.0.2:53: no such host"), NOW)
    assert result.status is Status.PASS and result.evidence["matches"][0]["recent"] == 0


def test_lines_without_any_timestamp_count_as_recent():
    result = agent_logs.assess_logs(logs("Entering SSM Agent hibernate"), NOW)
    assert result.code == "hibernate" and "time unknown" in result.summary


def test_example_lines_hide_proxy_credentials():
    line = f"{stamp()} ERROR proxyconnect tcp: dial tcp: lookup http://svc:hunter2@proxy: no such host"
    result = agent_logs.assess_logs(logs(line), NOW)
    assert "hunter2" not in repr(result) and "***@proxy" in result.evidence["matches"][0]["example"]


def test_missing_logs_pass_with_a_note_and_unreadable_ones_warn():
    missing = [LogTail(p, missing=True) for p in agent_logs.LOG_FILES]
    result = agent_logs.assess_logs(missing, NOW)
    assert result.status is Status.PASS and "no agent logs at /var/log/amazon/ssm" in result.summary
    denied = [LogTail(p, problem="permission denied") for p in agent_logs.LOG_FILES]
    result = agent_logs.assess_logs(denied, NOW)
    assert (result.status, result.code) == (Status.WARN, "unreadable") and "root" in result.remedy.text


def test_split_tail_drops_only_a_cut_first_line():
    assert agent_logs.split_tail(b"rtial line\nwhole\n", cut=True) == ("whole",)
    assert agent_logs.split_tail(b"\nfirst\nsecond", cut=True) == ("first", "second")
    assert agent_logs.split_tail(b"first\r\n\xff\xfe bad\n", cut=False) == ("first", "\ufffd\ufffd bad")


# --- ssm-cli get-diagnostics ----------------------------------------------------------------------------------

ROWS = [{"Check": "EC2 IMDS", "Status": "Success", "Note": "IMDS is accessible"},
        {"Check": "Hybrid instance registration", "Status": "Skipped", "Note": "no hybrid registration"},
        {"Check": "Connectivity to ssm endpoint", "Status": "Success", "Note": "ssm.eu-west-1.amazonaws.com is "
                                                                              "reachable"},
        {"Check": "Connectivity to ssmmessages endpoint", "Status": "Failed",
         "Note": "ssmmessages.eu-west-1.amazonaws.com is not reachable: dial tcp 10.0.1.11:443: i/o timeout"},
        {"Check": "Proxy configuration", "Status": "Success", "Note": "https_proxy=http://u:s3cret@proxy:3128"},
        {"Check": "SSM Agent version", "Status": "Success", "Note": "SSM Agent version is 3.3.1142.0"}]


def ran(out="", **kw):
    return Ran(("ssm-cli",), 0, out, **kw)


def test_ssm_cli_rows_map_to_our_checks():
    assert agent_logs.ours("Connectivity to ssmmessages endpoint") == "tcp:ssmmessages"
    assert agent_logs.ours("EC2 IMDS") == "imds:token" and agent_logs.ours("Agent service") == "ssm:agent"
    assert agent_logs.ours("DNS resolution") == "dns:resolver"
    assert agent_logs.ours("Hybrid instance registration") is None


def test_ssm_cli_failed_row_warns_with_its_note_and_our_check():
    result = agent_logs.assess_diagnostics("/usr/bin/ssm-cli", ran(json.dumps({"DiagnosticsOutput": ROWS})))
    assert (result.status, result.code) == (Status.WARN, "diagnostics-failed")
    assert "Connectivity to ssmmessages endpoint" in result.summary and "i/o timeout" in result.summary
    assert "(see tcp:ssmmessages)" in result.cause
    rows = result.evidence["rows"]
    assert [r["ours"] for r in rows][:4] == ["imds:token", None, "tcp:ssm", "tcp:ssmmessages"]
    assert "s3cret" not in repr(result.evidence)


def test_ssm_cli_all_success_passes_even_after_log_noise():
    ok = [dict(r, Status="Success") for r in ROWS]
    out = "2026/11/28 12:00:00 some log {not json}\n" + json.dumps({"DiagnosticsOutput": ok}, indent=2)
    result = agent_logs.assess_diagnostics("/usr/bin/ssm-cli", ran(out))
    assert result.status is Status.PASS and "6 checks, none failed" in result.summary


def test_ssm_cli_absent_garbage_root_and_timeout_are_distinct():
    assert "ssm-cli not present (agent < 3.1.501.0" in agent_logs.assess_diagnostics(None, None).summary
    garbage = agent_logs.assess_diagnostics("/usr/bin/ssm-cli", ran("<html>" + "x" * 500))
    assert garbage.code == "garbage" and len(garbage.summary) < 260 and "<html>xxx" in garbage.summary
    root = agent_logs.assess_diagnostics("/usr/bin/ssm-cli", ran("ssm-cli binary needs to be executed by root"))
    assert root.code == "needs-root"
    slow = agent_logs.assess_diagnostics("/usr/bin/ssm-cli", Ran(("ssm-cli",), None, "", timed_out=True), 4.5)
    assert (slow.status, slow.code) == (Status.WARN, "timeout") and "4.5 s and was killed" in slow.summary
    broken = agent_logs.assess_diagnostics("/usr/bin/ssm-cli", Ran(("ssm-cli",), error="Exec format error"))
    assert broken.code == "unrunnable"


def test_checks_are_the_three_agent_checks_in_order():
    checks = agent.checks()
    assert [c.id for c in checks] == ["ssm:agent", "ssm:agent-logs", "ssm:diagnostics"]
    assert [c.severity.value for c in checks] == ["critical", "high", "low"]
    assert all(c.needs == () for c in checks)


def test_dial_timeouts_on_private_and_public_addresses_are_explained_apart():
    private = agent_logs.assess_logs(logs(f"{stamp()} ERROR dial tcp 10.0.1.10:443: i/o timeout"), NOW)
    public = agent_logs.assess_logs(logs(f"{stamp()} ERROR dial tcp 52.95.120.8:443: i/o timeout"), NOW)
    assert "security group or network ACL" in private.cause and "private DNS" not in private.cause
    assert "without the endpoint's private DNS" in public.cause and "52.95.120.8" in public.summary
