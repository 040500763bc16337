"""Issue 12: the doctor against hostile files, flags and servers. Each test failed on 0.1.0.

Files are FIFOs, devices, huge or deeply nested ones made in tmp dirs (the doctor reads them under the root main() is given);
servers listen on loopback only. Nothing touches the host's /etc or /var.
"""
from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import validate_report
from tests.integration.conftest import REGION, metadata
from tests.servers import ImdsServer
from vpce_doctor import cli, plan
from vpce_doctor.checks import resolver
from vpce_doctor.model import ExitCode


def doctor(*argv: str, environ=None, root="/"):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), environ=dict(environ or {}), stdout=out, stderr=err, root=str(root))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def root(tmp_path):
    """An empty instance root with an empty config, so neither the host's /etc nor its agent config count."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "doctor.conf").write_text("[vpce-doctor]\n")
    return tmp_path


def base_env(root: Path, imds: str = "http://127.0.0.1:9") -> dict:
    return {"VPCE_DOCTOR_CONFIG": str(root / "doctor.conf"),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds}


def within(seconds: float):
    """Run the body and fail if it took longer: a hang shows as a failure, not as a stuck suite."""
    class Timer:
        def __enter__(self):
            self.started = time.monotonic()
            return self

        def __exit__(self, *exc):
            self.elapsed = time.monotonic() - self.started
            assert exc[0] is not None or self.elapsed < seconds, f"took {self.elapsed:.1f} s"
    return Timer()


def fifo_with_watchdog(path: Path) -> Path:
    """A FIFO nobody writes; a watchdog opens it after 20 s so that a regression fails instead of hanging CI."""
    os.mkfifo(path)

    def unblock():
        time.sleep(20)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    threading.Thread(target=unblock, daemon=True).start()
    return path


# 1. --config / VPCE_DOCTOR_CONFIG on a FIFO hung; on /dev/zero memory grew until MemoryError.
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "huge"])
def test_a_config_that_is_no_regular_file_is_a_usage_error_at_once(root, kind):
    target = {"fifo": lambda: fifo_with_watchdog(root / "conf.fifo"), "dev-zero": lambda: Path("/dev/zero"),
              "directory": lambda: root / "etc",
              "huge": lambda: _write(root / "huge.conf", "[vpce-doctor]\n" + "#" * 200_000 + "\n")}[kind]()
    with within(3):
        code, _, err = doctor("--list-checks", "--config", str(target), root=root, environ=base_env(root))
    assert code == ExitCode.USAGE, err
    assert err.startswith(f"vpce-doctor: config file {target} cannot be read") and err.count("\n") == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# 2. amazon-ssm-agent.json as a FIFO hung even --list-checks; 200,000 nested brackets gave RecursionError (exit 70).
@pytest.mark.parametrize("content", ["fifo", "[" * 200_000, '{"Agent": {"Region": 1e999}}', '{"Mds": NaN}'])
def test_a_hostile_agent_config_is_a_problem_noted_never_a_hang_or_crash(root, content):
    config = root / plan.AGENT_CONFIG
    config.parent.mkdir(parents=True)
    fifo_with_watchdog(config) if content == "fifo" else config.write_text(content)
    with within(3):
        code, out, err = doctor("--list-checks", "--region", REGION, root=root, environ=base_env(root))
    assert code == ExitCode.OK and "ssm:agent" in out and err == ""
    agent = plan.read_agent_config(str(root))
    assert agent.found and agent.problem and agent.endpoints == ()


# 3. An IMDS dripping one byte a second broke --timeout: 1 s per read, not per request (--timeout 3 took 15 s).
def test_an_imds_that_drips_cannot_outlive_the_timeout(root):
    with ImdsServer(mode="drip") as imds:
        started = time.monotonic()
        code, out, _ = doctor("--timeout", "3", "--region", REGION, "--only", "imds", "--output", "json",
                              root=root, environ=base_env(root, f"http://127.0.0.1:{imds.port}"))
        elapsed = time.monotonic() - started
    assert elapsed < 3.5, f"--timeout 3 took {elapsed:.1f} s"
    report = validate_report(json.loads(out))
    assert code == report["exit_code"] != 0
    assert report["findings"][0]["id"] == "imds:token" and report["findings"][0]["code"] == "timeout"


# 5. resolv.conf with 20,000 nameservers started a thread (and a query) for each; glibc uses the first three.
def test_only_the_first_three_nameservers_count(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("".join(f"nameserver 10.0.{i // 250}.{i % 250 + 1}\n" for i in range(20_000)))
    servers, problem = resolver.read_resolv_conf(conf)
    assert servers == ("10.0.0.1", "10.0.0.2", "10.0.0.3") and problem == ""


# 6. /etc/hosts pointing at /dev/zero was read without a limit (GBs resident).
@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_hosts_on_a_device_or_fifo_is_a_finding_not_a_flood(root, target):
    hosts = root / "etc" / "hosts"
    if target == "fifo":
        fifo_with_watchdog(hosts)
    else:
        hosts.symlink_to(target)
    with within(3):
        code, out, _ = doctor("--region", REGION, "--only", "local:hosts", "--output", "json", root=root,
                              environ=base_env(root))
    finding = validate_report(json.loads(out))["findings"][0]
    assert (finding["id"], finding["status"], finding["code"]) == ("local:hosts", "warn", "unreadable")
    assert "not a regular file" in finding["summary"] and code == ExitCode.OK


def test_a_huge_hosts_file_is_read_only_up_to_its_cap(root):
    hosts = root / "etc" / "hosts"
    # a loopback address: local:hosts probes what is pinned, and tests never leave loopback
    hosts.write_text("127.0.0.9 ssm.eu-west-1.amazonaws.com\n" + "# filler\n" * 400_000)
    code, out, _ = doctor("--region", REGION, "--only", "local:hosts", "--output", "json", root=root,
                          environ=base_env(root))
    finding = validate_report(json.loads(out))["findings"][0]
    assert finding["status"] != "pass" and "127.0.0.9" in finding["summary"], finding


# 22. One exit policy: the CLI returns only ExitCode members (INTERNAL = 70 included), whatever happened.
@pytest.mark.parametrize("argv", [["--list-checks", "--region", REGION], ["--timeout", "x"], ["fleet", "--bogus"],
                                  ["--region", REGION, "--only", "local:hosts"]])
def test_the_cli_returns_only_exit_code_members(root, argv):
    code, _, _ = doctor(*argv, root=root, environ=base_env(root))
    assert isinstance(code, ExitCode) and ExitCode.INTERNAL == 70


# 17-21. Flags that passed validation and then crashed a check (exit 2), or valid ones refused.
BAD_FLAGS = [
    ("--resolver", "1.2.3.4:99999"), ("--resolver", "127.0.0.1:"), ("--resolver", "a:b"), ("--resolver", "ffff"),
    ("--resolver", "999.999.999.999"), ("--resolver", "["), ("--resolver", ":0"), ("--resolver", "[::1]x"),
    ("--resolver", "127.0.0.1:0"), ("--resolver", "127.0.0.1:٥٣"),
    ("--region", "eu-west-٣"), ("--timeout", "٣"), ("--timeout", "inf"), ("--timeout", "nan"), ("--timeout", "1_0"),
    ("--log-group", "/vpce-doctor/répports"), ("--log-group", "a\u202eb"),
    ("--key-prefix", "\udcff"),  # what Python makes of argv byte 0xff (surrogateescape)
    ("--key-prefix", "a\x1b[2Jb"), ("--key-prefix", "a\u202eb"), ("--session-document", "x\x00y"),
]


@pytest.mark.parametrize("flag, value", BAD_FLAGS, ids=[f"{f}={v!r}" for f, v in BAD_FLAGS])
def test_a_bad_flag_is_a_usage_error_never_a_crashed_check(root, flag, value):
    code, out, err = doctor("--region", REGION, "--only", "dns:resolver", flag, value, root=root,
                            environ=base_env(root))
    assert code == ExitCode.USAGE, (code, out, err)
    assert err.startswith("vpce-doctor: ") and err.count("\n") == 1 and out == ""


@pytest.mark.parametrize("value, expected", [("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
                                             ("::1", ("::1", 53)), ("[::1]", ("::1", 53)),
                                             ("[fd00:ec2::253]:53", ("fd00:ec2::253", 53))])
def test_every_resolver_form_the_help_names_is_accepted(value, expected):
    from vpce_doctor.settings import resolver_address
    assert resolver_address(value) == expected


# 21. --timeout 1 and 1.5 were refused: "connect-timeout must be at most the timeout", though none was given.
@pytest.mark.parametrize("timeout", ["1", "1.5"])
def test_a_short_timeout_alone_is_valid(root, timeout):
    from vpce_doctor.settings import load
    settings = load({"timeout": timeout}, {"VPCE_DOCTOR_CONFIG": str(root / "doctor.conf")})
    assert settings.timeout == float(timeout) and settings.connect_timeout == float(timeout)
    with pytest.raises(Exception, match="connect-timeout"):  # an explicit one still has to fit
        load({"timeout": timeout, "connect_timeout": "2"}, {"VPCE_DOCTOR_CONFIG": str(root / "doctor.conf")})


# 18. --ca-bundle missing, a directory, binary or a FIFO: TLS checks "crashed ... a bug" (exit 2) or ran to the
# deadline. The flag is a usage error; the variable (set by someone else) is a clear finding.
@pytest.mark.parametrize("kind", ["missing", "directory", "binary", "fifo"])
def test_a_bad_ca_bundle_flag_is_a_usage_error(root, kind):
    path = {"missing": lambda: root / "nope.pem", "directory": lambda: root / "etc",
            "binary": lambda: _write_bytes(root / "bin.pem", bytes(range(256)) * 10),
            "fifo": lambda: fifo_with_watchdog(root / "ca.fifo")}[kind]()
    with within(3):
        code, _, err = doctor("--region", REGION, "--only", "tls", "--ca-bundle", str(path), root=root,
                              environ=base_env(root))
    assert code == ExitCode.USAGE and f"ca-bundle {path}" in err, err


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["missing", "binary", "fifo"])
def test_a_bad_aws_ca_bundle_is_a_tls_finding_not_a_crash(world, tmp_path, kind):
    path = {"missing": lambda: tmp_path / "nope.pem", "binary": lambda: _write_bytes(tmp_path / "b.pem", b"\x00" * 99),
            "fifo": lambda: fifo_with_watchdog(tmp_path / "ca.fifo")}[kind]()
    world.environ["AWS_CA_BUNDLE"] = str(path)
    with within(4):
        run = world.doctor("--ca-bundle", "", only=["tls:ssm"])
    finding = run.finding("tls:ssm")
    assert (finding["status"], finding["code"]) == ("fail", "ca-bundle") and str(path) in finding["summary"]
    assert run.code == ExitCode.PROBLEMS


# Round 3 (robustness pass over round 2's proxy probe): the CONNECT's status line was read with a timeout per recv,
# so a proxy dripping a byte every 0.5 s held local:proxy for up to 1,024 reads (minutes) under a 1 s timeout.
def test_a_proxy_that_drips_its_status_line_cannot_outlive_the_probe_timeout():
    from vpce_doctor.checks import proxy as proxy_probe
    listener = socket.create_server(("127.0.0.1", 0))

    def drip():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 Connection established, slowly" * 10:
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.5)
    threading.Thread(target=drip, daemon=True).start()
    started = time.monotonic()
    outcome = proxy_probe.tunnel(f"http://127.0.0.1:{listener.getsockname()[1]}", "127.0.0.1",
                                 "ssm.eu-west-1.amazonaws.com", 443, 1.0)
    elapsed = time.monotonic() - started
    listener.close()
    assert outcome["result"] == "timeout" and elapsed < 5, (outcome, elapsed)  # the old reads: over 200 s
