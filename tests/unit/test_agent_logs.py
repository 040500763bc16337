"""ssm:agent-logs judged from real agent lines: tests/data/agent-log-lines.jsonl (each line with its source: public
issues quoting the agent, or the agent's format strings at aws/amazon-ssm-agent@1c217c89 filled as Go fills them)."""
import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from vpce_doctor.checks import agent_explain, agent_logs
from vpce_doctor.checks.agent_files import LOG_FILES, LogTail
from vpce_doctor.model import Status

CORPUS = [json.loads(line) for line in
          Path(__file__).parents[1].joinpath("data", "agent-log-lines.jsonl").read_text().splitlines() if line]
FILES = {"amazon-ssm-agent.log": 0, "errors.log": 1, "hibernate.log": 2}
VALUES = {"instance": "i-0123456789abcdef0", "region": "eu-west-1", "vpc": "vpc-0abc1234", "subnet": "subnet-0abc"}


def expected(case):
    """The corpus's proposed_code is the issue's vocabulary for a cause its `code` could not name."""
    return case.get("proposed_code") or case["code"]


def now_for(cases):
    """A judging time one hour after the newest line, so every line is within the 24-hour window."""
    stamps = [agent_logs.entries(tails([c]))[0].stamp for c in cases]
    return max(stamps) + timedelta(hours=1)


def tails(cases):
    files = [[], [], []]
    for case in cases:
        files[FILES[case["file"]]].extend(case["line"].split("\n"))
    return [LogTail(path, tuple(lines), 100) for path, lines in zip(LOG_FILES, files)]


@pytest.mark.parametrize("case", CORPUS, ids=[f"{i}-{expected(c)}" for i, c in enumerate(CORPUS)])
def test_every_real_line_gets_its_code(case):
    result = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES)
    json.dumps(result.evidence)
    if expected(case) == "none":
        assert result.status is Status.PASS, (result.code, case["line"])
        return
    assert (result.status, result.code) == (Status.WARN, expected(case)), case["line"]
    assert result.remedy is not None and "<instance-id>" not in " ".join(result.remedy.commands)


GROUPS = defaultdict(list)
for _case in CORPUS:
    if "group" in _case:
        GROUPS[_case["group"]].append(_case)


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_every_real_group_gets_its_top_cause(name):
    cases = GROUPS[name]
    for order in (cases, cases[::-1]):  # the order in the file must not matter, only the time stamps and causes
        result = agent_logs.assess_logs(tails(order), now_for(cases), VALUES)
        assert result.code == cases[0]["group_code"], result.summary


def test_several_lines_in_one_second_keep_file_order_with_fractions():
    # agent/log/logger/defaultconfig.go: "%Date(2006-01-02 15:04:05.0000)"; three entries of #609 in 0.18 s
    group = GROUPS["no-role-imds-unreachable-609"]
    found = agent_logs.entries(tails(group))
    assert [e.stamp.microsecond for e in found] == [962900, 134100, 135300, 135300]
    assert [e.key[2] for e in found] == sorted(e.key[2] for e in found)


def test_continuation_lines_belong_to_their_entry():
    case = CORPUS[0]  # #312: "Health ping failed ... \ncaused by: ... i/o timeout" in hibernate.log
    found = agent_logs.entries(tails([case]))
    assert len(found) == 1 and "i/o timeout" in found[0].text and found[0].key[1] == 2


def test_errors_log_alone_is_read_and_its_copy_of_an_error_counts_once():
    line = next(c for c in CORPUS if c["file"] == "errors.log" and c["code"] == "access-denied")
    only = agent_logs.assess_logs(tails([line]), now_for([line]))
    assert only.code == "access-denied"
    # errors.log repeats amazon-ssm-agent.log's ERROR with "[Func @ file.go.N] " after the level (defaultconfig.go)
    main = dict(line, file="amazon-ssm-agent.log",
                line=line["line"].replace("[HandleAwsError @ awserr.go.48] ", ""))
    both = agent_logs.assess_logs(tails([line, main]), now_for([line]))
    assert both.evidence["matches"][0]["count"] == 1


def test_old_lines_are_evidence_and_a_quiet_log_is_not_called_health_when_imds_says_no_profile():
    case = next(c for c in CORPUS if c["code"] == "no-role" and "group" not in c)
    later = now_for([case]) + timedelta(days=3)
    result = agent_logs.assess_logs(tails([case]), later, network={"imds:profile": ("fail", "none")})
    assert result.status is Status.PASS and "1 older known problem" in result.summary
    assert "Silence is not health" in result.cause and "credentialrefresher.go" in result.cause


def test_a_network_root_cause_is_named_as_the_cause_of_the_agents_line():
    case = CORPUS[0]  # DNS timeout behind the health ping (#312)
    network = {"dns:resolver": ("fail", "timeout"), "dns:ssm": ("skip", "blocked")}
    result = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES, network)
    assert result.code == "dns-timeout" and result.caused_by == ("dns:resolver",)
    assert "explained by dns:resolver" in result.summary


def test_no_role_without_its_cause_is_judged_with_imds():
    case = next(c for c in CORPUS if c.get("group") == "no-role-imds-unreachable-609" and c["code"] == "no-role")
    unreachable = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES, {"imds:token": ("fail", "timeout")})
    assert unreachable.caused_by == ("imds:token",) and "cannot reach IMDS" in unreachable.cause
    absent = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES,
                                    {"imds:token": ("pass", ""), "imds:profile": ("fail", "none")})
    assert absent.caused_by == ("imds:profile",)
    attached = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES,
                                      {"imds:token": ("pass", ""), "imds:profile": ("pass", "")})
    assert attached.caused_by == () and "profile attached" in attached.cause


def test_a_reset_while_the_doctors_tls_passes_names_the_go_client_hello():
    case = next(c for c in CORPUS if c["code"] == "connection-reset")  # #640, agent 3.3.2299.0+ behind a middlebox
    network = {"tcp:ssm": ("pass", ""), "tls:ssm": ("pass", "")}
    result = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES, network, "3.3.2958.0")
    assert "ClientHello differs" in result.cause and "GODEBUG=tlskyber=0" in result.cause
    assert "tlskyber=0" in " ".join(result.remedy.commands)
    older = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES, network, "3.3.1142.0")
    assert "ClientHello" not in older.cause
    failing = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES, {"tls:ssm": ("fail", "reset")})
    assert failing.caused_by == ("tls:ssm",) and "ClientHello" not in failing.cause


def test_dial_timeouts_on_private_and_public_addresses_are_explained_apart():
    private = next(c for c in CORPUS if c["code"] == "dial-timeout" and "10.0.1.11" in c["line"])
    public = next(c for c in CORPUS if c["code"] == "dial-timeout" and "52.94.231.162" in c["line"])
    assert "security group or network ACL" in agent_logs.assess_logs(tails([private]), now_for([private])).cause
    assert "private DNS" in agent_logs.assess_logs(tails([public]), now_for([public])).cause


def test_proxy_credentials_never_show():
    case = next(c for c in CORPUS if c["code"] == "proxyconnect" and c["file"] == "amazon-ssm-agent.log")
    secret = dict(case, line=case["line"].replace("10.0.0.50:3128", "http://svc:hunter2@10.0.0.50:3128"))
    result = agent_logs.assess_logs(tails([secret]), now_for([case]))
    assert "hunter2" not in repr(result)


def test_lines_that_match_nothing_real_are_gone():
    # fidelity.md §A.4: the updater's upload line (update/processor/context.go) is not session logging, and the
    # vault line and "failed to upload session logs" are in no current agent.
    for text in ("ERROR failed uploading /var/log/amazon/ssm/update.log to s3://aws-ssm-eu-west-1/x",
                 "ERROR Failed to load instance info from vault. RegistrationKey does not exist.",
                 "ERROR failed to upload session logs"):
        result = agent_logs.assess_logs(tails([{"line": "2024-05-01 10:00:00.0000 " + text,
                                                 "file": "amazon-ssm-agent.log"}]), datetime(2024, 5, 1, 11))
        assert result.status is Status.PASS, text


def test_missing_logs_pass_with_a_note_and_unreadable_ones_warn():
    missing = [LogTail(p, missing=True) for p in LOG_FILES]
    assert "no agent logs at /var/log/amazon/ssm" in agent_logs.assess_logs(missing, datetime.now()).summary
    denied = [LogTail(p, problem="permission denied") for p in LOG_FILES]
    result = agent_logs.assess_logs(denied, datetime.now())
    assert (result.status, result.code) == (Status.WARN, "unreadable") and "root" in result.remedy.text


def test_split_tail_drops_only_a_cut_first_line():
    assert agent_logs.split_tail(b"rtial line\nwhole\n", cut=True) == ("whole",)
    assert agent_logs.split_tail(b"\nfirst\nsecond", cut=True) == ("first", "second")
    assert agent_logs.split_tail(b"first\r\n\xff\xfe bad\n", cut=False) == ("first", "\ufffd\ufffd bad")


def test_service_of_a_line_is_the_endpoint_it_names():
    assert agent_explain.service_of("dns-timeout", CORPUS[0]["line"]) == "ssm"
    tls = next(c for c in CORPUS if c["code"] == "tls-handshake-timeout")
    assert agent_explain.service_of("tls-handshake-timeout", tls["line"]) == "ec2messages"


def test_the_agents_s3_upload_lines_but_not_the_updaters():
    # agent/s3util/s3util.go:127 "Failed uploading %v to s3://%v/%v err:%v - retrying", filled with an S3 error as
    # aws-sdk-go prints it; update/processor/context.go:224 "failed uploading %v to s3://%v/%v \n err:%v".
    path = "/var/lib/amazon/ssm/i-0123456789abcdef0/session/orchestration/ops-07e4d2c1b9a8f6e53/ipcTempFile.log"
    denied = {"file": "amazon-ssm-agent.log", "line": f"2024-05-02 10:15:40.1234 WARN [ssm-session-worker] "
              f"[ops-07e4d2c1b9a8f6e53] Failed uploading {path} to s3://session-logs/ops-07e4d2c1b9a8f6e53.log "
              "err:AccessDenied: Access Denied\n\tstatus code: 403, request id: 8XK1H2V9Z0A3B4C5, host id: aG9zdA== "
              "- retrying"}
    assert agent_logs.assess_logs(tails([denied]), now_for([denied])).code == "s3-upload"
    dropped = dict(denied, line=denied["line"].replace(
        "AccessDenied: Access Denied\n\tstatus code: 403, request id: 8XK1H2V9Z0A3B4C5, host id: aG9zdA==",
        "RequestError: send request failed\ncaused by: Put \"https://session-logs.s3.eu-west-1.amazonaws.com/"
        "ops-07e4d2c1b9a8f6e53.log\": dial tcp 52.218.1.1:443: i/o timeout"))
    assert agent_logs.assess_logs(tails([dropped]), now_for([dropped])).code == "dial-timeout"
    updater = {"file": "amazon-ssm-agent.log", "line": "2024-05-02 10:15:40.1234 ERROR failed uploading "
               "/var/log/amazon/ssm/update/stdout to s3://aws-ssm-eu-west-1/update/stdout \n err:AccessDenied"}
    assert agent_logs.assess_logs(tails([updater]), now_for([updater])).status is Status.PASS


def test_go_1_24_agents_get_the_mlkem_switch_too():
    case = next(c for c in CORPUS if c["code"] == "connection-reset")
    result = agent_logs.assess_logs(tails([case]), now_for([case]), VALUES,
                                    {"tcp:ssm": ("pass", ""), "tls:ssm": ("pass", "")}, "3.3.3572.0")
    assert "tlsmlkem=0" in result.cause and "golang/go#69985" in result.cause


def test_default_host_managements_shared_file_and_the_refreshers_warning():
    # ec2_role_provider.go:97 fmt.Errorf("unable to load shared credentials. Err: %w") logged by p.Log.Error, with
    # the SDK's SharedCredsLoad error (vendor aws-sdk-go credentials/shared_credentials_provider.go:82) for the
    # DHMC file (appconfig/constants_unix.go:112 DefaultEC2SharedCredentialsFilePath) inside; and
    # credentialrefresher.go:311 Warnf("Credentials are not available when they should be: %v") (agent@1c217c89)
    shared = {"file": "amazon-ssm-agent.log", "line": "2024-05-03 07:10:02.5566 ERROR EC2RoleProvider unable to "
              "load shared credentials. Err: SharedCredsLoad: failed to load shared credentials file\ncaused by: "
              "open /var/lib/amazon/ssm/credentials: no such file or directory"}
    assert agent_logs.assess_logs(tails([shared]), now_for([shared])).code == "dhmc-failed"
    expired = dict(shared, line="2024-05-03 07:10:02.5566 ERROR EC2RoleProvider unable to load shared credentials. "
                   "Err: shared credentials are already expired, they were retrieved at 2024-05-03T05:03:45Z and "
                   "expired at 2024-05-03T06:07:14Z")  # sharedprovider.go:92
    assert agent_logs.assess_logs(tails([expired]), now_for([expired])).code == "credentials-expired"
    refresher = dict(shared, line="2024-05-03 07:10:02.5566 WARN [CredentialRefresher] Credentials are not "
                     "available when they should be: EC2RoleRequestError: no EC2 instance role found")
    assert agent_logs.assess_logs(tails([refresher]), now_for([refresher])).code == "no-role"
    bare = dict(shared, line="2024-05-03 07:10:02.5566 WARN [CredentialRefresher] Credentials are not available "
                "when they should be: context canceled")
    assert agent_logs.assess_logs(tails([bare]), now_for([bare])).code == "credentials-retry"
