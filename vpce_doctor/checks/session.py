"""session:preferences, session:run_as and session:outcome: what a Session Manager session started now will do."""
from __future__ import annotations

import json
from typing import Dict, Mapping, Optional

from ..aws import Call, call
from ..instance_files import read_text
from ..model import MET, Check, Remedy, Result, Severity, Status
from . import api

PREFS_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-schema.html"
BOOLEANS = ("s3EncryptionEnabled", "cloudWatchEncryptionEnabled", "cloudWatchStreamingEnabled", "runAsEnabled")
DESTINATIONS = ("session:s3", "session:logs", "session:kms", "session:run_as")


def checks(document: str, agent_planned: bool):
    outcome_after = ("imds:token", "session:preferences", *DESTINATIONS, "tls:ssm", "tls:ssmmessages",
                     *(("ssm:agent",) if agent_planned else ()))
    return (
        Check("session:preferences", f"Session Manager preferences ({document}) can be read", Severity.HIGH,
              run_preferences, needs=("tls:ssm", "creds:source"), clients=("ssm",)),
        Check("session:run_as", "the runAs user exists, when runAs is on", Severity.HIGH, run_run_as,
              needs=("session:preferences",)),
        Check("session:outcome", "what a session started now will do", Severity.CRITICAL, run_outcome,
              after=outcome_after),
    )


def inputs_of(prior: Mapping) -> Optional[Dict[str, object]]:
    found = prior.get("session:preferences")
    return found.evidence.get("inputs") if found is not None and found.status in MET else None


def run_preferences(ctx, prior) -> Result:
    document = ctx.settings.session_document
    return assess_preferences(document, call(ctx.clients.client("ssm"), "get_document", Name=document))


def assess_preferences(document: str, result: Call) -> Result:
    if not result.ok:
        if result.code == "InvalidDocument":
            return Result(Status.PASS, f"{document} does not exist: sessions log nowhere", code="absent",
                          evidence={"document": document, "inputs": {}})
        verdict = api.judge(result, "ssm:GetDocument", f"document/{document}")
        return Result(Status.WARN, f"{document} cannot be read: {result.code}", code="unreadable",
                      cause=verdict.cause + " The log destinations are then judged by their paths only.",
                      remedy=verdict.remedy, evidence={"document": document, "error": result.code,
                                                       **verdict.evidence}, caused_by=verdict.caused_by)
    try:
        content = json.loads(str(result.response.get("Content") or "{}"))
        inputs = content.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise ValueError("inputs is not an object")
    except (ValueError, AttributeError, RecursionError) as error:  # RecursionError: JSON nested too deep
        return Result(Status.WARN, f"{document} is not a valid session document: {error}", code="malformed",
                      evidence={"document": document},
                      remedy=Remedy("Save the preferences again in the Session Manager console.", (), (PREFS_DOC,)))
    inputs = {k: _bool(v) if k in BOOLEANS else v for k, v in inputs.items() if isinstance(k, str)}
    shown = [f"S3 {inputs['s3BucketName']}" for _ in [0] if inputs.get("s3BucketName")] + \
        [f"CloudWatch {inputs['cloudWatchLogGroupName']}" for _ in [0] if inputs.get("cloudWatchLogGroupName")] + \
        [f"KMS {inputs['kmsKeyId']}" for _ in [0] if inputs.get("kmsKeyId")]
    return Result(Status.PASS, f"{document}: logs to {', '.join(shown) or 'nowhere'}"
                  + (f", runAs {inputs.get('runAsDefaultUser')}" if inputs.get("runAsEnabled") else ""),
                  evidence={"document": document, "inputs": inputs})


def _bool(value: object) -> bool:
    return value is True or str(value).strip().lower() == "true"


def run_run_as(ctx, prior) -> Result:
    inputs = inputs_of(prior) or {}
    try:
        passwd = read_text(ctx.path("/etc/passwd"), 4 * 1024 * 1024)
    except OSError as error:
        passwd = None
        inputs = {**inputs, "_problem": str(error)}
    return assess_run_as(inputs, passwd)


def assess_run_as(inputs: Mapping[str, object], passwd: Optional[str]) -> Result:
    if not inputs.get("runAsEnabled"):
        return Result(Status.PASS, "runAs is off: sessions run as ssm-user")
    user = str(inputs.get("runAsDefaultUser") or "")
    if passwd is None:
        return Result(Status.WARN, f"runAs user {user!r} could not be looked up: /etc/passwd unreadable",
                      code="unreadable")
    users = {line.split(":", 1)[0] for line in passwd.splitlines() if ":" in line}
    if user and user in users:
        return Result(Status.PASS, f"runAs user {user} exists")
    return Result(Status.FAIL, f"runAs user {user or '(empty)'} does not exist on this instance", code="no-such-user",
                  cause="With runAs on, the agent starts sessions as this OS user; when it is missing, sessions fail "
                        "at once.", remedy=Remedy("Create the user, or change runAsDefaultUser (or the "
                                                  "SSMSessionRunAs tag of the IAM principal).",
                                                  (f"sudo useradd -m {user or '<user>'}",), (PREFS_DOC,)))


def run_outcome(ctx, prior) -> Result:
    return predict({k: (v.status.value, v.code, v.summary) for k, v in prior.items()}, inputs_of(prior) or {})


# What the agent does when a session starts, in its order (aws/amazon-ssm-agent@1c217c89), and how long each step
# holds the console blank while its destination silently drops:
# 1. sessionplugin.go:109 PerformHandshake (KMS, when kmsKeyId is set) before the shell starts; datachannel.go:51
#    handshakeTimeout = 15 s, then the session fails: nothing after it is waited for.
# 2. shell.go:631-633 initializeLogger -> s3util.NewAmazonS3Util -> crossregion.go getBucketRegion: a signed
#    HeadBucket with the SDK's retries (vendor/.../aws/client/default_retryer.go DefaultRetryerMaxNumRetries = 3),
#    then unsigned HEADs over https and http, regional and global (crossregion.go:175-205), each 30 s
#    (s3util_dep.go:51 Timeout: 30 * time.Second): about 240 s.
# 3. shell.go:108-111 validate: DescribeLogGroups with NumMaxRetries 5 (cloudwatchlogsservice.go:44,116) and Go's
#    30 s dial timeout: about 180 s (aws/amazon-ssm-agent#639 reports "over 2 minutes"). An unreachable group is
#    "not encrypted" (IsLogGroupEncryptedWithKMS(nil)), so with cloudWatchEncryptionEnabled the session is refused.
# 4. shell.go:134-138 validate: GetBucketEncryption (s3util.go:143 IsBucketEncrypted) with the SDK's retries:
#    about 120 s more when s3EncryptionEnabled, then refused.
CONNECTION = ("ssm:agent", "tls:ssmmessages", "tls:ssm")
# IMDS turned off answers 403 (EC2 user guide, "Configure the instance metadata options"): the agent's credentials
# (instance profile or Default Host Management) come from IMDS, so it cannot register. A timeout is not enough: a
# container behind a hop limit of 1 loses IMDS while the agent on the host keeps it.
NO_IMDS = "the agent gets no credentials from IMDS and cannot register (TargetNotConnected)"
REFUSED = "the agent refuses the session"
REFUSING = ("unencrypted", "unsupported-encryption", "encryption-unverifiable")  # session:s3 codes, when required
AT_ONCE = (
    ("ssm:agent", "the instance is not connected to Session Manager (TargetNotConnected)"),
    ("tls:ssmmessages", "TargetNotConnected: the agent cannot open its control channel"),
    ("tls:ssm", "the instance is not managed: the agent cannot register with SSM"),
)
# (check, seconds, what waits, source)
WAITS = {
    "kms": ("session:kms", 15, "the KMS handshake waits for KMS",
            "agent/session/datachannel/datachannel.go:51 handshakeTimeout = 15 s"),
    "s3-region": ("session:s3", 240, "the agent looks for the bucket's Region (a signed HeadBucket with 3 retries, "
                  "then unsigned HEADs of 30 s each)", "agent/s3util/crossregion.go:162-211, s3util_dep.go:51"),
    "logs": ("session:logs", 180, "DescribeLogGroups retries 5 times with a 30 s dial timeout",
             "agent/agentlogstocloudwatch/cloudwatchlogspublisher/cloudwatchlogsservice.go:44"),
    "s3-encryption": ("session:s3", 120, "GetBucketEncryption retries", "agent/s3util/s3util.go:143, "
                      "default_retryer.go DefaultRetryerMaxNumRetries = 3"),
}
DESTINATION = {"session:s3": "its S3 log", "session:logs": "its CloudWatch log", "session:kms": "KMS"}


def predict(prior: Mapping[str, tuple], inputs: Mapping[str, object]) -> Result:
    """prior: check id -> (status, code, summary) of everything session:outcome waited for."""
    evidence: Dict[str, object] = {"inputs": {k: v for k, v in inputs.items() if not str(k).startswith("_")}}

    def seen(check_id):
        return prior.get(check_id, ("pass", "", ""))

    def broken(check_id):
        status = seen(check_id)[0]
        return status in ("fail", "error") or (status == "skip" and check_id in CONNECTION)

    if seen("imds:token")[:2] == ("fail", "forbidden"):  # see NO_IMDS
        return _fails(f"{NO_IMDS} (imds:token: {seen('imds:token')[2]})", ["imds:token"], evidence)
    for check_id, then in AT_ONCE:
        if broken(check_id):
            return _fails(f"{then} ({check_id}: {seen(check_id)[2]})", [check_id], evidence)
    waits, lost, causes, fatal = _steps(broken, seen, inputs)
    if fatal and not waits:
        return _fails(fatal, causes, evidence)
    if waits:
        seconds = sum(w["seconds"] for w in waits)
        then = f"then fails: {fatal}" if fatal else "then starts, without " + " and ".join(
            DESTINATION[c] for c in lost)
        steps = "; ".join(f"{w['what']}: about {w['seconds']} s ({w['source']})" for w in waits)
        return Result(Status.FAIL, f"a session started now opens and stays blank for about {seconds} s, {then}",
                      code="hangs", evidence={**evidence, "waits": waits}, caused_by=tuple(causes),
                      cause=f"The agent checks the session's destinations in this order when a session starts and "
                            f"waits on each unreachable one: {steps}.")
    if lost:
        return Result(Status.WARN, "a session started now works, but its logs are lost: "
                      + " and ".join(DESTINATION[c] for c in lost), code="logs-lost", evidence=evidence,
                      caused_by=tuple(causes))
    unknown = [c for c, (status, _, _) in prior.items() if status in ("skip", "error")]
    if unknown:
        return Result(Status.WARN, f"a session will probably work, but {', '.join(unknown)} could not be checked",
                      code="unknown", evidence=evidence, caused_by=tuple(unknown))
    return Result(Status.PASS, "a session started now works" + (" and logs where the preferences say"
                                                                if inputs else ""), evidence=evidence,
                  caused_by=tuple(causes))


def _fails(fatal: str, causes, evidence) -> Result:
    return Result(Status.FAIL, f"a session started now fails at once: {fatal}", code="fails", evidence=evidence,
                  caused_by=tuple(causes), cause="Fix the finding named here and this one follows.")


def _wait(key: str, summary: str) -> dict:
    check_id, seconds, what, source = WAITS[key]
    return {"check": check_id, "seconds": seconds, "what": what, "source": source, "seen": summary}


def _steps(broken, seen, inputs):
    """The agent's steps after the control channel: (waits, destinations lost, causes, what ends the session)."""
    waits, lost, causes = [], [], []
    _, kms_code, kms_summary = seen("session:kms")
    if broken("session:kms"):
        unreachable = kms_code == "unreachable"
        return ([_wait("kms", kms_summary)] if unreachable else [], [], ["session:kms"],
                ("Handshake timed out (KMS Decrypt never answers)" if unreachable else "the KMS handshake fails")
                + f" (session:kms: {kms_summary})")
    _, s3_code, s3_summary = seen("session:s3")
    s3_unreachable = broken("session:s3") and s3_code == "unreachable"
    if s3_unreachable:
        waits.append(_wait("s3-region", s3_summary))
    fatal = None
    if broken("session:logs"):
        logs_code, logs_summary = seen("session:logs")[1:]
        causes.append("session:logs")
        if logs_code == "unreachable":
            waits.append(_wait("logs", logs_summary))
        if inputs.get("cloudWatchEncryptionEnabled"):
            fatal = f"{REFUSED} (session:logs: {logs_summary})"
        else:
            lost.append("session:logs")
    if broken("session:s3"):
        causes.insert(0, "session:s3")
        encrypted = bool(inputs.get("s3EncryptionEnabled"))
        if s3_unreachable and encrypted and not fatal:
            waits.append(_wait("s3-encryption", s3_summary))
        if encrypted and (s3_unreachable or s3_code in REFUSING):
            fatal = fatal or f"{REFUSED} (session:s3: {s3_summary})"
        elif "session:s3" not in lost:
            lost.insert(0, "session:s3")
    if broken("session:run_as") and not fatal:
        causes.append("session:run_as")
        fatal = f"the runAs user does not exist (session:run_as: {seen('session:run_as')[2]})"
    return waits, lost, causes, fatal
