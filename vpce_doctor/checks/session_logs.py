"""session:s3, session:logs and session:kms: the session-log destinations, tested the way the agent uses them."""
from __future__ import annotations

import time
from typing import Dict, Mapping, Optional, Tuple

from ..aws import Call, call
from ..model import Check, Remedy, Result, Severity, Status
from . import api, path
from .s3 import Seen, probe_key, request_of
from .session import inputs_of

LOGGING_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-logging.html"
MISREPORT = (" With cloudWatchEncryptionEnabled the agent then refuses the session with 'We couldn't start the "
             "session because encryption is not set up on the selected CloudWatch Logs log group', which is not "
             "the real cause.")
S3_SLOW = ("The agent looks for the bucket's Region at session start (a signed HeadBucket with 3 retries, then "
           "unsigned HEADs over https and http, regional and global, 30 s each: agent/s3util/crossregion.go, "
           "s3util_dep.go): about 240 s of blank console while S3 is unreachable.")
GATEWAY = Remedy("Give this subnet's route table the S3 gateway endpoint route (or create an S3 interface "
                 "endpoint), or turn S3 session logging off.",
                 ("aws ec2 modify-vpc-endpoint --vpc-endpoint-id <vpce-id> --add-route-table-ids <rtb-id>",),
                 (LOGGING_DOC,))
LOGS_ENDPOINT = Remedy("Create an interface endpoint for CloudWatch Logs with private DNS, or turn CloudWatch "
                       "session logging off.", ("aws ec2 create-vpc-endpoint --vpc-endpoint-type Interface "
                                                "--service-name {endpoint_logs} --vpc-id {vpc} "
                                                "--subnet-ids {subnet} --private-dns-enabled",), (LOGGING_DOC,))
KMS_ENDPOINT = Remedy("Create an interface endpoint for KMS with private DNS.",
                      ("aws ec2 create-vpc-endpoint --vpc-endpoint-type Interface --service-name "
                       "{endpoint_kms} --vpc-id {vpc} --subnet-ids {subnet} --private-dns-enabled",))


def checks():
    after = ("tls:s3", "tls:logs", "tls:kms", "dns:s3", "tcp:s3", "dns:logs", "tcp:logs", "dns:kms", "tcp:kms",
             "vpc:endpoints", "sts:identity")
    return tuple(Check(f"session:{name}", title, Severity.HIGH, run, needs=("session:preferences",), after=after,
                       clients=(name,))  # each calls its own service: s3, logs or kms
                 for name, title, run in (
                     ("s3", "the S3 session-log bucket is reachable, encrypted as required and writable", run_s3),
                     ("logs", "the session log group is reachable, exists, encrypted as required, writable",
                      run_logs),
                     ("kms", "the session KMS key is reachable and enabled", run_kms)))


def _context(ctx) -> Dict[str, object]:
    return dict(ctx.placeholders())


def run_s3(ctx, prior) -> Result:
    inputs = inputs_of(prior) or {}
    bucket = str(inputs.get("s3BucketName") or "")
    if not bucket:
        return Result(Status.PASS, "S3 session logging is off")
    reach = path.reach(ctx, prior, "s3")
    steps: Dict[str, Call] = {}
    if reach["ok"]:
        client = ctx.clients.client("s3")
        steps["head"] = call(client, "head_bucket", Bucket=bucket)
        # The agent reads the bucket's default encryption at every upload (s3util.go getSSEAlgorithm), and checks it
        # at session start when s3EncryptionEnabled (IsBucketEncrypted).
        steps["encryption"] = call(client, "get_bucket_encryption", Bucket=bucket)
        if not ctx.settings.no_write:
            key = probe_key(str(inputs.get("s3KeyPrefix") or ""), ctx.facts.instance_id)
            steps["put"] = call(client, "put_object", Bucket=bucket, Key=key, Body=b"vpce-doctor session-log probe\n",
                                **agent_upload_headers(steps["encryption"]))
            if steps["put"].ok:
                steps["delete"] = call(client, "delete_object", Bucket=bucket, Key=key)
    seen = request_of(ctx, prior)
    return assess_s3(bucket, inputs, reach, steps, ctx.region, seen.endpoint, _context(ctx), seen)


# aws/amazon-ssm-agent@1c217c89 agent/s3util/s3util.go: S3Upload sends ACL bucket-owner-full-control (:102) and copies
# the bucket's default encryption into ServerSideEncryption/SSEKMSKeyId (:105-114), for AES256 and aws:kms only;
# IsBucketEncrypted (:143-160) accepts only those two, so DSSE-KMS (aws:kms:dsse) counts as not encrypted.
AGENT_SSE = ("AES256", "aws:kms")


def default_encryption(step: Call) -> Dict[str, str]:
    """The bucket's default rule as GetBucketEncryption gave it: {"algorithm", "key"} ({} when none or unread)."""
    rules = ((step.response.get("ServerSideEncryptionConfiguration") or {}).get("Rules") or [{}])
    default = rules[0].get("ApplyServerSideEncryptionByDefault") or {}
    return {"algorithm": str(default.get("SSEAlgorithm") or ""), "key": str(default.get("KMSMasterKeyID") or "")}


def agent_upload_headers(step: Call) -> Dict[str, str]:
    """PutObject's arguments as the agent's S3Upload builds them."""
    rule = default_encryption(step) if step.ok else {}
    headers = {"ACL": "bucket-owner-full-control", "ContentType": "text/plain"}
    if rule.get("algorithm") in AGENT_SSE:
        headers["ServerSideEncryption"] = rule["algorithm"]
        if rule["algorithm"] == "aws:kms" and rule["key"]:
            headers["SSEKMSKeyId"] = rule["key"]
    return headers


def assess_s3(bucket: str, inputs: Mapping, reach: Mapping, steps: Mapping[str, Call], region: str,
              endpoint: Mapping[str, Optional[str]], context: Mapping[str, object],
              request: Optional[Seen] = None) -> Result:
    """request: the caller and condition keys (s3.request_of): the agent writes as the instance role, through the
    same endpoint, so its policy is judged as for the doctor's own probe (gateway principals, aws:SourceVpce ...)."""
    seen = request or Seen(endpoint)
    evidence = {"bucket": bucket, "path": dict(reach), "steps": {k: v.summary() for k, v in steps.items()}}
    if not reach["ok"]:
        return Result(Status.FAIL, f"session-log bucket {bucket} is unreachable: {reach['check']} {reach['code']}",
                      code="unreachable", cause=S3_SLOW, remedy=GATEWAY, evidence=evidence,
                      caused_by=_caused_by(reach))
    head = steps.get("head") or Call(False)
    found = head.headers.get("x-amz-bucket-region") or (
        head.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region"))
    if found and found != region:
        return Result(Status.FAIL, f"session-log bucket {bucket} is in {found}, not {region}", code="other-region",
                      cause="The gateway endpoint reaches only this Region's S3; the agent's upload times out.",
                      evidence=evidence)
    encryption = steps.get("encryption") if inputs.get("s3EncryptionEnabled") else None
    refused = _encryption_refused(bucket, encryption, seen, evidence) if encryption is not None else None
    if refused is not None:
        return refused
    put = steps.get("put")
    if put is not None and not put.ok:
        prefix = str(inputs.get("s3KeyPrefix") or "")
        verdict = _judge(put, "s3:PutObject", f"arn:aws:s3:::{bucket}/{prefix}*", seen)
        return Result(Status.FAIL, f"PutObject (with the ACL and SSE headers the agent sends) to {bucket}/{prefix} "
                      f"failed: {put.code}", code=verdict.code, remedy=verdict.remedy,
                      evidence={**evidence, **verdict.evidence}, caused_by=verdict.caused_by,
                      cause="The agent uploads the session log at the end of the session and fails the same way: "
                            "the log is lost. " + verdict.cause)
    wrote = "writable" if put is not None else "not written (writes are off)"
    rule = default_encryption(steps.get("encryption") or Call(False))
    return Result(Status.PASS, f"session-log bucket {bucket} in {found or region}: reachable, {wrote}"
                  + (f", default encryption {rule['algorithm']}" if rule.get("algorithm") else ""), evidence=evidence)


def _judge(step: Call, action: str, resource: str, seen: Seen) -> api.Verdict:
    endpoint = seen.endpoint
    return api.judge(step, action, resource, seen.principal, endpoint.get("policy"), endpoint.get("id"),
                     gateway=str(endpoint.get("type") or "").lower() == "gateway", context=seen.context)


def _encryption_refused(bucket: str, encryption: Call, request: Seen, evidence: Dict) -> Optional[Result]:
    """With s3EncryptionEnabled, the agent's IsBucketEncrypted verdict, or None when it accepts the bucket."""
    code = encryption.code
    algorithm = default_encryption(encryption).get("algorithm") if encryption.ok else ""
    if encryption.ok and algorithm in AGENT_SSE:
        return None
    if encryption.ok or code == "ServerSideEncryptionConfigurationNotFoundError":
        seen = f"default encryption {algorithm}, which the agent does not accept" if algorithm else \
            "no default encryption"
        return Result(Status.FAIL, f"bucket {bucket} has {seen}", evidence=evidence,
                      code="unsupported-encryption" if algorithm else "unencrypted",
                      cause="With s3EncryptionEnabled the agent accepts only AES256 and aws:kms (s3util.go "
                            "IsBucketEncrypted) and refuses the session: 'We couldn't start the session because "
                            "encryption is not set up on the selected Amazon S3 bucket.'",
                      remedy=Remedy("Set the bucket's default encryption to SSE-S3 or SSE-KMS (not DSSE-KMS).",
                                    (f"aws s3api put-bucket-encryption --bucket {bucket} "
                                     "--server-side-encryption-configuration '{\"Rules\":[{\"Apply"
                                     "ServerSideEncryptionByDefault\":{\"SSEAlgorithm\":\"AES256\"}}]}'",)))
    verdict = _judge(encryption, "s3:GetEncryptionConfiguration", f"arn:aws:s3:::{bucket}", request)
    return Result(Status.FAIL, f"GetBucketEncryption on {bucket} failed: {code}", code="encryption-unverifiable",
                  cause="With s3EncryptionEnabled the agent refuses the session: 'Couldn't start the session "
                        f"because we are unable to validate encryption on Amazon S3 bucket. Error: {code}'. "
                        + verdict.cause, remedy=verdict.remedy, evidence={**evidence, **verdict.evidence},
                  caused_by=verdict.caused_by)


def run_logs(ctx, prior) -> Result:
    inputs = inputs_of(prior) or {}
    group = str(inputs.get("cloudWatchLogGroupName") or "")
    if not group:
        return Result(Status.PASS, "CloudWatch session logging is off")
    reach = path.reach(ctx, prior, "logs")
    steps: Dict[str, Call] = {}
    if reach["ok"]:
        client = ctx.clients.client("logs")
        steps["describe"] = call(client, "describe_log_groups", logGroupNamePrefix=group, limit=50)
        stream = f"vpce-doctor-{ctx.facts.instance_id or 'unknown-instance'}"
        if steps["describe"].ok and not ctx.settings.no_write and _group(steps["describe"], group):
            steps["stream"] = call(client, "create_log_stream", logGroupName=group, logStreamName=stream)
            if steps["stream"].ok or steps["stream"].code == "ResourceAlreadyExistsException":
                steps["put"] = call(client, "put_log_events", logGroupName=group, logStreamName=stream,
                                    logEvents=[{"timestamp": int(time.time() * 1000),
                                                "message": "vpce-doctor session-log probe"}])
    seen = request_of(ctx, prior, "logs")
    return assess_logs(group, inputs, reach, steps, seen.endpoint, _context(ctx), seen)


def assess_logs(group: str, inputs: Mapping, reach: Mapping, steps: Mapping[str, Call],
                endpoint: Mapping[str, Optional[str]], context: Mapping[str, object],
                request: Optional[Seen] = None) -> Result:
    seen = request or Seen(endpoint)
    encrypted = bool(inputs.get("cloudWatchEncryptionEnabled"))
    evidence: Dict[str, object] = {"group": group, "path": dict(reach),
                                   "steps": {k: v.summary() for k, v in steps.items()}}
    misreport = MISREPORT if encrypted else (" Without encryption required, the agent turns streaming off and the "
                                             "logs are lost.")
    if not reach["ok"]:
        return Result(Status.FAIL, f"CloudWatch Logs is unreachable: {reach['check']} {reach['code']}",
                      code="unreachable", evidence=evidence, remedy=LOGS_ENDPOINT.filled(**context),
                      caused_by=_caused_by(reach),
                      cause="The agent calls DescribeLogGroups at session start with 5 retries and a 30 s dial timeout "
                            "(cloudwatchlogsservice.go): about 180 s of blank console."
                            + misreport)
    describe = steps["describe"]
    if not describe.ok:
        verdict = _judge(describe, "logs:DescribeLogGroups", "*", seen)
        return Result(Status.FAIL, f"DescribeLogGroups failed: {describe.code}", code=verdict.code,
                      cause=verdict.cause + misreport, remedy=verdict.remedy, evidence={**evidence, **verdict.evidence},
                      caused_by=verdict.caused_by)
    found = _group(describe, group)
    if found is None:
        return Result(Status.FAIL, f"log group {group} does not exist", code="no-log-group", evidence=evidence,
                      cause="The session preferences name a log group that is not there." + misreport,
                      remedy=Remedy("Create the log group (with a KMS key if encryption is required).",
                                    (f"aws logs create-log-group --log-group-name {group}",), (LOGGING_DOC,)))
    evidence["kms_key"] = found.get("kmsKeyId")
    if encrypted and not found.get("kmsKeyId"):
        return Result(Status.FAIL, f"log group {group} has no KMS key, and cloudWatchEncryptionEnabled is on",
                      code="unencrypted", evidence=evidence,
                      cause="The agent counts only a KMS key as encryption and refuses the session: 'We couldn't "
                            "start the session because encryption is not set up on the selected CloudWatch Logs log "
                            "group.'", remedy=Remedy("Associate a KMS key with the log group, or turn "
                                                     "cloudWatchEncryptionEnabled off.",
                                                     (f"aws logs associate-kms-key --log-group-name {group} "
                                                      "--kms-key-id <key-arn>",), (LOGGING_DOC,)))
    for name, action in (("stream", "logs:CreateLogStream"), ("put", "logs:PutLogEvents")):
        step = steps.get(name)
        if step is not None and not step.ok and step.code != "ResourceAlreadyExistsException":
            verdict = _judge(step, action, "*", seen)
            return Result(Status.FAIL, f"{action} on {group} failed: {step.code}", code=verdict.code,
                          cause="The agent writes session logs the same way; they are lost. " + verdict.cause,
                          remedy=verdict.remedy, evidence={**evidence, **verdict.evidence}, caused_by=verdict.caused_by)
    wrote = "writable" if "put" in steps else "not written (writes are off)"
    return Result(Status.PASS, f"log group {group} exists" + (", KMS-encrypted" if found.get("kmsKeyId") else "")
                  + f", {wrote}", evidence=evidence)


def run_kms(ctx, prior) -> Result:
    key = str((inputs_of(prior) or {}).get("kmsKeyId") or "")
    if not key:
        return Result(Status.PASS, "session encryption with KMS is off")
    reach = path.reach(ctx, prior, "kms")
    described = call(ctx.clients.client("kms"), "describe_key", KeyId=key) if reach["ok"] else None
    return assess_kms(key, reach, described, _context(ctx))


def assess_kms(key: str, reach: Mapping, described: Optional[Call], context: Mapping[str, object]) -> Result:
    evidence = {"key": key, "path": dict(reach), "describe": described.summary() if described else {}}
    proof = " kms:Decrypt itself cannot be proven without ciphertext: the session handshake is the only test."
    if not reach["ok"]:
        return Result(Status.FAIL, f"KMS is unreachable: {reach['check']} {reach['code']}", code="unreachable",
                      cause="The session handshake calls KMS Decrypt and times out after 15 s.",
                      remedy=KMS_ENDPOINT.filled(**context), evidence=evidence, caused_by=_caused_by(reach))
    if described is not None and described.ok:
        state = described.response.get("KeyMetadata", {}).get("KeyState")
        if state != "Enabled":
            return Result(Status.FAIL, f"KMS key {key} is {state}", code="key-disabled", evidence=evidence,
                          cause="The handshake cannot decrypt with a key that is not enabled.")
        return Result(Status.PASS, f"KMS key {key} is enabled and reachable." + proof, evidence=evidence)
    return Result(Status.WARN, f"DescribeKey on {key} failed: {described.code if described else None}",
                  code="describe-denied", evidence=evidence,
                  cause="The key could not be looked at; the instance role needs only kms:Decrypt, so this may be "
                        "fine." + proof)


def _caused_by(reach: Mapping) -> Tuple[str, ...]:
    """An unreachable destination that a network check in the report already failed on follows from that check."""
    return (str(reach["check"]),) if not reach["ok"] and reach.get("planned") else ()


def _group(describe: Call, name: str) -> Optional[dict]:
    groups = describe.response.get("logGroups", [])
    return next((g for g in groups if g.get("logGroupName") == name), None)

