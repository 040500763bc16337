"""ssm:agent-logs and ssm:diagnostics: what the agent itself says, in its logs (domain.md §6) and through ssm-cli."""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..instance_files import read_tail as read_file_tail
from ..model import Check, Remedy, Result, Severity, Status
from ..processes import Ran, run_command

LOG_DIR = "/var/log/amazon/ssm"
LOG_FILES = (LOG_DIR + "/amazon-ssm-agent.log", LOG_DIR + "/errors.log")
TAIL_LIMIT = 256 * 1024          # bytes read from the end of each log, never more
RECENT = timedelta(hours=24)
EXAMPLE_CHARS = 300
STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)")
SECRET_RE = re.compile(r"(://)[^/\s]+@")  # user:password in URLs (proxy settings); greedy: a password may hold @
SSM_CLIS = ("/usr/bin/ssm-cli", "/snap/amazon-ssm-agent/current/ssm-cli")
DIAGNOSTICS_LIMIT_S = 15.0
DOCS = "https://docs.aws.amazon.com/systems-manager/latest/userguide/"
TS_DOC = DOCS + "troubleshooting-ssm-agent.html"

_R = Remedy
ENDPOINTS = _R("Check that the VPC has an interface endpoint for the service with private DNS on, and that its "
               "security group admits TCP 443 from this instance; then restart the agent.",
               ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} --query "
                "'VpcEndpoints[].[ServiceName,PrivateDnsEnabled,State,Groups[0].GroupId]' --output table",
                "sudo systemctl restart amazon-ssm-agent"), (TS_DOC,))
RESOLVER = _R("The agent could not resolve an endpoint name: check the VPC's DNS attributes and the private DNS "
              "of its endpoints (see dns:resolver and dns:<service>).",
              ("aws ec2 describe-vpc-attribute --vpc-id {vpc} --attribute enableDnsSupport",
               "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} --query "
               "'VpcEndpoints[].[ServiceName,PrivateDnsEnabled]' --output table"))
INTERCEPTED = _R("Something presents its own certificate for AWS names (TLS inspection): exempt *.amazonaws.com or "
                 "give the agent the inspecting CA.",
                 ("openssl s_client -connect ssm.{region}.amazonaws.com:443 -servername ssm.{region}.amazonaws.com "
                  "</dev/null | openssl x509 -noout -issuer",))
PROXY = _R("The agent sends its calls to a proxy that does not get them through: give the agent a no_proxy that "
           "covers 169.254.169.254 and the endpoint names (a systemd drop-in), or fix the proxy.",
           ("sudo systemctl show amazon-ssm-agent -p Environment",),
           (DOCS + "configure-proxy-ssm-agent.html",))
PROFILE = _R("Attach an instance profile whose role has AmazonSSMManagedInstanceCore, or turn on Default Host "
             "Management Configuration; then restart the agent.",
             ("aws ec2 describe-iam-instance-profile-associations --filters Name=instance-id,Values={instance}",
              "aws ec2 associate-iam-instance-profile --instance-id {instance} --iam-instance-profile Name=<profile>",
              "sudo systemctl restart amazon-ssm-agent"))
ROLE_POLICY = _R("The instance profile's role is missing ssm:UpdateInstanceInformation: attach "
                 "AmazonSSMManagedInstanceCore to it.",
                 ("aws iam attach-role-policy --role-name <role> "
                  "--policy-arn arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",))
DHMC = _R("Default Host Management cannot get credentials: check that it is on for this account and Region, that "
          "IMDSv2 is reachable and that the agent is ≥ 3.2.582.0.",
          ("aws ssm get-service-setting --setting-id arn:aws:ssm:{region}:<account-id>:servicesetting/ssm/"
           "managed-instance/default-ec2-instance-management-role",),
          (DOCS + "managed-instances-default-host-management.html",))
MESSAGES = _R("Session Manager and Run Command need the ssmmessages endpoint and the ssmmessages:* permissions "
              "(AmazonSSMManagedInstanceCore) on the agent's role.",
              ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
               "Name=service-name,Values=com.amazonaws.{region}.ssmmessages",))
LOGS = _R("Session logging to CloudWatch Logs needs a logs interface endpoint, the log group, and logs:Describe*/"
          "PutLogEvents (and the KMS key, when encryption is required) on the agent's role.",
          ("aws ssm get-document --name SSM-SessionManagerRunShell --query Content --output text",
           "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
           "Name=service-name,Values=com.amazonaws.{region}.logs"))
S3 = _R("Session logging to S3 needs a route to S3 (a gateway endpoint on this subnet's route table, or an S3 "
        "interface endpoint) and s3:PutObject/GetEncryptionConfiguration on the bucket for the agent's role.",
        ("aws ssm get-document --name SSM-SessionManagerRunShell --query Content --output text",
         "aws ec2 describe-route-tables --filters Name=association.subnet-id,Values={subnet}"))
KMS = _R("Session encryption needs the kms endpoint and kms:Decrypt/GenerateDataKey on the key for the agent's "
         "role.", ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
                   "Name=service-name,Values=com.amazonaws.{region}.kms", "aws kms describe-key --key-id <key-id>"))
UPDATE = _R("Update the agent: old agents fall back to plain-HTTP S3 queries that hang in a private subnet.",
            ("aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids {instance}",))

# (pattern, code, what it means, remedy): a line counts for the first pattern it matches; a remedy marks a cause.
CATALOGUE: Tuple[Tuple["re.Pattern[str]", str, str, Optional[Remedy]], ...] = tuple(
    (re.compile(p), c, m, r) for p, c, m, r in (
        (r"proxyconnect tcp", "proxyconnect", "the agent's proxy could not be reached or refused it", PROXY),
        (r"x509: certificate signed by unknown authority", "tls-untrusted",
         "a TLS certificate from an unknown CA: TLS interception", INTERCEPTED),
        (r"lookup (\S+?)(?: on \S+)?: i/o timeout", "dns-timeout", "DNS queries time out: the resolver is "
         "unreachable", RESOLVER),
        (r"lookup (\S+?)(?: on \S+)?: no such host|no such host", "nxdomain", "an endpoint name does not resolve "
         "(NXDOMAIN: a private hosted zone shadowing it, a DNS firewall, or a typo in an override)", RESOLVER),
        (r"dial tcp (\S+):443: (?:i/o timeout|connect: connection timed out)", "dial-timeout", "TCP 443 to an "
         "endpoint times out: on a public address the name lacks private DNS; on a private one a security group "
         "or network ACL drops it", ENDPOINTS),
        (r"EC2RoleRequestError: no EC2 instance role found", "no-role", "the instance has no instance profile "
         "role (and no Default Host Management)", PROFILE),
        (r"Entering SSM Agent hibernate", "hibernate", "the agent has no credentials and hibernates: it retries "
         "rarely, so it stays offline for a long time", PROFILE),
        (r"Failed to connect to Systems Manager with instance profile role credentials", "profile-rejected",
         "the instance profile's role was refused by Systems Manager (missing ssm:UpdateInstanceInformation); "
         "the agent falls back to Default Host Management", ROLE_POLICY),
        (r"Skipping default host management fallback", "profile-network-error", "the first call to Systems "
         "Manager failed with a non-permission error (usually the network), so Default Host Management was not "
         "tried", ENDPOINTS),
        (r"error calling RequestManagedInstanceRoleToken", "dhmc-failed", "Default Host Management could not get "
         "credentials", DHMC),
        (r"Failed to get controlchannel token|CreateControlChannel failed", "control-channel", "the control "
         "channel to ssmmessages could not be opened (unreachable, denied or throttled): no sessions, and Run "
         "Command falls back to ec2messages", MESSAGES),
        (r"Failed to dial websocket|I/O timeout\. Error:|Reach the retry limit", "websocket", "the websocket to "
         "ssmmessages breaks", MESSAGES),
        (r"encryption is not set up", "encryption-not-set-up", "a session was refused because the log group or "
         "bucket looked unencrypted; the agent says this also when it cannot look the log group up at all", LOGS),
        (r"Validation failed, err:", "session-validation", "a session was refused by the preference validation",
         LOGS),
        (r"The CloudWatch log group specified in session preferences either does not exist or unable to validate",
         "log-group", "the session-logging log group is missing, unreachable or not describable", LOGS),
        (r"Error in calling DescribeLogGroups|Error Calling DescribeLogStreams|Error in PutLogEvents", "logs-api",
         "CloudWatch Logs calls fail (endpoint, permission or log group)", LOGS),
        (r"Encountered an error while calling S3 API GetBucketEncryption", "s3-encryption", "the session-log "
         "bucket's encryption cannot be checked", S3),
        (r"Error when querying S3 bucket using address http://", "s3-port-80", "an old agent queries S3 over "
         "plain HTTP, which hangs in a private subnet", UPDATE),
        (r"HTTP HEAD request failed: url=|no region in HEAD response for bucket|Signed HeadBucket request failed",
         "bucket-region", "finding the session-log bucket's Region fails: each session starts after minutes of "
         "blank screen", S3),
        (r"(?i)Failed uploading .* to s3://|Failed to upload shell session logs to S3|failed to upload session "
         r"logs", "s3-upload", "session logs could not be uploaded to S3", S3),
        (r"Encountered error while initiating handshake\. (?:Fetching data key failed|Handshake timed out|"
         r"KMSEncryption failed)", "kms-handshake", "the session's KMS handshake fails", KMS),
        (r"Proxy environment variables:", "proxy-env", "the agent logged the proxy settings it uses", None),
        (r"Successfully connected with instance profile role credentials", "profile-ok",
         "the agent connected with the instance profile", None),
        (r"Successfully opened websocket connection to", "websocket-ok", "the agent opened its ssmmessages "
         "websocket", None),
        (r"Failed to load instance info from vault\. RegistrationKey does not exist", "vault-empty",
         "no hybrid registration: normal on EC2", None),
    ))


@dataclass(frozen=True)
class LogTail:
    """The end of one log file, as read."""
    path: str                     # as on the instance
    lines: Tuple[str, ...] = ()
    bytes_read: int = 0
    missing: bool = False
    problem: str = ""             # unreadable


def run_logs(ctx, prior) -> Result:
    tails = [read_tail(ctx.path(p), p) for p in LOG_FILES]
    f = ctx.facts
    values = {"instance": f.instance_id or "<instance-id>", "region": ctx.region or "<region>",
              "vpc": f.vpc_id or "<vpc-id>", "subnet": f.subnet_id or "<subnet-id>"}
    return assess_logs(tails, datetime.now(), values)


def read_tail(path: Path, shown: str, limit: int = TAIL_LIMIT) -> LogTail:
    """The last `limit` bytes of a file at most, as lines; a line cut by the start of the read is dropped."""
    try:
        data, cut = read_file_tail(path, limit)
    except FileNotFoundError:
        return LogTail(shown, missing=True)
    except PermissionError:
        return LogTail(shown, problem="permission denied")
    except OSError as error:
        return LogTail(shown, problem=error.strerror or str(error))
    return LogTail(shown, split_tail(data, cut), len(data))


def split_tail(data: bytes, cut: bool) -> Tuple[str, ...]:
    """Bytes from the end of a log as lines. With `cut` (the file is longer), the first byte only says whether the
    next line is whole (it is a newline) or cut (then the partial line is dropped)."""
    if cut:
        data = data[1:] if data[:1] == b"\n" else data.partition(b"\n")[2]
    text = data.decode("utf-8", errors="replace").replace("\r", "")
    return tuple(line for line in text.split("\n") if line.strip())


def assess_logs(tails: Sequence[LogTail], now: datetime, values: Optional[Dict[str, str]] = None) -> Result:
    evidence: Dict[str, object] = {"files": {t.path: ({"missing": True} if t.missing else {"problem": t.problem}
                                                      if t.problem else {"bytes_read": t.bytes_read,
                                                                         "lines": len(t.lines)}) for t in tails}}
    if all(t.missing for t in tails):
        return Result(Status.PASS, f"no agent logs at {LOG_DIR} (agent not installed or logs elsewhere)",
                      evidence=evidence)
    matches = scan(tails, now)
    evidence["matches"] = [{k: v for k, v in m.items() if k not in ("remedy", "key")} for m in matches]
    causes = [m for m in matches if m["remedy"] is not None and m["recent"]]
    unreadable = [f"{t.path} ({t.problem})" for t in tails if t.problem]
    if causes:
        top = causes[0]
        others = ", ".join(f"{m['code']} ({m['recent']}×)" for m in causes[1:])
        also = f" Also seen: {others}." if others else ""
        return Result(Status.WARN, f"agent log: {top['meaning'].split(':')[0]} ({top['recent']}× in 24 h, last "
                      f"{top['last'] or 'time unknown'})", code=top["code"], evidence=evidence,
                      cause=f"The agent logged \"{top['example']}\": {top['meaning']}. It saw this recently; the "
                            f"network checks say whether it still holds.{also}",
                      remedy=top["remedy"].filled(**(values or {})))
    if unreadable:
        return Result(Status.WARN, f"{', '.join(unreadable)} cannot be read", code="unreadable", evidence=evidence,
                      cause="The agent's logs are readable by root only; what the agent saw is unknown.",
                      remedy=Remedy("Run the doctor as root.", ("sudo vpce-doctor --only ssm:",)))
    lines = sum(len(t.lines) for t in tails)
    old = sum(1 for m in matches if m["remedy"] is not None)
    return Result(Status.PASS, f"no known problem in the last 24 h of the agent's logs ({lines} lines read"
                  + (f"; {old} older known problem{'s' if old != 1 else ''} in evidence)" if old else ")"),
                  evidence=evidence)


def scan(tails: Sequence[LogTail], now: datetime) -> List[dict]:
    """Catalogue matches, one entry per code, newest first; a line seen in both logs counts once."""
    by_code: Dict[str, dict] = {}
    seen = set()
    for order, tail in enumerate(tails):
        stamp: Optional[datetime] = None
        for index, line in enumerate(tail.lines):
            found = STAMP_RE.match(line)
            if found:
                stamp = _parse(found.group(1)) or stamp
            entry = next(((c, m, r) for rx, c, m, r in CATALOGUE if rx.search(line)), None)
            if entry is None or (found and line in seen):
                continue
            seen.add(line)
            code, meaning, remedy = entry
            meaning = _explain(code, meaning, line)
            recent = stamp is None or now - stamp <= RECENT
            key = (stamp or datetime.min, order, index)
            match = by_code.setdefault(code, {"code": code, "meaning": meaning, "remedy": remedy, "count": 0,
                                              "recent": 0, "last": None, "example": "", "key": key})
            match["count"] += 1
            match["recent"] += int(recent)
            if key >= match["key"] or not match["example"]:
                match.update(key=key, meaning=meaning, last=stamp.isoformat(sep=" ") if stamp else None,
                             example=SECRET_RE.sub(r"\1***@", line.strip())[:EXAMPLE_CHARS])
    return sorted(by_code.values(), key=lambda m: m["key"], reverse=True)


def _explain(code: str, meaning: str, line: str) -> str:
    """A dial timeout means different things on a private and on a public address."""
    found = re.search(r"dial tcp (\d+\.\d+\.\d+\.\d+):443", line) if code == "dial-timeout" else None
    if not found:
        return meaning
    address = found.group(1)
    try:
        private = ipaddress.ip_address(address).is_private
    except ValueError:
        return meaning
    if private:
        return f"TCP 443 to {address} times out: a private address, so a security group or network ACL drops it"
    return (f"TCP 443 to {address} times out: a public address, so the name resolved without the endpoint's "
            "private DNS and there is no way out")


def _parse(text: str) -> Optional[datetime]:
    try:
        return datetime.strptime(text.replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


# ssm-cli get-diagnostics rows → the check of ours that looks at the same thing
DIAGNOSTIC_IDS: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple((re.compile(p), i) for p, i in (
    (r"^EC2 IMDS$", "imds:token"),
    (r"^DNS", "dns:resolver"),
    (r"^Connectivity to (\S+) endpoint$", "tcp:{0}"),
    (r"^AWS Credentials$", "imds:profile"),
    (r"^Agent service$", "ssm:agent"),
    (r"^SSM Agent version$", "ssm:agent"),
    (r"^Proxy configuration$", "local:proxy"),
))


def run_diagnostics(ctx, prior) -> Result:
    cli = next((p for p in SSM_CLIS if is_file(ctx.path(p))), None)
    if cli is None:
        return assess_diagnostics(None, None)
    timeout = max(0.05, min(DIAGNOSTICS_LIMIT_S, ctx.remaining() - 0.3))
    ran = run_command([str(ctx.path(cli)), "get-diagnostics", "--output", "json"], timeout,
                      env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    return assess_diagnostics(cli, ran, timeout)


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a directory on the way that only root may enter
        return False


def ours(check: str) -> Optional[str]:
    for pattern, our_id in DIAGNOSTIC_IDS:
        found = pattern.match(check)
        if found:
            return our_id.format(*found.groups())
    return None


def parse_diagnostics(text: str) -> Optional[List[Dict[str, str]]]:
    """The rows of `get-diagnostics --output json`, found wherever the JSON object starts; None if there is none."""
    start = text.find("{")
    while start != -1:
        try:
            data, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        rows = data.get("DiagnosticsOutput") if isinstance(data, dict) else None
        if isinstance(rows, list):
            return [{k: SECRET_RE.sub(r"\1***@", str(row.get(k, "")))[:500] for k in ("Check", "Status", "Note")}
                    for row in rows if isinstance(row, dict)]
        start = text.find("{", start + 1)
    return None


def assess_diagnostics(cli: Optional[str], ran: Optional[Ran], timeout: float = 0.0) -> Result:
    if cli is None or ran is None:
        return Result(Status.PASS, "ssm-cli not present (agent < 3.1.501.0 or not installed)")
    evidence: Dict[str, object] = {"command": f"{cli} get-diagnostics --output json", "exit_code": ran.code}
    if ran.error:
        return Result(Status.WARN, f"{cli} could not be run: {ran.error}", code="unrunnable", evidence=evidence,
                      cause="The agent's own diagnostics are unavailable; the other checks do not depend on them.")
    if ran.timed_out:
        return Result(Status.WARN, f"ssm-cli get-diagnostics did not finish within {timeout:.1f} s and was killed",
                      code="timeout", evidence=evidence,
                      cause="Its checks wait on IMDS, the endpoints and STS; one of them hangs. See the other "
                            "checks for which.")
    rows = parse_diagnostics(ran.out)
    if not rows:
        shown = (ran.out.strip() or ran.err.strip())[:200]
        needs_root = "root" in shown.lower()
        return Result(Status.WARN, f"ssm-cli get-diagnostics gave no rows: {shown or '(no output)'}",
                      code="needs-root" if needs_root else "garbage", evidence=evidence,
                      cause="ssm-cli runs its checks only as root." if needs_root else
                            "Its output is not the JSON it documents; the other checks do not depend on it.")
    evidence["rows"] = [{"check": r["Check"], "status": r["Status"], "note": r["Note"], "ours": ours(r["Check"])}
                        for r in rows]
    failed = [r for r in rows if r["Status"].lower() in ("failed", "fail", "failure")]
    if not failed:
        return Result(Status.PASS, f"ssm-cli get-diagnostics: {len(rows)} checks, none failed", evidence=evidence)
    first = failed[0]
    listed = "; ".join(f"{r['Check']}: {r['Note']}" + (f" (see {ours(r['Check'])})" if ours(r["Check"]) else "")
                       for r in failed)
    return Result(Status.WARN, f"ssm-cli: {len(failed)} of {len(rows)} checks failed; {first['Check']}: "
                  f"{first['Note']}"[:300], code="diagnostics-failed", evidence=evidence,
                  cause=f"The agent's own diagnostics report: {listed}. It tests only TCP connects from the "
                        "agent's point of view; the matching checks here say which layer breaks.")


def checks():
    return (
        Check("ssm:agent-logs", "the SSM agent's logs show no known problem in the last 24 h", Severity.HIGH,
              run_logs),
        Check("ssm:diagnostics", "ssm-cli get-diagnostics reports no failed check", Severity.LOW, run_diagnostics),
    )
