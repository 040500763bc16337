"""Scenarios: a TOML file of knobs laid over the healthy baseline (see README.md)."""
from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

REGION = "ap-northeast-1"
DOMAIN = "amazonaws.com"
PUBLIC_IP = "203.0.113.10"  # TEST-NET-3: unroutable from the lab, so connections time out
S3_IP = "52.216.8.10"  # inside the lab region's S3 prefix list
S3_INTERFACE_ENI = "10.0.1.20"  # an S3 interface endpoint's network interface, when a scenario has one

INTERFACE_ENIS = {
    "ssm": "10.0.1.10", "ssmmessages": "10.0.1.11", "ec2messages": "10.0.1.12", "logs": "10.0.1.13",
    "sts": "10.0.1.14", "kms": "10.0.1.15", "ec2": "10.0.1.16", "monitoring": "10.0.1.17",
}
ALLOW_ALL = json.dumps({"Version": "2008-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})

DOCTOR_CONFIG = """[vpce-doctor]
services = ssm, ssmmessages, ec2messages, s3, sts, logs, kms, ec2
bucket = vpclab-probe
timeout = 10
connect-timeout = 1
"""

# An Amazon Linux 2023 instance's /etc/os-release, as users print it (e.g. an AWS lab transcript found by the search
# tool, id 51967827187; the same lines in aquasecurity's and others' test fixtures).
AL2023_OS_RELEASE = """NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.6.20241121"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
SUPPORT_END="2028-03-15"
"""

# amazon-linux-repo-s3's [amazonlinux] section, as an instance prints it (quoted in a public CDK patch-baseline
# source, search tool id 52468894850), and the dnf variables AL2023 ships in /etc/dnf/vars (a public test fixture,
# search tool id 68844983784: "amazonlinux:2023 ships these in /etc/dnf/vars").
AL2023_REPO = """[amazonlinux]
name=Amazon Linux 2023 repository
mirrorlist=https://al2023-repos-$awsregion-de612dc2.s3$dualstack.$awsregion.$awsdomain/core/mirrors/$releasever/$basearch/$mirrorlist
priority=10
enabled=1
repo_gpgcheck=0
type=rpm
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-amazon-linux-2023
"""
AL2023_DNF_VARS = {"awsregion": REGION, "awsdomain": DOMAIN, "dualstack": ".dualstack", "mirrorlist": "mirror.list"}

BASELINE: dict = {
    "description": "healthy",
    # mentions/absent: words a finding's summary or cause must (not) contain
    "expect": {"exit_code": 0, "root_causes": [], "statuses": {}, "codes": {}, "explained": {}, "remedies": {},
               "mentions": {}, "absent": {}},
    # What an operator of these instances would put in /etc/vpce-doctor/vpce-doctor.conf.
    # mode "remote": `vpce-doctor remote --instance-id <the lab's>` with an operator's keys instead of a run on it
    "doctor": {"args": [], "env": {}, "config": DOCTOR_CONFIG, "mode": "instance"},
    "dns": {"resolver": "up"},
    # The DHCP option set's DNS server, written to /etc/resolv.conf: the VPC resolver, or another address where a
    # DNS server of the customer's own answers every AWS name publicly (it forwards nothing to the VPC resolver).
    "dhcp": {"dns_server": "10.0.0.2"},
    "hosts": {"entries": []},  # lines appended to /etc/hosts, e.g. "10.0.3.99 ssm.ap-northeast-1.amazonaws.com"
    "eni": {},
    "endpoints": {
        # sg_ingress_cidr: the endpoint gets a group of its own admitting 443 from that CIDR only (else the shared
        # group admits every CIDR of the VPC)
        **{svc: {"present": True, "private_dns": True, "addresses": [ip], "sg_ingress_443": True, "sg_ingress_cidr": "",
                 "policy": ALLOW_ALL, "ip_type": "ipv4"} for svc, ip in INTERFACE_ENIS.items()},
        # interface: an S3 interface endpoint beside the gateway endpoint (AWS PrivateLink for Amazon S3), with
        # private DNS for every resolver, or only for inbound Resolver endpoints (inbound_only: the VPC keeps S3's
        # public answers and the gateway); see labd.dns_table
        "s3": {"present": True, "route": True, "policy": ALLOW_ALL,
               "interface": {"present": False, "private_dns": True, "inbound_only": False,
                             "addresses": [S3_INTERFACE_ENI], "sg_ingress_443": True, "policy": ALLOW_ALL}},
    },
    # cidrs: the VPC's primary CIDR then its secondary ones (associate-vpc-cidr-block). The resolver stays at
    # 10.0.0.2, so the primary must start at 10.0.0.0; e.g. ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"] puts the
    # instance's subnet in a secondary CIDR.
    "vpc": {"dns_support": True, "dns_hostnames": True, "route_table": "explicit", "ipv6_cidr": "",
            "cidrs": ["10.0.0.0/16"]},
    # The instance's subnet: ipv6_only (no IPv4 at all), dns64 (AAAA synthesis in 64:ff9b::/96); see family.py.
    "subnet": {"ipv6_only": False, "dns64": False},
    # egress: the instance's security group: all, vpc-only (no S3 prefix list), none; os_release: /etc/os-release;
    # dnf_repo: /etc/yum.repos.d/amazonlinux.repo ("" for none), dnf_vars: the files of /etc/dnf/vars
    "instance": {"egress": "all", "os_release": AL2023_OS_RELEASE, "dnf_repo": AL2023_REPO,
                 "dnf_vars": AL2023_DNF_VARS},
    "nacl": {},
    # A forward proxy that answers CONNECT (tests/lab/proxy.py): mode none | auth (407 unless the credentials
    # "user:password" are given) | refuse (403). Point [doctor] env HTTPS_PROXY at http://address:port.
    "proxy": {"mode": "none", "address": "10.0.9.10", "port": 3128, "credentials": ""},
    # Interface endpoints that live in a hub VPC (reached over a transit gateway, routed inside the lab) and whose
    # names a private hosted zone shared with this VPC answers: {service: address in the hub CIDR}. Listing a
    # service here removes its endpoint from this VPC.
    "hub": {"cidr": "10.100.0.0/16", "services": {}},  # {"<subnet cidr>": {"inbound": [entry, ...], "outbound": [...]}}: a custom ACL on that subnet
    # role_policies None: the baseline policies; trust_ec2 false: the role's trust policy names another service
    "iam": {"instance_profile": True, "role_policies": None, "trust_ec2": True},
    "buckets": {
        "vpclab-probe": {"region": REGION, "encryption": "AES256", "policy": None},
        "vpclab-session-logs": {"region": REGION, "encryption": "AES256", "policy": None},
    },
    "logs": {"group": True, "kms_key": False, "reports": True},
    "session": {
        "present": True, "s3BucketName": "vpclab-session-logs", "s3KeyPrefix": "sessions/",
        "s3EncryptionEnabled": False, "cloudWatchLogGroupName": "/vpclab/sessions",
        "cloudWatchEncryptionEnabled": False, "cloudWatchStreamingEnabled": False, "kmsKeyId": "",
        "runAsEnabled": False, "runAsDefaultUser": "",
    },
    "imds": {"mode": "v2", "ipv6": False},  # ipv6: HttpProtocolIpv6 (IMDS at [fd00:ec2::254])
    "clock": {"offset_seconds": 0},
    "agent": {"state": "running", "version": "3.3.2958.0", "env": {}, "log_lines": [], "config": {}, "connected": True,
              "credential_source": "EC2"},
    # Extra instances only Run Command sees (vpce-doctor fleet): see README.md, "[fleet]".
    "fleet": {"instances": [], "rates": {}},
}


class ScenarioError(ValueError):
    """A scenario file that cannot be read or names a knob the lab does not have."""


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        overrides = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"{path}: {error}") from None
    scenario = merge(BASELINE, overrides, where=path.name)
    scenario["name"] = path.stem
    return scenario


def merge(base: dict, overrides: dict, where: str = "scenario") -> dict:
    """Deep-merge overrides into a copy of base; unknown top-level sections are an error."""
    unknown = set(overrides) - set(BASELINE) - {"name"}
    if unknown:
        raise ScenarioError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    merged = copy.deepcopy(base)
    _merge_into(merged, overrides)
    for service in merged["hub"]["services"]:
        merged["endpoints"].setdefault(service, {})["present"] = False
    from tests.lab import family, netpolicy
    _check_cidrs(merged["vpc"]["cidrs"], where)
    if merged["proxy"]["mode"] not in ("none", "auth", "refuse"):
        raise ScenarioError(f"{where}: [proxy] mode must be none, auth or refuse")
    s3 = merged["endpoints"]["s3"]
    if s3["interface"].get("present") and s3["interface"].get("inbound_only") and not s3.get("present", True):
        # PrivateDnsOnlyForInboundResolverEndpoint needs a gateway endpoint for the service in the VPC (EC2 API
        # reference, DnsOptionsSpecification; AWS PrivateLink for Amazon S3, "Private DNS")
        raise ScenarioError(f"{where}: [endpoints.s3.interface] inbound_only needs the S3 gateway endpoint")
    try:
        netpolicy.validate(merged)
        family.validate(merged)
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ScenarioError(f"{where}: {error}") from None
    return merged


def _check_cidrs(cidrs: list, where: str) -> None:
    """The lab's fixed addresses must fit: the resolver is the primary CIDR's base + 2 (Amazon DNS server, VPC user
    guide), and the lab's subnets 10.0.1.0/24 and 10.0.2.0/24 lie in the VPC's CIDRs."""
    import ipaddress
    try:
        networks = [ipaddress.ip_network(c) for c in cidrs]
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"{where}: [vpc] cidrs: {error}") from None
    if not networks or networks[0].network_address + 2 != ipaddress.ip_address("10.0.0.2"):
        raise ScenarioError(f"{where}: [vpc] cidrs must start with a primary CIDR based at 10.0.0.0 (resolver 10.0.0.2)")
    for subnet in ("10.0.1.0/24", "10.0.2.0/24"):
        if not any(ipaddress.ip_network(subnet).subnet_of(n) for n in networks):  # type: ignore[arg-type]
            raise ScenarioError(f"{where}: [vpc] cidrs must hold the lab's subnet {subnet}")


def _merge_into(target: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
