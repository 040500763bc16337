"""ssm:agent-logs: what the agent itself says in its logs, judged with what the network checks of this run saw.

The agent writes three files (agent@1c217c89 = aws/amazon-ssm-agent at 1c217c89b42de51d4f4063363d8ec1f2eef56055):
amazon-ssm-agent.log and errors.log (agent/log/logger/defaultconfig.go: "%Date(2006-01-02 15:04:05.0000) %LEVEL
%Msg", errors.log only ERROR/CRITICAL with "[Func @ file.go.N]" first) and hibernate.log
(agent/hibernation/hibernatelogger_unix.go: "%Date %Time %LEVEL %Msg", where the health-ping failures go). An error
that spans lines ("RequestError: send request failed\\ncaused by: ...") is one entry: continuation lines have no
time stamp. Entries are ordered by (time, file, line): several share a second.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..model import Check, Remedy, Result, Severity, Status
from . import agent, agent_explain
from .agent_files import LOG_DIR, LOG_FILES, TAIL_LIMIT, LogTail, read_tail, split_tail  # noqa: F401
from .agent_lines import CONSEQUENCES, classify

RECENT = timedelta(hours=24)
EXAMPLE_CHARS = 300
ENTRY_CHARS = 4096               # an entry's continuation lines are joined up to this many characters
STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[.,](\d{1,9}))?")
CALLER_RE = re.compile(r"^(\S+ \S+ [A-Z]+) \[\w+ @ [\w.]+\.go\.\d+\] ")  # errors.log's "[Func @ file.go.N] "
SECRET_RE = re.compile(r"(://)[^/\s]+@")  # user:password in URLs (proxy settings); greedy: a password may hold @


def run_logs(ctx, prior) -> Result:
    tails = [read_tail(ctx.path(p), p) for p in LOG_FILES]
    return assess_logs(tails, datetime.now(), ctx.placeholders(), agent_explain.observed(prior),
                       agent.version_of(prior))


@dataclass(frozen=True)
class Entry:
    stamp: Optional[datetime]
    key: Tuple[datetime, int, int]  # (time, file, line): the order the agent wrote them in
    text: str                       # the first line and its continuation lines


def entries(tails: Sequence[LogTail]) -> List[Entry]:
    """Every entry of every file, oldest first; an ERROR that errors.log repeats counts once."""
    found, seen = [], set()
    for order, tail in enumerate(tails):
        stamp: Optional[datetime] = None
        current: List[str] = []
        start = 0
        for index, line in enumerate(tail.lines + ("",)):
            match = STAMP_RE.match(line)
            if current and (match or index == len(tail.lines)):
                text = "\n".join(current)[:ENTRY_CHARS]
                same = (stamp and stamp.replace(microsecond=0), CALLER_RE.sub(r"\1 ", current[0]).split(" ", 2)[-1])
                if stamp is None or same not in seen:
                    seen.add(same)
                    found.append(Entry(stamp, (stamp or datetime.min, order, start), text))
                current = []
            if index == len(tail.lines):
                break
            if match:
                stamp, start = _parse(match.group(1), match.group(2)), index
            current.append(line)
    return sorted(found, key=lambda e: e.key)


def _parse(text: str, fraction: Optional[str]) -> Optional[datetime]:
    try:
        stamp = datetime.strptime(text.replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return stamp.replace(microsecond=int((fraction or "0")[:6].ljust(6, "0")))


def scan(tails: Sequence[LogTail], now: datetime) -> List[dict]:
    """Known entries, one match per code with counts, newest first."""
    by_code: Dict[str, dict] = {}
    for entry in entries(tails):
        known = classify(entry.text)
        if known is None:
            continue
        code, meaning, remedy = known
        match = by_code.setdefault(code, {"code": code, "meaning": meaning, "remedy": remedy, "count": 0,
                                          "recent": 0, "last": None, "example": "", "text": "", "key": entry.key})
        match["count"] += 1
        match["recent"] += int(entry.stamp is None or now - entry.stamp <= RECENT)
        if entry.key >= match["key"] or not match["example"]:
            shown = SECRET_RE.sub(r"\1***@", entry.text.strip())
            match.update(key=entry.key, last=entry.stamp.isoformat(sep=" ") if entry.stamp else None,
                         example=shown.replace("\n", " ")[:EXAMPLE_CHARS], text=shown)
    return sorted(by_code.values(), key=lambda m: m["key"], reverse=True)


def top_cause(causes: Sequence[dict]) -> dict:
    """Causes before their consequences (no-role before the DHMC lines of the same second), then the newest."""
    return max(causes, key=lambda m: (m["code"] not in CONSEQUENCES, m["key"]))


def assess_logs(tails: Sequence[LogTail], now: datetime, values: Optional[Dict[str, str]] = None,
                network: Optional[Mapping[str, Tuple[str, str]]] = None, version: str = "") -> Result:
    """network: check id -> (status, code) of the checks this one ran after (imds, dns, tcp, tls, ssm:agent);
    version: the agent's, when ssm:agent found it."""
    network = network or {}
    evidence: Dict[str, object] = {"files": {t.path: _file(t) for t in tails}}
    if all(t.missing for t in tails):
        return Result(Status.PASS, f"no agent logs at {LOG_DIR} (agent not installed or logs elsewhere)",
                      evidence=evidence)
    matches = scan(tails, now)
    evidence["matches"] = [{k: v for k, v in m.items() if k not in ("remedy", "key", "text")} for m in matches]
    causes = [m for m in matches if m["remedy"] is not None and m["recent"]]
    if causes:
        return _warn(top_cause(causes), causes, evidence, values or {}, network, version)
    unreadable = [f"{t.path} ({t.problem})" for t in tails if t.problem]
    if unreadable:
        return Result(Status.WARN, f"{', '.join(unreadable)} cannot be read", code="unreadable", evidence=evidence,
                      cause="The agent's logs are readable by root only; what the agent saw is unknown.",
                      remedy=Remedy("Run the doctor as root.", ("sudo vpce-doctor --only ssm:",)))
    return _quiet(tails, matches, evidence, network)


def _file(tail: LogTail) -> Dict[str, object]:
    if tail.missing:
        return {"missing": True}
    return {"problem": tail.problem} if tail.problem else {"bytes_read": tail.bytes_read, "lines": len(tail.lines)}


def _quiet(tails: Sequence[LogTail], matches: Sequence[dict], evidence: Dict[str, object],
           network: Mapping[str, Tuple[str, str]]) -> Result:
    lines = sum(len(t.lines) for t in tails)
    old = [m["code"] for m in matches if m["remedy"] is not None]
    silence = agent_explain.silence(network, old)
    return Result(Status.PASS, f"no known problem in the last 24 h of the agent's logs ({lines} lines read"
                  + (f"; {len(old)} older known problem{'s' if len(old) != 1 else ''} in evidence)" if old else ")"),
                  cause=silence, evidence={**evidence, **({"silence": silence} if silence else {})})


def _warn(top: dict, causes: Sequence[dict], evidence: Dict[str, object], values: Dict[str, str],
          network: Mapping[str, Tuple[str, str]], version: str) -> Result:
    judged = agent_explain.judge(top["code"], top["text"], network, version)
    others = ", ".join(f"{m['code']} ({m['recent']}×)" for m in causes if m is not top)
    also = f" Also seen: {others}." if others else ""
    explained = f"; explained by {', '.join(judged.caused_by)}" if judged.caused_by else ""
    remedy = (judged.remedy or top["remedy"]).filled(**values)
    return Result(Status.WARN, f"agent log: {top['meaning'].split(':')[0]} ({top['recent']}× in 24 h, last "
                  f"{top['last'] or 'time unknown'}){explained}", code=top["code"], evidence=evidence,
                  caused_by=tuple(judged.caused_by),
                  cause=f"The agent logged \"{top['example']}\": {judged.meaning or top['meaning']}.{judged.note}"
                        f"{also}", remedy=remedy)


def checks(after: Sequence[str] = ()):
    return (Check("ssm:agent-logs", "the SSM agent's logs show no known problem in the last 24 h", Severity.HIGH,
                  run_logs, after=tuple(after)),)
