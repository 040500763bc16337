"""session:preferences, session:run_as and session:outcome: what a Session Manager session started now will do."""
from __future__ import annotations

import json
from typing import Dict, Mapping, Optional

from ..aws import call
from ..instance_files import read_text
from ..model import MET, Check, Remedy, Result, Severity, Status
from . import api

DEFAULT_DOCUMENT = "SSM-SessionManagerRunShell"
PREFS_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-schema.html"
BOOLEANS = ("s3EncryptionEnabled", "cloudWatchEncryptionEnabled", "cloudWatchStreamingEnabled", "runAsEnabled")
DESTINATIONS = ("session:s3", "session:logs", "session:kms", "session:run_as")


def checks(document: str, agent_planned: bool):
    outcome_after = ("session:preferences", *DESTINATIONS, "tls:ssm", "tls:ssmmessages",
                     *(("ssm:agent",) if agent_planned else ()))
    return (
        Check("session:preferences", f"Session Manager preferences ({document}) can be read", Severity.HIGH,
              run_preferences, needs=("tls:ssm", "creds:source")),
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


def assess_preferences(document: str, result: Mapping[str, object]) -> Result:
    if not result.get("ok"):
        if result.get("code") == "InvalidDocument":
            return Result(Status.PASS, f"{document} does not exist: sessions log nowhere", code="absent",
                          evidence={"document": document, "inputs": {}})
        verdict = api.judge(result, "ssm:GetDocument", f"document/{document}")
        return Result(Status.WARN, f"{document} cannot be read: {result.get('code')}", code="unreadable",
                      cause=verdict.cause + " The log destinations are then judged by their paths only.",
                      remedy=verdict.remedy, evidence={"document": document, "error": result.get("code"),
                                                       **verdict.evidence})
    try:
        content = json.loads(str(result["response"].get("Content") or "{}"))  # type: ignore[union-attr]
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
                        "at once.", remedy=Remedy(f"Create the user, or change runAsDefaultUser (or the "
                                                  f"SSMSessionRunAs tag of the IAM principal).",
                                                  (f"sudo useradd -m {user or '<user>'}",), (PREFS_DOC,)))


def run_outcome(ctx, prior) -> Result:
    return predict({k: (v.status.value, v.code, v.summary) for k, v in prior.items()}, inputs_of(prior) or {})


# Each line: the check, the codes that decide it (None: any), how long the session hangs first, and what it then
# does (None: it starts, that destination's logs lost). The agent's own connection is broken when its checks did
# not pass at all, skipped included; a log destination only when it failed. "encrypted": only when the
# preferences require encryption for that destination does the agent refuse the session.
CONNECTION = ("ssm:agent", "tls:ssmmessages", "tls:ssm")
REFUSED = "the agent refuses the session"
PREDICTIONS = (
    ("ssm:agent", None, 0, "the instance is not connected to Session Manager (TargetNotConnected)"),
    ("tls:ssmmessages", None, 0, "TargetNotConnected: the agent cannot open its control channel"),
    ("tls:ssm", None, 0, "the instance is not managed: the agent cannot register with SSM"),
    ("session:run_as", None, 0, "the runAs user does not exist"),
    ("session:kms", ("unreachable",), 15, "Handshake timed out (KMS Decrypt never answers)"),
    ("session:kms", None, 0, "the KMS handshake fails"),
    ("session:s3", ("unreachable",), 150, "s3EncryptionEnabled"),
    ("session:s3", ("unencrypted", "encryption-unverifiable"), 0, REFUSED),
    ("session:s3", None, 0, None),
    ("session:logs", ("unreachable",), 60, "cloudWatchEncryptionEnabled"),
    ("session:logs", None, 0, "cloudWatchEncryptionEnabled"),
)
WAITS = {"session:kms": "the data channel handshake waits for KMS",
         "session:s3": "the agent looks for the bucket's Region (five HEAD requests, about 30 s each)",
         "session:logs": "DescribeLogGroups retries"}


def predict(prior: Mapping[str, tuple], inputs: Mapping[str, object]) -> Result:
    """prior: check id → (status, code, summary) of everything session:outcome waited for."""
    evidence: Dict[str, object] = {"inputs": {k: v for k, v in inputs.items() if not str(k).startswith("_")}}
    waits, seconds, fatal, lost, causes = [], 0, None, [], []
    for check_id, codes, wait, then in PREDICTIONS:
        status, code, summary = prior.get(check_id, ("pass", "", ""))
        broken = status in ("fail", "error") or (status == "skip" and check_id in CONNECTION)
        if not broken or (codes is not None and code not in codes) or check_id in causes:
            continue
        causes.append(check_id)
        if wait:
            seconds += wait
            waits.append(f"{WAITS[check_id]} ({check_id}: {summary})")
        if then in BOOLEAN_GATES:  # refused only when the preferences require encryption there
            then = REFUSED if inputs.get(then) else None
        if then is None:
            lost.append(check_id)
        else:
            fatal = fatal or f"{then} ({check_id}: {summary})"
    evidence["caused_by"] = causes
    if fatal and not waits:
        return Result(Status.FAIL, f"a session started now fails at once: {fatal}", code="fails", evidence=evidence,
                      cause="Fix the finding named here and this one follows.")
    if waits:
        then = f"then fails: {fatal}" if fatal else "then starts, without " + " and ".join(
            DESTINATION[c] for c in lost)
        return Result(Status.FAIL, f"a session started now opens and stays blank for about {seconds} s, {then}",
                      code="hangs", evidence={**evidence, "waits": waits},
                      cause="The agent checks the log destinations only when a session starts and waits on each "
                            "unreachable one: " + "; ".join(waits) + ".")
    if lost:
        return Result(Status.WARN, "a session started now works, but its logs are lost: "
                      + " and ".join(DESTINATION[c] for c in lost), code="logs-lost", evidence=evidence)
    unknown = [c for c, (status, _, _) in prior.items() if status in ("skip", "error")]
    if unknown:
        return Result(Status.WARN, f"a session will probably work, but {', '.join(unknown)} could not be checked",
                      code="unknown", evidence={**evidence, "caused_by": unknown})
    return Result(Status.PASS, "a session started now works" + (" and logs where the preferences say"
                                                                if inputs else ""), evidence=evidence)


BOOLEAN_GATES = ("s3EncryptionEnabled", "cloudWatchEncryptionEnabled")
DESTINATION = {"session:s3": "its S3 log", "session:logs": "its CloudWatch log", "session:kms": "KMS"}
