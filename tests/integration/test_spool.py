"""Issue 12: --ship loses no report. The spool against hostile directories and files, and CloudWatch Logs (moto's,
on loopback) rejecting, answering slowly or not at all. Each test failed on 0.1.0.

CloudWatch stores what PutLogEvents accepts and names what it rejects in rejectedLogEventsInfo: events more than 2
hours ahead, older than 14 days or than the group's retention
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html); moto 5 answers the
same (moto/logs/models.py put_log_events).
"""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from vpce_doctor import delivery, ship, spool as spool_mod
from vpce_doctor.context import Context
from vpce_doctor.facts import Facts, Imds
from vpce_doctor.plan import AgentConfig
from vpce_doctor.settings import Settings

GROUP, STREAM = "/vpce-doctor/reports", "i-0123456789abcdef0"
DAY_MS = 24 * 3600 * 1000


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_logs():
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class Slow:
    """A TCP relay on loopback that holds every chunk the client sends for `delay` seconds: a Logs endpoint
    that answers each request late."""

    def __init__(self, target: str, delay: float):
        self.host, self.port = target.rsplit("//", 1)[1].split(":")
        self.delay, self.listener = delay, socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.host, int(self.port)))
            threading.Thread(target=self._pump, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0), daemon=True).start()

    @staticmethod
    def _pump(source, sink, delay):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


class Clients:
    """The one seam: Context.clients, here a real botocore logs client pointed at moto on loopback."""

    def __init__(self, url: str):
        import botocore.session
        self.url, self.remaining = url, lambda: 10.0
        self.session = botocore.session.Session()

    def client(self, service: str):
        from botocore.config import Config
        timeout = max(0.1, self.remaining())  # as vpce_doctor.aws.Clients does: cut to what is left
        return self.session.create_client(
            service, region_name="eu-west-1", endpoint_url=self.url, aws_access_key_id="testing",
            aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1},
                                                           read_timeout=timeout, connect_timeout=min(1, timeout)))


def context(tmp_path: Path, url: str, timeout: float = 20.0, spool_dir=None) -> Context:
    settings = Settings(region="eu-west-1", ship=True, timeout=timeout, connect_timeout=min(2.0, timeout),
                        spool_dir=str(spool_dir or tmp_path / "spool"), log_group=GROUP)
    return Context(settings, Facts(Imds("http://127.0.0.1:9")), (), AgentConfig(""), {}, time.monotonic() + 0.0,
                   clients=Clients(url))


def report(started_at: str = "2026-01-01T00:00:00.000Z", fail: int = 0) -> dict:
    return {"schema": "vpce-doctor/report/1", "started_at": started_at, "exit_code": 1 if fail else 0,
            "instance": {"instance_id": STREAM, "region": "eu-west-1"},
            "summary": {"counts": {"pass": 1, "warn": 0, "fail": fail, "skip": 0, "error": 0}, "root_causes": [],
                        "warnings": []}, "findings": []}


def logs(url: str):
    return Clients(url).client("logs")


@pytest.fixture
def group(moto_logs):
    client = logs(moto_logs)
    try:
        client.delete_log_group(logGroupName=GROUP)
    except client.exceptions.ResourceNotFoundException:
        pass
    client.create_log_group(logGroupName=GROUP)
    return client


def shipped(client) -> list:
    try:
        found = client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, startFromHead=True)
    except client.exceptions.ResourceNotFoundException:
        return []
    return [json.loads(e["message"]) for e in found["events"]]


def spool_files(directory: Path, pattern: str = "*.json"):
    return sorted(p.name for p in directory.glob(pattern))


# 9. rejectedLogEventsInfo was ignored: a report CloudWatch rejected was deleted from the spool as shipped.
def test_a_report_cloudwatch_rejects_as_too_old_is_not_counted_shipped(tmp_path, moto_logs, group):
    ctx = context(tmp_path, moto_logs)
    old = spool_mod.Spool(ctx.settings.spool_dir)
    old.add([(int(time.time() * 1000) - 15 * DAY_MS, json.dumps({"old": True}))])  # 15 days old: never accepted
    line = delivery.deliver(ctx, report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM}; 1 spooled report(s) rejected by " \
                   f"CloudWatch (too old), set aside in {ctx.settings.spool_dir} as *.rejected"
    assert [e.get("old") for e in shipped(group)] == [None]
    spool_dir = Path(ctx.settings.spool_dir)
    assert spool_files(spool_dir) == [] and len(spool_files(spool_dir, "*.rejected")) == 1


def test_this_runs_report_rejected_as_too_new_stays_in_the_spool(tmp_path, moto_logs, group, monkeypatch):
    ctx = context(tmp_path, moto_logs)
    ahead = time.time() + 3 * 3600  # the instance clock runs 3 hours fast
    monkeypatch.setattr(ship.time, "time", lambda: ahead)
    line = delivery.deliver(ctx, report())
    assert line.startswith("vpce-doctor: report not shipped (CloudWatch rejected its timestamp as more than 2 hours "
                           "ahead; kept in the spool)"), line
    assert shipped(group) == [] and len(spool_files(Path(ctx.settings.spool_dir))) == 1


# 4. Draining ignored the deadline: 10 spooled reports and a Logs endpoint answering in 1.5 s took 33.5 s for
# --timeout 4. Now: as many files per PutLogEvents call as fit, and never past the run's deadline.
def test_draining_a_full_spool_through_a_slow_endpoint_holds_the_deadline(tmp_path, moto_logs, group):
    slow = Slow(moto_logs, 1.5)
    try:
        ctx = context(tmp_path, slow.url, timeout=4)
        now = int(time.time() * 1000)
        for i in range(10):
            spool_mod.Spool(ctx.settings.spool_dir).add([(now - 1000 + i, json.dumps({"n": i}))])
        started = time.monotonic()
        ctx = replace(ctx, deadline=started)  # the checks used their part; shipping has its reserve (1 s) only
        line = delivery.deliver(ctx, report())
        elapsed = time.monotonic() - started
    finally:
        slow.close()
    assert elapsed < 2.5, f"{elapsed:.1f} s past the checks' deadline: {line}"
    assert "not shipped" in line and len(spool_files(Path(ctx.settings.spool_dir))) == 11  # nothing lost


def test_a_full_spool_goes_out_in_one_call_when_the_endpoint_is_fast(tmp_path, moto_logs, group):
    ctx = context(tmp_path, moto_logs)
    now = int(time.time() * 1000)
    for i in range(10):
        spool_mod.Spool(ctx.settings.spool_dir).add([(now - 1000 + i, json.dumps({"n": i}))])
    line = delivery.deliver(replace(ctx, deadline=time.monotonic() + 0.5), report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM} with 10 spooled report(s)"
    assert [e.get("n") for e in shipped(group)] == list(range(10)) + [None]
    assert spool_files(Path(ctx.settings.spool_dir)) == []


def test_three_thousand_spool_files_are_trimmed_in_linear_time(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    for i in range(3000):
        (directory / f"report-{10**12 + i:015d}-1-{i}.json").write_text(json.dumps([[10**12 + i, "x"]]))
    started = time.monotonic()
    _, dropped = spool_mod.Spool(str(directory)).add([(10**12 + 5000, "new")])
    assert time.monotonic() - started < 2.0
    assert dropped == 3001 - spool_mod.SPOOL_FILES and len(spool_files(directory)) == spool_mod.SPOOL_FILES


# 10. Spool files with Infinity, 1e999 or deep nesting raised OverflowError/RecursionError and blocked the queue for
# good; NUL bytes in the dropped counter gave exit 70.
HOSTILE = ['[[Infinity, "x"]]', '[[1e999, "x"]]', "[" * 100_000 + "]" * 100_000, '[[NaN, "x"]]', '[[1.5, "x"]]',
           '[[true, "x"]]', '{"a": 1}', "", "\x00\x00", '[["1", "x"]]', '[[1, 2]]']


@pytest.mark.parametrize("content", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_spool_file_is_set_aside_and_the_queue_moves_on(tmp_path, moto_logs, group, content):
    ctx = context(tmp_path, moto_logs)
    directory = Path(ctx.settings.spool_dir)
    directory.mkdir(mode=0o700)
    (directory / "report-000000000000001-1-1.json").write_text(content)
    (directory / spool_mod.COUNTER).write_bytes(b"1\x002")
    line = delivery.deliver(ctx, report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM}; 1 spooled report(s) unreadable, set " \
                   "aside as *.bad", line
    assert len(shipped(group)) == 1 and spool_files(directory, "*.bad") == ["report-000000000000001-1-1.bad"]


# 11. A spool-dir holding other *.json files: 0.1.0 renamed, shipped or deleted them (amazon-ssm-agent.json -> .bad).
def test_the_spool_touches_only_files_it_wrote(tmp_path, moto_logs, group):
    ctx = context(tmp_path, moto_logs)
    directory = Path(ctx.settings.spool_dir)
    directory.mkdir(mode=0o700)
    foreign = {"amazon-ssm-agent.json": '{"Agent": {}}', "seelog.xml": "<x/>", "0001.json": "[[1, \"x\"]]",
               "dropped": "7", "report-1.json": "[]"}
    for name, text in foreign.items():
        (directory / name).write_text(text)
    line = delivery.deliver(ctx, report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM}"
    assert {p.name: p.read_text() for p in directory.iterdir() if not p.name.startswith(".")} == foreign


# 13. Symlinks in the spool (.lock, dropped) were followed by root; the owner was never checked.
@pytest.mark.parametrize("link", [spool_mod.LOCK, spool_mod.COUNTER, "report-000000000000001-1-1.json"])
def test_symlinks_in_the_spool_are_never_followed(tmp_path, moto_logs, group, link):
    ctx = context(tmp_path, moto_logs)
    directory = Path(ctx.settings.spool_dir)
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (directory / link).symlink_to(victim)
    line = delivery.deliver(ctx, report())
    assert victim.read_text() == "precious" and victim.stat().st_mode & 0o777 == 0o644  # never written through
    assert not (directory / link).exists() or (directory / link).is_symlink()  # at most the link itself removed
    assert "report shipped" in line and len(shipped(group)) == 1, line


def test_a_spool_dir_that_is_a_symlink_or_not_ours_is_refused_but_the_report_still_ships(tmp_path, moto_logs,
                                                                                         group):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "spool").symlink_to(real)
    line = delivery.deliver(context(tmp_path, moto_logs), report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM}; not spooled first: spool " \
                   f"{tmp_path / 'spool'} cannot be used: is a symlink"
    assert list(real.iterdir()) == [] and len(shipped(group)) == 1


# 8. A read-only or unwritable spool directory stopped all shipping, even with Logs reachable. Made read-only by a
# bind mount in a private mount namespace (root ignores permission bits), so the host's mounts never change.
def test_a_read_only_spool_does_not_stop_shipping(tmp_path, moto_logs, group):
    import subprocess
    import sys
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    script = ("import sys; from tests.integration import test_spool as t; from pathlib import Path; "
              "print(t.delivery.deliver(t.context(Path(sys.argv[1]), sys.argv[2]), t.report()))")
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind -o ro "$1/spool" "$1/spool" && exec "$2" -c "$3" "$1" "$4"', "sh", str(tmp_path),
         sys.executable, script, moto_logs], capture_output=True, text=True, timeout=60,
        cwd=str(Path(__file__).resolve().parents[2]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"vpce-doctor: report shipped to {GROUP} stream {STREAM}; not spooled first: spool "
                                  f"{directory} cannot be used"), done.stdout
    assert len(shipped(group)) == 1 and list(directory.iterdir()) == []


# 14. Spool reports were world-readable under Run Command's umask (dir 0755, files 0644).
def test_spool_modes_are_0700_and_0600_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o755)
        spool_mod.Spool(str(loose)).add([(10**12, "x")])
        fresh = tmp_path / "a" / "b"
        spool_mod.Spool(str(fresh)).add([(10**12, "x")])
    finally:
        os.umask(old)
    for directory in (loose, fresh):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {0o600}


def test_a_dead_logs_endpoint_leaves_the_report_spooled(tmp_path):
    port = free_port()  # nothing listens: refused at once
    ctx = context(tmp_path, f"http://127.0.0.1:{port}")
    line = delivery.deliver(ctx, report())
    assert line.startswith("vpce-doctor: report not shipped (ShipError: PutLogEvents") and "spooled in" in line
    files = spool_files(Path(ctx.settings.spool_dir))
    assert len(files) == 1 and spool_mod.REPORT_RE.match(files[0])


# 7. SIGTERM while shipping: the report was neither shipped nor spooled (KeyboardInterrupt is no Exception).
def test_an_interrupt_while_shipping_leaves_the_report_spooled(tmp_path, moto_logs, group, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what the SIGTERM handler raises in the main thread mid-call
    monkeypatch.setattr(ship, "put", interrupted)
    ctx = context(tmp_path, moto_logs)
    line = delivery.deliver(ctx, report())
    assert line == f"vpce-doctor: interrupted while shipping; the report waits in {ctx.settings.spool_dir} for " \
                   "the next run"
    monkeypatch.undo()
    assert len(spool_files(Path(ctx.settings.spool_dir))) == 1
    assert delivery.deliver(ctx, report(fail=1)).endswith("with 1 spooled report(s)")
    assert [e["Failures"] for e in shipped(group)] == [0, 1]


def old_spool(directory: Path, dropped: str = "3") -> list:
    """A spool directory as 0.1.0 left it (git show 851df2c:vpce_doctor/ship.py, Spool.add, run with a full spool):
    mode 0755, an empty .lock, reports named <ms:015d>-<pid>-<ns>.json holding [[ms, message]], files 0644, and
    "dropped" holding the digits of how many reports it dropped for lack of room."""
    directory.mkdir(mode=0o755)
    (directory / ".lock").write_text("")
    now = int(time.time() * 1000) - 60_000
    names = [f"{now + i:015d}-32006-1084808639450{i}.json" for i in range(2)]
    for i, name in enumerate(names):
        (directory / name).write_text(json.dumps([[now + i, json.dumps({"old": i})]]))
        (directory / name).chmod(0o644)
    (directory / "dropped").write_text(dropped)
    return names


# Issue 12 (round 3): 0.1.0's dropped counter was not carried over; now told once, and 0.1.0's files left in place.
def test_a_spool_left_by_0_1_0_ships_its_reports_and_tells_its_dropped_count_once(tmp_path, moto_logs, group):
    ctx = context(tmp_path, moto_logs)
    directory = Path(ctx.settings.spool_dir)
    old_spool(directory)
    line = delivery.deliver(ctx, report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM} with 2 spooled report(s); 3 report(s) " \
                   "had been dropped from a full spool", line
    assert [e.get("old") for e in shipped(group)] == [0, 1, None]
    assert delivery.deliver(ctx, report()) == f"vpce-doctor: report shipped to {GROUP} stream {STREAM}"
    (directory / "dropped").write_text("5")  # 0.1.0 ran again (a rollback) and dropped two more
    assert delivery.deliver(ctx, report()).endswith("; 2 report(s) had been dropped from a full spool")
    assert (directory / "dropped").read_text() == "5" and (directory / ".lock").exists()


@pytest.mark.parametrize("dropped", ["7\n", "", "1\x002", "-3", "9" * 13])
def test_a_dropped_file_not_in_0_1_0s_form_is_neither_counted_nor_touched(tmp_path, moto_logs, group, dropped):
    ctx = context(tmp_path, moto_logs)
    directory = Path(ctx.settings.spool_dir)
    old_spool(directory, dropped)
    line = delivery.deliver(ctx, report())
    assert line == f"vpce-doctor: report shipped to {GROUP} stream {STREAM} with 2 spooled report(s)", line
    assert (directory / "dropped").read_text() == dropped


def test_a_failed_drain_keeps_the_dropped_counts_for_the_run_that_ships(tmp_path, moto_logs, group):
    port = free_port()  # nothing listens: PutLogEvents fails
    ctx = context(tmp_path, f"http://127.0.0.1:{port}")
    directory = Path(ctx.settings.spool_dir)
    old_spool(directory)
    (directory / spool_mod.COUNTER).write_text("4")
    assert "not shipped" in delivery.deliver(ctx, report())
    line = delivery.deliver(context(tmp_path, moto_logs), report())
    assert line.endswith("; 7 report(s) had been dropped from a full spool"), line
