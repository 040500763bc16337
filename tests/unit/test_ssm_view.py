"""ssm:registration on the instance: SSM's own view (DescribeInstanceInformation, GetConnectionStatus) reconciled with
the local checks, on literal answers in the shapes of the SSM API reference:
InstanceInformation (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_InstanceInformation.html:
PingStatus Online | ConnectionLost | Inactive, LastPingDateTime, AgentVersion, IsLatestVersion) and
GetConnectionStatus (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetConnectionStatus.html:
{"Target": ..., "Status": "connected" | "notconnected"})."""
from datetime import datetime, timezone

from vpce_doctor import fingerprint
from vpce_doctor.aws import Call
from vpce_doctor.checks import ssm_view
from vpce_doctor.model import Check, Finding, Report, Result, Severity, Status

IID = "i-0598c7d356eba48d7"
INFO = {"InstanceId": IID, "PingStatus": "Online", "AgentVersion": "3.3.2958.0", "IsLatestVersion": False,
        "PlatformType": "Linux", "PlatformName": "Amazon Linux", "PlatformVersion": "2023",
        "LastPingDateTime": datetime(2026, 11, 28, 11, 58, 4, tzinfo=timezone.utc), "ResourceType": "EC2Instance"}
PASSING = {i: {"status": "pass", "code": "", "summary": "ok"} for i in (*ssm_view.PING_PATH, *ssm_view.CHANNEL_PATH)}


def listed(**fields):
    return Call(ok=True, response={"InstanceInformationList": [{**INFO, **fields}]})


def connection(status):
    return Call(ok=True, response={"Target": IID, "Status": status})


def local(**failing):
    out = dict(PASSING)
    for check_id, summary in failing.items():
        out[check_id.replace("_", ":", 1)] = {"status": "fail", "code": "x", "summary": summary}
    return out


def test_connection_lost_is_explained_by_what_fails_here_and_dated_by_the_kept_runs():
    history = {"last_healthy": "2026-11-28T11:45:02Z", "first_broken": "2026-11-28T12:00:03Z",
               "first_failed": ["dns:ssm"]}
    result = ssm_view.assess(listed(PingStatus="ConnectionLost"), None, IID,
                             local(dns_ssm="ssm.eu-west-1.amazonaws.com resolves to 52.119.196.10, outside the VPC"),
                             history)
    assert result.status is Status.FAIL and result.code == "connection-lost"
    assert result.summary.startswith(f"SSM says {IID} is ConnectionLost (last ping 2026-11-28T11:58:04Z)")
    assert "dns:ssm fails here: ssm.eu-west-1.amazonaws.com resolves to 52.119.196.10" in result.summary
    assert result.caused_by == ("dns:ssm",) and result.remedy is None
    assert "last healthy run was 2026-11-28T11:45:02Z" in result.cause
    assert "first broken run 2026-11-28T12:00:03Z, when dns:ssm began to fail" in result.cause
    assert "stopped reporting" not in result.cause  # the last ping came after the healthy run
    first = ssm_view.assess(listed(PingStatus="ConnectionLost"), None, IID, local(tcp_ssm="443 not reachable"),
                            {"last_healthy": "2026-11-28T11:45:02Z"})
    assert first.cause.endswith("last healthy run was 2026-11-28T11:45:02Z; this run is the first broken one.")


def test_connection_lost_while_every_probe_passes_points_at_the_agent():
    logs = {"ssm:agent-logs": {"status": "warn", "code": "access-denied",
                               "summary": "the agent's log says: access-denied (3 lines in the last 24 h)"}}
    result = ssm_view.assess(listed(PingStatus="ConnectionLost"), None, IID, {**PASSING, **logs},
                             {"last_healthy": "2026-11-28T12:15:00Z"})
    assert result.status is Status.FAIL and result.code == "connection-lost"
    assert result.caused_by == ()  # a root cause: nothing here explains it
    assert "while every probe of the agent's path to ssm passes here" in result.summary
    assert "ssm:UpdateInstanceInformation" in result.cause and "access-denied (3 lines" in result.cause
    # SSM lost the agent at 11:58, before a run at 12:15 that was healthy: the agent, not the path
    assert "the agent stopped reporting, not the path" in result.cause
    assert result.remedy.commands[0] == "sudo systemctl restart amazon-ssm-agent"


def test_a_broken_session_channel_does_not_explain_connection_lost():
    # PingStatus follows UpdateInstanceInformation on the ssm endpoint (agent/health/healthcheck.go), not ssmmessages
    result = ssm_view.assess(listed(PingStatus="ConnectionLost"), None, IID,
                             local(dns_ssmmessages="resolves to 203.0.113.10"), {})
    assert result.code == "connection-lost" and result.caused_by == ()


def test_never_registered_with_the_agent_stopped():
    result = ssm_view.assess(Call(ok=True, response={"InstanceInformationList": []}), None, IID,
                             local(ssm_agent="amazon-ssm-agent is installed but not running"), {})
    assert result.code == "not-registered" and result.caused_by == ("ssm:agent",)
    assert result.summary == (f"SSM has never heard from {IID}, and ssm:agent fails here: amazon-ssm-agent is "
                              "installed but not running")


def test_online_but_session_manager_not_connected_because_ssmmessages_fails_here():
    result = ssm_view.assess(listed(), connection("notconnected"), IID,
                             local(tls_ssmmessages="TLS to 10.0.1.11:443 failed: certificate verify failed"), {})
    assert result.status is Status.FAIL and result.code == "session-not-connected"
    assert "is Online (last ping 2026-11-28T11:58:04Z, agent 3.3.2958.0) but Session Manager says notconnected: " \
           "tls:ssmmessages failed here" in result.summary
    assert result.caused_by == ("tls:ssmmessages",) and result.evidence["connection"] == "notconnected"


def test_online_but_not_connected_while_ssmmessages_works_here():
    result = ssm_view.assess(listed(), connection("notconnected"), IID, PASSING, {})
    assert result.code == "session-not-connected" and result.caused_by == ()
    assert "ssmmessages:CreateControlChannel" in result.cause and result.remedy is not None


def test_online_with_the_connection_status_unread_and_the_channel_broken_here():
    denied = Call(ok=False, kind="api", code="AccessDeniedException", message="...")
    result = ssm_view.assess(listed(), denied, IID, local(dns_ssmmessages="resolves to 203.0.113.10"), {})
    assert result.code == "online-channel-broken" and "no session channel works: dns:ssmmessages" in result.summary
    assert "GetConnectionStatus was not read: AccessDeniedException" in result.cause


def test_connected_while_the_path_is_broken_here_warns_that_the_open_channel_will_not_come_back():
    result = ssm_view.assess(listed(), connection("connected"), IID, local(dns_ssmmessages="public answer"), {})
    assert result.status is Status.WARN and result.code == "channel-outlives-path"


def test_online_and_connected():
    result = ssm_view.assess(listed(), connection("connected"), IID, PASSING, {})
    assert result.status is Status.PASS and result.summary.endswith("; Session Manager connected")
    unread = ssm_view.assess(listed(), Call(ok=False, kind="api", code="AccessDeniedException"), IID, PASSING, {})
    assert unread.status is Status.PASS and "not read (AccessDeniedException)" in unread.summary


def test_access_denied_is_a_warning_with_the_permission_to_add_never_a_failure():
    # IAM's wording for an implicit deny (https://docs.aws.amazon.com/IAM/latest/UserGuide/
    # troubleshoot_access-denied.html)
    denied = Call(ok=False, kind="api", code="AccessDeniedException", status=400,
                  message=f"User: arn:aws:sts::123456789012:assumed-role/web-ssm/{IID} is not authorized to perform: "
                          "ssm:DescribeInstanceInformation on resource: arn:aws:ssm:eu-west-1:123456789012:* because "
                          "no identity-based policy allows the ssm:DescribeInstanceInformation action")
    result = ssm_view.assess(denied, None, IID, PASSING, {})
    assert result.status is Status.WARN and result.code == "not-permitted"
    command = result.remedy.filled(role="web-ssm").commands[0]
    assert command.startswith("aws iam put-role-policy --role-name web-ssm --policy-name vpce-doctor-ssm-view")
    assert '"ssm:DescribeInstanceInformation","ssm:GetConnectionStatus"' in command
    timeout = Call(ok=False, kind="timeout", code="ReadTimeoutError", message="Read timeout")
    assert ssm_view.assess(timeout, None, IID, PASSING, {}).code == "unavailable"


def test_the_timeline_reads_only_this_instances_kept_runs_and_survives_odd_records():
    kept = {"healthy": {"instance_id": IID, "started_at": "2026-11-28T11:45:02.123Z"},
            "first-broken": {"instance_id": IID, "started_at": "2026-11-28T12:00:03.456Z",
                             "checks": {"dns:ssm": {"status": "fail"}, "tcp:ssm": {"status": "skip"}}}}
    assert ssm_view.timeline(kept, IID) == {"last_healthy": "2026-11-28T11:45:02Z",
                                            "first_broken": "2026-11-28T12:00:03Z", "first_failed": ["dns:ssm"]}
    assert ssm_view.timeline(kept, "i-0aaaaaaaaaaaaaaaa") == {}  # a copied image's runs
    odd = {"first-broken": {"instance_id": IID, "started_at": None, "checks": ["not", "a", "map"]}}
    assert ssm_view.timeline(odd, IID) == {"first_broken": None, "first_failed": []}


def test_only_an_unexplained_disagreement_is_a_root_cause():
    def report(result):
        tls = Finding(Check("tls:ssmmessages", "", Severity.CRITICAL, lambda c, p: None),
                      Result(Status.FAIL, "TLS failed", code="untrusted"))
        view = Finding(Check("ssm:registration", "", Severity.CRITICAL, lambda c, p: None), result)
        return Report("0.1.0", "2026-11-28T12:00:00Z", 1.0, {}, (tls, view))
    explained = ssm_view.assess(listed(), connection("notconnected"), IID, local(tls_ssmmessages="TLS failed"), {})
    assert [f.check.id for f in report(explained).root_causes] == ["tls:ssmmessages"]
    alone = ssm_view.assess(listed(), connection("notconnected"), IID, PASSING, {})
    assert "ssm:registration" in [f.check.id for f in report(alone).root_causes]


def test_the_fingerprint_ignores_the_ping_time_and_the_kept_runs():
    one = ssm_view.assess(listed(PingStatus="ConnectionLost"), None, IID, PASSING, {"last_healthy": "a"})
    two = ssm_view.assess(listed(PingStatus="ConnectionLost", LastPingDateTime=datetime(2026, 11, 28, 12, 30)),
                          None, IID, PASSING, {"last_healthy": "b"})
    online = ssm_view.assess(listed(), connection("connected"), IID, PASSING, {})
    assert fingerprint.of("ssm:registration", one.evidence) == fingerprint.of("ssm:registration", two.evidence)
    assert fingerprint.of("ssm:registration", one.evidence) != fingerprint.of("ssm:registration", online.evidence)
