"""s3:aws-buckets: the AWS-owned buckets an instance's software needs, judged against the S3 endpoint policy.
Literal inputs: the bucket names and statements come from the documents cited in vpce_doctor/aws_buckets.py."""
import json
import os
import threading

from vpce_doctor import aws_buckets, policy
from vpce_doctor.checks import aws_buckets as check
from vpce_doctor.model import Status

REGION = "ap-northeast-1"
ROLE_SESSION = "arn:aws:sts::123456789012:assumed-role/vpclab-instance-role/i-0abc1234def567890"
ENDPOINT = "vpce-0s3gateway0000001"
# "Reference: Amazon S3 buckets for patching operations", Asia Pacific (Tokyo) (aws_buckets.PATCH_DOC).
PATCH_MANAGER = f"aws-patch-manager-{REGION}-4849fa78f"
# /etc/os-release of Amazon Linux 2023 and 2 as users print them (search tool ids 51967827187, 41264121919).
AL2023 = ('NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n'
          'PLATFORM_ID="platform:al2023"\nPRETTY_NAME="Amazon Linux 2023.10.20260216"\nANSI_COLOR="0;33"\n')
AL2 = ('NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n'
       'PRETTY_NAME="Amazon Linux 2"\n')
UBUNTU = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n'

# The AL2023 User Guide's statement (Kernel Live Patching, "Policy requirements").
AL2023_STATEMENT = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/*"}
# The SSM User Guide's example ("SSM Agent communications with AWS managed S3 buckets"), for this Region: note that
# it leaves out aws-ssm-document-attachments-<region>, which the same page's table lists.
SSM_EXAMPLE = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": [
    f"arn:aws:s3:::aws-ssm-{REGION}/*", f"arn:aws:s3:::aws-windows-downloads-{REGION}/*",
    f"arn:aws:s3:::amazon-ssm-{REGION}/*", f"arn:aws:s3:::amazon-ssm-packages-{REGION}/*",
    f"arn:aws:s3:::{REGION}-birdwatcher-prod/*", f"arn:aws:s3:::patch-baseline-snapshot-{REGION}/*"]}
OURS = {"Sid": "OurBuckets", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::vpclab-probe/*"]}


def endpoint(*statements, kind="Gateway"):
    return {"id": ENDPOINT, "type": kind,
            "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


def judge(ep, buckets=None, principal=ROLE_SESSION, os_name="Amazon Linux 2023"):
    buckets = aws_buckets.needed(REGION, "amzn", "2023") if buckets is None else buckets
    return check.assess(ep, buckets, principal, policy.request_context(None, ep.get("id"), "vpc-0a1b2c3d"),
                        "aws", os_name)


def blocked(result):
    return [b["bucket"] for b in result.evidence["buckets"] if b["effect"] in check.BLOCKED]


def test_the_buckets_of_an_al2023_instance_with_the_agent():
    names = [b.name for b in aws_buckets.needed(REGION, "amzn", "2023")]
    assert names == [f"al2023-repos-{REGION}-de612dc2", f"amazon-ssm-{REGION}", f"aws-ssm-{REGION}",
                     f"patch-baseline-snapshot-{REGION}", PATCH_MANAGER, f"{REGION}-birdwatcher-prod",
                     f"aws-ssm-document-attachments-{REGION}"]


def test_os_and_region_select_the_documented_names():
    al2 = [b.name for b in aws_buckets.needed("eu-west-3", "amzn", "2", ssm=False)]
    assert al2 == ["amazonlinux-2-repos-eu-west-3", "amazonlinux.eu-west-3.amazonaws.com"]
    assert aws_buckets.needed(REGION, "ubuntu", "22.04", ssm=False) == ()  # Ubuntu's mirrors are not on S3
    cape_town = [b.name for b in aws_buckets.ssm_agent("af-south-1")]
    assert "aws-ssm-distributor-file-af-south-1" in cape_town and "af-south-1-birdwatcher-prod" not in cape_town
    assert "patch-baseline-snapshot-me-south-1-uduvl7q8" in [b.name for b in aws_buckets.ssm_agent("me-south-1")]
    # The patching reference's Region-suffixed names (PATCH_DOC's tables): Jakarta's snapshot bucket, Bahrain's
    # patching documents; a Region the tables do not list gets no aws-patch-manager name at all.
    jakarta = [b.name for b in aws_buckets.ssm_agent("ap-southeast-3")]
    assert "patch-baseline-snapshot-ap-southeast-3-be0a3174" in jakarta
    assert "aws-patch-manager-me-south-1-a53fc9dce" in [b.name for b in aws_buckets.ssm_agent("me-south-1")]
    assert not any(b.name.startswith("aws-patch-manager-") for b in aws_buckets.ssm_agent("mx-central-1"))
    arm = aws_buckets.needed(REGION, "amzn", "2023", "aarch64", ssm=False, cloudwatch=True)
    assert arm[0].resource() == f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/core/mirrors/latest/aarch64/mirror.list"
    assert arm[1].resource() == (f"arn:aws:s3:::amazoncloudwatch-agent-{REGION}/amazon_linux/arm64/latest/"
                                 "amazon-cloudwatch-agent.rpm")


def test_os_release_as_distributions_write_it():
    assert aws_buckets.parse_os_release(AL2023)["VERSION_ID"] == "2023"
    assert aws_buckets.parse_os_release(AL2)["ID"] == "amzn"
    assert aws_buckets.parse_os_release(UBUNTU)["ID"] == "ubuntu"  # unquoted values too
    hostile = aws_buckets.parse_os_release("ID=amzn\n" + "x" * 10_000_000 + "\nVERSION_ID=2023\n")
    assert hostile == {"ID": "amzn"}  # only the first 16 KiB is read


def test_os_release_is_read_bounded(tmp_path):
    (tmp_path / "os-release").write_text(AL2023)
    assert check.read_os_release(tmp_path / "os-release")["ID"] == "amzn"
    assert check.read_os_release(tmp_path / "missing") == {}
    os.mkfifo(tmp_path / "fifo")  # no writer: a blocking open would hang
    done = []
    worker = threading.Thread(target=lambda: done.append(check.read_os_release(tmp_path / "fifo")), daemon=True)
    worker.start()
    worker.join(5)
    assert done == [{}]


def test_the_al2023_statement_alone_blocks_the_agents_buckets():
    result = judge(endpoint(OURS, AL2023_STATEMENT))
    assert result.status is Status.WARN and result.code == "aws-bucket-blocked"
    assert blocked(result) == [f"amazon-ssm-{REGION}", f"aws-ssm-{REGION}", f"patch-baseline-snapshot-{REGION}",
                               PATCH_MANAGER, f"{REGION}-birdwatcher-prod", f"aws-ssm-document-attachments-{REGION}"]
    assert f"amazon-ssm-{REGION} (the SSM agent's self-update)" in result.summary
    added = json.loads(result.remedy.text.split("policy: ", 1)[1].split("}. ", 1)[0] + "}")
    assert added["Action"] == "s3:GetObject" and f"arn:aws:s3:::amazon-ssm-{REGION}/*" in added["Resource"]
    assert f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/*" not in added["Resource"]


def test_the_ssm_guides_example_without_the_repositories():
    result = judge(endpoint(OURS, SSM_EXAMPLE))
    # The example predates the patching buckets of the patching reference (aws-patch-manager-<region>-<suffix>).
    assert blocked(result) == [f"al2023-repos-{REGION}-de612dc2", PATCH_MANAGER,
                               f"aws-ssm-document-attachments-{REGION}"]
    assert "dnf's Amazon Linux 2023 repositories" in result.summary and "Amazon Linux 2023" in result.summary


def test_every_bucket_allowed_passes():
    attachments = {**SSM_EXAMPLE, "Resource": [*SSM_EXAMPLE["Resource"],
                                               f"arn:aws:s3:::aws-ssm-document-attachments-{REGION}/*",
                                               f"arn:aws:s3:::{PATCH_MANAGER}/*"]}
    result = judge(endpoint(OURS, AL2023_STATEMENT, attachments))
    assert result.status is Status.PASS and blocked(result) == []
    assert judge(endpoint({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})).status is Status.PASS


def test_an_explicit_deny_is_named_in_the_remedy():
    only_ours = {"Sid": "OnlyOurBuckets", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "NotResource": ["arn:aws:s3:::vpclab-probe", "arn:aws:s3:::vpclab-probe/*"]}
    result = judge(endpoint({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}, only_ours))
    assert len(blocked(result)) == 7
    assert "Statement OnlyOurBuckets denies them explicitly" in result.remedy.text


def test_dnf_is_anonymous_so_a_principal_condition_blocks_the_repositories_only():
    roles_only = {"Sid": "OurRoles", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                  "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/vpclab-*"}}}
    result = judge(endpoint(roles_only))
    assert blocked(result) == [f"al2023-repos-{REGION}-de612dc2"]
    unknown = judge(endpoint(roles_only), principal=None)  # no identity: the agent's buckets cannot be told
    assert blocked(unknown) == [f"al2023-repos-{REGION}-de612dc2"]
    assert {b["effect"] for b in unknown.evidence["buckets"][1:]} == {"unknown"}


def test_nothing_to_judge():
    assert judge({"id": None, "policy": None}).status is Status.PASS
    assert judge({"id": ENDPOINT, "policy": None}).status is Status.PASS
    broken = judge({"id": ENDPOINT, "policy": "{not json", "type": "Gateway"})
    assert broken.status is Status.WARN and broken.code == "policy-unreadable"
