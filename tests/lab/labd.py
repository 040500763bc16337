"""labd: the lab daemon. One process inside the lab's namespaces (started by inner.sh), with threads for:

* the VPC resolver on 10.0.0.2:53 (tests.servers.DnsServer), answers derived from the scenario;
* IMDS on 169.254.169.254:80 (tests.servers.ImdsServer), metadata from AwsWorld.apply's facts;
* AWS (tests.lab.aws.AwsWorld.app, moto behind a front) over TLS on every endpoint ENI address:443 and on the
  S3 address (52.216.8.10:443, plus plain HTTP on :80), each request tagged environ["lab.endpoint"];
* nft rules (table inet lab) for dropped/rejected ENIs, missing SG rules, missing S3 routes, absent endpoints;
* the fake SSM agent (tests.lab.agent.FakeAgent);
* a control socket RUN/ctl.sock taking JSON lines: {"cmd": "scenario", "path": FILE} (or "overrides": {...}),
  {"cmd": "status"}, {"cmd": "stop"}, {"cmd": "aws", "service", "operation", "params"} (an administrator's call into
  moto, for tests to look at the world). Every reply is one JSON line with "ok".

It writes RUN/ready.json (facts, timings, RSS) once everything is up. Never run it on the host: it mounts over
the CA bundle and runs `ip`/`nft`; inner.sh only starts it inside the namespaces.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTED = time.perf_counter()
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.lab import scenario as scenarios  # noqa: E402
from tests.lab.agent import FakeAgent  # noqa: E402
from tests.lab import family, netpolicy  # noqa: E402

REGION, DOMAIN = scenarios.REGION, scenarios.DOMAIN
PUBLIC_IP, S3_IP = scenarios.PUBLIC_IP, scenarios.S3_IP
RESOLVER_IP, IMDS_IP = "10.0.0.2", "169.254.169.254"
GATEWAY_SERVICES = ("s3", "dynamodb")
DOCTOR_CONF = "/etc/vpce-doctor/vpce-doctor.conf"
OS_RELEASE = "/etc/os-release"
DNF_REPO, DNF_VARS = "/etc/yum.repos.d/amazonlinux.repo", "/etc/dnf/vars"
OVERLAID = ("/etc/", "/usr/bin/", "/var/")  # overlays in the lab's mount namespace (inner.sh)
HOSTNAME = f"ip-10-0-1-100.{REGION}.compute.internal"
HOSTS = (f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"  # what inner.sh writes
         f"10.0.1.100 {HOSTNAME} ip-10-0-1-100\n")
AZ_IDS = {"a": "apne1-az4", "c": "apne1-az1", "d": "apne1-az2"}

log = logging.getLogger("vpclab.labd")


def service_cert_names(svc: str) -> list:
    """The SANs of one endpoint's certificate: an interface endpoint's ENIs present the service's regional name and
    the endpoint's own *.vpce names, nothing else; S3's carries its regional, global and bucket wildcards."""
    if svc == "s3":
        return [f"s3.{REGION}.{DOMAIN}", f"*.s3.{REGION}.{DOMAIN}", f"s3.{DOMAIN}", f"*.s3.{DOMAIN}",
                f"s3.dualstack.{REGION}.{DOMAIN}", f"*.s3.dualstack.{REGION}.{DOMAIN}"]
    return [f"{svc}.{REGION}.{DOMAIN}", f"*.{svc}.{REGION}.vpce.{DOMAIN}"]


def cert_names(services=scenarios.INTERFACE_ENIS) -> list:
    names = []
    for svc in services:
        names += [f"{svc}.{REGION}.{DOMAIN}", f"*.{svc}.{REGION}.vpce.{DOMAIN}"]
    return names + [f"s3.{REGION}.{DOMAIN}", f"*.s3.{REGION}.{DOMAIN}", f"s3.{DOMAIN}", f"*.s3.{DOMAIN}",
                    f"s3.dualstack.{REGION}.{DOMAIN}", f"*.s3.dualstack.{REGION}.{DOMAIN}"]


# -- what the scenario implies (pure functions) ------------------------------------------------------------------

def interface_endpoints(sc: dict) -> dict:
    """{svc: spec} for the scenario's interface endpoints (present or not)."""
    return {svc: spec for svc, spec in sc["endpoints"].items() if svc not in GATEWAY_SERVICES}


def endpoint_addresses(sc: dict) -> dict:
    """{address: svc} for every ENI of a present interface endpoint, plus the S3 address ("s3")."""
    owners = {}
    for svc, spec in interface_endpoints(sc).items():
        if spec.get("present", True):
            for address in family.endpoint_addresses(spec, _v4(spec, svc)):
                if address:
                    owners.setdefault(address, svc)
    for svc, address in sc["hub"]["services"].items():  # shared endpoints in the hub VPC, routed inside the lab
        owners.setdefault(address, svc)
    for address in s3_interface_addresses(sc):
        owners.setdefault(address, "s3")
    owners[S3_IP] = "s3"
    owners[family.S3_IP6] = "s3"
    return owners


def s3_interface_addresses(sc: dict) -> list:
    """The network interfaces of the S3 interface endpoint beside the gateway (none when it is absent)."""
    spec = sc["endpoints"].get("s3", {}).get("interface") or {}
    return list(spec.get("addresses") or []) if spec.get("present") else []


def _v4(spec: dict, svc: str) -> list:
    return [a for a in (spec.get("addresses") or [scenarios.INTERFACE_ENIS.get(svc)]) if a]


def dns_table(sc: dict) -> tuple:
    """(answers, default) for DnsServer.reset; see README "DNS"."""
    vpc = sc["vpc"]
    answers: dict = {}
    default = "nxdomain"
    if vpc.get("dns_support", True):
        answers[f"*.{DOMAIN}"] = PUBLIC_IP
        answers[f"s3.{REGION}.{DOMAIN}"] = S3_IP
        answers[f"*.s3.{REGION}.{DOMAIN}"] = S3_IP
        answers[f"*.api.aws"] = [PUBLIC_IP, family.PUBLIC_IP6]  # the public dual-stack names
        for name in (f"s3.dualstack.{REGION}.{DOMAIN}", f"*.s3.dualstack.{REGION}.{DOMAIN}"):
            answers[name] = [S3_IP, family.S3_IP6]
        answers[HOSTNAME] = "10.0.1.100"
        for svc, spec in interface_endpoints(sc).items():
            if not spec.get("present", True):
                continue
            addresses = family.endpoint_addresses(spec, _v4(spec, svc))
            answers[f"*.{svc}.{REGION}.vpce.{DOMAIN}"] = addresses  # the endpoint's own names always resolve
            if spec.get("private_dns", True) and vpc.get("dns_hostnames", True):
                answers[f"{svc}.{REGION}.{DOMAIN}"] = addresses
        _s3_interface_names(sc, answers)
        if vpc.get("dns_hostnames", True):  # the hub's private hosted zones, shared with (associated to) this VPC
            for svc, address in sc["hub"]["services"].items():
                answers[f"{svc}.{REGION}.{DOMAIN}"] = [address]
    else:  # the Amazon-provided resolver is switched off for this VPC
        default = "servfail"
    for key, value in sc["dns"].items():
        if key == "resolver" or value == "auto":
            continue
        names = [key] if "." in key else [f"{key}.{REGION}.{DOMAIN}"]
        if key == "s3":
            names.append(f"*.s3.{REGION}.{DOMAIN}")
        if value == "vpc":
            spec = sc["endpoints"].get(key, {})
            value = S3_IP if key == "s3" else list(spec.get("addresses") or [scenarios.INTERFACE_ENIS.get(key)])
        elif value == "public":
            value = PUBLIC_IP
        for name in names:
            answers[name] = value
    if sc.get("subnet", {}).get("dns64"):
        answers = family.dns64(answers)
    return answers, default


def _s3_interface_names(sc: dict, answers: dict) -> None:
    """An S3 interface endpoint's own names always resolve; with private DNS for every resolver the Region's S3
    names answer its addresses to the VPC, with private DNS only for inbound Resolver endpoints the VPC keeps S3's
    public answers (and the gateway) while on-premises clients get the interface (AWS PrivateLink for Amazon S3,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/privatelink-interface-endpoints.html, "Private DNS")."""
    addresses = s3_interface_addresses(sc)
    if not addresses:
        return
    spec = sc["endpoints"]["s3"]["interface"]
    answers[f"*.s3.{REGION}.vpce.{DOMAIN}"] = addresses
    if spec.get("private_dns", True) and not spec.get("inbound_only") and sc["vpc"].get("dns_hostnames", True):
        answers[f"s3.{REGION}.{DOMAIN}"] = addresses
        answers[f"*.s3.{REGION}.{DOMAIN}"] = addresses


def public_view() -> dict:
    """What a DNS server that does not forward to the VPC resolver answers: the public internet's view."""
    return {f"*.{DOMAIN}": PUBLIC_IP, f"s3.{REGION}.{DOMAIN}": S3_IP, f"*.s3.{REGION}.{DOMAIN}": S3_IP,
            HOSTNAME: "10.0.1.100"}


def nft_ruleset(sc: dict, lo_addresses) -> str:
    """The whole `table inet lab` for this scenario, as an `nft -f` script that replaces the previous one."""
    rules = family.nft_rules(sc)
    owners = endpoint_addresses(sc)
    explicit = sc.get("eni") or {}
    for address, knobs in explicit.items():
        mode = (knobs or {}).get("mode", "ok")
        if mode == "drop":
            rules.append(f"{family.daddr(address)} tcp dport 443 drop")
        elif mode == "reject":
            rules.append(f"{family.daddr(address)} tcp dport 443 reject with tcp reset")
    for svc, spec in interface_endpoints(sc).items():
        if spec.get("present", True) and (not spec.get("sg_ingress_443", True) or netpolicy.sg_blocks(spec)):
            for address in family.endpoint_addresses(spec, _v4(spec, svc)):
                rules.append(f"{family.daddr(address)} tcp dport 443 drop")
    s3 = sc["endpoints"].get("s3", {})
    if not (s3.get("interface") or {}).get("sg_ingress_443", True):
        rules += [f"{family.daddr(address)} tcp dport 443 drop" for address in s3_interface_addresses(sc)]
    if not s3.get("present", True) or not s3.get("route", True):
        rules.append(f"ip daddr {S3_IP} tcp dport {{ 80, 443 }} drop")
        rules.append(f"ip6 daddr {family.S3_IP6} tcp dport {{ 80, 443 }} drop")
    rules += netpolicy.nft_rules(sc, owners)
    for address in sorted(lo_addresses):
        if address in owners:
            continue
        if address not in explicit:  # no ENI there any more (absent endpoint): silence, as in a VPC
            rules.append(f"{family.daddr(address)} tcp dport 443 drop")
        elif (explicit[address] or {}).get("mode", "ok") == "ok":  # an address with nothing behind it
            rules.append(f"{family.daddr(address)} tcp dport 443 reject with tcp reset")
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return ("table inet lab\ndelete table inet lab\n"
            "table inet lab {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
            f"{body}\t}}\n}}\n")


def _iso(value) -> str:
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def imds_metadata(facts: dict) -> dict:
    """{path under /latest/: body} for tests.servers.ImdsServer, from AwsWorld.apply's facts."""
    md = "meta-data/"
    mac, region, az = facts["mac"], facts["region"], facts["az"]
    interface_id = facts.get("interface_id") or "eni-0" + hashlib.sha256(facts["instance_id"].encode()).hexdigest()[:16]
    ami = facts.get("ami_id", "ami-0a1b2c3d4e5f60718")
    data = {
        md + "ami-id": ami,
        md + "ami-launch-index": "0",
        md + "hostname": HOSTNAME,
        md + "local-hostname": HOSTNAME,
        md + "instance-id": facts["instance_id"],
        md + "instance-type": facts.get("instance_type", "t3.micro"),
        md + "instance-life-cycle": "on-demand",
        md + "local-ipv4": facts["private_ip"],
        md + "mac": mac,
        md + "placement/region": region,
        md + "placement/availability-zone": az,
        md + "placement/availability-zone-id": facts.get("az_id") or AZ_IDS.get(az[-1], "apne1-az4"),
        md + "services/domain": DOMAIN,
        md + "services/partition": "aws",
    }
    net = f"{md}network/interfaces/macs/{mac}/"
    cidrs = list(facts["vpc_cidrs"])
    data.update({
        net + "device-number": "0",
        net + "interface-id": interface_id,
        net + "local-hostname": HOSTNAME,
        net + "local-ipv4s": facts["private_ip"],
        net + "mac": mac,
        net + "owner-id": facts["account"],
        net + "security-group-ids": "\n".join(facts["security_group_ids"]),
        net + "subnet-id": facts["subnet_id"],
        net + "subnet-ipv4-cidr-block": facts["subnet_cidr"],
        net + "vpc-id": facts["vpc_id"],
        net + "vpc-ipv4-cidr-block": cidrs[0],
        net + "vpc-ipv4-cidr-blocks": "\n".join(cidrs),
    })
    creds = facts.get("credentials")
    role = facts.get("role_name")
    if role and creds:
        updated = _iso(creds.get("LastUpdated", ""))
        data[md + "iam/info"] = json.dumps({
            "Code": "Success", "LastUpdated": updated, "InstanceProfileArn": facts["instance_profile_arn"],
            "InstanceProfileId": facts["instance_profile_id"]}, indent=2)
    if role and creds and "AccessKeyId" not in creds:  # the role cannot be assumed: Code and Message only
        data[md + f"iam/security-credentials/{role}"] = json.dumps(creds, indent=2)
    elif role and creds:
        data[md + f"iam/security-credentials/{role}"] = json.dumps({
            "Code": creds.get("Code", "Success"), "LastUpdated": updated, "Type": creds.get("Type", "AWS-HMAC"),
            "AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["Token"], "Expiration": _iso(creds["Expiration"])}, indent=2)
    data["dynamic/instance-identity/document"] = json.dumps({
        "accountId": facts["account"], "architecture": "x86_64", "availabilityZone": az,
        "billingProducts": None, "devpayProductCodes": None, "marketplaceProductCodes": None, "imageId": ami,
        "instanceId": facts["instance_id"], "instanceType": facts.get("instance_type", "t3.micro"),
        "kernelId": None, "pendingTime": facts.get("launch_time", "2026-11-28T11:58:31Z"),
        "privateIp": facts["private_ip"], "ramdiskId": None, "region": region, "version": "2017-09-30"}, indent=2)
    return data


# -- the daemon ------------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _tool(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin") or name


class Labd:
    def __init__(self, run_dir: Path, python: str) -> None:
        self.run = run_dir
        self.python = python
        self.timings: dict = {}
        self.lock = threading.Lock()
        self.scenario: dict = {}
        self.facts: dict = {}
        self.lo_addresses = {"10.0.1.1%d" % i for i in range(8)} | {S3_IP}
        self.owners: dict = {}  # address -> endpoint service, read by the TLS handlers per request
        self.s3_interface: set = set()  # the S3 interface endpoint's addresses (requests there are its)
        self.proxies: dict = {}  # (address, port) -> tests.lab.proxy.ProxyServer
        self.eni_modes: dict = {}  # address -> ok | wrong-name | untrusted | drop | reject
        self.listeners: dict = {}
        self.custom_dns: dict = {}  # address -> DnsServer: [dhcp] dns_server other than the VPC resolver
        self.switches: list = []
        self.stopping = threading.Event()

    def mark(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round(now - since, 3)
        return now

    # -- start-up --
    def start(self, scenario_path: str) -> None:
        t = time.perf_counter()
        self.timings["python_start"] = round(t - STARTED, 3)
        from tests import servers
        from tests.lab.aws import AwsWorld
        self.servers = servers
        t = self.mark("import", t)
        self.world = AwsWorld(REGION)
        t = self.mark("aws_world", t)
        self._certs()
        t = self.mark("certs", t)
        self.dns = servers.DnsServer(RESOLVER_IP, 53, {}, "nxdomain").start()
        self.imds = servers.ImdsServer(IMDS_IP, 80, {}, "v2").start()
        # The same resolver and IMDS at their IPv6 addresses (nft decides whether IMDS's answers: family.py).
        self.dns6 = servers.DnsServer(family.AMAZON_DNS6, 53, {}, "nxdomain").start()
        self.imds6 = servers.ImdsServer(family.IMDS6, 80, {}, "v2").start()
        for address in sorted(self.lo_addresses):
            self._listen(address)
        self._listen(S3_IP, port=80)
        self.agent = FakeAgent(python=self.python)
        t = self.mark("servers", t)
        self.apply(scenarios.load(scenario_path))
        t = self.mark("first_apply", t)
        self._control()
        self.timings["total"] = round(time.perf_counter() - STARTED, 3)
        ready = {"pid": os.getpid(), "netns": os.stat("/proc/self/ns/net").st_ino,
                 "scenario": self.scenario["name"], "facts": self.facts,
                 "timings": self.timings, "rss_mb": _rss_mb(), "ctl": str(self.run / "ctl.sock"),
                 "agent_binary": self.agent.kind, "ca": str(self.run / "lab-ca.pem")}
        tmp = self.run / "ready.json.tmp"
        tmp.write_text(json.dumps(ready, indent=2, default=str))
        tmp.rename(self.run / "ready.json")
        log.info("ready in %.2fs: %s", self.timings["total"], self.timings)

    def _certs(self) -> None:
        """The lab CA (trusted inside the lab), per-mode server contexts, and the system+lab CA bundle mounts."""
        import trustme
        names = cert_names()
        self.ca, leaf = self.servers.make_certs(names)
        _, wrong = self.servers.make_certs(["wrong.example.invalid", "*.lab.internal"], ca=self.ca)
        self.rogue_ca, rogue = self.servers.make_certs(names, ca=trustme.CA(organization_name="Intercepting Proxy"))
        self.leaf = leaf
        # One certificate per endpoint: a record that points one service's name at another's ENI fails TLS there.
        self.service_contexts = {svc: self.servers.server_context(self.ca.issue_cert(*service_cert_names(svc)))
                                 for svc in (*scenarios.INTERFACE_ENIS, "s3", "cloudtrail")}
        self.contexts = {"wrong-name": self.servers.server_context(wrong),
                         "untrusted": self.servers.server_context(rogue)}
        (self.run / "lab-ca.pem").write_bytes(self.ca.cert_pem.bytes())
        targets = set()
        for path in ("/etc/ssl/certs/ca-certificates.crt", ssl.get_default_verify_paths().cafile,
                     ssl.get_default_verify_paths().openssl_cafile):
            if path and os.path.exists(path):
                targets.add(os.path.realpath(path))
        try:
            import certifi
            targets.add(os.path.realpath(certifi.where()))
        except ImportError:
            pass
        try:
            import botocore
            vendored = Path(botocore.__file__).parent / "cacert.pem"
            if vendored.exists():
                targets.add(str(vendored.resolve()))
        except ImportError:
            pass
        system = Path("/etc/ssl/certs/ca-certificates.crt")
        base = system.read_bytes() if system.exists() else b""
        bundle = self.run / "ca-bundle.pem"
        bundle.write_bytes(base.rstrip(b"\n") + b"\n" + self.ca.cert_pem.bytes())
        for target in sorted(targets):
            if target.startswith(OVERLAID):  # written in the overlay (see inner.sh: no mounts under /etc)
                os.unlink(target)
                shutil.copyfile(bundle, target)
            else:
                subprocess.run(["mount", "--bind", str(bundle), target], check=True)
        self.bundle_targets = sorted(targets)

    def _context_for(self, address: str) -> ssl.SSLContext:
        ctx = self.servers.server_context(self.leaf)

        def sni(sslobj, server_name, _ctx):
            mode = self.eni_modes.get(address, "ok")
            if mode in ("wrong-name", "untrusted"):
                sslobj.context = self.contexts[mode]
            elif self.owners.get(address) in self.service_contexts:
                sslobj.context = self.service_contexts[self.owners[address]]
            return None
        ctx.sni_callback = sni
        return ctx

    def _proxy(self, spec: dict) -> None:
        """[proxy]: started once per address and port, then answering as the current scenario says."""
        from tests.lab.proxy import ProxyServer
        key = (spec["address"], int(spec["port"]))
        if spec["mode"] != "none" and key not in self.proxies:
            self.proxies[key] = ProxyServer(*key)
            threading.Thread(target=self.proxies[key].serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                             name=f"proxy-{key[0]}:{key[1]}").start()
        for (address, port), proxy in self.proxies.items():
            mine = (address, port) == key
            proxy.mode, proxy.credentials = (spec["mode"], spec["credentials"]) if mine else ("none", "")

    def _listen(self, address: str, port: int = 443) -> None:
        from werkzeug.serving import make_server

        from tests.lab.aws_front import AwsRequestHandler
        labd = self

        class Handler(AwsRequestHandler):  # sends AWS's Date (on the scenario's clock), not http.server's
            timeout = 30

            def make_environ(self):
                environ = super().make_environ()
                environ["lab.endpoint"] = labd.owners.get(address, "s3")
                # which S3 endpoint received it: its network interface, or the gateway's public address
                environ["lab.via"] = "interface" if address in labd.s3_interface else "gateway"
                environ["lab.address"] = address
                return environ

            def log_request(self, *args, **kwargs) -> None:
                pass

            def log_error(self, *args) -> None:
                pass

        server = make_server(address, port, self.world.app, threaded=True, request_handler=Handler)
        if port == 443:
            # Wrapped here, not by werkzeug: with the handshake deferred to the request thread, a client that
            # connects and says nothing (a TCP probe) cannot stall the listener's accept loop.
            ctx = self._context_for(address)
            server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
            server.ssl_context = ctx
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name=f"tls-{address}:{port}").start()
        self.listeners[(address, port)] = server

    # -- scenarios --
    def apply(self, sc: dict, keep_world: bool = False) -> dict:
        """Reset and reseed everything for the scenario; keep_world: the world (moto, the instance) stays as a
        change left it (tests/lab/trail.py) and only the data plane follows the scenario."""
        with self.lock:
            t0 = time.perf_counter()
            steps = {}
            t = t0
            facts = self.world.keep(sc) if keep_world else self.world.apply(sc)
            steps["aws"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            server = sc["dhcp"]["dns_server"]
            proxy = sc["proxy"]
            wanted = set(endpoint_addresses(sc)) | set((sc.get("eni") or {}).keys()) | {server} - {RESOLVER_IP}
            wanted |= {proxy["address"]} if proxy["mode"] != "none" else set()
            new = sorted(wanted - self.lo_addresses)
            if new:
                subprocess.run([_tool("ip"), "-batch", "-"], check=True, text=True,
                               input="".join(f"addr add {a}/128 dev lo nodad\n" if family.is_v6(a) else
                                             f"addr add {a}/32 dev lo\n" for a in new))
                self.lo_addresses |= set(new)
            owners = endpoint_addresses(sc)
            certificate_only = {a for a, k in (sc.get("eni") or {}).items()  # e.g. [dns] ssm = "10.0.1.30"
                                if (k or {}).get("mode") in ("wrong-name", "untrusted")}
            for address in sorted((set(owners) | certificate_only) - {a for a, _ in self.listeners}):
                self._listen(address)
            self.owners = owners
            self.s3_interface = set(s3_interface_addresses(sc))
            self.eni_modes = {a: (k or {}).get("mode", "ok") for a, k in (sc.get("eni") or {}).items()}
            subprocess.run([_tool("nft"), "-f", "-"], input=nft_ruleset(sc, self.lo_addresses), text=True,
                           check=True)
            steps["net"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            self._proxy(proxy)
            if server != RESOLVER_IP and server not in self.custom_dns:
                self.custom_dns[server] = self.servers.DnsServer(server, 53, public_view(), "nxdomain").start()
            Path("/etc/hosts").write_text(HOSTS + "".join(f"{line}\n" for line in sc["hosts"]["entries"]))
            answers, default = dns_table(sc)
            for dns in (self.dns, self.dns6):
                dns.reset(answers, default)
                dns.down = sc["dns"].get("resolver", "up") == "down"
                dns.queries.clear()
            for imds in (self.imds, self.imds6):
                imds.metadata = family.imds_paths(sc, imds_metadata(facts), facts["mac"])
                imds.mode = sc["imds"].get("mode", "v2")
                with imds._lock:
                    imds._tokens.clear()
                    imds.requests.clear()
            self._instance_family(sc)
            steps["dns_imds"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            self.agent_state = self.agent.apply(sc["agent"])
            conf = sc["doctor"].get("config")
            if isinstance(conf, str):
                Path(DOCTOR_CONF).parent.mkdir(parents=True, exist_ok=True)
                Path(DOCTOR_CONF).write_text(conf)
            else:
                shutil.rmtree(Path(DOCTOR_CONF).parent, ignore_errors=True)
            write_os_release(sc["instance"].get("os_release", ""))
            write_dnf_files(sc["instance"].get("dnf_repo", ""), sc["instance"].get("dnf_vars", {}))
            steps["agent"] = round(time.perf_counter() - t, 3)
            self.scenario, self.facts = sc, facts
            seconds = round(time.perf_counter() - t0, 3)
            self.switches.append({"scenario": sc.get("name"), "seconds": seconds, "steps": steps})
            log.info("scenario %s applied in %.3fs %s", sc.get("name"), seconds, steps)
            return {"scenario": sc.get("name"), "seconds": seconds, "steps": steps, "facts": facts}

    def _instance_family(self, sc: dict) -> None:
        """The instance's own IPv4 address exists unless the subnet is IPv6-only; resolv.conf names the Amazon DNS
        server of the family the instance has."""
        ipv6_only = bool(sc.get("subnet", {}).get("ipv6_only"))
        batch = ("addr flush dev eth0 scope global to 10.0.0.0/8\n" if ipv6_only else
                 "addr replace 10.0.1.100/24 dev eth0\nroute replace default via 10.0.1.1 dev eth0\n")
        subprocess.run([_tool("ip"), "-batch", "-"], input=batch, text=True, check=True)
        Path("/etc/resolv.conf").write_text(family.resolv_conf(sc))

    def status(self) -> dict:
        return {"pid": os.getpid(), "scenario": self.scenario.get("name"), "rss_mb": _rss_mb(),
                "uptime": round(time.perf_counter() - STARTED, 3), "timings": self.timings,
                "switches": self.switches[-5:], "agent": self.agent_state, "threads": threading.active_count(),
                "dns_queries": dict(self.dns.queries), "imds_requests": len(self.imds.requests),
                "addresses": sorted(self.lo_addresses), "owners": self.owners, "eni_modes": self.eni_modes,
                "bundle_targets": self.bundle_targets, "iam_denied": self.world.denied[-50:],
                "cloudtrail": dict(self.world.__dict__.get("trail_calls") or {})}

    # -- control socket --
    def handle(self, message: dict) -> dict:
        cmd = message.get("cmd")
        if cmd == "scenario":
            if "path" in message:
                sc = scenarios.load(message["path"])
            else:
                sc = scenarios.merge(scenarios.BASELINE, message.get("overrides") or {})
                sc["name"] = message.get("name", "overrides")
            return self.apply(sc)
        if cmd == "change":  # an operator's API calls on the running lab, recorded by CloudTrail (trail.py)
            from tests.lab import trail
            return self.apply(trail.change(self.world, self.scenario, message.get("overrides") or {},
                                           message.get("actor") or trail.OPERATOR), keep_world=True)
        if cmd == "status":
            return self.status()
        if cmd == "stop":
            self.stopping.set()
            return {"stopping": True}
        if cmd == "aws":  # tests look at the world as an administrator: no endpoint or role policy applies
            client = self.world.client(message["service"])
            response = getattr(client, message["operation"])(**(message.get("params") or {}))
            response.pop("ResponseMetadata", None)
            return {"response": json.loads(json.dumps(response, default=str))}
        raise ValueError(f"unknown cmd {cmd!r} (scenario, change, status, stop, aws)")

    def _control(self) -> None:
        labd = self
        path = self.run / "ctl.sock"
        path.unlink(missing_ok=True)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    if not line.strip():
                        continue
                    try:
                        reply = {"ok": True, **labd.handle(json.loads(line))}
                    except Exception as error:  # reported to the caller, the daemon keeps running
                        log.exception("control command failed")
                        reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                    self.wfile.write((json.dumps(reply, default=str) + "\n").encode())
                    self.wfile.flush()

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True

        self.ctl = Server(str(path), Handler)
        threading.Thread(target=self.ctl.serve_forever, daemon=True, name="ctl").start()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    if Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]:
        print("labd: refusing to run outside the lab's user namespace (use tests/lab/run)", file=sys.stderr)
        return 2
    labd = Labd(args.run, args.python)
    labd.start(args.scenario)
    labd.stopping.wait()
    time.sleep(0.1)  # lets the control thread send its reply to "stop"
    labd.agent.stop()
    os._exit(0)  # the rest dies with the namespaces; an orderly shutdown of every server only costs time


def write_os_release(text: str) -> None:
    """[instance] os_release in the /etc overlay. The host's is often a symlink to /usr/lib/os-release, outside the
    overlays: unlink first, so the write never follows it out of the lab."""
    path = Path(OS_RELEASE)
    path.unlink(missing_ok=True)
    if text:
        path.write_text(text)


def write_dnf_files(repo: str, variables: dict) -> None:
    """[instance] dnf_repo and dnf_vars in the /etc overlay (unlinked first, as os-release: never followed out)."""
    path = Path(DNF_REPO)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if repo:
        path.write_text(repo)
    shutil.rmtree(DNF_VARS, ignore_errors=True)
    Path(DNF_VARS).mkdir(parents=True)
    for name, value in variables.items():
        (Path(DNF_VARS) / name).write_text(f"{value}\n")


if __name__ == "__main__":
    sys.exit(main())

