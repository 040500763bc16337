"""vpce-doctor's command line. Exit codes: 0 healthy, 1 a check failed, 2 incomplete, 64 usage, 70 internal."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Mapping, Optional, Sequence, TextIO, cast

from . import __version__
from .arguments import Parser
from .model import ExitCode
from .settings import UsageError

EXIT_INTERNAL = ExitCode.INTERNAL


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="vpce-doctor", description="Check this instance's path to AWS through VPC endpoints: "
                "IMDS, DNS, TCP 443 and TLS, layer by layer, and say what to fix.",
                epilog="Also: `vpce-doctor remote --instance-id ID` (judge an instance from outside, e.g. one that "
                       "never registered), `vpce-doctor fleet` (many instances through Run Command), `vpce-doctor "
                       "history` (shipped reports read back: what changed); each takes --help. "
                       "Exit codes: 0 healthy, 1 at least one check failed, 2 no failure but some checks could "
                       "not run, 64 usage error, 70 internal error.")
    p.add_argument("--version", action="version", version=f"vpce-doctor {__version__}")
    p.add_argument("--region", help="Region of the endpoints (default: from IMDS)")
    p.add_argument("--services", help="comma-separated services (default: ssm,ssmmessages,ec2messages,s3)")
    p.add_argument("--only", nargs="+", metavar="ID", help="run only these checks (ids or prefixes like tls), "
                   "plus what they need")
    p.add_argument("--list-checks", action="store_true", help="list the checks this run would do, and exit")
    p.add_argument("--output", "-o", choices=("text", "json", "summary"),
                   help="report format: text (default), json, or summary (compact, for Run Command's console)")
    p.add_argument("--timeout", help="deadline for the whole run in seconds (default: 20)")
    p.add_argument("--connect-timeout", help="timeout of one connect, handshake or lookup in seconds (default: 2)")
    p.add_argument("--resolver", help="query this DNS server (IP or IP:PORT) instead of resolv.conf's")
    p.add_argument("--ca-bundle", help="PEM file of trusted CAs (default: AWS_CA_BUNDLE, else the system store)")
    p.add_argument("--bucket", help="bucket for the S3 get/put probe through the gateway endpoint")
    p.add_argument("--key-prefix", help="the probe uses only <prefix>vpce-doctor/<instance-id>.probe")
    p.add_argument("--no-write", action="store_const", const=True, help="never write: the S3 probe only reads")
    p.add_argument("--session-document", help="Session Manager preferences document (default: "
                   "SSM-SessionManagerRunShell)")
    p.add_argument("--ship", action="store_const", const=True,
                   help="after local output, send the JSON report to CloudWatch Logs (spooled when that fails)")
    p.add_argument("--log-group", help="log group for --ship (default: /vpce-doctor/reports)")
    p.add_argument("--since", metavar="FILE", help="also say what changed since this earlier JSON report")
    p.add_argument("--config", help="INI file with a [vpce-doctor] section (default: "
                   "/etc/vpce-doctor/vpce-doctor.conf if it exists)")
    return p


def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None,
         stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None, *, root: str = "/", port: int = 443,
         processes: Optional[Callable[[], Sequence[object]]] = None) -> ExitCode:
    """One exit policy: a report's own exit code when there is a report, else USAGE or INTERNAL; only ExitCode.

    root, port and processes are what the doctor observes of the host (context.Host): the filesystem its instance
    files are read from, the endpoints' TCP port and the process table. Only tests change them (tests/launch.py for
    a subprocess), as httpie's main() takes an Environment: no flag, setting or variable can."""
    environ = os.environ if environ is None else environ
    # `>&-` leaves sys.stdout None; output is then lost but the run (and --ship) goes on.
    stdout = stdout or sys.stdout or cast(TextIO, _Discard())
    stderr = stderr or sys.stderr or cast(TextIO, _Discard())
    argv = sys.argv[1:] if argv is None else list(argv)
    from . import redact
    redact.learn(environ)
    try:
        if argv[:1] == ["fleet"]:  # vpce-doctor fleet ...: many instances through Run Command (fleet.py)
            from . import fleet
            return ExitCode(fleet.main(argv[1:], environ, stdout, stderr))
        if argv[:1] == ["remote"]:  # vpce-doctor remote --instance-id ...: from outside the instance (remote.py)
            from . import remote
            return ExitCode(remote.main(argv[1:], environ, stdout, stderr))
        if argv[:1] == ["history"]:  # vpce-doctor history: its shipped reports read back (history_command.py)
            from . import history_command
            return ExitCode(history_command.main(argv[1:], environ, stdout, stderr))
        from .context import Host
        return _main(argv, environ, stdout, stderr, Host(root, port, processes))
    except UsageError as error:
        _say(stderr, f"vpce-doctor: {error}")
        return ExitCode.USAGE
    except KeyboardInterrupt:
        _say(stderr, "vpce-doctor: interrupted before the checks started")
        return ExitCode.INCOMPLETE
    except Exception as error:  # never a traceback on the operator's terminal
        _say(stderr, f"vpce-doctor: internal error: {error.__class__.__name__}: {error}")
        return ExitCode.INTERNAL


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _say(stream, line: str) -> None:
    from .redact import line as shown
    try:
        stream.write(shown(line) + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stderr cannot be told anything
        pass


def _main(argv, environ, stdout, stderr, host) -> ExitCode:
    from . import settings as settings_mod
    args = parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("list_checks", "since")}
    settings = settings_mod.load(flags, environ)
    if args.list_checks:
        return _list_checks(settings, environ, host, stdout)
    from . import history
    since = history.read_since(args.since) if args.since else None  # a bad FILE is a usage error before any check

    import time

    from . import doctor
    from .render import document, text
    started, started_at = time.monotonic(), doctor.now_utc()
    live = settings.output == "text"
    color = settings.color if settings.color is not None else (
        _isatty(stdout) and "NO_COLOR" not in environ and environ.get("TERM") != "dumb")
    ctx, shown = None, []

    def show(finding) -> None:
        shown.append(finding)
        if live:
            _write(stdout, stderr, text.finding(finding, color))

    try:
        ctx = doctor.prepare(settings, environ, host, started=started)
        if live:
            _write(stdout, stderr, text.header(__version__, doctor.instance_facts(ctx)))
        report = doctor.diagnose(ctx, started_at, started, on_finding=show)  # interrupted or not: the report
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the runner took over (IMDS was being asked, or the header
        # was just out): still a report, every check ERROR
        report = doctor.interrupted_report(settings, environ, started_at, started, ctx, host=host)
        if live and not shown:
            _write(stdout, stderr, ("" if ctx else text.header(__version__, report.instance))
                   + "".join(text.finding(f, color) for f in report.findings))
    shipped, current, kept = _with_changes(document.to_dict(report), settings, since)
    if live:
        _write(stdout, stderr, text.footer(report, color) + text.changes(shipped))
    elif settings.output == "summary":
        extra = text.summary_changes(shipped)[:600]
        _write(stdout, stderr, text.summary(report, limit=2400 - len(extra)) + extra)
    else:
        _write(stdout, stderr, document.dumps(shipped))
    if settings.ship and ctx is not None:  # local output first: a broken logs path never hides the report
        from .delivery import deliver
        problem = history.keep(settings.spool_dir, current, kept)
        if problem:
            _say(stderr, f"vpce-doctor: {problem}")
        _say(stderr, deliver(ctx, shipped, shield=_signals_deferred))
    return report.exit_code  # the report printed it; the process says the same


def _with_changes(report_dict, settings, since):
    """The report with what changed since the runs kept beside the spool (and --since FILE); and those runs."""
    from . import history, redact
    from .changes import record
    current = record(report_dict)
    kept, notes = history.load(settings.spool_dir, set_aside=settings.ship)
    comparisons, more = history.comparisons(current, kept, since)
    if comparisons or notes or more:
        # a --since FILE or a kept record is outside input: shown only through the one redaction
        report_dict["changes"] = redact.tree({"comparisons": comparisons, "notes": notes + more})
    return report_dict, current, kept


def _write(stdout, stderr, text: str) -> None:
    """The report to stdout; a closed or broken stdout (`>&-`, `| head -c 1`) must not cost the run or --ship."""
    try:
        stdout.write(text)
        stdout.flush()
    except (OSError, ValueError) as error:  # BrokenPipeError, EBADF, "I/O operation on closed file"
        _say(stderr, f"vpce-doctor: the report could not be written to stdout ({error.__class__.__name__})")


def _list_checks(settings, environ, host, stdout) -> ExitCode:
    """The plan a run would make, without asking IMDS: names in --region's domain, else with <region>."""
    from . import doctor
    from .facts import Facts, Imds
    ctx = doctor.planned(settings, environ, host, Facts(Imds("")), settings.region or "<region>", 0.0)
    for check in ctx.checks:
        needs = f"  (needs {', '.join(check.needs)})" if check.needs else ""
        stdout.write(f"{check.id:<20} {check.severity.value:<8} {check.title}{needs}\n")
    return ExitCode.OK


def _interrupt_once(signum, frame) -> None:
    """The first SIGINT or SIGTERM stops the run; later ones are ignored, so they cannot break the report that the
    first one makes the doctor write (a KeyboardInterrupt inside the runner's cleanup turned into exit 70).
    While deferred (the report is being written to the spool), it waits until the write is whole."""
    if not _interrupt_once.fired:  # type: ignore[attr-defined]
        _interrupt_once.fired = True  # type: ignore[attr-defined]
        if _interrupt_once.deferred:  # type: ignore[attr-defined]
            _interrupt_once.pending = True  # type: ignore[attr-defined]
            return
        raise KeyboardInterrupt


_interrupt_once.fired = _interrupt_once.deferred = _interrupt_once.pending = False  # type: ignore[attr-defined]


@contextmanager
def _signals_deferred():
    _interrupt_once.deferred = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        _interrupt_once.deferred = False  # type: ignore[attr-defined]
    if _interrupt_once.pending:  # type: ignore[attr-defined]
        _interrupt_once.pending = False  # type: ignore[attr-defined]
        raise KeyboardInterrupt


def console_main(*, root: str = "/", port: int = 443) -> None:
    """The console script; root and port only from tests/launch.py (main()'s host seams)."""
    # SIGTERM (a Run Command timeout, systemd stop) ends the run like Ctrl-C: a full report, exit 2.
    signal.signal(signal.SIGTERM, _interrupt_once)
    signal.signal(signal.SIGINT, _interrupt_once)
    code = main(root=root, port=port)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        pass
    # Probe threads still blocked in I/O after the deadline must not hold the process open.
    os._exit(int(code))
