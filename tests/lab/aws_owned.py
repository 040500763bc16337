"""AWS-owned buckets of the lab's Region, and S3's answer to an unsigned (anonymous) read through the gateway endpoint.

Written apart from vpce_doctor (never imported here). Sources:
* The buckets and keys: Amazon Linux 2023's mirror list (amazon-linux-repo-s3's /etc/yum.repos.d/amazonlinux.repo,
  mirrorlist=https://al2023-repos-$awsregion-de612dc2.s3$dualstack.$awsregion.$awsdomain/core/mirrors/$releasever/
  $basearch/$mirrorlist, amazonlinux/amazon-linux-2023#535 and the AL2023 User Guide, live-patching.html "Policy
  requirements"); the SSM agent's update manifest (aws/amazon-ssm-agent core/app/selfupdate/constants.go,
  ManifestPath "/amazon-ssm-{Region}/ssm-agent-manifest.json" under https://s3.{Region}.amazonaws.com).
  Only the keys matter here; the bodies are short stand-ins.
* Who may read them: anyone. dnf reads them with no credentials, and the agent falls back to a plain HTTP GET
  (agent/fileutil/artifact/artifact.go, httpDownload), so AWS's bucket policy admits "*".
* Anonymous callers in policies: "To grant permission to everyone, also referred as anonymous access, you set the
  wildcard ("*") as the Principal value" (S3 User Guide, s3-bucket-user-policy-specifying-principal-intro); a
  statement naming accounts or roles, or conditioned on aws:PrincipalArn/aws:PrincipalAccount (absent from an
  unsigned request), does not admit them (IAM: a condition on a missing key is false unless ...IfExists).
* The denial: S3 adds the policy type to AccessDenied only for same-account or same-organization requests; others
  get a generic "Access Denied" (S3 User Guide, troubleshoot-403-errors.html, "Access denied message examples").
  A missing key answers 403 to a caller without s3:ListBucket (GetObject API reference, "Permissions").
"""
from __future__ import annotations

import json
import re

from tests.lab import iam


def buckets(region: str) -> dict:
    """{bucket: {key: body}}: the objects the lab serves as AWS would."""
    repos = f"al2023-repos-{region}-de612dc2"
    return {
        repos: {f"core/mirrors/latest/{arch}/mirror.list":
                f"https://{repos}.s3.dualstack.{region}.amazonaws.com/core/guids/0000/{arch}/\n".encode()
                for arch in ("x86_64", "aarch64")},
        f"amazon-ssm-{region}": {"ssm-agent-manifest.json": b'{"SchemaVersion": "1.0", "Packages": []}\n'},
    }


def public_read(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"}]})


def seed(s3, region: str) -> None:
    """s3: the lab's admin client in `region` (moto in-process)."""
    for bucket, objects in buckets(region).items():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)


def read(world, req, context: dict):
    """(status, headers, body) of an unsigned GET or HEAD of an object, or None: denied (S3's bare AccessDenied);
    context: the request's condition keys (no principal keys: nobody signed it)."""
    resource, denied = f"arn:aws:s3:::{req.bucket}/{req.key}", None
    endpoint_policy = world.endpoint_policy(req.endpoint, req.via)  # the S3 endpoint that received it
    if endpoint_policy is not None and iam.evaluate(endpoint_policy, "s3:GetObject", resource, set(),
                                                    context) != "allow":
        return denied
    bucket_policy = world.bucket_policy(req.bucket)
    if bucket_policy is None or iam.evaluate(bucket_policy, "s3:GetObject", resource, set(), context) != "allow":
        return denied
    try:
        body = bytes(world.backend("s3").get_object(req.bucket, req.key).value)
    except Exception:  # moto's MissingKey: to an anonymous caller without s3:ListBucket, a 403
        return denied
    status, headers, served = _ranged(body, req.environ.get("HTTP_RANGE", ""))
    req.head_length = str(len(served))  # a HEAD answers the length a GET would have sent
    return status, headers, served


def _ranged(body: bytes, header: str):
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    headers = [("Content-Type", "binary/octet-stream"), ("Accept-Ranges", "bytes"), ("ETag", '"lab"')]
    if not match or int(match.group(1)) >= len(body):
        return 200, headers, body
    first = int(match.group(1))
    last = min(int(match.group(2) or len(body) - 1), len(body) - 1)
    return 206, [*headers, ("Content-Range", f"bytes {first}-{last}/{len(body)}")], body[first:last + 1]
