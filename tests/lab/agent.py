"""The lab's fake SSM agent: its files at their real paths and, when running, a process named amazon-ssm-agent.

Only labd uses this, inside the lab's private mount namespace (where /etc, /usr/bin and /var are overlays), so
writing to the real paths never touches the host. `root` exists so the file layout can be tried on a scratch dir.

The binary is a tiny C program (a copy of it lives at /usr/bin/amazon-ssm-agent) so that psutil sees exactly what
it sees on an instance: name() and exe() are amazon-ssm-agent, cmdline() is ["/usr/bin/amazon-ssm-agent"].
`amazon-ssm-agent -version` prints "SSM Agent version: X" like the real one; X is patched into the copy. Without a C
compiler, a Python stand-in is used (same name() and cmdline(); exe() is then the Python interpreter).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

BINARY = "/usr/bin/amazon-ssm-agent"
CONFIG_DIR = "/etc/amazon/ssm"
CONFIG = CONFIG_DIR + "/amazon-ssm-agent.json"
TEMPLATE = CONFIG_DIR + "/amazon-ssm-agent.json.template"
STATE_DIR = "/var/lib/amazon/ssm"
IDENTITY = STATE_DIR + "/runtimeconfig/identity_config.json"
LOG_DIR = "/var/log/amazon/ssm"
LOG = LOG_DIR + "/amazon-ssm-agent.log"
ERRORS = LOG_DIR + "/errors.log"

_MARK = b"@@VPCLAB_AGENT_VERSION@@"
_SLOT = 64  # bytes reserved for the version in the binary
_C_SOURCE = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
char vpclab_version[64] = "@@VPCLAB_AGENT_VERSION@@";
static void bye(int sig) { (void)sig; _exit(0); }
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-version") || !strcmp(argv[i], "--version") || !strcmp(argv[i], "version")) {
            printf("SSM Agent version: %s\n", vpclab_version);
            return 0;
        }
    signal(SIGTERM, bye);
    signal(SIGINT, bye);
    for (;;) pause();
}
"""
_PY_SOURCE = """#!{python}
import ctypes, os, signal, sys
VERSION = {version!r}
if any(a in ("-version", "--version", "version") for a in sys.argv[1:]):
    print("SSM Agent version: " + VERSION)
    sys.exit(0)
if os.environ.pop("VPCLAB_AGENT_STAGE", "") != "2":
    # Re-exec with argv[0] = this path, so psutil's cmdline()[0] (and therefore name()) is amazon-ssm-agent.
    # PYTHONHOME: else the interpreter would look for its library next to argv[0].
    env = dict(os.environ, VPCLAB_AGENT_STAGE="2", PYTHONHOME=sys.base_prefix)
    os.execve(sys.executable, [{binary!r}, "-S", {binary!r}], env)
os.environ.pop("PYTHONHOME", None)
ctypes.CDLL(None).prctl(15, b"amazon-ssm-agent", 0, 0, 0)  # PR_SET_NAME: comm is "amazon-ssm-agen"
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    signal.pause()
"""

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_LEVEL = re.compile(r"^(INFO|WARN|WARNING|ERROR|DEBUG|CRITICAL)\b")


def _compiled_binary() -> Optional[Path]:
    """The C agent, compiled once per source version into a per-user cache under /tmp (None without a compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    digest = hashlib.sha256(_C_SOURCE.encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"vpclab-cache-{os.getuid()}"
    target = cache / f"amazon-ssm-agent-{digest}"
    if target.exists():
        return target
    cache.mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        src, out = Path(scratch) / "agent.c", Path(scratch) / "agent"
        src.write_text(_C_SOURCE)
        result = subprocess.run([cc, "-O0", "-o", str(out), str(src)], capture_output=True)
        if result.returncode != 0 or _MARK not in out.read_bytes():
            return None
        os.replace(out, target)
    return target


HIBERNATE = LOG_DIR + "/hibernate.log"
FILES = {"amazon-ssm-agent.log": LOG, "errors.log": ERRORS, "hibernate.log": HIBERNATE}
# The agent's layouts (aws/amazon-ssm-agent@1c217c89): agent/log/logger/defaultconfig.go writes
# "%Date(2006-01-02 15:04:05.0000) %LEVEL %Msg" to amazon-ssm-agent.log and, for ERROR/CRITICAL only,
# "... %LEVEL [%FuncShort @ %File.%Line] %Msg" to errors.log; agent/hibernation/hibernatelogger_unix.go writes
# "%Date %Time %LEVEL %Msg" (whole seconds) to hibernate.log.
STEP = _dt.timedelta(milliseconds=370)  # several entries share a second, as they do in real logs


def _stamp(when: _dt.datetime, fractions: bool) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") + (f".{when.microsecond // 100:04d}" if fractions else "")


def log_lines(lines, version: str, running: bool, now: Optional[_dt.datetime] = None,
              connected: bool = True) -> dict:
    """File name -> the lines the agent would have written: its start-up (without the lines of a successful
    connection when the scenario says it never connected), then the scenario's entries. An entry is a string
    (amazon-ssm-agent.log) or {file, line, caller}; a line may hold continuation lines ("\\n"); a line that starts
    with a level gets the agent's time stamp, one that starts with a time stamp is kept."""
    boot = [f"INFO [amazon-ssm-agent] amazon-ssm-agent - v{version}", "INFO [amazon-ssm-agent] OS: linux, Arch: amd64",
            "INFO [amazon-ssm-agent] Starting Core Agent", "INFO [CredentialRefresher] credentialRefresher has started"]
    if connected:
        boot += ["INFO EC2RoleProvider Successfully connected with instance profile role credentials",
                 "INFO [CredentialRefresher] Credentials ready",
                 "INFO [amazon-ssm-agent] [LongRunningWorkerContainer] [WorkerProvider] Worker ssm-agent-worker started"]
    if not running:
        boot += ["INFO [amazon-ssm-agent] Stopping Core Agent", "INFO [amazon-ssm-agent] Bye."]
    entries = [{"line": b} for b in boot] + [e if isinstance(e, dict) else {"line": str(e)} for e in (lines or [])]
    now = now or _dt.datetime.now()
    out: dict = {name: [] for name in FILES}
    for i, entry in enumerate(entries):
        name = str(entry.get("file", "amazon-ssm-agent.log"))
        line = str(entry["line"])
        if not _STAMP.match(line):
            line = line if _LEVEL.match(line) else f"INFO {line}"
            line = f"{_stamp(now - STEP * (len(entries) - i), name != 'hibernate.log')} {line}"
        out[name].append(line)
        level = line.split(" ")[2] if name == "amazon-ssm-agent.log" else ""
        if level in ("ERROR", "CRITICAL"):
            head, _, message = line.partition(f" {level} ")
            out["errors.log"].append(f"{head} {level} [{entry.get('caller', 'Errorf @ log.go.0')}] {message}")
    return out


class FakeAgent:
    """Puts the scenario's agent in place: files, and a process when agent.state is "running"."""

    def __init__(self, root: str = "/", python: str = sys.executable) -> None:
        self.root = Path(root)
        self.python = python
        self.proc: Optional[subprocess.Popen] = None
        self._binary = _compiled_binary()
        self.kind = "c" if self._binary else "python"

    def _p(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def _remove(self) -> None:
        for path in (BINARY,):
            self._p(path).unlink(missing_ok=True)
        for directory in (CONFIG_DIR, STATE_DIR, LOG_DIR):
            shutil.rmtree(self._p(directory), ignore_errors=True)

    def _install_binary(self, version: str) -> None:
        target = self._p(BINARY)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        if self._binary:
            data = self._binary.read_bytes()
            slot = version.encode()[: _SLOT - 1].ljust(_SLOT, b"\0")
            at = data.index(_MARK)
            target.write_bytes(data[:at] + slot + data[at + _SLOT:])
        else:
            target.write_text(_PY_SOURCE.format(python=self.python, version=version, binary=str(target)))
        target.chmod(0o755)

    def apply(self, agent: dict) -> dict:
        """Switch to the scenario's [agent] section; returns a summary for status."""
        self.stop()
        self._remove()
        state = agent.get("state", "running")
        if state == "absent":
            return {"state": state, "pid": None}
        version = str(agent.get("version", "3.3.2958.0"))
        self._install_binary(version)
        for directory in (CONFIG_DIR, STATE_DIR + "/runtimeconfig", LOG_DIR):
            self._p(directory).mkdir(parents=True, exist_ok=True)
        self._p(TEMPLATE).write_text(json.dumps({"Agent": {"Region": "", "OrchestrationRootDir": ""},
                                                 "Mds": {"Endpoint": ""}, "Ssm": {"Endpoint": ""},
                                                 "Mgs": {"Region": "", "Endpoint": ""}}, indent=4) + "\n")
        config = agent.get("config") or {}
        if config:  # as on a real install: only the .template exists until someone writes a config
            self._p(CONFIG).write_text(json.dumps(config, indent=4) + "\n")
        if agent.get("credential_source", "EC2") is not None:  # "": written at start-up, filled after success
            self._p(IDENTITY).write_text(json.dumps({"CredentialSource": agent.get("credential_source", "EC2")}))
        files = log_lines(agent.get("log_lines"), version, running=state == "running",
                          connected=bool(agent.get("connected", True)))
        for name, lines in files.items():
            if lines or name != "hibernate.log":  # hibernate.log exists only once the agent hibernated
                self._p(FILES[name]).write_text("".join(line + "\n" for line in lines))
        if state == "running":
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                   "HOME": "/root"}
            env.update({str(k): str(v) for k, v in (agent.get("env") or {}).items()})
            self.proc = subprocess.Popen([str(self._p(BINARY))], env=env, cwd="/", start_new_session=True,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        return {"state": state, "pid": self.pid, "version": version, "binary": self.kind}
