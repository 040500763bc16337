"""The CloudFormation template: cfn-lint (offline), one source of truth for the documents and the policy, and the
policy's least privilege."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
TEMPLATE = PACKAGING / "cloudformation" / "vpce-doctor.yaml"
POLICY = PACKAGING / "iam" / "vpce-doctor-policy.json"
ENDPOINT_STATEMENT = PACKAGING / "iam" / "s3-endpoint-policy-statement.json"

# Template parameter (or pseudo parameter) -> the placeholder the plain JSON policy uses for it.
PLACEHOLDERS = {
    "AWS::Partition": "PARTITION", "AWS::Region": "REGION", "AWS::AccountId": "ACCOUNT_ID",
    "ProbeBucket": "PROBE_BUCKET", "KeyPrefix": "KEY_PREFIX", "SessionDocumentName": "SESSION_DOCUMENT",
    "SessionLogBucket": "SESSION_LOG_BUCKET", "SessionLogKeyPrefix": "SESSION_LOG_KEY_PREFIX",
    "SessionLogGroup": "SESSION_LOG_GROUP", "SessionKmsKeyArn": "SESSION_KMS_KEY_ARN",
    "ReportLogGroupName": "REPORT_LOG_GROUP", "ArtifactBucket": "ARTIFACT_BUCKET", "ArtifactPrefix": "ARTIFACT_PREFIX",
}
EXAMPLE = {
    "AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
    "ProbeBucket": "probe-bucket", "KeyPrefix": "diag/", "SessionDocumentName": "SSM-SessionManagerRunShell",
    "SessionLogBucket": "session-logs", "SessionLogKeyPrefix": "sessions/", "SessionLogGroup": "/ssm/sessions",
    "SessionKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "ReportLogGroupName": "/vpce-doctor/reports", "ArtifactBucket": "artifacts", "ArtifactPrefix": "vpce-doctor/",
}


class _Tagged:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Sub, !If, ...) as {"Fn::Sub": ...} and {"Ref": ...}."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


NO_VALUE = object()


def evaluate(node, params, conditions):
    """Resolve Ref, Fn::Sub, Fn::If (and AWS::NoValue) as CloudFormation would, for the parts the policy uses."""
    if isinstance(node, list):
        items = [evaluate(n, params, conditions) for n in node]
        return [i for i in items if i is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return NO_VALUE if node["Ref"] == "AWS::NoValue" else params[node["Ref"]]
    if set(node) == {"Fn::Sub"}:
        text = node["Fn::Sub"]
        assert isinstance(text, str), "the policy uses the one-argument form of !Sub"
        return re.sub(r"\$\{([^}!]+)\}", lambda m: params[m.group(1)], text)
    if set(node) == {"Fn::If"}:
        name, yes, no = node["Fn::If"]
        return evaluate(yes if conditions[name] else no, params, conditions)
    out = {k: evaluate(v, params, conditions) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def template_policy(values: dict, everything: bool = True) -> dict:
    resource = template()["Resources"]["DoctorPolicy"]["Properties"]["PolicyDocument"]
    conditions = {name: everything for name in template()["Conditions"]}
    return evaluate(resource, values, conditions)


def substitute(text: str, values: dict) -> str:
    for name, placeholder in PLACEHOLDERS.items():
        text = text.replace("${%s}" % placeholder, values[name])
    assert "${" not in text, "a placeholder of the JSON policy has no template parameter"
    return text


def test_cfn_lint_passes_offline(tmp_path):
    """cfn-lint's schemas are bundled: it needs no network (run in an empty network namespace when we can)."""
    argv = [sys.executable, "-c", "import sys; sys.argv[0] = 'cfn-lint'; from cfnlint.runner import main; main()",
            "--", str(TEMPLATE)]
    if shutil.which("unshare") and os.geteuid() == 0 and \
            subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        argv = ["unshare", "--net", "--"] + argv
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_embedded_documents_are_the_yaml_files_verbatim():
    text = TEMPLATE.read_text()
    resources = template()["Resources"]
    for name, resource in (("vpce-doctor-run", "RunDocument"), ("vpce-doctor-install", "InstallDocument")):
        source = (PACKAGING / "ssm" / f"{name}.yaml").read_text()
        found = re.search(rf"^( *)# BEGIN packaging/ssm/{name}\.yaml[^\n]*\n(.*?)^\1# END packaging/ssm/{name}\.yaml$",
                          text, re.M | re.S)
        assert found, f"no BEGIN/END block for {name}"
        indent = found.group(1)
        embedded = "".join(line[len(indent):] if line.startswith(indent) else line
                           for line in found.group(2).splitlines(keepends=True))
        assert embedded == source, f"{name}.yaml changed: run python3 packaging/sync-documents.py"
        assert resources[resource]["Properties"]["Content"] == yaml.safe_load(source)
        assert resources[resource]["Properties"]["DocumentType"] == "Command"
        assert resources[resource]["Properties"]["DocumentFormat"] == "YAML"
    result = subprocess.run([sys.executable, str(PACKAGING / "sync-documents.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_plain_json_policy_is_the_templates_policy():
    placeholders = {name: "${%s}" % p for name, p in PLACEHOLDERS.items()}
    assert json.loads(POLICY.read_text()) == template_policy(placeholders)
    assert json.loads(substitute(POLICY.read_text(), EXAMPLE)) == template_policy(EXAMPLE)


def test_policy_is_least_privilege():
    policy = template_policy(EXAMPLE)
    statements = policy["Statement"]
    actions = {}
    for st in statements:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        for action in [st["Action"]] if isinstance(st["Action"], str) else st["Action"]:
            assert "*" not in action, action
            resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
            actions.setdefault(action, []).extend(resources)
    assert "s3:ListAllMyBuckets" not in actions            # the s3:list check expects the denial
    assert not any(a.startswith(("iam:", "ssm:Send", "ssm:Update", "ec2:Create", "ec2:Modify", "kms:Decrypt",
                                 "logs:CreateLogGroup", "logs:Delete")) for a in actions)
    # Only actions without resource-level permissions get "*".
    assert {a for a, r in actions.items() if "*" in r} == {
        "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcAttribute", "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroups", "ec2:DescribeNetworkAcls", "ec2:DescribeSubnets", "ec2:DescribeManagedPrefixLists",
        # granted on "*" by the Session Manager quickstart policies (https://docs.aws.amazon.com/systems-manager/
        # latest/userguide/getting-started-restrict-access-quickstart.html): ssm:registration's two reads
        "ssm:DescribeInstanceInformation", "ssm:GetConnectionStatus",
        "cloudtrail:LookupEvents"}  # optional (AllowCloudTrailLookup); the CloudTrail service authorization reference
    # lists no resource type for LookupEvents (https://docs.aws.amazon.com/service-authorization/latest/reference/
    # list_awscloudtrail.html)
    assert actions["logs:GetLogEvents"] == ["arn:aws:logs:eu-west-1:123456789012:log-group:/vpce-doctor/reports:*"]
    # Objects: only the probe keys (and the bundles, read-only).
    assert actions["s3:PutObject"] == ["arn:aws:s3:::probe-bucket/diag/vpce-doctor/*",
                                       "arn:aws:s3:::session-logs/sessions/vpce-doctor/*"]
    assert actions["s3:DeleteObject"] == actions["s3:PutObject"]
    assert actions["s3:GetObject"] == ["arn:aws:s3:::probe-bucket/diag/vpce-doctor/*",
                                       "arn:aws:s3:::artifacts/vpce-doctor/*"]
    assert actions["s3:PutObjectAcl"] == ["arn:aws:s3:::session-logs/sessions/vpce-doctor/*"]
    assert actions["s3:GetEncryptionConfiguration"] == ["arn:aws:s3:::session-logs"]
    assert actions["ssm:GetDocument"] == ["arn:aws:ssm:eu-west-1:123456789012:document/SSM-SessionManagerRunShell"]
    assert actions["logs:PutLogEvents"] == [
        "arn:aws:logs:eu-west-1:123456789012:log-group:/vpce-doctor/reports:*",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ssm/sessions:*"]
    assert actions["kms:DescribeKey"] == [EXAMPLE["SessionKmsKeyArn"]]
    listing = [st for st in statements if st["Sid"] == "InstallListBundles"][0]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "vpce-doctor/*"}}


def test_optional_statements_disappear_without_their_parameters():
    minimal = template_policy(EXAMPLE, everything=False)
    assert [st["Sid"] for st in minimal["Statement"]] == [
        "DescribeVpc", "S3PrefixList", "SessionPreferences", "SsmView", "DescribeLogGroups", "ShipReports",
        "ReadReports"]


def test_endpoint_policy_statement_admits_the_bundle_download_only():
    statement = json.loads(ENDPOINT_STATEMENT.read_text())
    assert statement["Effect"] == "Allow" and statement["Principal"] == "*"
    assert sorted(statement["Action"]) == ["s3:GetObject", "s3:ListBucket"]
    assert sorted(statement["Resource"]) == ["arn:${PARTITION}:s3:::${ARTIFACT_BUCKET}",
                                             "arn:${PARTITION}:s3:::${ARTIFACT_BUCKET}/${ARTIFACT_PREFIX}*"]


def test_association_alarm_and_dashboard():
    resources = template()["Resources"]
    association = resources["DoctorAssociation"]["Properties"]
    document = yaml.safe_load((PACKAGING / "ssm" / "vpce-doctor-run.yaml").read_text())
    assert set(association["Parameters"]) == set(document["parameters"])
    assert all(isinstance(v, list) and len(v) == 1 for v in association["Parameters"].values())
    assert association["Parameters"]["ship"] == ["true"]
    assert association["MaxErrors"] == "100%"
    assert association["Targets"] == [{"Key": {"Fn::Sub": "tag:${TargetTagKey}"}, "Values": [{"Ref": "TargetTagValue"}]}]
    params = template()["Parameters"]
    assert params["ScheduleExpression"]["Default"] == "rate(1 hour)"
    assert re.fullmatch(document["parameters"]["services"]["allowedPattern"], params["Services"]["Default"])
    alarm = resources["FailuresAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("VpceDoctor", "Failures", "Sum")
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    assert "Dimensions" not in alarm   # the per-run metric without dimensions: the whole fleet
    silence = resources["SilenceAlarm"]["Properties"]
    assert (silence["Statistic"], silence["TreatMissingData"]) == ("SampleCount", "breaching")
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    assert widgets[0]["properties"]["metrics"][0][0]["expression"] == \
        "SEARCH('{VpceDoctor,Check} MetricName=\"CheckFailed\"', 'Sum', 900)"
    log_group = resources["ReportLogGroup"]["Properties"]
    assert log_group["LogGroupName"] == {"Ref": "ReportLogGroupName"} and params["ReportLogGroupName"]["Default"] == \
        "/vpce-doctor/reports"


def test_saved_queries_read_the_small_events_the_doctor_ships():
    """Logs Insights saved queries (AWS::Logs::QueryDefinition) on the report group, over fields vpce_doctor/ship.py
    writes in its per-check and per-run events."""
    resources = template()["Resources"]
    queries = {r["Properties"]["Name"]: r["Properties"] for r in resources.values()
               if r["Type"] == "AWS::Logs::QueryDefinition"}
    assert set(queries) == {"vpce-doctor/root-causes-by-count", "vpce-doctor/first-broken-run-per-instance",
                            "vpce-doctor/changes"}
    for query in queries.values():
        assert query["LogGroupNames"] == [{"Ref": "ReportLogGroup"}]
    fields = {"CheckFailed", "Check", "Code", "InstanceId", "ChangedSinceHealthy", "FirstBrokenAt", "HealthyAt",
              "Change"}
    used = set(re.findall(r"\b([A-Z][A-Za-z]+)\b", " ".join(q["QueryString"] for q in queries.values())))
    assert used <= fields, used - fields
