"""The long-lived lab: a Python API (Lab) and the session-scoped pytest fixture `lab`.

    from tests.lab.fixture import lab          # in a conftest.py: makes the fixture available

    def test_something(lab):
        lab.switch("endpoint-sg-missing-443")  # a name in tests/lab/scenarios/, a path, or a dict of overrides
        done = lab.run([sys.executable, "-m", "vpce_doctor", "--json"], env={"AWS_REGION": "ap-northeast-1"})
        assert done.returncode == 1

Lab.start() runs `unshare ... inner.sh RUN PYTHON SCENARIO --serve` (labd in the foreground as the lab's main
process) and waits for RUN/ready.json; Lab.run() enters the lab's user, network, mount and PID namespaces with
nsenter; Lab.stop() SIGKILLs the unshare process, which takes the whole PID namespace with it.

When the tests themselves already run inside a lab (`tests/lab/run SCENARIO -- pytest ...`), the fixture attaches to
that lab (found through $VPCLAB_RUN) instead of starting a second one, and Lab.run() is a plain subprocess.

Only the standard library is needed, so tests/lab/run uses this module too; the fixture is defined only when
pytest is already imported (as it is for any conftest.py).
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence, Union

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCENARIOS = HERE / "scenarios"
INNER = HERE / "inner.sh"
UNSHARE_FLAGS = ["--user", "--map-root-user", "--net", "--mount", "--propagation", "private", "--pid", "--fork",
                 "--kill-child"]
# What a command inside the lab inherits from the caller when run through Lab.run (everything else, notably AWS_*,
# proxies and CA-bundle variables, is left out: an instance's shell has none of them, and the CA bundle is
# bind-mounted in the lab). Lab.run(env=...) adds to this.
KEPT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR",
            "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "VIRTUAL_ENV", "COLUMNS")


class LabError(RuntimeError):
    pass


def lab_python() -> str:
    """The interpreter labd runs on: $VPCLAB_PYTHON, else the repo's .venv, else this one."""
    chosen = os.environ.get("VPCLAB_PYTHON")
    if chosen:
        return chosen
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def scenario_path(name_or_path: Union[str, Path]) -> Path:
    """A scenario file: an existing path as given, else tests/lab/scenarios/NAME.toml."""
    path = Path(name_or_path)
    if path.exists():
        return path.resolve()
    named = SCENARIOS / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if named.exists() and len(path.parts) == 1:
        return named
    raise LabError(f"no scenario {str(name_or_path)!r} (not a file, nor in {SCENARIOS})")


def userns_problem() -> Optional[str]:
    """None if unprivileged user+net+mount+pid namespaces work here, else why not (one line)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return "unshare (util-linux) is not installed"
    try:
        probe = subprocess.run([unshare, *UNSHARE_FLAGS, "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if probe.returncode != 0:
        return (probe.stderr.strip().splitlines() or [f"unshare exited {probe.returncode}"])[-1]
    return None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _ns_inode(pid: Union[int, str], kind: str = "net") -> Optional[int]:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


class Lab:
    """A running lab. Attributes: run_dir, pid (unshare, host view), inner_pid (the lab's PID 1, host view),
    ready (RUN/ready.json), facts (from the last switch), start_seconds, inside (True: we are in the lab)."""

    def __init__(self, run_dir: Union[str, Path], pid: Optional[int] = None, inner_pid: Optional[int] = None,
                 proc: Optional[subprocess.Popen] = None, keep: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.pid, self.inner_pid, self.proc, self.keep = pid, inner_pid, proc, keep
        self.ready = json.loads((self.run_dir / "ready.json").read_text())
        self.netns = self.ready["netns"]  # nsfs inode numbers are the same seen from any namespace
        self.facts = self.ready.get("facts", {})
        self.start_seconds: Optional[float] = None
        self.stop_seconds: Optional[float] = None
        self.last_switch: Optional[dict] = None

    @property
    def inside(self) -> bool:
        """True when this process is itself in the lab's network namespace."""
        return _ns_inode("self") == self.netns

    def _check_target(self) -> None:
        """Never let a command meant for the lab run anywhere else (a dead lab's PID may have been reused)."""
        if self.inside:
            return
        if self.inner_pid is None or _ns_inode(self.inner_pid) != self.netns:
            raise LabError(f"the lab at {self.run_dir} is not running")

    # -- life cycle --
    @classmethod
    def start(cls, scenario: Union[str, Path] = "healthy", run_dir: Union[str, Path, None] = None,
              python: Optional[str] = None, timeout: float = 60, detach: bool = False, keep: bool = False) -> "Lab":
        """Bring a lab up in `scenario` and return once labd is ready. detach=True: it outlives this process
        (tests/lab/run --start); otherwise it is SIGKILLed if this process dies."""
        problem = userns_problem()
        if problem:
            raise LabError(f"user namespaces are unavailable, so the lab cannot run: {problem}")
        path = scenario_path(scenario)
        started = time.perf_counter()
        run = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="vpclab-", dir="/tmp"))
        run.mkdir(parents=True, exist_ok=True)
        with open(run / "inner.log", "wb") as out:
            proc = subprocess.Popen(
                ["unshare", *UNSHARE_FLAGS, "--", "bash", str(INNER), str(run), python or lab_python(), str(path),
                 "--serve"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO),
                start_new_session=True, preexec_fn=None if detach else _die_with_parent)
        deadline = time.monotonic() + timeout
        while not (run / "ready.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                tail = ""
                for log in ("inner.log", "labd.log"):
                    if (run / log).exists():
                        tail += f"\n--- {log}:\n" + "\n".join((run / log).read_text(errors="replace").splitlines()[-25:])
                if not keep:
                    shutil.rmtree(run, ignore_errors=True)
                raise LabError(f"the lab did not come up (exit {proc.returncode}){tail}")
            time.sleep(0.02)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if not children:
            raise LabError("the lab's PID 1 is missing")
        lab = cls(run, pid=proc.pid, inner_pid=int(children[0]), proc=None if detach else proc, keep=keep)
        lab.start_seconds = round(time.perf_counter() - started, 3)
        (run / "lab.json").write_text(json.dumps({"pid": lab.pid, "inner_pid": lab.inner_pid,
                                                  "start_seconds": lab.start_seconds}))
        return lab

    @classmethod
    def attach(cls, run_dir: Union[str, Path]) -> "Lab":
        """A lab started elsewhere (tests/lab/run --start, or the one we are running inside)."""
        run = Path(run_dir)
        if not (run / "ready.json").exists():
            raise LabError(f"{run}: no lab is ready there")
        meta = json.loads((run / "lab.json").read_text()) if (run / "lab.json").exists() else {}
        lab = cls(run, pid=meta.get("pid"), inner_pid=meta.get("inner_pid"), keep=True)
        lab._check_target()
        return lab

    @classmethod
    def enclosing(cls) -> Optional["Lab"]:
        """The lab this process runs inside ($VPCLAB_RUN, set by tests/lab/run), or None."""
        run = os.environ.get("VPCLAB_RUN")
        if not run or not (Path(run) / "ready.json").exists():
            return None
        try:
            lab = cls.attach(run)
        except (LabError, OSError, ValueError):
            return None
        return lab if lab.inside else None

    def stop(self) -> None:
        """Kill the lab (SIGKILL to unshare: --kill-child takes the PID namespace, hence every lab process)."""
        if self.inside:
            return
        started = time.perf_counter()
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc:
                self.proc.wait()
            deadline = time.monotonic() + 10
            while _ns_inode(self.inner_pid) == self.netns and time.monotonic() < deadline:
                time.sleep(0.005)  # until the lab's PID 1 (and with it every lab process) is gone
        self.stop_seconds = round(time.perf_counter() - started, 3)
        if not self.keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control --
    def aws(self, service: str, operation: str, **params) -> dict:
        """An administrator's call into the lab's AWS (moto), past every policy: for tests to inspect the world."""
        return self.ctl({"cmd": "aws", "service": service, "operation": operation, "params": params})["response"]

    def ctl(self, message: dict, timeout: float = 60) -> dict:
        """One JSON line to labd's control socket, one JSON reply back; raises LabError if not ok."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.run_dir / "ctl.sock"))
            sock.sendall((json.dumps(message) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data:
            raise LabError(f"labd closed the control socket without replying to {message.get('cmd')!r}")
        reply = json.loads(data)
        if not reply.get("ok"):
            raise LabError(f"labd: {reply.get('error')}")
        return reply

    def switch(self, scenario: Union[str, Path, dict]) -> dict:
        """Put the lab into another scenario without a restart (DNS, IMDS, nft, agent, moto): a name in
        tests/lab/scenarios, a path, or a dict of overrides on the baseline. Returns labd's reply
        ({"scenario", "seconds", "steps", "facts"}) and updates .facts."""
        if isinstance(scenario, dict):
            reply = self.ctl({"cmd": "scenario", "overrides": scenario, "name": scenario.get("name", "overrides")})
        else:
            reply = self.ctl({"cmd": "scenario", "path": str(scenario_path(scenario))})
        self.facts, self.last_switch = reply["facts"], reply
        return reply

    def change(self, overrides: dict, actor: Optional[str] = None) -> dict:
        """Change the running lab as an operator would through the EC2 API (the instance, its log group and what it
        shipped stay), each call recorded in the lab's CloudTrail (tests/lab/trail.py): [instance] egress,
        [endpoints.s3] route, an endpoint's policy."""
        return self.ctl({"cmd": "change", "overrides": overrides, **({"actor": actor} if actor else {})})

    def status(self) -> dict:
        return self.ctl({"cmd": "status"})

    # -- commands inside --
    def command(self, argv: Sequence[str], cwd: Optional[str] = None) -> list:
        """The argv that runs `argv` inside the lab from this process."""
        argv = [str(a) for a in argv]
        self._check_target()
        if self.inside:
            return argv
        return ["nsenter", "--preserve-credentials", "-U", "-n", "-m", "-p", f"--wd={cwd or os.getcwd()}",
                "-t", str(self.inner_pid), "--", *argv]

    def environment(self, env: Optional[dict] = None) -> dict:
        base = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
        base["VPCLAB_RUN"] = str(self.run_dir)
        base.update({str(k): str(v) for k, v in (env or {}).items()})
        return base

    def run(self, argv: Sequence[str], env: Optional[dict] = None, timeout: float = 60, input: Optional[str] = None,
            cwd: Optional[str] = None, check: bool = False) -> subprocess.CompletedProcess:
        """Run argv inside the lab (network, mount and PID namespace; cwd kept), capturing text output.

        The environment is a clean instance-like one (KEPT_ENV from ours, plus VPCLAB_RUN) updated with `env`.
        On timeout the whole command is killed and subprocess.TimeoutExpired raised."""
        args = self.command(argv, cwd)
        proc = subprocess.Popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.environment(env),
                                cwd=cwd if self.inside else None, start_new_session=True)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # nsenter and its child inside the lab share the process group
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(args, timeout, out, err) from None
        done = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check:
            done.check_returncode()
        return done

    def python(self, code: str, *args: str, env: Optional[dict] = None, timeout: float = 60,
               python: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run a Python snippet inside the lab (the lab's interpreter by default)."""
        return self.run([python or lab_python(), "-c", code, *args], env=env, timeout=timeout)


pytest = sys.modules.get("pytest")  # the fixture exists only under pytest: tests/lab/run must not pay its import

if pytest is not None:
    @pytest.fixture(scope="session")
    def lab(request):
        """The lab, started once per session in the healthy scenario (or the lab these tests run inside).
        Tests switch to their scenario first; switching resets DNS, IMDS, nft, the agent and moto."""
        reporter = request.config.pluginmanager.getplugin("terminalreporter")
        enclosing = Lab.enclosing()
        if enclosing is not None:
            if reporter:
                reporter.write_line(f"lab: running inside the lab at {enclosing.run_dir}")
            yield enclosing
            return
        running = Lab.start("healthy", keep=bool(os.environ.get("VPCLAB_KEEP")))
        if reporter:
            timings = running.ready.get("timings", {})
            reporter.write_line(f"lab: up in {running.start_seconds:.2f}s (labd {timings.get('total')}s, "
                                f"RSS {running.ready.get('rss_mb')} MB) at {running.run_dir}")
        try:
            yield running
        finally:
            running.stop()
            if reporter:
                reporter.write_line(f"lab: torn down in {running.stop_seconds:.2f}s")
