"""Requests made with vpce_doctor/models/ against the same requests made with botocore's full models and data.

    python tests/models_check.py      # prints a JSON list of differences ([] when none); run with any botocore

tests/unit/test_models.py runs it with the newest (.venv) and the oldest (.venv-oldest) botocore the project
claims. For every operation in packaging/reduce-models.py's list, the call below (the doctor's own parameters,
from the module named beside it) is prepared twice in one session setup, once per model, and stopped at botocore's
`before-send` event (a documented extension point: https://boto3.amazonaws.com/v1/documentation/api/latest/guide/
events.html), so nothing leaves the process. Method, URL, body and headers must be byte-equal, less the three values
that change on every request (invocation id, date, and so the signature). Clients made without endpoint_url (as
botocore's credential providers make them) must go to the same URL and sign the same way with the reduced
endpoints.json.
"""
import datetime
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = str(REPO / "vpce_doctor" / "models")
VOLATILE = {"amz-sdk-invocation-id", "x-amz-date", "authorization"}
FILTER = [{"Name": "vpc-id", "Values": ["vpc-0abc1234def567890"]}]
KEY = "arn:aws:kms:ap-northeast-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# (service, method, parameters): as the doctor's modules call them (paths relative to vpce_doctor/)
CALLS = [
    ("ec2", "describe_vpc_endpoints", {"Filters": FILTER}),                                     # checks/vpc.py
    ("ec2", "describe_vpc_attribute", {"VpcId": "vpc-0abc1234def567890", "Attribute": "enableDnsSupport"}),
    ("ec2", "describe_route_tables", {"Filters": FILTER}),
    ("ec2", "describe_network_acls", {"Filters": [
        {"Name": "association.subnet-id", "Values": ["subnet-0123456789abcdef0", "subnet-0fedcba987654321"]}]}),
    ("ec2", "describe_security_groups", {"GroupIds": ["sg-0123456789abcdef0", "sg-0fedcba9876543210"]}),
    ("ec2", "describe_subnets", {"SubnetIds": ["subnet-0123456789abcdef0"]}),
    ("ec2", "describe_managed_prefix_lists", {"Filters": [{"Name": "prefix-list-name",
                                                           "Values": ["com.amazonaws.ap-northeast-1.s3"]}]}),
    ("ec2", "get_managed_prefix_list_entries", {"PrefixListId": "pl-61a54008"}),
    ("kms", "describe_key", {"KeyId": KEY}),
    ("logs", "describe_log_groups", {"logGroupNamePrefix": "/aws/ssm/sessions", "limit": 50}),  # checks/session_logs.py
    ("logs", "create_log_stream", {"logGroupName": "/vpce-doctor/reports", "logStreamName": "i-0abc1234def567890"}),
    ("logs", "put_log_events", {"logGroupName": "/vpce-doctor/reports", "logStreamName": "i-0abc1234def567890",
                                "logEvents": [{"timestamp": 1764417600000, "message": "{\"schema\": \"x\"}"}]}),
    ("logs", "get_log_events", {"logGroupName": "/vpce-doctor/reports", "logStreamName": "i-0abc1234def567890",
                                "startTime": 1764417600000, "startFromHead": False, "limit": 100}),  # fleet.py
    ("logs", "filter_log_events", {"logGroupName": "/vpce-doctor/reports", "startTime": 1764417600000,  # fleet_api.py
                                   "filterPattern": '"vpce-doctor/report/1"', "nextToken": "t"}),
    ("logs", "get_log_events", {"logGroupName": "/vpce-doctor/reports", "logStreamName": "i-0abc1234def567890",
                                "startFromHead": False, "startTime": 1764417600000, "nextToken": "b/1"}),  # history
    ("cloudtrail", "lookup_events", {"LookupAttributes": [{"AttributeKey": "ResourceName",  # trail.py
                                                           "AttributeValue": "sg-0123456789abcdef0"}],
                                     "StartTime": datetime.datetime(2026, 11, 28, 12, 0),
                                     "EndTime": datetime.datetime(2026, 11, 28, 12, 16),
                                     "MaxResults": 50, "NextToken": "t"}),
    ("s3", "head_bucket", {"Bucket": "vpclab-probe"}),                                          # checks/s3.py
    ("s3", "list_buckets", {}),
    ("s3", "put_object", {"Bucket": "vpclab-probe", "Key": "vpce-doctor/i-0abc1234def567890.probe",
                          "Body": b"vpce-doctor probe\n"}),
    ("s3", "put_object", {"Bucket": "session-logs", "Key": "vpce-doctor/i-0abc1234def567890.probe",  # session_logs
                          "Body": b"vpce-doctor session-log probe\n", "ACL": "bucket-owner-full-control",
                          "ContentType": "text/plain"}),  # .agent_upload_headers, no default encryption
    ("s3", "put_object", {"Bucket": "session-logs", "Key": "vpce-doctor/i-0abc1234def567890.probe",  # ... SSE-KMS
                          "Body": b"vpce-doctor session-log probe\n", "ACL": "bucket-owner-full-control",
                          "ContentType": "text/plain", "ServerSideEncryption": "aws:kms",
                          "SSEKMSKeyId": KEY}),
    ("s3", "get_object", {"Bucket": "vpclab-probe", "Key": "vpce-doctor/i-0abc1234def567890.probe"}),
    ("s3", "delete_object", {"Bucket": "vpclab-probe", "Key": "vpce-doctor/i-0abc1234def567890.probe"}),
    ("s3", "get_bucket_encryption", {"Bucket": "session-logs"}),
    ("ssm", "get_document", {"Name": "SSM-SessionManagerRunShell"}),                            # checks/session.py
    ("ssm", "send_command", {"DocumentName": "VpceDoctor-Run", "Targets": [{"Key": "tag:Team", "Values": ["a"]}],
                             "Parameters": {"ship": ["true"]}, "MaxConcurrency": "50", "MaxErrors": "100%",
                             "TimeoutSeconds": 600, "Comment": "vpce-doctor fleet"}),           # fleet.py
    ("ssm", "list_command_invocations", {"CommandId": "73860b00-0000-4000-8000-000000000000", "Details": True,
                                         "MaxResults": 50, "NextToken": "t"}),  # fleet_api.py
    ("ssm", "list_commands", {"CommandId": "73860b00-0000-4000-8000-000000000000"}),
    ("ssm", "get_command_invocation", {"CommandId": "73860b00-0000-4000-8000-000000000000",
                                       "InstanceId": "i-0abc1234def567890"}),
    ("sts", "get_caller_identity", {}),                                                         # checks/identity.py
    ("sts", "assume_role", {"RoleArn": "arn:aws:iam::123456789012:role/x", "RoleSessionName": "s"}),  # botocore's
    ("sts", "assume_role_with_web_identity", {"RoleArn": "arn:aws:iam::123456789012:role/x",           # providers
                                              "RoleSessionName": "s", "WebIdentityToken": "t"}),
    ("s3", "create_session", {"Bucket": "probe--apne1-az4--x-s3"}),  # botocore's S3 Express resolver
    ("s3", "get_bucket_policy", {"Bucket": "vpclab-probe"}),                                    # checks/bucket_policy.py
    ("ec2", "describe_instances", {"InstanceIds": ["i-0abc1234def567890"]}),                     # remote.py
    ("ec2", "describe_vpcs", {"VpcIds": ["vpc-0abc1234def567890"]}),
    ("ec2", "describe_network_interfaces", {"NetworkInterfaceIds": ["eni-0123456789abcdef0", "eni-0fedcba9876543210"]}),
    ("iam", "get_instance_profile", {"InstanceProfileName": "web-ssm"}),                        # checks/remote.py
    ("iam", "simulate_principal_policy", {"PolicySourceArn": "arn:aws:iam::123456789012:role/web-ssm",
                                          "ActionNames": ["ssm:UpdateInstanceInformation", "ec2messages:GetMessages"]}),
    ("iam", "simulate_principal_policy", {"PolicySourceArn": "arn:aws:iam::123456789012:role/web-ssm",
                                          "ActionNames": ["s3:PutObject"], "ResourceArns": ["arn:aws:s3:::logs/s/*"]}),
    ("ssm", "describe_instance_information", {"Filters": [{"Key": "InstanceIds",
                                                           "Values": ["i-0abc1234def567890"]}]}),
    ("ssm", "get_connection_status", {"Target": "i-0abc1234def567890"}),                       # checks/ssm_view.py
]


REGIONS = ("ap-northeast-1", "cn-north-1")  # the doctor's calls, in the aws and the aws-cn partition
# Clients made without endpoint_url, as botocore's credential and token providers make them through the doctor's
# session (botocore/credentials.py, tokens.py), in a Region of each partition: same URL and signing.
ENDPOINT_REGIONS = ("us-east-1", "eu-west-1", "ap-northeast-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1")
ENDPOINT_SERVICES = ("sts", "sso", "sso-oidc", "signin", "ssm", "s3", "logs", "kms", "ec2", "iam")  # iam: remote


def meta(models: bool, service: str, region: str) -> dict:
    """Where a client made without endpoint_url goes and how it signs (or why it cannot be made)."""
    import botocore.session
    session = botocore.session.Session()
    if models:
        session.set_config_variable("data_path", MODELS)
    session.set_config_variable("sts_regional_endpoints", "regional")
    session.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    try:
        client = session.create_client(service, region_name=region)
    except Exception as error:  # e.g. a service newer than this botocore
        return {"error": error.__class__.__name__}
    signer = client._request_signer
    return {"url": client.meta.endpoint_url, "region": client.meta.region_name,
            "signing": [signer._region_name, signer._signing_name, signer._signature_version]}


def capture(models: bool, service: str, method: str, params: dict, region: str = REGIONS[0]) -> dict:
    import botocore.session
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config
    session = botocore.session.Session()
    if models:
        session.set_config_variable("data_path", MODELS)
    session.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    # as vpce_doctor.aws.Clients makes them
    config = Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1},
                    s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
                    parameter_validation=False)
    host = f"{service}.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
    client = session.create_client(service, region_name=region, endpoint_url=f"https://{host}", config=config)
    seen = {}

    def stop(request, **_):
        body = request.body
        body = body.read() if hasattr(body, "read") else body
        seen.update(method=request.method, url=request.url, body=(body or b"").hex() if isinstance(body, bytes)
                    else str(body or ""),
                    headers={k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
                             if k.lower() not in VOLATILE},
                    signed=str(request.headers.get("Authorization", "")).split("SignedHeaders=")[-1].split(",")[0])
        return AWSResponse(request.url, 599, {}, None)  # an answer that ends the call here

    client.meta.events.register_first("before-send", stop)
    try:
        getattr(client, method)(**params)
    except Exception as error:  # the 599 is an error by design; a missing method is a difference
        if not seen:
            seen["error"] = f"{error.__class__.__name__}: {error}"
    return seen


def main() -> int:
    import botocore
    os.environ.pop("AWS_DATA_PATH", None)
    differences, absent = [], set()
    for region in REGIONS:
        for service, method, params in CALLS:
            full, reduced = (capture(m, service, method, params, region) for m in (False, True))
            if "has no attribute" in full.get("error", ""):  # newer than this botocore (s3 CreateSession < 1.33.2)
                absent.add(f"{service}.{method}")
            elif full != reduced or "error" in full:
                differences.append({"call": f"{service}.{method} in {region}", "full": full, "reduced": reduced})
    for region in ENDPOINT_REGIONS:
        for service in ENDPOINT_SERVICES:
            full, reduced = meta(False, service, region), meta(True, service, region)
            if full != reduced:
                differences.append({"client": f"{service} in {region}", "full": full, "reduced": reduced})
    print(json.dumps({"botocore": botocore.__version__, "calls": len(CALLS) * len(REGIONS),
                      "clients": len(ENDPOINT_REGIONS) * len(ENDPOINT_SERVICES), "absent": sorted(absent),
                      "differences": differences}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
