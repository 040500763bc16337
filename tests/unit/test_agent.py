"""The SSM agent on the box (domain.md §4 H, A4), its log lines (§6) and ssm-cli's rows, judged from literals."""
import json
from datetime import datetime, timedelta

import pytest

from vpce_doctor.checks import agent
from vpce_doctor.checks.agent import AgentState
from vpce_doctor.model import Status
from vpce_doctor.processes import ProcessInfo, named

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
    assert named(ProcessInfo(1, "x", "/snap/amazon-ssm-agent/9/amazon-ssm-agent", "", (), 0), "amazon-ssm-agent")
    assert not named(ProcessInfo(2, "ssm-agent-worke", "/usr/bin/ssm-agent-worker", "root",
                                 ("/usr/bin/ssm-agent-worker",), 0), "amazon-ssm-agent")
    assert not named(ProcessInfo(3, "bash", "/bin/bash", "root", ("bash", "amazon-ssm-agent"), 0), "amazon-ssm-agent")


def test_the_agent_check_alone_and_its_logs_and_ssm_cli_after_the_network_layers():
    from vpce_doctor.checks import catalogue
    from vpce_doctor.plan import Target
    from vpce_doctor.settings import Settings
    assert [c.id for c in agent.checks()] == ["ssm:agent"]
    targets = [Target("ssm", "ssm.eu-west-1.amazonaws.com", False), Target("s3", "s3.eu-west-1.amazonaws.com", True)]
    ids = [c.id for c in catalogue(targets, Settings())]
    logs = ids.index("ssm:agent-logs")
    assert ids.index("tls:s3") < logs < ids.index("ssm:diagnostics") < ids.index("ssm:run_command")
    after = next(c for c in catalogue(targets, Settings()) if c.id == "ssm:agent-logs").after
    assert {"imds:token", "imds:profile", "dns:resolver", "dns:ssm", "tcp:ssm", "tls:ssm", "ssm:agent"} <= set(after)


# Issue 12 item 16: argv[0] and comm are the process's own choice. 0.1.0 took any process whose argv[0] was
# amazon-ssm-agent for the agent (the oldest won), so an unprivileged user could fake "agent-proxy" or "not-root".
def test_a_process_that_only_calls_itself_the_agent_is_not_the_agent():
    spoof = dict(name="amazon-ssm-agen", cmdline=("amazon-ssm-agent",), create_time=0.0)
    assert not named(ProcessInfo(7, exe="/usr/bin/sleep", username="mallory", **spoof), "amazon-ssm-agent")
    assert not named(ProcessInfo(7, exe="/usr/bin/python3", username="root", **spoof), "amazon-ssm-agent")
    assert not named(ProcessInfo(7, exe="", username="mallory", **spoof), "amazon-ssm-agent")
    copied = ProcessInfo(7, exe="/home/mallory/amazon-ssm-agent", username="mallory", exe_trusted=False, **spoof)
    assert not named(copied, "amazon-ssm-agent")
    real = ProcessInfo(1, exe="/usr/bin/amazon-ssm-agent", username="ssm-user", exe_trusted=True, **spoof)
    assert named(real, "amazon-ssm-agent")  # the installed agent running as another user is still the agent


def test_a_planted_agent_binary_is_not_trusted(tmp_path):
    from vpce_doctor.processes import _trusted
    planted = tmp_path / "amazon-ssm-agent"
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o777)
    assert _trusted(str(planted)) is False and _trusted(str(tmp_path / "missing")) is None


def test_an_agent_region_other_than_the_instances_warns():
    # Agent.Region re-signs ssm/ec2messages calls (agent/ssm/service.go:97, runcommand/mds/service.go:95) while the
    # endpoints stay the identity Region's (sdkutil/awsconfig.go:31), aws/amazon-ssm-agent@1c217c89
    result = judge(healthy(agent_region="us-east-1"))
    assert (result.status, result.code) == (Status.WARN, "agent-region")
    assert "Agent.Region us-east-1" in result.summary and "eu-west-1" in result.summary
    assert judge(healthy(agent_region="eu-west-1")).status is Status.PASS


def test_the_agent_config_gives_its_region(tmp_path):
    from vpce_doctor import plan
    (tmp_path / "etc/amazon/ssm").mkdir(parents=True)
    (tmp_path / "etc/amazon/ssm/amazon-ssm-agent.json").write_text(
        json.dumps({"Agent": {"Region": "us-east-1"}, "Ssm": {"Endpoint": ""}}))
    assert plan.read_agent_config(str(tmp_path)).region == "us-east-1"
