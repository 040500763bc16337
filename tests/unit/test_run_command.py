"""ssm:run_command and the ec2messages checks as the agent uses the channels: from 3.3.40.0 ec2messages is switched
off once ssmmessages connects and back on when it fails (aws/amazon-ssm-agent@1c217c89
agent/ssmconnectionchannel/ssmconnectionchannel.go; Systems Manager user guide, VPC endpoints), so a broken
ec2messages path is a lost fallback (a warning) for such an agent; older agents (>= 3.1.821.0) warn too."""
from vpce_doctor.checks import run_command
from vpce_doctor.model import Check, Result, Severity, Status

PUBLIC = Result(Status.FAIL, "ec2messages.eu-west-1.amazonaws.com → 52.95.1.1, outside the VPC",
                code="public-answer", cause="No interface endpoint answers for it.")


def test_a_failed_ec2messages_check_is_a_lost_fallback_for_agents_from_3_3_40_0():
    lost = run_command.lost_fallback(PUBLIC, (3, 3, 2958, 0))
    assert (lost.status, lost.code) == (Status.WARN, "public-answer") and run_command.is_lost_fallback(lost)
    assert "lost fallback" in lost.cause
    assert run_command.lost_fallback(PUBLIC, (3, 3, 39, 0)) is PUBLIC
    assert run_command.lost_fallback(PUBLIC, None) is PUBLIC


def test_the_wrapped_check_waits_for_the_agent_and_run_command_counts_the_lost_fallback_as_broken():
    check = run_command.as_fallback(Check("dns:ec2messages", "t", Severity.CRITICAL, lambda ctx, prior: PUBLIC))
    assert "ssm:agent" in check.after
    agent = Result(Status.PASS, "SSM agent 3.3.2958.0 running", evidence={"version": "3.3.2958.0"})
    warned = check.run(None, {"ssm:agent": agent})
    assert warned.status is Status.WARN
    verdict = run_command.assess("pass", "fail", (3, 3, 2958, 0), {"region": "eu-west-1"})
    assert (verdict.status, verdict.code) == (Status.WARN, "no-fallback")
    assert run_command.assess("fail", "fail", (3, 3, 2958, 0), {}).code == "undeliverable"


def test_a_check_behind_a_lost_fallback_is_not_run_and_stays_a_warning():
    lost = run_command.lost_fallback(PUBLIC, (3, 3, 2958, 0))
    tcp = run_command.as_fallback(Check("tcp:ec2messages", "t", Severity.CRITICAL, lambda ctx, prior: 1 / 0,
                                        needs=("dns:ec2messages",)))
    behind = tcp.run(None, {"dns:ec2messages": lost})
    assert (behind.status, behind.code) == (Status.WARN, "blocked") and run_command.is_lost_fallback(behind)
