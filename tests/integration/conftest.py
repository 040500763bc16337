"""A private subnet on loopback: IMDSv2, a resolver and TLS "endpoint ENIs" at 127.0.0.x, all real servers."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Dict, List

import pytest

from tests.servers import DnsServer, ImdsServer, TlsServer, make_certs, server_context
from vpce_doctor import cli

REGION = "eu-west-1"
MAC = "0a:1b:2c:3d:4e:5f"
ENIS = {"ssm": "127.0.0.10", "ssmmessages": "127.0.0.11", "ec2messages": "127.0.0.12", "s3": "127.0.0.13",
        "logs": "127.0.0.14", "kms": "127.0.0.15", "sts": "127.0.0.16"}
NO_LISTENER = "127.0.0.40"
OUTSIDE = "127.0.1.5"
NETWORK_LAYERS = ("imds", "dns", "local", "tcp", "tls")  # outside the VPC CIDR the fake IMDS gives (127.0.0.0/24)


def metadata(profile: bool = True) -> Dict[str, str]:
    data = {
        "meta-data/instance-id": "i-0123456789abcdef0", "meta-data/placement/region": REGION,
        "meta-data/placement/availability-zone": REGION + "a", "meta-data/services/domain": "amazonaws.com",
        "meta-data/services/partition": "aws", "meta-data/mac": MAC, "meta-data/local-ipv4": "127.0.0.100",
        f"meta-data/network/interfaces/macs/{MAC}/vpc-id": "vpc-0abc1234",
        f"meta-data/network/interfaces/macs/{MAC}/vpc-ipv4-cidr-blocks": "127.0.0.0/24",
        f"meta-data/network/interfaces/macs/{MAC}/subnet-id": "subnet-0abc1234",
        f"meta-data/network/interfaces/macs/{MAC}/subnet-ipv4-cidr-block": "127.0.0.0/25",
        f"meta-data/network/interfaces/macs/{MAC}/security-group-ids": "sg-0abc1234",
    }
    if profile:
        data["meta-data/iam/info"] = json.dumps({"Code": "Success", "InstanceProfileArn":
                                                 "arn:aws:iam::123456789012:instance-profile/app"})
    return data


@dataclass
class World:
    dns: DnsServer
    imds: ImdsServer
    port: int
    ca_file: str
    tls: Dict[str, TlsServer]
    environ: Dict[str, str] = field(default_factory=dict)
    root: str = "/"  # where the doctor reads the instance's files from (main()'s seam)

    def name(self, service: str) -> str:
        return f"{service}.{REGION}.amazonaws.com"

    def doctor(self, *args: str, output: str = "json", only=NETWORK_LAYERS):
        """Run the doctor in-process; by default only the network layers (the authenticated ones need AWS)."""
        out, err = io.StringIO(), io.StringIO()
        argv = ["--resolver", f"127.0.0.1:{self.dns.port}", "--ca-bundle", self.ca_file, "--output", output,
                "--timeout", "5", "--connect-timeout", "0.5", *(["--only", *only] if only else []), *args]
        environ = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{self.imds.port}", **self.environ}
        code = cli.main(argv, environ=environ, stdout=out, stderr=err, root=self.root, port=self.port)
        return Run(code, out.getvalue(), err.getvalue())


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def report(self) -> dict:
        return json.loads(self.out)

    def finding(self, check_id: str) -> dict:
        return next(f for f in self.report["findings"] if f["id"] == check_id)

    @property
    def root_causes(self) -> List[tuple]:
        return [(c["id"], c["code"]) for c in self.report["summary"]["root_causes"]]


@pytest.fixture
def world(tmp_path):
    ca, leaf = make_certs([f"{s}.{REGION}.amazonaws.com" for s in ENIS] + [f"*.s3.{REGION}.amazonaws.com"])
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    servers: Dict[str, TlsServer] = {}
    port = 0
    for service, address in ENIS.items():
        server = TlsServer(address, port, ssl_context=server_context(leaf)).start()
        port = server.port  # every "ENI" listens on the same port, as every endpoint does on 443
        servers[service] = server
    answers = {f"{s}.{REGION}.amazonaws.com": ip for s, ip in ENIS.items()}
    with DnsServer(answers=answers) as dns_server, ImdsServer(metadata=metadata()) as imds:
        yield World(dns_server, imds, port, str(ca_file), servers)
    for server in servers.values():
        server.stop()
