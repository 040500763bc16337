"""The authenticated layer's judgement (domain.md §4 A3, A5, E, F, G; §3; §5), from literal call results."""
import json

from vpce_doctor.aws import Call
from vpce_doctor.checks import api, clock, identity, s3, session, session_logs, vpc
from vpce_doctor.model import Result, Status

ROLE = "arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0"
GET_PUT_ONLY = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                          "Action": ["s3:GetObject", "s3:PutObject"],
                                          "Resource": "arn:aws:s3:::probe-bucket/*"}]})
ENDPOINT = {"id": "vpce-0s3", "policy": GET_PUT_ONLY}
NO_ENDPOINT = {"id": None, "policy": None}


def ok(response=None, ms=5.0, **extra):
    return Call(True, ms, response or {}, **extra)


def err(code, message="", status=400, kind="api", **extra):
    return Call(False, 5.0, kind=kind, code=code, message=message, status=status, **extra)


def test_credentials_source_from_the_instance_profile_passes():
    result = identity.assess_source("iam-role", "", "arn:aws:iam::1:instance-profile/app")
    assert result.status is Status.PASS and "instance profile" in result.summary


def test_credentials_shadowed_by_environment_warn():
    result = identity.assess_source("env", "", "arn:aws:iam::1:instance-profile/app")
    assert (result.status, result.code) == (Status.WARN, "shadowed")
    assert "environment variables" in result.summary and "unset AWS_ACCESS_KEY_ID" in result.remedy.commands[0]


def test_no_credentials_fail_and_point_at_the_profile():
    result = identity.assess_source(None, "no provider found credentials", None, "i-0abc")
    assert (result.status, result.code) == (Status.FAIL, "no-credentials")
    assert "imds:profile" in result.cause and "--instance-id i-0abc" in result.remedy.commands[0]


def test_unreachable_sts_is_not_a_credentials_problem():
    result = identity.assess_identity(err("ConnectTimeoutError", "Connect timeout", kind="timeout"),
                                      "https://sts.eu-west-1.amazonaws.com", {"region": "eu-west-1"})
    assert (result.status, result.code) == (Status.FAIL, "sts-unreachable")
    assert "says nothing about the credentials" in result.cause
    assert "com.amazonaws.eu-west-1.sts" in result.remedy.commands[0]


def test_sts_identity_passes_with_the_arn():
    result = identity.assess_identity(ok({"Arn": ROLE, "Account": "123456789012"}), "https://sts", {})
    assert result.status is Status.PASS and ROLE in result.summary


def test_stale_credentials_and_clock_skew_are_named():
    stale = api.judge(err("InvalidClientTokenId", "The security token included in the request is invalid"), "x")
    skew = api.judge(err("InvalidSignatureException", "Signature expired: 20261128T120000Z is now earlier than "
                         "20261128T120600Z (20261128T121100Z - 5 min.)"), "x")
    assert (stale.code, skew.code) == ("invalid-credentials", "clock-skew")
    assert "169.254.169.123" in skew.remedy.text


def test_clock_skew_thresholds():
    assert clock.assess([(1000.0, 1000.0), (1001.0, 1000.0)]).status is Status.PASS
    warn = clock.assess([(1000.0, 880.0)])
    fail = clock.assess([(1000.0, 1400.0)])
    assert (warn.status, warn.code, fail.status) == (Status.WARN, "skew", Status.FAIL)
    assert "120 s ahead of AWS" in warn.summary and "400 s behind AWS" in fail.summary
    assert clock.assess([]).code == "unmeasured"


def test_enhanced_endpoint_policy_denial_is_stated():
    message = (f"User: {ROLE} is not authorized to perform: s3:ListAllMyBuckets because no VPC endpoint policy "
               "allows the s3:ListAllMyBuckets action")
    verdict = api.judge(err("AccessDenied", message, 403), "s3:ListAllMyBuckets")
    assert (verdict.code, verdict.certainty) == ("endpoint-policy", "stated")


def test_bare_access_denied_is_attributed_by_evaluating_the_endpoint_policy():
    denied = api.judge(err("AccessDenied", "Access Denied", 403), "s3:PutObject", "arn:aws:s3:::other/x",
                       ROLE, GET_PUT_ONLY, "vpce-0s3")
    allowed = api.judge(err("AccessDenied", "Access Denied", 403), "s3:PutObject", "arn:aws:s3:::probe-bucket/x",
                        ROLE, GET_PUT_ONLY, "vpce-0s3")
    unknown = api.judge(err("AccessDenied", "Access Denied", 403), "s3:PutObject", "arn:aws:s3:::probe-bucket/x")
    assert (denied.code, denied.certainty) == ("endpoint-policy", "inferred")
    assert "vpce-0s3" in denied.remedy.commands[1]
    assert (allowed.code, allowed.certainty) == ("not-endpoint-policy", "inferred")
    assert (unknown.code, unknown.certainty) == ("access-denied", "unknown")


def test_bucket_in_another_region_fails():
    result = s3.assess_bucket("probe-bucket", "eu-west-1",
                              err("301", "", 301, headers={"x-amz-bucket-region": "us-east-1"}))
    assert (result.status, result.code) == (Status.FAIL, "other-region")
    assert "us-east-1, not eu-west-1" in result.summary


def test_bucket_missing_and_head_denied():
    assert s3.assess_bucket("b", "r", err("404", "Not Found", 404)).code == "no-such-bucket"
    denied = s3.assess_bucket("b", "eu-west-1", err("403", "Forbidden", 403, headers={"x-amz-bucket-region":
                                                                                        "eu-west-1"}))
    assert (denied.status, denied.code) == (Status.WARN, "head-denied")


def get_put(**steps):
    return s3.assess_get_put("probe-bucket", "vpce-doctor/i-1.probe", steps, False, ENDPOINT, ROLE)


def test_get_put_passes_and_a_denied_delete_is_only_a_note():
    result = get_put(put=ok(), get=ok(matches=True), delete=err("AccessDenied", "Access Denied", 403))
    assert result.status is Status.PASS and "delete denied" in result.summary


def test_put_denied_by_the_identity_policy_is_told_apart_from_the_endpoint_policy():
    message = f"User: {ROLE} is not authorized to perform: s3:PutObject because no identity-based policy allows " \
              "the s3:PutObject action"
    result = get_put(put=err("AccessDenied", message, 403))
    assert (result.status, result.code) == (Status.FAIL, "identity-policy")


def test_corrupted_read_back_fails():
    assert get_put(put=ok(), get=ok(matches=False), delete=ok()).code == "corrupted"


def test_no_write_reads_only():
    result = s3.assess_get_put("b", "k", {"get": err("NoSuchKey", "", 404)}, True, NO_ENDPOINT)
    assert result.status is Status.PASS and "writes are off" in result.summary


def test_list_denied_by_the_endpoint_policy_while_get_put_works_is_expected():
    message = f"User: {ROLE} is not authorized to perform: s3:ListAllMyBuckets because no VPC endpoint policy " \
              "allows the s3:ListAllMyBuckets action"
    result = s3.assess_list(err("AccessDenied", message, 403), Result(Status.PASS, "ok"), ENDPOINT, ROLE)
    assert (result.status, result.code) == (Status.PASS, "expected-denial")
    assert "`aws s3 ls` fails and `aws s3 cp` works" in result.summary


def prefs(**inputs):
    content = json.dumps({"schemaVersion": "1.0", "sessionType": "Standard_Stream", "inputs": inputs})
    return session.assess_preferences("SSM-SessionManagerRunShell", ok({"Content": content}))


def test_preferences_are_read_and_booleans_normalised():
    result = prefs(s3BucketName="logs", cloudWatchEncryptionEnabled="true", runAsEnabled=False)
    assert result.status is Status.PASS and "S3 logs" in result.summary
    assert result.evidence["inputs"]["cloudWatchEncryptionEnabled"] is True


def test_missing_preferences_mean_no_logging_and_unreadable_ones_warn():
    absent = session.assess_preferences("SSM-SessionManagerRunShell", err("InvalidDocument", "not found"))
    denied = session.assess_preferences("SSM-SessionManagerRunShell", err("AccessDeniedException", "denied"))
    garbage = session.assess_preferences("SSM-SessionManagerRunShell", ok({"Content": "{not json"}))
    assert (absent.status, absent.code) == (Status.PASS, "absent")
    assert (denied.status, denied.code, garbage.code) == (Status.WARN, "unreadable", "malformed")


def test_run_as_user_missing_fails():
    assert session.assess_run_as({"runAsEnabled": True, "runAsDefaultUser": "deploy"}, "root:x:0:0::/root:/bin/sh\n"
                                 ).code == "no-such-user"
    assert session.assess_run_as({"runAsEnabled": True, "runAsDefaultUser": "root"}, "root:x:0:0::/:/bin/sh"
                                 ).status is Status.PASS


UNREACHABLE = {"ok": False, "check": "tcp:s3", "code": "timeout", "summary": "443 not reachable on 52.1.1.1"}
REACHABLE = {"ok": True, "check": "tls:s3", "code": "", "summary": "ok"}


def test_session_log_bucket_unreachable_explains_the_blank_screen():
    result = session_logs.assess_s3("logs", {"s3BucketName": "logs"}, UNREACHABLE, {}, "eu-west-1", NO_ENDPOINT, {})
    assert (result.status, result.code) == (Status.FAIL, "unreachable") and "blank" in result.cause


def test_session_bucket_encryption_failures_quote_the_agent():
    unverifiable = session_logs.assess_s3("logs", {"s3EncryptionEnabled": True}, REACHABLE,
                                          {"head": ok(), "encryption": err("AccessDenied", "Access Denied", 403)},
                                          "eu-west-1", NO_ENDPOINT, {})
    assert unverifiable.code == "encryption-unverifiable"
    assert "unable to validate encryption on Amazon S3 bucket. Error: AccessDenied" in unverifiable.cause


def log_groups(*groups):
    return ok({"logGroups": list(groups)})


def test_log_group_unencrypted_with_encryption_required_fails_with_the_agents_words():
    result = session_logs.assess_logs("/s", {"cloudWatchEncryptionEnabled": True}, REACHABLE,
                                      {"describe": log_groups({"logGroupName": "/s"})}, NO_ENDPOINT, {})
    assert (result.status, result.code) == (Status.FAIL, "unencrypted")
    assert "encryption is not set up on the selected CloudWatch Logs log group" in result.cause


def test_unreachable_or_missing_log_group_warns_of_the_misleading_message():
    unreachable = session_logs.assess_logs("/s", {"cloudWatchEncryptionEnabled": True}, UNREACHABLE, {},
                                           NO_ENDPOINT, {"region": "eu-west-1"})
    missing = session_logs.assess_logs("/s", {"cloudWatchEncryptionEnabled": True}, REACHABLE,
                                       {"describe": log_groups()}, NO_ENDPOINT, {})
    assert (unreachable.code, missing.code) == ("unreachable", "no-log-group")
    assert "which is not the real cause" in unreachable.cause and "which is not the real cause" in missing.cause


def test_kms_cannot_prove_decrypt():
    result = session_logs.assess_kms("alias/s", REACHABLE, ok({"KeyMetadata": {"KeyState": "Enabled"}}), {})
    assert result.status is Status.PASS and "cannot be proven without ciphertext" in result.summary
    assert session_logs.assess_kms("alias/s", UNREACHABLE, None, {}).code == "unreachable"


def test_control_plane_cross_check_names_resources():
    seen = {
        "endpoints": ok({"VpcEndpoints": [
            {"VpcEndpointId": "vpce-0ssm", "ServiceName": "com.amazonaws.eu-west-1.ssm", "VpcEndpointType": "Interface",
             "State": "available", "PrivateDnsEnabled": True, "Groups": [{"GroupId": "sg-0end"}]},
            {"VpcEndpointId": "vpce-0s3", "ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Gateway",
             "State": "available", "RouteTableIds": ["rtb-1"], "PolicyDocument": GET_PUT_ONLY}]}),
        "enableDnsSupport": ok({"EnableDnsSupport": {"Value": True}}),
        "enableDnsHostnames": ok({"EnableDnsHostnames": {"Value": False}}),
        "routes": ok({"RouteTables": [{"Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}]}]}),
        "groups": ok({"SecurityGroups": [{"GroupId": "sg-0end", "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]}]}),
    }
    result = vpc.assess(seen, ["ssm", "s3", "kms"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], ["sg-0def"], "10.0.1.5")
    problems = result.evidence["problems"]
    assert result.code == "misconfigured"
    assert "vpc-1 has enableDnsHostnames off" in problems[0]
    assert "sg-0end on vpce-0ssm (ssm) has no inbound 443 from sg-0def" in problems
    assert "this subnet's route table <rtb-id> has no route to vpce-0s3 (s3 gateway endpoint)" in problems
    assert "no endpoint for kms in vpc-1 (com.amazonaws.eu-west-1.kms)" in problems
    commands = result.remedy.commands
    assert len(commands) == len(problems)
    assert "aws ec2 modify-vpc-attribute --vpc-id vpc-1 --enable-dns-hostnames '{\"Value\":true}'" in commands
    assert ("aws ec2 authorize-security-group-ingress --group-id sg-0end --protocol tcp --port 443 "
            "--source-group sg-0def") in commands
    assert any(c.startswith("aws ec2 create-vpc-endpoint --vpc-id vpc-1 --vpc-endpoint-type Interface "
                            "--service-name com.amazonaws.eu-west-1.kms") for c in commands)
    assert result.evidence["endpoints"]["s3"]["policy"] == GET_PUT_ONLY


def test_control_plane_unreadable_is_a_note():
    result = vpc.assess({"endpoints": err("UnauthorizedOperation", "denied", 403)}, ["ssm"], "r", "vpc-1", [], [],
                        None)
    assert (result.status, result.code) == (Status.WARN, "unavailable")


def test_run_command_channels_for_each_agent_generation():
    from vpce_doctor.checks import run_command
    current, old = (3, 3, 2958, 0), (3, 0, 1000, 0)
    assert run_command.assess("pass", "pass", current, {}).status is Status.PASS
    # the agent turns ec2messages back on when ssmmessages fails (ssmconnectionchannel.go): a lost fallback warns
    assert run_command.assess("pass", "fail", current, {}).code == "no-fallback"
    no_fallback = run_command.assess("pass", "fail", (3, 2, 0, 0), {})
    assert (no_fallback.status, no_fallback.code) == (Status.WARN, "no-fallback")
    fallback = run_command.assess("skip", "pass", current, {"region": "eu-west-1"})
    assert (fallback.code, fallback.caused_by) == ("fallback-only", ("tls:ssmmessages",))
    assert "com.amazonaws.eu-west-1.ssmmessages" in fallback.remedy.commands[0]
    assert run_command.assess("pass", "fail", old, {}).code == "undeliverable"
    assert run_command.assess("fail", "pass", old, {}).status is Status.PASS
    dead = run_command.assess("fail", "skip", current, {})
    assert (dead.status, dead.code, dead.caused_by) == (
        Status.FAIL, "undeliverable", ("tls:ssmmessages", "tls:ec2messages"))


def test_control_plane_names_s3_outside_the_prefix_list_and_a_missing_zone():
    seen = {
        "endpoints": ok({"VpcEndpoints": [
            {"VpcEndpointId": "vpce-0ssm", "ServiceName": "com.amazonaws.eu-west-1.ssm", "VpcEndpointType": "Interface",
             "State": "available", "PrivateDnsEnabled": True, "Groups": [{"GroupId": "sg-0end"}],
             "SubnetIds": ["subnet-b"]}]}),
        "subnets": ok({"Subnets": [{"SubnetId": "subnet-b", "AvailabilityZone": "eu-west-1b"}]}),
        "groups": ok({"SecurityGroups": [{"GroupId": "sg-0end", "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": "sg-0def"}]}]}]}),
        "s3_prefix_lists": ok({"PrefixLists": [{"PrefixListId": "pl-6da54004",
                                                "PrefixListName": "com.amazonaws.eu-west-1.s3"}]}),
        "s3_prefix_list": ok({"Entries": [{"Cidr": "52.218.0.0/17"}]}),
    }
    result = vpc.assess(seen, ["ssm"], "eu-west-1", "vpc-1", ["10.0.0.0/16"], ["sg-0def"], "10.0.1.5", "eu-west-1a",
                        ["52.218.1.1", "3.5.1.1"])
    assert result.evidence["problems"] == [  # what breaks a path (tcp:s3) first, then advice
        "s3 resolves to 3.5.1.1, outside the S3 prefix list pl-6da54004: the gateway endpoint's route does not cover "
        "it (another Region's S3, or a DNS override)",
        "vpce-0ssm (ssm) has no network interface in eu-west-1a: traffic crosses Availability Zones and stops if "
        "the other zone fails"]


# The agent writes the session log as the instance role through the same S3 endpoint: its policy is judged with the
# caller, the gateway's principal semantics and the request's keys, as for the doctor's own probe. A gateway policy
# whose principal is the account ("AWS": "<account-id>") grants the root user only (PrivateLink guide, "Principals
# for gateway endpoints": https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html).
ROOT_ONLY_GATEWAY = {"id": "vpce-0gw", "type": "Gateway", "policy": json.dumps({"Statement": [
    {"Sid": "OurAccount", "Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "s3:*",
     "Resource": "*"}]})}
# An endpoint policy that admits only requests through itself (S3 user guide, example-bucket-policies-vpc-endpoint).
OTHER_VPCE_ONLY = {"id": "vpce-0gw", "type": "Gateway", "policy": json.dumps({"Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"},
    {"Sid": "OnlyTheOtherEndpoint", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
     "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-0other"}}}]})}


def test_session_log_denials_are_judged_with_the_caller_gateway_semantics_and_the_request_keys():
    from vpce_doctor.policy import request_context
    # S3 answers a bare "Access Denied" where it names no policy (cross-account requests; troubleshoot-403-errors)
    steps = {"head": ok(), "encryption": ok(), "put": err("AccessDenied", "Access Denied", 403)}
    inputs = {"s3BucketName": "logs", "s3KeyPrefix": "sessions/"}
    seen = s3.Seen(ROOT_ONLY_GATEWAY, ROLE, request_context(ROLE, "vpce-0gw", "vpc-1", "10.0.1.100"))
    before = session_logs.assess_s3("logs", inputs, REACHABLE, steps, "eu-west-1", ROOT_ONLY_GATEWAY, {})
    after = session_logs.assess_s3("logs", inputs, REACHABLE, steps, "eu-west-1", ROOT_ONLY_GATEWAY, {}, seen)
    assert before.code == "access-denied"  # no caller: whether the account principal covers it is unknown
    assert after.code == "endpoint-policy" and "root user only" in after.cause
    assert "aws:PrincipalArn" in " ".join(after.remedy.commands + (after.remedy.text,))
    seen = s3.Seen(OTHER_VPCE_ONLY, ROLE, request_context(ROLE, "vpce-0gw", "vpc-1", "10.0.1.100"))
    locked = session_logs.assess_s3("logs", inputs, REACHABLE, steps, "eu-west-1", OTHER_VPCE_ONLY, {}, seen)
    assert locked.code == "endpoint-policy" and "OnlyTheOtherEndpoint" in locked.cause
    unknown = session_logs.assess_s3("logs", inputs, REACHABLE, steps, "eu-west-1", OTHER_VPCE_ONLY, {})
    assert unknown.code == "access-denied"
