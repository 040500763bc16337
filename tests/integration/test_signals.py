"""SIGTERM and SIGINT mid-run, to the real console script: it stops at once with a full report (exit 2) in which every
unfinished check is ERROR "interrupted", prints no traceback, and leaves nothing running.

The run is made slow on loopback only: a resolver that drops every query (the checks wait), or an IMDS that holds
the token PUT as behind a hop limit of 1 (the facts wait). Nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import validate_report
from tests.integration.conftest import REGION, metadata
from tests.servers import DnsServer, ImdsServer

# The console script's entry (signals, exit code, os._exit) on an empty instance root (main()'s seam): tests/launch.py
PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
LAUNCH = Path(__file__).resolve().parents[2] / "tests" / "launch.py"
EXPECTED_IDS = ["dns:resolver"] + [f"{layer}:{s}" for layer in ("dns", "tcp", "tls")
                                   for s in ("ssm", "ssmmessages", "ec2messages", "s3")]
PROBE = f"{REGION}.amazonaws.com"  # what dns:resolver asks first (SOA), so a query for it means the checks run
FINISHED = "interrupted: the run was stopped before this check finished"
NOT_STARTED = "interrupted: the run was stopped before this check started"


@pytest.fixture(scope="module")
def servers():
    """A resolver that drops everything, an IMDS that answers, and one that never answers the token PUT."""
    with DnsServer(default="timeout") as dns, ImdsServer(metadata=metadata()) as imds, \
            ImdsServer(metadata=metadata(), mode="hop-limit") as held:
        yield dns, imds, held


def spawn(tmp_path: Path, dns: DnsServer, imds: ImdsServer, output: str) -> subprocess.Popen:
    root, config = tmp_path / "root", tmp_path / "vpce-doctor.conf"
    root.mkdir()
    config.write_text("[vpce-doctor]\n")  # neither the host's /etc/vpce-doctor nor its agent config count
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(tmp_path),
           "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{imds.port}"}
    argv = [str(PYTHON), str(LAUNCH), "--root", str(root), "--", "--region", REGION, "--resolver",
            f"127.0.0.1:{dns.port}", "--only", "dns", "tcp", "tls", "--output", output, "--timeout", "20",
            "--connect-timeout", "10", "--config", str(config)]
    # Its own session: every process it could leave behind is findable by session id afterwards.
    return subprocess.Popen(argv, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_for(condition, what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


def read_line(proc: subprocess.Popen, limit: float = 10.0) -> bytes:
    """Bytes from stdout up to the first newline (the header), without blocking past `limit`."""
    data, deadline = b"", time.monotonic() + limit
    while b"\n" not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no header line within {limit} s: {data!r}"
        if select.select([proc.stdout], [], [], left)[0]:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"stdout closed before the header: {data!r}"
            data += chunk
    return data


def session_members(sid: int):
    """Live processes in session `sid` (the doctor's own, since it was started with start_new_session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


CASES = [
    # output, signals, phase: "checks" (the resolver is silent) or "facts" (IMDS holds the token PUT)
    ("text", (signal.SIGTERM,), "checks"),
    ("text", (signal.SIGINT,), "checks"),
    ("json", (signal.SIGTERM,), "checks"),
    ("json", (signal.SIGINT,), "checks"),
    ("json", (signal.SIGTERM,), "facts"),
    ("json", (signal.SIGINT,), "facts"),
    ("json", (signal.SIGTERM, signal.SIGINT), "checks"),  # a second signal must not break the report
]


@pytest.mark.parametrize("output, signals, phase", CASES,
                         ids=[f"{o}-{'+'.join(s.name for s in sig)}-during-{p}" for o, sig, p in CASES])
def test_a_signal_mid_run_ends_it_with_a_full_report(servers, tmp_path, output, signals, phase):
    dns, imds, held = servers
    probes_before, puts_before = dns.queries.get(PROBE, 0), len(held.requests)
    started = time.monotonic()
    proc = spawn(tmp_path, dns, imds if phase == "checks" else held, output)
    head = b""
    try:
        if output == "text":  # the header is written once the facts are in, before any check
            head = read_line(proc)
        elif phase == "checks":
            time.sleep(0.5)
            wait_for(lambda: dns.queries.get(PROBE, 0) > probes_before, "dns:resolver's query")
        else:
            time.sleep(0.3)
            wait_for(lambda: len(held.requests) > puts_before, "the token PUT")
            assert held.requests[-1][:2] == ("PUT", "/latest/api/token")
        assert proc.poll() is None, "the run ended before the signal: it was not slow enough"
        signalled = time.monotonic()
        for sig in signals:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        stopped = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    out = (head + out).decode()
    err = err.decode()

    assert proc.returncode == 2, (proc.returncode, err)
    assert stopped < 2.0, f"took {stopped:.2f} s to stop"  # the checks alone would have waited 10 s
    assert time.monotonic() - started < 8
    assert err == "", err  # no traceback, and no "interrupted before the checks started" without a report
    assert "Traceback" not in out
    assert session_members(proc.pid) == []  # no child left behind, not even a daemon thread's subprocess

    # After the header, the signal may beat the runner to it: then no check had started, which the summary says.
    summaries = (FINISHED, NOT_STARTED) if output == "text" else (FINISHED,) if phase == "checks" else (NOT_STARTED,)
    if output == "json":
        report = validate_report(json.loads(out))
        assert report["exit_code"] == 2
        assert [f["id"] for f in report["findings"]] == EXPECTED_IDS
        assert {(f["status"], f["code"], f["summary"]) for f in report["findings"]} == {("error", "interrupted",
                                                                                         summaries[0])}
        assert report["summary"]["counts"] == {"pass": 0, "warn": 0, "fail": 0, "skip": 0, "error": 13}
        assert report["instance"]["instance_id"] == ("i-0123456789abcdef0" if phase == "checks" else None)
        assert report["instance"]["region"] == REGION
        assert report["duration_s"] < stopped + (signalled - started)
    else:
        lines = out.splitlines()
        assert lines[0] == "vpce-doctor 0.1.0 · i-0123456789abcdef0 · eu-west-1a · vpc-0abc1234 127.0.0.0/24"
        errors = [line for line in lines if line.startswith("[ERR ]")]
        assert [line.split()[2] for line in errors] == EXPECTED_IDS
        assert any(all(line.endswith(summary) for line in errors) for summary in summaries), errors
        assert re.fullmatch(r"incomplete: 0 passed, 0 warned, 0 failed, 0 not run, 13 errors in \d+\.\d\d s "
                            r"\(exit 2\)", lines[-1]), lines[-1]


def test_an_interrupted_run_exits_with_the_code_its_report_prints(servers, tmp_path):
    """Issue 12 item 22: with a check already failed, SIGTERM printed "(exit 1)" and exited 2. One exit policy:
    the report alone decides, so the process exits 1 too."""
    dns, imds, _ = servers
    dns.set(PROBE, "127.0.0.53")   # dns:resolver answers (SOA: NOERROR), so the name checks start
    dns.set(f"ssm.{REGION}.amazonaws.com", "127.0.1.5")  # outside the VPC's 127.0.0.0/24: dns:ssm fails at once
    try:
        proc = spawn(tmp_path, dns, imds, "text")
        out = b""
        try:
            deadline = time.monotonic() + 10
            while b"dns:ssm " not in out:
                assert time.monotonic() < deadline, out
                if select.select([proc.stdout], [], [], 0.2)[0]:
                    out += os.read(proc.stdout.fileno(), 4096)
            proc.send_signal(signal.SIGTERM)
            rest, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    finally:
        dns.reset(default="timeout")
    last = (out + rest).decode().splitlines()[-1]
    assert re.search(r"\(exit 1\)$", last), last
    assert proc.returncode == 1, (proc.returncode, err)
