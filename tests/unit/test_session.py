"""session:outcome: what a session started now does, in the agent's order and with its waits. Every number below is
the agent's (aws/amazon-ssm-agent@1c217c89): the KMS handshake timeout (agent/session/datachannel/datachannel.go:51
handshakeTimeout = 15 * time.Second) comes first (sessionplugin.go:109, before Execute); then the S3 bucket's Region
lookup (agent/s3util/crossregion.go getBucketRegion: signed HeadBucket with DefaultRetryerMaxNumRetries = 3, then
unsigned HEADs with s3util_dep.go:51 Timeout 30 s: about 240 s); then DescribeLogGroups (cloudwatchlogsservice.go:44
maxRetries = 5 with Go's 30 s dial timeout: about 180 s, #639 "over 2 minutes"); then GetBucketEncryption when
s3EncryptionEnabled (about 120 s) — fidelity.md §C."""
from vpce_doctor.aws import Call
from vpce_doctor.checks import session
from vpce_doctor.model import Status

S3_DOWN = ("fail", "unreachable", "bucket unreachable")
LOGS_DOWN = ("fail", "unreachable", "CloudWatch Logs is unreachable")
KMS_DOWN = ("fail", "unreachable", "KMS is unreachable")


def seconds(result):
    return [w["seconds"] for w in result.evidence.get("waits", [])]


def test_a_healthy_session_and_the_connection_failures_that_fail_at_once():
    assert session.predict({"tls:ssm": ("pass", "", "")}, {"s3BucketName": "b"}).status is Status.PASS
    at_once = session.predict({"ssm:agent": ("fail", "not-running", "amazon-ssm-agent is not running")}, {})
    assert at_once.code == "fails" and "fails at once" in at_once.summary and at_once.caused_by == \
        ("ssm:agent",)
    skipped = session.predict({"tls:ssmmessages": ("skip", "blocked", "not run: tcp:ssmmessages is fail")}, {})
    assert skipped.code == "fails" and "TargetNotConnected" in skipped.summary


def test_kms_is_first_waits_15_s_and_then_nothing_else_is_waited_for():
    result = session.predict({"session:kms": KMS_DOWN, "session:s3": S3_DOWN, "session:logs": LOGS_DOWN},
                             {"kmsKeyId": "k", "s3BucketName": "b", "cloudWatchLogGroupName": "/g"})
    assert seconds(result) == [15] and "about 15 s, then fails: Handshake timed out" in result.summary
    assert "datachannel.go:51" in result.cause
    disabled = session.predict({"session:kms": ("fail", "key-disabled", "KMS key k is Disabled")}, {"kmsKeyId": "k"})
    assert disabled.code == "fails" and "KMS handshake fails" in disabled.summary


def test_s3_region_lookup_holds_the_console_about_240_s_then_the_session_starts_without_its_log():
    result = session.predict({"session:s3": S3_DOWN}, {"s3BucketName": "b"})
    assert seconds(result) == [240] and "blank for about 240 s, then starts, without its S3 log" in result.summary
    assert "crossregion.go" in result.cause and "s3util_dep.go:51" in result.cause


def test_s3_encryption_adds_about_120_s_and_refuses():
    result = session.predict({"session:s3": S3_DOWN}, {"s3BucketName": "b", "s3EncryptionEnabled": True})
    assert seconds(result) == [240, 120] and "about 360 s, then fails: the agent refuses the session" in \
        result.summary


def test_cloudwatch_waits_about_180_s_after_s3_and_refuses_only_when_encryption_is_required():
    both = session.predict({"session:s3": S3_DOWN, "session:logs": LOGS_DOWN},
                           {"s3BucketName": "b", "cloudWatchLogGroupName": "/g"})
    assert seconds(both) == [240, 180] and "420 s, then starts, without its S3 log and its CloudWatch log" in \
        both.summary
    assert both.cause.index("crossregion.go") < both.cause.index("cloudwatchlogsservice.go:44")
    refused = session.predict({"session:logs": LOGS_DOWN}, {"cloudWatchLogGroupName": "/g",
                                                            "cloudWatchEncryptionEnabled": True,
                                                            "s3BucketName": "b", "s3EncryptionEnabled": True})
    # validate (shell.go:108-138) returns at the CloudWatch refusal: GetBucketEncryption is never called
    assert seconds(refused) == [180] and "then fails: the agent refuses the session (session:logs" in \
        refused.summary


def test_destinations_that_answer_refuse_or_lose_logs_at_once():
    refused = session.predict({"session:logs": ("fail", "no-log-group", "log group /s does not exist")},
                              {"cloudWatchEncryptionEnabled": True})
    assert refused.code == "fails" and "refuses" in refused.summary
    lost = session.predict({"session:logs": ("fail", "no-log-group", "log group /s does not exist")},
                           {"cloudWatchEncryptionEnabled": False})
    assert (lost.status, lost.code) == (Status.WARN, "logs-lost")
    unencrypted = session.predict({"session:s3": ("fail", "unencrypted", "bucket b has no default encryption")},
                                  {"s3EncryptionEnabled": True})
    assert unencrypted.code == "fails" and "session:s3" in unencrypted.summary


def test_run_as_missing_fails_after_the_destinations():
    result = session.predict({"session:run_as": ("fail", "no-such-user", "runAs user deploy does not exist")},
                             {"runAsEnabled": True})
    assert result.code == "fails" and "runAs user does not exist" in result.summary


# --- session:s3 as the agent meets the bucket (agent/s3util/s3util.go at 1c217c89) -----------------------------

from vpce_doctor.checks import session_logs  # noqa: E402

REACHABLE = {"ok": True, "check": "tls:s3", "code": "", "summary": "ok"}
NO_ENDPOINT = {"policy": None, "id": None}
KEY = "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def encryption(algorithm, key=None):
    """GetBucketEncryption's answer shape (S3 API reference, ServerSideEncryptionByDefault)."""
    rule = {"SSEAlgorithm": algorithm, **({"KMSMasterKeyID": key} if key else {})}
    return Call(ok=True, response={"ServerSideEncryptionConfiguration": {
        "Rules": [{"ApplyServerSideEncryptionByDefault": rule, "BucketKeyEnabled": False}]}})


def test_the_probe_sends_the_acl_and_sse_headers_the_agent_sends():
    # S3Upload: ACL bucket-owner-full-control (s3util.go:102), SSE copied for AES256 and aws:kms only (:105-114)
    assert session_logs.agent_upload_headers(encryption("aws:kms", KEY)) == {
        "ACL": "bucket-owner-full-control", "ContentType": "text/plain", "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KEY}
    assert session_logs.agent_upload_headers(encryption("AES256"))["ServerSideEncryption"] == "AES256"
    assert "ServerSideEncryption" not in session_logs.agent_upload_headers(encryption("aws:kms:dsse", KEY))
    assert "ServerSideEncryption" not in session_logs.agent_upload_headers(
        Call(ok=False, code="ServerSideEncryptionConfigurationNotFoundError"))


def test_dsse_kms_is_refused_like_no_encryption_when_encryption_is_required():
    # IsBucketEncrypted (s3util.go:143-160) accepts only aws:kms and AES256
    steps = {"head": Call(ok=True), "encryption": encryption("aws:kms:dsse", KEY), "put": Call(ok=True)}
    result = session_logs.assess_s3("logs", {"s3EncryptionEnabled": True}, REACHABLE, steps, "eu-west-1",
                                    NO_ENDPOINT, {})
    assert (result.status, result.code) == (Status.FAIL, "unsupported-encryption")
    assert "aws:kms:dsse" in result.summary and "encryption is not set up on the selected Amazon S3 bucket" in \
        result.cause
    accepted = session_logs.assess_s3("logs", {"s3EncryptionEnabled": True}, REACHABLE,
                                      {**steps, "encryption": encryption("aws:kms", KEY)}, "eu-west-1", NO_ENDPOINT, {})
    assert accepted.status is Status.PASS and "default encryption aws:kms" in accepted.summary
    not_required = session_logs.assess_s3("logs", {}, REACHABLE, steps, "eu-west-1", NO_ENDPOINT, {})
    assert not_required.status is Status.PASS


def test_an_unreadable_encryption_matters_only_when_encryption_is_required():
    denied = Call(ok=False, code="AccessDenied", message="Access Denied", status=403)
    steps = {"head": Call(ok=True), "encryption": denied, "put": Call(ok=True)}
    assert session_logs.assess_s3("logs", {}, REACHABLE, steps, "eu-west-1", NO_ENDPOINT, {}).status is Status.PASS
    missing = Call(ok=False, code="ServerSideEncryptionConfigurationNotFoundError")
    result = session_logs.assess_s3("logs", {"s3EncryptionEnabled": True}, REACHABLE,
                                    {**steps, "encryption": missing}, "eu-west-1", NO_ENDPOINT, {})
    assert result.code == "unencrypted"


def test_a_dsse_bucket_with_encryption_required_fails_the_session_at_once():
    result = session.predict({"session:s3": ("fail", "unsupported-encryption", "bucket b has default encryption "
                                             "aws:kms:dsse, which the agent does not accept")},
                             {"s3BucketName": "b", "s3EncryptionEnabled": True})
    assert result.code == "fails" and "refuses the session" in result.summary
