"""Where dnf itself looks for Amazon Linux 2023's packages: the mirror list of /etc/yum.repos.d/amazonlinux.repo with
dnf's variables filled in from /etc/dnf/vars, so the probe asks S3 for what `dnf update` will ask for.

Sources. EC2's AL2023 AMIs ship amazon-linux-repo-s3, whose [amazonlinux] section reads
  mirrorlist=https://al2023-repos-$awsregion-de612dc2.s3$dualstack.$awsregion.$awsdomain/core/mirrors/$releasever/
  $basearch/$mirrorlist
(quoted from an instance in a public CDK patch-baseline source, search tool id 52468894850; the older form with a
literal ".dualstack" and "mirror.list" in amazonlinux/amazon-linux-2023#535); container images ship
amazon-linux-repo-cdn, whose mirror list is on https://cdn.amazonlinux.com, not S3 (AL2023 release notes, package
lists). AL2023 ships /etc/dnf/vars/{awsregion,awsdomain,dualstack,mirrorlist} ("amazonlinux:2023 ships these in
/etc/dnf/vars": dualstack ".dualstack", mirrorlist "mirror.list"; a public test fixture, search tool id 68844983784);
a variable file holds its value on the first line (dnf.conf(5), "Repo variables"). $releasever is the
--releasever flag, else /etc/dnf/vars/releasever, else the installed system-release version
(https://docs.aws.amazon.com/linux/al2023/ug/deterministic-upgrades-usage.html); without the file this reader uses
"latest", a mirror list every repository version has. No network here; reads are bounded (instance_files).
"""
from __future__ import annotations

import re
from typing import Callable, Dict, Mapping, Optional, Tuple

from . import instance_files

REPO_FILE = "/etc/yum.repos.d/amazonlinux.repo"
VARS_DIR = "/etc/dnf/vars"
SECTION = "amazonlinux"
MAX_REPO = 64 * 1024
MAX_VARIABLE = 256
# The variables the AL2023 repository file uses; only these are read, so no file name comes from the repo file.
VARIABLES = ("awsregion", "awsdomain", "dualstack", "mirrorlist", "releasever")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))", re.ASCII)
# Virtual-hosted S3 names (bucket.s3.region.domain, bucket.s3.dualstack.region.domain, bucket.s3-region.domain) and
# path-style ones (s3.region.domain/bucket/key): https://docs.aws.amazon.com/AmazonS3/latest/userguide/
# VirtualHosting.html and https://docs.aws.amazon.com/AmazonS3/latest/API/dual-stack-endpoints.html
_S3_HOST = re.compile(r"\A(?:(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.)?s3(?:[.-]dualstack)?[.-]"
                      r"(?:[a-z0-9-]+\.)?amazonaws\.com(?:\.cn)?\Z", re.ASCII)
_URL = re.compile(r"\Ahttps?://(?P<host>[^/:\s]+)(?::\d{1,5})?/(?P<path>\S*)\Z", re.ASCII)


def mirror_url(repo_text: str, variables: Mapping[str, str]) -> Optional[str]:
    """The [amazonlinux] section's first mirrorlist (else baseurl) URL, variables filled in; None when the section
    is missing, disabled, or a variable stays unknown. Bounded: only the first MAX_REPO characters are read."""
    section, found = "", {}  # type: Tuple[str, Dict[str, str]]
    for raw in repo_text[:MAX_REPO].splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == SECTION and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip().lower(), value.strip())
    if found.get("enabled", "1").strip() in ("0", "false", "no", "False"):
        return None
    url = (found.get("mirrorlist") or found.get("baseurl") or "").split(",")[0].split()[:1]
    if not url:
        return None
    filled = _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), url[0])
    return None if "$" in filled else filled[:2048]


def s3_object(url: str) -> Optional[Tuple[str, str]]:
    """(bucket, key) when the URL is an S3 object's, virtual-hosted or path-style; None for any other host."""
    match = _URL.match(url)
    host = _S3_HOST.match(match.group("host").lower()) if match else None
    if not match or not host:
        return None
    if host.group("bucket"):
        return host.group("bucket"), match.group("path")
    bucket, _, key = match.group("path").partition("/")
    return (bucket, key) if bucket and key else None


def variables(read: Callable[[str], str], region: str, domain: str) -> Dict[str, str]:
    """dnf's variables: the files in /etc/dnf/vars (first line), with what AL2023 ships where a file is missing."""
    values = {"awsregion": region, "awsdomain": domain, "dualstack": ".dualstack", "mirrorlist": "mirror.list",
              "releasever": "latest"}
    for name in VARIABLES:
        try:
            first = read(f"{VARS_DIR}/{name}").splitlines()[:1]
        except OSError:
            continue
        if first and re.fullmatch(r"[A-Za-z0-9._-]{0,64}", first[0].strip(), re.ASCII):
            values[name] = first[0].strip()
    return values


def locate(path: Callable[[str], object], region: str, domain: str, arch: str) -> Optional[str]:
    """The mirror list URL dnf uses on this instance, or None when there is no readable AL2023 repository file.
    path: maps an absolute instance path to where it is read (Context.path)."""
    def read(absolute: str) -> str:
        return instance_files.read_text(path(absolute), MAX_VARIABLE if absolute.startswith(VARS_DIR) else MAX_REPO)
    try:
        text = read(REPO_FILE)
    except OSError:
        return None
    return mirror_url(text, {**variables(read, region, domain), "basearch": arch})
