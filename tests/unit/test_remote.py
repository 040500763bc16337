"""vpce-doctor remote's judges, on literal answers in the shapes the AWS API references give (DescribeInstances,
SimulatePrincipalPolicy, DescribeInstanceInformation), and its command line's refusals."""
import io
import json

from vpce_doctor import cli, remote
from vpce_doctor.aws import Call
from vpce_doctor.checks import remote as judge
from vpce_doctor.checks import vpc_remote
from vpce_doctor.model import Check, Finding, Report, Result, Severity, Status

IID = "i-0598c7d356eba48d7"
ROLE = "arn:aws:iam::123456789012:role/web-ssm"
PROFILE = "arn:aws:iam::123456789012:instance-profile/web-ssm"
# DescribeInstances' instance, fields as in https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html
# and API_InstanceMetadataOptionsResponse.html.
INSTANCE = {"InstanceId": IID, "State": {"Code": 16, "Name": "running"}, "SubnetId": "subnet-04a636d18e83cfacb",
            "VpcId": "vpc-1234567890abcdef0", "PrivateIpAddress": "10.0.1.100",
            "IamInstanceProfile": {"Arn": PROFILE, "Id": "AIPAJQABLZS4A3QDU576Q"},
            "MetadataOptions": {"State": "applied", "HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                                "HttpEndpoint": "enabled", "HttpProtocolIpv6": "disabled",
                                "InstanceMetadataTags": "disabled"}}


def described(instance=INSTANCE):
    return Call(ok=True, response={"Reservations": [{"Instances": [instance]}]})


def test_an_unknown_or_foreign_instance_is_a_finding():
    # EC2's own words for an id it does not know in this account and Region (EC2 API error codes:
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html, InvalidInstanceID.NotFound)
    missing = Call(ok=False, kind="api", code="InvalidInstanceID.NotFound",
                   message=f"The instance ID '{IID}' does not exist")
    result = judge.assess_instance(missing, IID, "eu-west-1")
    assert result.status is Status.FAIL and result.code == "instance-not-found"
    assert "another account's" in result.cause
    denied = Call(ok=False, kind="api", code="UnauthorizedOperation",
                  message="You are not authorized to perform this operation.")
    assert judge.assess_instance(denied, IID, "eu-west-1").status is Status.ERROR
    stopped = judge.assess_instance(described({**INSTANCE, "State": {"Code": 80, "Name": "stopped"}}), IID, "x")
    assert stopped.code == "not-running" and f"start-instances --instance-ids {IID}" in stopped.remedy.commands[0]
    assert judge.assess_instance(described(), IID, "eu-west-1").status is Status.PASS


def test_imds_turned_off_stops_the_agent():
    off = {**INSTANCE, "MetadataOptions": {**INSTANCE["MetadataOptions"], "HttpEndpoint": "disabled"}}
    result = judge.assess_imds_options(off)
    assert result.status is Status.FAIL and result.code == "imds-disabled"
    assert "--http-endpoint enabled" in result.remedy.commands[0]
    assert judge.assess_imds_options(INSTANCE).evidence["HttpPutResponseHopLimit"] == 2


def test_the_role_as_the_policy_simulator_judges_it():
    got = Call(ok=True, response={"InstanceProfile": {"Arn": PROFILE, "Roles": [{"Arn": ROLE}]}})
    # SimulatePrincipalPolicy's EvaluationResults (https://docs.aws.amazon.com/IAM/latest/APIReference/
    # API_EvaluationResult.html): EvalDecision allowed | explicitDeny | implicitDeny
    results = [{"EvalActionName": a, "EvalResourceName": "*", "EvalDecision": "allowed"} for a in judge.AGENT_ACTIONS]
    results[1] = {**results[1], "EvalDecision": "implicitDeny"}
    result = judge.assess_role(PROFILE, got, Call(ok=True, response={"EvaluationResults": results}), IID)
    assert result.status is Status.FAIL and result.code == "role-missing-actions"
    assert "ssmmessages:CreateControlChannel (implicitDeny)" in result.summary
    assert "attach-role-policy --role-name web-ssm" in result.remedy.commands[0]
    every = [{**r, "EvalDecision": "allowed"} for r in results]
    assert judge.assess_role(PROFILE, got, Call(ok=True, response={"EvaluationResults": every}), IID).status \
        is Status.PASS
    no_profile = judge.assess_role(None, None, None, IID)
    assert no_profile.code == "no-instance-profile" and IID in no_profile.remedy.commands[0]
    denied = Call(ok=False, code="AccessDenied")
    cannot = judge.assess_role(PROFILE, denied, None, IID)
    assert cannot.status is Status.WARN and "iam:GetInstanceProfile" in cannot.cause


def test_registration_is_explained_by_what_failed_before_it():
    # DescribeInstanceInformation (https://docs.aws.amazon.com/systems-manager/latest/APIReference/
    # API_InstanceInformation.html): PingStatus Online | ConnectionLost | Inactive
    nothing = Call(ok=True, response={"InstanceInformationList": []})
    alone = judge.assess_registration(nothing, IID)
    assert alone.code == "not-registered" and "only the instance sees" in alone.cause
    explained = judge.assess_registration(nothing, IID, ["iam:role"])
    assert explained.caused_by == ("iam:role",)
    lost = Call(ok=True, response={"InstanceInformationList": [
        {"InstanceId": IID, "PingStatus": "ConnectionLost", "LastPingDateTime": "2026-11-28T09:12:44Z",
         "AgentVersion": "3.3.2958.0", "PlatformName": "Amazon Linux", "PlatformVersion": "2023"}]})
    assert judge.assess_registration(lost, IID).code == "connection-lost"
    online = Call(ok=True, response={"InstanceInformationList": [
        {**lost.response["InstanceInformationList"][0], "PingStatus": "Online"}]})
    result = judge.assess_registration(online, IID)
    assert result.status is Status.PASS and judge.platform(result) == ("amzn", "2023")


def test_a_failing_prerequisite_is_the_root_cause_not_registration():
    role = Check("iam:role", "", Severity.CRITICAL, lambda c, p: None)
    reg = Check("ssm:registration", "", Severity.CRITICAL, lambda c, p: None)
    findings = (Finding(role, judge.assess_role(None, None, None, IID)),
                Finding(reg, judge.assess_registration(Call(ok=True, response={}), IID, ["iam:role"])))
    report = Report("0.1.0", "2026-11-29T00:00:00Z", 1.0, {}, findings, mode="remote")
    assert [f.check.id for f in report.root_causes] == ["iam:role"]


def test_endpoint_addresses_from_their_network_interfaces():
    endpoints = [{"ServiceName": "com.amazonaws.eu-west-1.ssm", "VpcEndpointType": "Interface",
                  "NetworkInterfaceIds": ["eni-0a", "eni-0b"]},
                 {"ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Gateway"}]
    interfaces = [{"NetworkInterfaceId": "eni-0a", "PrivateIpAddress": "10.0.1.10"},
                  {"NetworkInterfaceId": "eni-0b", "PrivateIpAddress": "10.0.2.10"}]
    assert vpc_remote.endpoint_addresses(endpoints, interfaces) == {"ssm": ["10.0.1.10", "10.0.2.10"]}
    # GetManagedPrefixListEntries of com.amazonaws.<region>.s3 (CIDRs as S3's prefix list holds them)
    assert vpc_remote.prefix_addresses(["52.218.0.0/17"]) == ["52.218.0.1"]
    assert vpc_remote.prefix_addresses([]) == []


def test_a_path_problem_fails_from_outside():
    from vpce_doctor.model import Remedy
    warned = Result(Status.WARN, "acl-0a (this instance's subnet subnet-0b) denies inbound TCP 1024-65535 (the return "
                    "traffic) from 52.218.0.1 (s3) by rule *", code="nacl-deny", evidence={"explains": ["tcp:s3"]},
                    remedy=Remedy("fix", ("aws ec2 create-network-acl-entry --network-acl-id acl-0a --ingress "
                                          "--rule-number 120 --cidr-block 52.218.0.1/32 --rule-action allow",)))
    failed = vpc_remote.outside({"52.218.0.1": "52.218.0.0/17"}, warned)
    assert failed.status is Status.FAIL and "from 52.218.0.0/17 (s3)" in failed.summary
    assert "--cidr-block 52.218.0.0/17 " in failed.remedy.commands[0] and "tcp:s3" in failed.cause
    advice = Result(Status.WARN, "no eni in az", code="no-eni-in-az", evidence={"explains": []})
    assert vpc_remote.outside({}, advice).status is Status.WARN


def test_bad_arguments_exit_64_with_one_line():
    for argv, said in ((["remote", "--instance-id", "web-1", "--region", "eu-west-1"], "is not an instance id"),
                       (["remote", "--instance-id", IID, "--region", "europe"], "is not a Region name"),
                       (["remote", "--region", "eu-west-1"], "--instance-id")):
        err = io.StringIO()
        assert cli.main(argv, environ={}, stdout=io.StringIO(), stderr=err) == 64
        assert said in err.getvalue() and len(err.getvalue().splitlines()) == 1


def test_not_seen_from_outside_lists_the_instances_own_checks():
    from vpce_doctor import plan
    from vpce_doctor.settings import Settings
    targets = plan.targets(("ssm", "s3"), "eu-west-1", "amazonaws.com", plan.AgentConfig(""))
    hidden = remote.not_seen(targets, Settings(region="eu-west-1", services=("ssm", "s3")))
    assert {"dns:ssm", "tls:s3", "ssm:agent-logs"} <= set(hidden) and "vpc:endpoints" not in hidden
    assert "ssm:registration" not in hidden  # remote judges it too


def test_a_role_ec2_may_not_assume_gives_no_credentials():
    # The trust policy shape of an EC2 instance role (IAM user guide); a Lambda-only trust leaves EC2 out
    # (aws/aws-cli#2060: iam/info Success, iam/security-credentials AssumeRoleUnauthorizedAccess).
    lambda_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    got = Call(ok=True, response={"InstanceProfile": {"Arn": PROFILE, "Roles": [
        {"Arn": ROLE, "AssumeRolePolicyDocument": lambda_only}]}})
    allowed = Call(ok=True, response={"EvaluationResults": [
        {"EvalActionName": a, "EvalDecision": "allowed"} for a in judge.AGENT_ACTIONS]})
    result = judge.assess_role(PROFILE, got, allowed, IID)
    assert result.code == "role-not-trusted-by-ec2" and "update-assume-role-policy --role-name web-ssm" in \
        result.remedy.commands[0]
    assert judge.trusts_ec2(json.loads(judge.TRUST_EC2))
    assert judge.trusts_ec2("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service"
                            "%22%3A%5B%22ec2.amazonaws.com%22%5D%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D")
    assert not judge.trusts_ec2(lambda_only)


def test_session_logging_as_the_preferences_name_it():
    # SSM-SessionManagerRunShell's inputs (Session Manager preferences schema: s3BucketName, s3KeyPrefix,
    # cloudWatchLogGroupName, kmsKeyId), as the console saves them
    inputs = {"s3BucketName": "session-logs-123456789012", "s3KeyPrefix": "sessions/",
              "cloudWatchLogGroupName": "/ssm/sessions", "kmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}
    wanted = judge.session_actions(inputs, ROLE, "eu-west-1")
    assert wanted == [("s3:PutObject", "arn:aws:s3:::session-logs-123456789012/sessions/*"),
                      ("logs:CreateLogStream", "arn:aws:logs:eu-west-1:123456789012:log-group:/ssm/sessions:*"),
                      ("logs:PutLogEvents", "arn:aws:logs:eu-west-1:123456789012:log-group:/ssm/sessions:*"),
                      ("kms:Decrypt", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")]
    results = {pair: Call(ok=True, response={"EvaluationResults": [
        {"EvalActionName": pair[0], "EvalResourceName": pair[1],
         "EvalDecision": "implicitDeny" if pair[0] == "s3:PutObject" else "allowed"}]}) for pair in wanted}
    result = judge.assess_session_logging(ROLE, results)
    assert result.code == "role-missing-actions" and "s3:PutObject on arn:aws:s3:::session-logs" in result.summary
    assert judge.assess_session_logging(ROLE, {}).status is Status.PASS  # no logging, nothing to write


def test_the_main_help_names_every_subcommand_a_newcomer_needs():
    # `remote` is how an instance that never registered is diagnosed (issue 16's done-when: "in one command"), so
    # the help a newcomer reads first must name it, and each subcommand cli.main dispatches.
    shown = cli.parser().format_help().replace("\n", " ")
    for command in ("remote --instance-id", "fleet", "history"):
        assert f"vpce-doctor {command}" in shown, command
