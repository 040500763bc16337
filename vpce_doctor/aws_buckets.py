"""The AWS-owned S3 buckets an instance's own software reads through the S3 gateway endpoint, per Region and OS.

Data, each name with the source it was read from (read 2026-11-29). A gateway endpoint's policy applies to every
bucket reached through it, AWS's own included, so a least-privilege policy ("only our buckets") breaks `dnf update`,
the SSM agent's self-update, Distributor and Patch Manager until someone adds these. No I/O here.
"""
from __future__ import annotations

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
# SSM_S3_DOC: "In the Middle East (Bahrain) Region (me-south-1) only, this S3 bucket uses a different naming".
PATCH_SNAPSHOT_EXCEPTIONS = {"me-south-1": "patch-baseline-snapshot-me-south-1-uduvl7q8"}
MAX_OS_RELEASE = 16 * 1024
CLOUDWATCH_AGENT_DIR = "/opt/aws/amazon-cloudwatch-agent/bin"  # where its package installs it (CLOUDWATCH_DOC)


@dataclass(frozen=True)
class Bucket:
    name: str
    key: Optional[str]  # an object the software reads, so a policy limited to a prefix is judged on a real key
    purpose: str
    who: str            # ANONYMOUS or INSTANCE
    source: str

    def resource(self, partition: str = "aws") -> str:
        return f"arn:{partition}:s3:::{self.name}/{self.key or '*'}"


def repositories(os_id: str, version: str, region: str, arch: str = "x86_64") -> Tuple[Bucket, ...]:
    """The package repositories of the detected OS that live in S3 (other distributions' mirrors are not on S3)."""
    if os_id == "amzn" and version.startswith("2023"):
        return (Bucket(f"al2023-repos-{region}-de612dc2", f"core/mirrors/latest/{arch}/mirror.list",
                       "dnf's Amazon Linux 2023 repositories", ANONYMOUS, AL2023_DOC),)
    if os_id == "amzn" and version == "2":
        # The mirror list's path is in yum's own error when the bucket is unreachable, e.g. "Could not retrieve
        # mirrorlist https://amazonlinux-2-repos-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com/2/core/latest/
        # x86_64/mirror.list" (quoted in a public note found by the search tool, id 12064387147).
        return (Bucket(f"amazonlinux-2-repos-{region}", f"2/core/latest/{arch}/mirror.list",
                       "yum's Amazon Linux 2 repositories", ANONYMOUS, AL2_DOC),
                Bucket(f"amazonlinux.{region}.amazonaws.com", None, "yum's Amazon Linux 2 packages", ANONYMOUS,
                       AL2_DOC))
    return ()


def ssm_agent(region: str) -> Tuple[Bucket, ...]:
    """What SSM Agent reads on Linux (SSM_S3_DOC's table; aws-windows-downloads is Windows-only, and
    amazon-ssm-packages serves only agents older than 2.2.45.0)."""
    distributor = f"aws-ssm-distributor-file-{region}" if region in DISTRIBUTOR_FILE_REGIONS \
        else f"{region}-birdwatcher-prod"
    return (
        # aws/amazon-ssm-agent agent/updateutil/updateconstants: ManifestPath = "/amazon-ssm-{Region}/ssm-agent-
        # manifest.json", the first object the agent's self-update (aws:updateSsmAgent) reads.
        Bucket(f"amazon-ssm-{region}", "ssm-agent-manifest.json", "the SSM agent's self-update", INSTANCE,
               SSM_S3_DOC),
        # SSM_S3_DOC: "a few AWS Regions use an extended naming convention" for aws-ssm-<region>; the page's list of
        # them was not readable from here, so in those Regions this name may be wrong (a false warning).
        Bucket(f"aws-ssm-{region}", None, "modules of AWS documents such as AWS-RunPatchBaseline", INSTANCE,
               SSM_S3_DOC),
        Bucket(PATCH_SNAPSHOT_EXCEPTIONS.get(region, f"patch-baseline-snapshot-{region}"), None,
               "Patch Manager's baseline snapshots", INSTANCE, SSM_S3_DOC),
        Bucket(distributor, None, "Distributor (AWS-ConfigureAWSPackage)", INSTANCE, SSM_S3_DOC),
        Bucket(f"aws-ssm-document-attachments-{region}", None, "AWS-owned Distributor packages", INSTANCE,
               SSM_S3_DOC),
    )


def cloudwatch_agent(region: str, arch: str = "x86_64") -> Tuple[Bucket, ...]:
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    return (Bucket(f"amazoncloudwatch-agent-{region}", f"amazon_linux/{machine}/latest/amazon-cloudwatch-agent.rpm",
                   "the CloudWatch agent's packages", ANONYMOUS, CLOUDWATCH_DOC),)


def needed(region: str, os_id: str = "", version: str = "", arch: str = "x86_64", ssm: bool = True,
           cloudwatch: bool = False) -> Tuple[Bucket, ...]:
    return (*repositories(os_id, version, region, arch), *(ssm_agent(region) if ssm else ()),
            *(cloudwatch_agent(region, arch) if cloudwatch else ()))


def parse_os_release(text: str) -> Dict[str, str]:
    """KEY=value lines of os-release(5), quotes removed; bounded: the first MAX_OS_RELEASE characters only."""
    found: Dict[str, str] = {}
    for line in text[:MAX_OS_RELEASE].splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isidentifier() and key.isupper():
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            found[key] = value[:200]
    return found


def statement(buckets: List[Bucket], partition: str = "aws") -> Dict[str, object]:
    """The statement to add, as SSM_S3_DOC shows it: GetObject on each bucket of this Region, named, never aws-ssm-*."""
    return {"Sid": "AwsOwnedBuckets", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": [f"arn:{partition}:s3:::{b.name}/*" for b in buckets]}
