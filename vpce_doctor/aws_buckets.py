"""The AWS-owned S3 buckets an instance's own software reads through the S3 gateway endpoint, per Region and OS.

Data, each name with the source it was read from (read 2026-11-29). A gateway endpoint's policy applies to every
bucket reached through it, AWS's own included, so a least-privilege policy ("only our buckets") breaks `dnf update`,
the SSM agent's self-update, Distributor and Patch Manager until someone adds these. No I/O here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

READ_ON = "2026-11-29"

SSM_S3_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/ssm-agent-minimum-s3-permissions.html"
# AL2023 UG, Kernel Live Patching, "Policy requirements" (the al2023-repos bucket, same for the core repository);
# the mirror list's path from /etc/yum.repos.d/amazonlinux.repo, quoted in amazonlinux/amazon-linux-2023#535:
# mirrorlist=https://al2023-repos-$awsregion-de612dc2.s3.dualstack.$awsregion.$awsdomain/core/mirrors/$releasever/...
AL2023_DOC = "https://docs.aws.amazon.com/linux/al2023/ug/live-patching.html"
# EMR Management Guide, "Sample policies for private subnets that access Amazon S3": the AL2 repository buckets.
AL2_DOC = "https://docs.aws.amazon.com/emr/latest/ManagementGuide/private-subnet-iampolicy.html"
# CloudWatch User Guide, "Verifying the signature of the CloudWatch agent package": the Region-specific links
# https://amazoncloudwatch-agent-<region>.s3.<region>.amazonaws.com/amazon_linux/amd64/latest/amazon-cloudwatch-agent.rpm
CLOUDWATCH_DOC = ("https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/"
                  "verify-CloudWatch-Agent-Package-Signature.html")

ANONYMOUS = "anonymous"  # dnf and curl send unsigned requests: no principal, no aws:PrincipalArn
INSTANCE = "instance"    # the agent signs with the instance profile's role

# SSM_S3_DOC: "needed for all AWS Regions except af-south-1 and eu-south-1", which use aws-ssm-distributor-file-.
DISTRIBUTOR_FILE_REGIONS = ("af-south-1", "eu-south-1")
# SSM User Guide, "Reference: Amazon S3 buckets for patching operations" (read from its stored copy, 2026-11-29): the
# Region-suffixed buckets, which the agent-buckets page (now a section of ssm-agent-technical-details.html) only points
# to. Patch baseline snapshots: patch-baseline-snapshot-<region>, but for these Regions with a suffix.
PATCH_DOC = "https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-operations-s3-buckets.html"
PATCH_SNAPSHOT_EXCEPTIONS = {
    "af-south-1": "patch-baseline-snapshot-af-south-1-tbxdb5b9",
    "ap-south-2": "patch-baseline-snapshot-ap-south-2-50209442",
    "ap-southeast-3": "patch-baseline-snapshot-ap-southeast-3-be0a3174",
    "ap-southeast-4": "patch-baseline-snapshot-ap-southeast-4-dc6f76ce",
    "eu-south-2": "patch-baseline-snapshot-eu-south-2-df2c9d70",
    "me-south-1": "patch-baseline-snapshot-me-south-1-uduvl7q8",
}
# PATCH_DOC, "Buckets containing SSM Command documents for patching operations (Linux and Windows Server)": the
# aws-patch-manager-<region>-<suffix> bucket of each Region it lists; a Region it does not list gets no guess.
PATCH_MANAGER_SUFFIX = {
    "us-east-2": "552881074", "us-east-1": "1970c647d", "us-west-1": "8badb4304", "us-west-2": "34d7f99f8",
    "af-south-1": "bdd5f65a9", "ap-east-1": "632356271", "ap-south-2": "32f4b4128", "ap-southeast-3": "aa48fc462",
    "ap-southeast-4": "01e2c40d3", "ap-south-1": "cb7c62ff9", "ap-northeast-3": "67373598a",
    "ap-northeast-2": "10467995c", "ap-southeast-1": "7fdfd9ef7", "ap-southeast-2": "17283a275",
    "ap-northeast-1": "4849fa78f", "ca-central-1": "3148e69e3", "ca-west-1": "9e3a4b2f9", "eu-central-1": "9163fdaaf",
    "eu-west-1": "5522fb710", "eu-west-2": "902a2bc74", "eu-south-1": "c52f3f594", "eu-west-3": "29bf85721",
    "eu-south-2": "a4cf248b1", "eu-north-1": "795879e9b", "eu-central-2": "184ce43c8", "il-central-1": "e221cb57b",
    "me-south-1": "a53fc9dce", "me-central-1": "2932f2f80", "sa-east-1": "ddf4b6a09",
}
MAX_OS_RELEASE = 16 * 1024
CLOUDWATCH_AGENT_DIR = "/opt/aws/amazon-cloudwatch-agent/bin"  # where its package installs it (CLOUDWATCH_DOC)


@dataclass(frozen=True)
class Bucket:
    name: str
    key: Optional[str]  # an object the software reads, so a policy limited to a prefix is judged on a real key
    purpose: str
    who: str            # ANONYMOUS or INSTANCE
    source: str
    url: Optional[str] = None  # the URL the software itself asks for, so a probe takes its path; None: no known key

    def resource(self, partition: str = "aws") -> str:
        return f"arn:{partition}:s3:::{self.name}/{self.key or '*'}"


def repositories(os_id: str, version: str, region: str, arch: str = "x86_64",
                 domain: str = "amazonaws.com") -> Tuple[Bucket, ...]:
    """The package repositories of the detected OS that live in S3 (other distributions' mirrors are not on S3).
    The URLs are the repository files' mirror lists with dnf's and yum's variables filled in; on AL2023 the
    instance's own /etc/yum.repos.d/amazonlinux.repo, when it can be read, replaces this one (dnf_repo.py)."""
    if os_id == "amzn" and version.startswith("2023"):
        key = f"core/mirrors/latest/{arch}/mirror.list"
        bucket = f"al2023-repos-{region}-de612dc2"
        return (Bucket(bucket, key, "dnf's Amazon Linux 2023 repositories", ANONYMOUS, AL2023_DOC,
                       f"https://{bucket}.s3.dualstack.{region}.{domain}/{key}"),)
    if os_id == "amzn" and version == "2":
        # The mirror list's path is in yum's own error when the bucket is unreachable, e.g. "Could not retrieve
        # mirrorlist https://amazonlinux-2-repos-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com/2/core/latest/
        # x86_64/mirror.list" (quoted in a public note found by the search tool, id 12064387147).
        key = f"2/core/latest/{arch}/mirror.list"
        return (Bucket(f"amazonlinux-2-repos-{region}", key, "yum's Amazon Linux 2 repositories", ANONYMOUS, AL2_DOC,
                       f"https://amazonlinux-2-repos-{region}.s3.dualstack.{region}.{domain}/{key}"),
                Bucket(f"amazonlinux.{region}.amazonaws.com", None, "yum's Amazon Linux 2 packages", ANONYMOUS,
                       AL2_DOC))
    return ()


def ssm_agent(region: str, domain: str = "amazonaws.com") -> Tuple[Bucket, ...]:
    """What SSM Agent reads on Linux (SSM_S3_DOC's table; aws-windows-downloads is Windows-only, and
    amazon-ssm-packages serves only agents older than 2.2.45.0)."""
    distributor = f"aws-ssm-distributor-file-{region}" if region in DISTRIBUTOR_FILE_REGIONS \
        else f"{region}-birdwatcher-prod"
    return (
        # aws/amazon-ssm-agent core/app/selfupdate/constants.go: ManifestPath = "/amazon-ssm-{Region}/ssm-agent-
        # manifest.json" under CommonManifestURL "https://s3.{Region}.amazonaws.com" (path style), the first object
        # the agent's self-update reads (agent/updateutil/updateconstants/constants.go for aws:updateSsmAgent).
        Bucket(f"amazon-ssm-{region}", "ssm-agent-manifest.json", "the SSM agent's self-update", INSTANCE,
               SSM_S3_DOC, f"https://s3.{region}.{domain}/amazon-ssm-{region}/ssm-agent-manifest.json"),
        # The older page said "a few AWS Regions use an extended naming convention" for aws-ssm-<region>; the current
        # one (ssm-agent-technical-details.html, "SSM Agent communications with AWS managed S3 buckets") names
        # aws-ssm-<region> with no exception, and the Region-suffixed names it gives are Patch Manager's (below).
        Bucket(f"aws-ssm-{region}", None, "modules of AWS documents such as AWS-UpdateSSMAgent", INSTANCE,
               SSM_S3_DOC),
        Bucket(PATCH_SNAPSHOT_EXCEPTIONS.get(region, f"patch-baseline-snapshot-{region}"), None,
               "Patch Manager's baseline snapshots", INSTANCE, PATCH_DOC),
        *((Bucket(f"aws-patch-manager-{region}-{PATCH_MANAGER_SUFFIX[region]}", None,
                  "Patch Manager's documents such as AWS-RunPatchBaseline", INSTANCE, PATCH_DOC),)
          if region in PATCH_MANAGER_SUFFIX else ()),
        Bucket(distributor, None, "Distributor (AWS-ConfigureAWSPackage)", INSTANCE, SSM_S3_DOC),
        Bucket(f"aws-ssm-document-attachments-{region}", None, "AWS-owned Distributor packages", INSTANCE,
               SSM_S3_DOC),
    )


def cloudwatch_agent(region: str, arch: str = "x86_64", domain: str = "amazonaws.com") -> Tuple[Bucket, ...]:
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    key = f"amazon_linux/{machine}/latest/amazon-cloudwatch-agent.rpm"
    return (Bucket(f"amazoncloudwatch-agent-{region}", key, "the CloudWatch agent's packages", ANONYMOUS,
                   CLOUDWATCH_DOC, f"https://amazoncloudwatch-agent-{region}.s3.{region}.{domain}/{key}"),)


def needed(region: str, os_id: str = "", version: str = "", arch: str = "x86_64", ssm: bool = True,
           cloudwatch: bool = False, domain: str = "amazonaws.com") -> Tuple[Bucket, ...]:
    return (*repositories(os_id, version, region, arch, domain), *(ssm_agent(region, domain) if ssm else ()),
            *(cloudwatch_agent(region, arch, domain) if cloudwatch else ()))


QUOTED = re.compile(r"([\"'])(.*)\1", re.S)  # os-release(5): a value may be in single or double quotes

def parse_os_release(text: str) -> Dict[str, str]:
    """KEY=value lines of os-release(5), quotes removed; bounded: the first MAX_OS_RELEASE characters only."""
    found: Dict[str, str] = {}
    for line in text[:MAX_OS_RELEASE].splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isidentifier() and key.isupper():
            quoted = QUOTED.fullmatch(value.strip())
            value = quoted.group(2) if quoted else value.strip()
            found[key] = value[:200]
    return found


def statement(buckets: List[Bucket], partition: str = "aws") -> Dict[str, object]:
    """The statement to add, as SSM_S3_DOC shows it: GetObject on each bucket of this Region, named, never aws-ssm-*."""
    return {"Sid": "AwsOwnedBuckets", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": [f"arn:{partition}:s3:::{b.name}/*" for b in buckets]}
