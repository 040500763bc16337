"""The agent checks against a real file tree as the root: real logs, real scripts standing in for ssm-cli,
amazon-ssm-agent and systemctl, real /proc. The process table is literal (once: psutil's record of a real child)."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from vpce_doctor import plan
from vpce_doctor.checks import agent, agent_logs, diagnostics
from vpce_doctor.context import Context, Host
from vpce_doctor.facts import Facts, Imds
from vpce_doctor.model import Status
from tests.unit.test_agent_logs import CORPUS
from vpce_doctor.processes import ProcessInfo, Ran, list_processes, named, read_environ
from vpce_doctor.settings import Settings

INSTANCE = "i-0123456789abcdef0"
LOG = "var/log/amazon/ssm/amazon-ssm-agent.log"
ERRORS = "var/log/amazon/ssm/errors.log"
LIMIT = agent_logs.TAIL_LIMIT


def context(root: Path, processes=(), deadline_s: float = 5.0) -> Context:
    config = plan.read_agent_config(str(root))
    facts = Facts(Imds("http://169.254.169.254"), instance_id=INSTANCE, region="eu-west-1", domain="amazonaws.com",
                  vpc_id="vpc-0abc1234", subnet_id="subnet-0abc1234")
    targets = plan.targets(("ssm", "ssmmessages"), "eu-west-1", "amazonaws.com", config)
    return Context(settings=Settings(), facts=facts, targets=targets, agent_config=config, environ={},
                   deadline=time.monotonic() + deadline_s, host=Host(str(root), processes=lambda: tuple(processes)))


def put(root: Path, relative: str, content, mode: int = 0o644) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    path.chmod(mode)
    return path


def script(root: Path, relative: str, body: str) -> Path:
    return put(root, relative, "#!/bin/sh\n" + body + "\n", 0o755)


def stamp(minutes_ago: float = 1.0) -> str:
    return (datetime.now() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")


def agent_process(pid: int = 4242, user: str = "root") -> ProcessInfo:
    return ProcessInfo(pid, "amazon-ssm-agen", "/usr/bin/amazon-ssm-agent", user, ("/usr/bin/amazon-ssm-agent",),
                       time.time() - 60)


def exec_done(pid: int, program: str) -> None:
    """Wait until the child has exec'd: before that, its /proc entries are the parent's. A bound, not a timing: on a
    loaded machine (a CI runner shared with other jobs) the exec took over 2 s, and the test read pytest's environ."""
    end = time.monotonic() + 30
    while os.path.realpath(f"/proc/{pid}/exe") != os.path.realpath(program):
        assert time.monotonic() < end, f"{pid} never exec'd {program}"
        time.sleep(0.005)


def rchar() -> int:
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("rchar:")).split()[1])


# --- ssm:agent ------------------------------------------------------------------------------------------------

def installed(root: Path, version: str = "3.3.2746.0", unit: str = "active") -> None:
    script(root, "usr/bin/amazon-ssm-agent", f'[ "$1" = "-version" ] && echo "SSM Agent version: {version}"')
    script(root, "usr/bin/systemctl", f'echo {unit}; [ {unit} = active ]')
    put(root, "var/lib/amazon/ssm/runtimeconfig/identity_config.json",
        json.dumps({"InstanceId": INSTANCE, "IdentityType": "EC2", "CredentialSource": "EC2"}))


def test_healthy_tree_passes_with_version_from_the_binary_and_overrides(tmp_path):
    installed(tmp_path)
    put(tmp_path, "etc/amazon/ssm/amazon-ssm-agent.json",
        json.dumps({"Ssm": {"Endpoint": "https://vpce-1-a.ssm.eu-west-1.vpce.amazonaws.com"}}))
    put(tmp_path, "proc/4242/environ", b"PATH=/usr/bin\0LANG=C.UTF-8\0")
    result = agent.run_agent(context(tmp_path, [agent_process()]), {})
    assert result.status is Status.PASS, (result.summary, result.cause)
    assert "SSM agent 3.3.2746.0 running (pid 4242 as root)" in result.summary
    assert "overrides vpce-1-a.ssm.eu-west-1.vpce.amazonaws.com" in result.summary
    assert result.evidence["version_source"] == "/usr/bin/amazon-ssm-agent -version"
    assert result.evidence["unit_state"] == "active" and set(result.evidence["disk_free_mib"]) == {
        "/", "/var/lib/amazon/ssm"}
    assert "PATH" not in repr(result.evidence)  # only proxy variables leave the agent's environment


def test_empty_tree_is_not_installed(tmp_path):
    result = agent.run_agent(context(tmp_path), {})
    assert (result.status, result.code) == (Status.FAIL, "not-installed")
    assert "systemd not available (no systemctl)" in result.evidence["notes"]


def test_stopped_unit_and_a_systemctl_without_systemd_are_told_apart(tmp_path):
    installed(tmp_path, unit="inactive")
    stopped = agent.run_agent(context(tmp_path), {})
    assert stopped.code == "not-running" and "amazon-ssm-agent.service is inactive" in stopped.summary
    script(tmp_path, "usr/bin/systemctl", 'echo "System has not been booted with systemd as init system (PID 1).'
                                          ' Can\'t operate." >&2; exit 1')
    result = agent.run_agent(context(tmp_path), {})
    assert result.code == "not-running" and "systemd not available: System has not been booted" in result.summary


def test_version_comes_from_the_log_when_the_binary_does_not_say(tmp_path):
    installed(tmp_path)
    script(tmp_path, "usr/bin/amazon-ssm-agent", "exit 2")
    put(tmp_path, LOG, f"{stamp(90)} INFO [amazon-ssm-agent] amazon-ssm-agent - v3.2.1705.0\n"
                       f"{stamp(89)} INFO [amazon-ssm-agent] OS: linux, Arch: amd64\n")
    result = agent.run_agent(context(tmp_path, [agent_process()]), {})
    assert (result.status, result.code) == (Status.WARN, "outdated")
    assert "3.2.1705.0 lacks ENV_VAR parameter interpolation" in result.summary
    assert result.evidence["version_source"] == "/var/log/amazon/ssm/amazon-ssm-agent.log"


def test_dhmc_and_malformed_identity_config_from_files(tmp_path):
    installed(tmp_path)
    put(tmp_path, "var/lib/amazon/ssm/runtimeconfig/identity_config.json", '{"CredentialSource": "SSM"}')
    assert "Default Host Management" in agent.run_agent(context(tmp_path, [agent_process()]), {}).summary
    put(tmp_path, "var/lib/amazon/ssm/runtimeconfig/identity_config.json", '{"CredentialSource": ')
    result = agent.run_agent(context(tmp_path, [agent_process()]), {})
    assert result.status is Status.PASS and any("is not valid JSON" in n for n in result.evidence["notes"])


def test_agent_proxy_read_from_a_real_processes_environ(tmp_path):
    installed(tmp_path)
    (tmp_path / "proc").symlink_to("/proc")  # the tree's /proc is the real one
    env = {"PATH": "/usr/bin:/bin", "https_proxy": "http://svc:pa55w0rd@proxy.corp:3128", "AWS_SECRET": "x1y2"}
    child = subprocess.Popen([shutil.which("sleep"), "30"], env=env)
    try:
        exec_done(child.pid, shutil.which("sleep"))
        seen, problem = read_environ(child.pid, root="/")
        assert problem == "" and seen["https_proxy"] == env["https_proxy"]
        result = agent.run_agent(context(tmp_path, [agent_process(child.pid)]), {})
    finally:
        child.kill()
        child.wait()
    assert (result.status, result.code) == (Status.FAIL, "agent-proxy")
    assert "169.254.169.254" in result.summary and "ssmmessages.eu-west-1.amazonaws.com" in result.summary
    assert "pa55w0rd" not in repr(result) and "x1y2" not in repr(result)
    assert result.evidence["proxy_env"] == {"https_proxy": "http://***@proxy.corp:3128"}
    assert "sudo systemctl daemon-reload && sudo systemctl restart amazon-ssm-agent.service" in result.remedy.commands


def test_a_real_agent_named_process_is_found_by_psutil_and_its_environ_read(tmp_path):
    binary = put(tmp_path, "usr/bin/amazon-ssm-agent", Path(shutil.which("sleep")).read_bytes(), 0o755)
    (tmp_path / "proc").symlink_to("/proc")
    env = {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "169.254.169.254,.amazonaws.com"}
    child = subprocess.Popen([str(binary), "30"], env=env)
    try:
        exec_done(child.pid, str(binary))
        mine = next(p for p in list_processes() if p.pid == child.pid)
        # psutil's own record of the child; not the whole table: others' agents may run on this host
        result = agent.run_agent(context(tmp_path, processes=(mine,)), {})
    finally:
        child.kill()
        child.wait()
    assert mine.name in ("amazon-ssm-agent", "amazon-ssm-agen")  # psutil completes the comm from cmdline
    assert (mine.exe, mine.cmdline) == (str(binary), (str(binary), "30"))
    assert mine.username == pwd.getpwuid(os.getuid()).pw_name
    assert child.pid in [p["pid"] for p in result.evidence["processes"]]
    assert not any("environ" in n for n in result.evidence["notes"]), result.evidence
    assert named(mine, "amazon-ssm-agent") and result.evidence["through_proxy"] == []
    assert result.code == ("" if mine.username == "root" else "not-root")
    assert result.evidence["proxy_env"] == {"HTTPS_PROXY": "http://proxy.corp:3128",
                                            "NO_PROXY": "169.254.169.254,.amazonaws.com"}


def test_environ_reads_stay_bounded(tmp_path):
    put(tmp_path, "proc/7/environ", b"A=1\0" + b"B=" + b"x" * (512 * 1024) + b"\0C=3\0")
    env, problem = read_environ(7, str(tmp_path))
    assert problem == "" and env["A"] == "1" and "C" not in env and len(env["B"]) < 256 * 1024


def test_environ_of_another_users_process_is_a_problem_not_an_exception(tmp_path):
    code = ("import json, os, sys; from vpce_doctor.processes import read_environ; "
            "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
            "print(json.dumps(read_environ(int(sys.argv[1]))))")
    if os.geteuid() == 0:  # a child that gives up root reads its root parent's environ
        out = subprocess.run([sys.executable, "-c", code, str(os.getpid())], capture_output=True, text=True,
                             timeout=10, cwd=str(Path(__file__).resolve().parents[2]))
        env, problem = json.loads(out.stdout)
    else:
        import psutil
        other = next(p.pid for p in psutil.process_iter(["uids"])
                     if p.info["uids"] and p.info["uids"].real != os.getuid())
        env, problem = read_environ(other)
    assert env == {} and "permission denied" in problem and "run the doctor as root" in problem
    assert read_environ(2 ** 22 + 7)[1].endswith("the process has exited")


# --- ssm:agent-logs -------------------------------------------------------------------------------------------

def test_a_50_mb_log_is_read_from_the_end_only(tmp_path):
    path = tmp_path / LOG
    path.parent.mkdir(parents=True)
    filler = (f"{stamp(600)} INFO [MessagingDeliveryService] nothing to see here, just filler text\n" * 2000).encode()
    with open(path, "wb") as handle:
        handle.write(f"{stamp(5)} ERROR EC2RoleRequestError: no EC2 instance role found\n".encode())  # at the start
        while handle.tell() < 50 * 1024 * 1024:
            handle.write(filler)
        handle.write(f"{stamp(2)} ERROR [MessageService] dial tcp 10.0.1.12:443: i/o timeout\n".encode())
    ctx = context(tmp_path)
    result = agent_logs.run_logs(ctx, {})  # fast because bounded: the bytes read below prove it, not a stopwatch
    before = rchar()  # again, warm (the first run also imports _strptime): count the bytes read(2) returned
    agent_logs.run_logs(ctx, {})
    assert LIMIT <= rchar() - before <= LIMIT + 4096
    assert result.evidence["files"]["/var/log/amazon/ssm/amazon-ssm-agent.log"]["bytes_read"] == LIMIT
    assert result.evidence["files"]["/var/log/amazon/ssm/errors.log"] == {"missing": True}
    assert (result.status, result.code) == (Status.WARN, "dial-timeout")
    assert "no-role" not in repr(result.evidence)  # the first line lies 50 MB back: never read
    assert "describe-vpc-endpoints --filters Name=vpc-id,Values=vpc-0abc1234" in result.remedy.commands[0]


def test_a_truncated_binary_log_is_read_without_crashing(tmp_path):
    put(tmp_path, LOG, os.urandom(4096) + b"\x00\xff partial line without end")
    put(tmp_path, ERRORS, b"\xfe\xfe garbage\n" + f"{stamp(3)} ERROR [ssm-session-worker] Failed to upload shell "
                          f"session logs to S3: RequestError\n".encode() + b"\x00\x01\x02")
    result = agent_logs.run_logs(context(tmp_path), {})
    assert (result.status, result.code) == (Status.WARN, "s3-upload")
    json.dumps(result.evidence)


def test_tail_keeps_the_last_line_whole_and_drops_only_a_cut_first_line(tmp_path):
    path = put(tmp_path, "log", "aaaa\nbbbb\ncccc")  # 14 bytes, no newline at the end
    assert agent_logs.read_tail(path, "/log", limit=16).lines == ("aaaa", "bbbb", "cccc")
    assert agent_logs.read_tail(path, "/log", limit=10).lines == ("bbbb", "cccc")  # read starts at the newline
    assert agent_logs.read_tail(path, "/log", limit=8).lines == ("cccc",)         # read starts inside bbbb
    assert agent_logs.read_tail(path, "/log", limit=8).bytes_read == 8
    (tmp_path / "dir.log").mkdir()
    assert agent_logs.read_tail(tmp_path / "dir.log", "/dir.log").problem


def test_no_log_directory_passes_with_a_note(tmp_path):
    result = agent_logs.run_logs(context(tmp_path), {})
    assert result.status is Status.PASS and "agent not installed or logs elsewhere" in result.summary


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=2048), pad=st.sampled_from([0, 100, LIMIT - 10, LIMIT + 1, 3 * LIMIT]),
       line=st.sampled_from([""] + [c["line"].split(" ", 2)[2] for c in CORPUS]))
def test_arbitrary_bytes_never_crash_the_log_parser_and_reads_stay_bounded(content, pad, line):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "amazon-ssm-agent.log"
        path.write_bytes(b"\n" * (pad % 7) + b"y" * pad + content + f"\n{stamp()} {line}\n".encode() + content)
        tail = agent_logs.read_tail(path, "/var/log/amazon/ssm/amazon-ssm-agent.log")
    assert tail.bytes_read <= LIMIT and not tail.missing and not tail.problem
    result = agent_logs.assess_logs([tail, agent_logs.LogTail("/e", missing=True)], datetime.now())
    assert result.status in (Status.PASS, Status.WARN)
    json.dumps(result.evidence)
    text = content.decode("utf-8", "replace")
    assert diagnostics.assess_diagnostics("/usr/bin/ssm-cli", Ran(("ssm-cli",), 0, text)).status is not Status.FAIL


# --- ssm:diagnostics ------------------------------------------------------------------------------------------

def test_fake_ssm_cli_rows_are_folded_into_evidence(tmp_path):
    rows = [{"Check": "EC2 IMDS", "Status": "Success", "Note": "IMDS is accessible"},
            {"Check": "Connectivity to ssmmessages endpoint", "Status": "Failed",
             "Note": "ssmmessages.eu-west-1.amazonaws.com is not reachable"}]
    put(tmp_path, "tmp/rows.json", json.dumps({"DiagnosticsOutput": rows}, indent=2))
    script(tmp_path, "usr/bin/ssm-cli",
           f'[ "$1 $2 $3" = "get-diagnostics --output json" ] && cat {tmp_path}/tmp/rows.json')
    result = diagnostics.run_diagnostics(context(tmp_path), {})
    assert (result.status, result.code) == (Status.WARN, "diagnostics-failed")
    assert result.evidence["rows"][1] == {"check": "Connectivity to ssmmessages endpoint", "status": "Failed",
                                          "note": "ssmmessages.eu-west-1.amazonaws.com is not reachable",
                                          "ours": "tcp:ssmmessages", "counts": "counts"}


def test_fake_ssm_cli_that_hangs_is_killed_with_its_children(tmp_path):
    pidfile = tmp_path / "sleeper.pid"
    script(tmp_path, "usr/bin/ssm-cli", f"sleep 30 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    result = diagnostics.run_diagnostics(context(tmp_path, deadline_s=1.0), {})
    assert time.monotonic() - started < 1.5
    assert (result.status, result.code) == (Status.WARN, "timeout") and "was killed" in result.summary
    sleeper = int(pidfile.read_text())
    time.sleep(0.05)
    assert not Path(f"/proc/{sleeper}").exists() or "Z" in Path(f"/proc/{sleeper}/stat").read_text().split()[2]


def test_ssm_cli_absent_passes_and_garbage_warns(tmp_path):
    assert "ssm-cli not present" in diagnostics.run_diagnostics(context(tmp_path), {}).summary
    script(tmp_path, "snap/amazon-ssm-agent/current/ssm-cli", "head -c 100000 /dev/urandom")
    result = diagnostics.run_diagnostics(context(tmp_path), {})
    assert (result.status, result.code) == (Status.WARN, "garbage")
    json.dumps(result.evidence)
