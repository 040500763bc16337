"""The lab's AWS: moto, seeded per scenario so the control plane agrees with the data plane.

The lab daemon serves `AwsWorld.app` over TLS on each endpoint ENI address and sets
environ["lab.endpoint"]; `apply(scenario)` resets moto and seeds the world in well under a second
once moto is warm. Seeding goes through real boto3 clients wired straight into moto in-process
(moto's BotocoreStubber on the client's before-send hook), so it costs no sockets and uses only
moto's public API; only what moto models wrongly is patched afterwards (`_fix_interface_endpoint`).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import string
import threading
import time

import boto3
from botocore.config import Config
from moto import settings as moto_settings
from moto.backends import get_backend
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.botocore_stubber import BotocoreStubber
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from tests.lab import aws_fleet, aws_front, aws_owned, iam, netpolicy, ssm_view, trail
from tests.lab.aws_front import AwsRequestHandler  # noqa: F401  (re-exported: the listeners' handler)

ACCOUNT = "123456789012"
AMI_ID = "ami-0a1b2c3d4e5f60718"  # fixed: MOTO_EC2_LOAD_DEFAULT_AMIS=false, moto does not validate AMIs
ROLE, PROFILE = "vpclab-instance-role", "vpclab-instance-profile"
LAB_BUCKETS = ("vpclab-probe", "vpclab-session-logs")
GATEWAY_SERVICES = ("s3", "dynamodb")
# Admin credentials for the in-process control path (seeding and `client()`): once IAM enforcement
# is on, moto only accepts keys it knows, so apply() plants this key on an IAM user with "*" allowed.
ADMIN_KEY, ADMIN_SECRET = "AKIAVPCLABADMIN00000", "vpclab-admin-secret-not-a-real-key-000000"
KMS_KEY_ID = "0b5e55ed-1ab0-4c1d-9e7a-5e55101d0b5e"  # the session key, alias/vpclab-sessions
VPCE_ZONE = {"ap-northeast-1": "Z2E726K9Y6RL4W"}  # hosted zone of *.vpce.amazonaws.com names


def baseline_role_policy() -> str:
    """What a working instance role needs: SSM core, the lab buckets, session logs and KMS, read-only EC2."""
    arns = [f"arn:aws:s3:::{name}" for name in LAB_BUCKETS]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "SsmCore", "Effect": "Allow", "Resource": "*", "Action": [
            "ssm:UpdateInstanceInformation", "ssm:GetDocument", "ssm:DescribeDocument", "ssm:ListInstanceAssociations",
            "ssm:GetParameter*", "ssmmessages:*", "ec2messages:*"]},
        # not the agent's (AmazonSSMManagedInstanceCore has neither): the doctor's ssm:registration reads
        {"Sid": "DoctorSsmView", "Effect": "Allow", "Resource": "*",
         "Action": ["ssm:DescribeInstanceInformation", "ssm:GetConnectionStatus"]},
        {"Sid": "LabBuckets", "Effect": "Allow", "Resource": arns + [arn + "/*" for arn in arns], "Action": [
            "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl", "s3:GetEncryptionConfiguration",
            "s3:ListBucket"]},
        {"Sid": "BucketLocation", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": "*"},
        {"Sid": "SessionLogs", "Effect": "Allow", "Resource": "*", "Action": [
            "logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:CreateLogStream", "logs:PutLogEvents"]},
        {"Sid": "SessionKms", "Effect": "Allow", "Resource": "*",
         "Action": ["kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"]},
        {"Sid": "ControlPlaneRead", "Effect": "Allow", "Action": ["ec2:Describe*", "ec2:GetManagedPrefixListEntries", "sts:GetCallerIdentity"],
         "Resource": "*"}]})


class AwsWorld:
    def __init__(self, region: str = "ap-northeast-1"):
        # Read when moto builds the EC2 backend: its default AMIs cost ~1 s to load, and any AMI id is accepted.
        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
        self.region, self.account = region, ACCOUNT
        aws_front.patch_moto()
        self.backend_app = DomainDispatcherApplication(create_backend_app)
        self.front = aws_front.Front(self)
        self.clock_offset = 0
        self.facts: dict = {}
        self.scenario: dict = {}
        self.ssm_ping = "Online"  # DescribeInstanceInformation's PingStatus; None: not registered
        self.agent_version = "3.3.2958.0"
        self.fleet_runs: dict = {}  # command id -> the [fleet] instances it reached (aws_fleet.sent)
        self.denied: list = []  # the instance role's calls the front denied since apply(): "action resource (type)"
        self.apply_seconds = 0.0
        # apply() closes the gate and waits for requests in flight; requests arriving meanwhile wait for it
        # to finish, so none sees half a world or has moto reset under it.
        self._gate, self._open, self._inflight = threading.Condition(), False, 0
        self._apply_lock = threading.Lock()
        self._stub = BotocoreStubber()
        self._stub.enabled = True
        self._session = boto3.session.Session(ADMIN_KEY, ADMIN_SECRET, region_name=region)
        self._clients: dict = {}

    def app(self, environ, start_response):
        with self._gate:
            if not self._gate.wait_for(lambda: self._open, timeout=10):
                raise RuntimeError("AwsWorld.apply() has not been called, or is stuck")
            self._inflight += 1
        try:
            return self.front(environ, start_response)  # the front answers in full before returning
        finally:
            with self._gate:
                self._inflight -= 1
                self._gate.notify_all()

    def client(self, service: str, region: str | None = None):
        """A boto3 client wired into moto in-process with admin rights: the lab's control path."""
        key = (service, region or self.region)
        if key not in self._clients:
            client = self._session.client(service, region_name=key[1], config=Config(
                retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}))
            client.meta.events.register("before-send", self._stub)
            self._clients[key] = client
        return self._clients[key]

    def backend(self, service: str, region: str | None = None):
        backends = get_backend(service)[self.account]
        return backends["aws"] if service in ("iam", "sts", "s3") else backends[region or self.region]

    def apply(self, scenario: dict) -> dict:
        with self._apply_lock:
            started = time.perf_counter()
            aws_fleet.validate(scenario.get("fleet", {}).get("instances", []))  # before anything is reset
            with self._gate:
                self._open = False
                self._gate.wait_for(lambda: self._inflight == 0, timeout=10)
            try:
                get_backend("moto_api")["global"].reset()  # what POST /moto-api/reset does; backends stay warm
                self.fleet_runs, self.denied = {}, []
                trail.reset(self)  # a new world has no CloudTrail history
                moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")  # seed without IAM checks
                self.facts = self._seed(scenario)
                self.scenario, self.clock_offset = scenario, scenario["clock"]["offset_seconds"]
                self.agent_version = scenario["agent"]["version"]
                self.ssm_ping = ssm_view.ping_status(scenario)
                moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # IAM enforcement on from the next request
                ActionAuthenticatorMixin.request_count = 0
            finally:
                with self._gate:
                    self._open = True
                    self._gate.notify_all()
            self.apply_seconds = time.perf_counter() - started
            return self.facts

    def keep(self, scenario: dict) -> dict:
        """The world as it is (a change was made in it through the API): only what the front reads of the scenario
        follows it."""
        with self._apply_lock:
            self.scenario, self.ssm_ping = scenario, ssm_view.ping_status(scenario)
            return self.facts

    # -- what the front asks (read from moto on every request, so API changes take effect) --------
    def principal_arn(self, access_key: str) -> str | None:
        """The assumed-role ARN behind a key; None for IAM users (the admin path) and unknown keys."""
        for role in self.backend("sts").assumed_roles:
            if role.access_key_id == access_key:
                return role.arn
        return None

    def principals(self, arn: str, endpoint: str | None = None, via: str | None = None) -> set:
        """Every name a Principal may use for this assumed-role session. Through a gateway endpoint the account
        forms ("<account-id>", "arn:aws:iam::<account-id>:root") name the root user only (PrivateLink guide,
        "Principals for gateway endpoints")."""
        names = {arn, f"arn:aws:iam::{self.account}:role/{arn.split('/')[1]}"}
        vpce = self._vpce(endpoint, via) if endpoint else None
        gateway = vpce is not None and str(vpce.vpc_endpoint_type).lower() == "gateway"
        return names if gateway else names | {self.account, f"arn:aws:iam::{self.account}:root"}

    def _vpce(self, endpoint: str, via: str | None = None):
        """The VPC endpoint that received a request for this service: S3's gateway endpoint for its public
        address, its interface endpoint for that one's network interfaces (via: "interface" or "gateway")."""
        service_name = f"com.amazonaws.{self.region}.{endpoint}"
        kind = "interface" if via == "interface" or endpoint not in GATEWAY_SERVICES else "gateway"
        return next((vpce for vpce in self.backend("ec2").vpc_end_points.values()
                     if vpce.service_name == service_name and vpce.vpc_id == self.facts.get("vpc_id")
                     and str(vpce.vpc_endpoint_type).lower() == kind), None)

    def endpoint_policy(self, endpoint: str, via: str | None = None) -> str | None:
        vpce = self._vpce(endpoint, via)
        return vpce.policy_document if vpce is not None else None

    def request_context(self, arn: str, endpoint: str, source: str | None, via: str | None = None) -> dict:
        """The condition keys of a request through this VPC's endpoint; aws:SourceIp is absent through an endpoint
        and aws:VpcSourceIp carries the private address (https://repost.aws/knowledge-center/
        iam-restrict-access-policy; IAM global condition keys)."""
        return {"aws:PrincipalArn": f"arn:aws:iam::{self.account}:role/{arn.split('/')[1]}",
                "aws:PrincipalAccount": self.account,
                "aws:userid": f"{self.backend('iam').get_role(arn.split('/')[1]).id}:{arn.split('/')[2]}",
                **self.network_context(endpoint, source, via)}

    def network_context(self, endpoint: str, source: str | None, via: str | None = None) -> dict:
        """The keys every request through this VPC's endpoint has, signed or not (an anonymous one has only these)."""
        vpce = self._vpce(endpoint, via)
        context = {"aws:SecureTransport": "true"}
        if vpce is not None:
            context.update({"aws:SourceVpce": vpce.id, "aws:SourceVpc": vpce.vpc_id, "aws:VpcSourceIp": source})
        return context

    def identity_decision(self, arn: str, action: str, resource: str | None, context: dict | None = None) -> str:
        """The role's inline policies (what scenarios set), judged by the lab's own IAM."""
        role = self.backend("iam").get_role(arn.split("/")[1])
        decisions = {iam.evaluate(document, action, resource or "*", None, context)
                     for document in role.policies.values()}
        return "explicit" if "explicit" in decisions else "allow" if "allow" in decisions else "implicit"

    def user_decision(self, access_key: str, action: str, resource: str) -> tuple[str, str] | None:
        """(the user's ARN, allow | implicit | explicit) for an IAM user's key other than the admin's (a remote
        operator's), by the lab's IAM over the user's inline policies; None for any other key. moto enforces users'
        policies itself, but never sees the calls the front answers (SimulatePrincipalPolicy, ...)."""
        for user in self.backend("iam").users.values():
            if user.name != "vpclab-admin" and any(k.access_key_id == access_key for k in user.access_keys):
                decisions = {iam.evaluate(d, action, resource) for d in user.policies.values()}
                return user.arn, ("explicit" if "explicit" in decisions else "allow" if "allow" in decisions
                                  else "implicit")
        return None

    def bucket_policy(self, bucket: str) -> str | None:
        found = self.backend("s3").buckets.get(bucket)
        policy = found.policy if found else None
        return policy.decode() if isinstance(policy, bytes) else policy

    def bucket_kms_key(self, bucket: str | None) -> str | None:
        """The default key of an SSE-KMS bucket, as an ARN (what S3 asks KMS to use)."""
        found = self.backend("s3").buckets.get(bucket) if bucket else None
        rules = ((found.encryption or {}).get("Rule") or {}) if found else {}
        rules = rules[0] if isinstance(rules, list) else rules
        default = rules.get("ApplyServerSideEncryptionByDefault") or {}
        if default.get("SSEAlgorithm") != "aws:kms":
            return None
        return self.kms_key_arn(default.get("KMSMasterKeyID") or "")

    def kms_key_arn(self, key: str) -> str:
        """KMS authorises an alias or key id against the key's ARN."""
        try:
            return self.backend("kms").describe_key(key.split(":", 5)[-1] if key.startswith("arn:") and
                                                    ":alias/" in key else key).arn
        except Exception:  # an unknown key: KMS answers NotFound later, authorisation is judged on the name
            return key

    def bucket_region(self, bucket: str) -> str | None:
        found = self.backend("s3").buckets.get(bucket)
        return found.region_name if found else None

    # -- seeding ---------------------------------------------------------------------------------
    def _seed(self, sc: dict) -> dict:
        ec2, iam, region = self.client("ec2"), self.client("iam"), self.region
        self._seed_admin(iam)
        cidrs = sc["vpc"]["cidrs"]
        vpc = ec2.create_vpc(CidrBlock=cidrs[0])["Vpc"]["VpcId"]
        for cidr in cidrs[1:]:  # secondary CIDRs
            ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock=cidr)
        for attribute, value in (("EnableDnsSupport", sc["vpc"]["dns_support"]),
                                 ("EnableDnsHostnames", sc["vpc"]["dns_hostnames"])):
            ec2.modify_vpc_attribute(VpcId=vpc, **{attribute: {"Value": bool(value)}})
        subnets = {cidr: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
                   for cidr, az in (("10.0.1.0/24", f"{region}a"), ("10.0.2.0/24", f"{region}c"))}
        route_table = self._seed_routes(ec2, vpc, subnets, sc["vpc"].get("route_table", "explicit"))
        instance_sg = ec2.create_security_group(VpcId=vpc, GroupName="vpclab-instance-sg",
                                                Description="vpclab instance: egress to anywhere")["GroupId"]
        self._seed_network_policy(ec2, vpc, subnets, instance_sg, sc)
        endpoint_sg = self._endpoint_sg(ec2, vpc, "vpclab-endpoint-sg", cidrs)

        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com" if sc["iam"].get("trust_ec2", True) else
                                          "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
        policies = sc["iam"]["role_policies"]
        for name, document in (policies.items() if policies is not None else [("vpclab-baseline",
                                                                               baseline_role_policy())]):
            iam.put_role_policy(RoleName=ROLE, PolicyName=name,
                                PolicyDocument=document if isinstance(document, str) else json.dumps(document))
        profile = iam.create_instance_profile(InstanceProfileName=PROFILE)["InstanceProfile"]
        # moto's ids are lowercase noise; IMDS iam/info serves this one, so give it AWS's AIPA... form
        profile_id = "AIPA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=17))
        self.backend("iam").get_instance_profile(PROFILE).id = profile_id
        iam.add_role_to_instance_profile(InstanceProfileName=PROFILE, RoleName=ROLE)
        attach = sc["iam"]["instance_profile"]
        instance = ec2.run_instances(
            ImageId=AMI_ID, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnets["10.0.1.0/24"],
            PrivateIpAddress="10.0.1.100", SecurityGroupIds=[instance_sg],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "vpclab-instance"}]}],
            MetadataOptions=metadata_options(sc["imds"].get("mode", "v2")),
            **({"IamInstanceProfile": {"Arn": profile["Arn"]}} if attach else {}))["Instances"][0]

        endpoints = {}
        for svc, spec in sc["endpoints"].items():
            if not spec.get("present", True):
                continue
            service_name = f"com.amazonaws.{region}.{svc}"
            policy = spec.get("policy") or None
            if svc in GATEWAY_SERVICES:
                vpce = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=service_name, VpcEndpointType="Gateway",
                                               RouteTableIds=[route_table] if spec.get("route", True) else [],
                                               **({"PolicyDocument": policy} if policy else {}))["VpcEndpoint"]
                endpoints[svc] = {"id": vpce["VpcEndpointId"], "type": "Gateway", "addresses": [], "private_dns": False}
                interface = spec.get("interface") or {}
                if svc == "s3" and interface.get("present"):  # an S3 interface endpoint beside the gateway
                    endpoints["s3-interface"] = self._interface(ec2, vpc, svc, interface, subnets, endpoint_sg)
                continue
            endpoints[svc] = self._interface(ec2, vpc, svc, spec, subnets, endpoint_sg)

        key_arn = self._seed_kms_logs_ssm(sc)
        for name, bucket in sc["buckets"].items():
            self._seed_bucket(name, bucket, key_arn)
        aws_owned.seed(self.client("s3"), region)
        prefix_list = next(p for p in self.backend("ec2").managed_prefix_lists.values()
                           if p.prefix_list_name == f"com.amazonaws.{region}.s3")
        eni = self.backend("ec2").get_instance(instance["InstanceId"]).nics[0]
        return {
            "account": self.account, "region": region, "az": f"{region}a", "instance_id": instance["InstanceId"],
            "mac": eni.mac_address, "interface_id": eni.id, "private_ip": instance["PrivateIpAddress"], "vpc_id": vpc,
            "instance_type": instance["InstanceType"],
            "launch_time": instance["LaunchTime"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "vpc_cidrs": list(cidrs), "subnet_id": subnets["10.0.1.0/24"], "subnet_cidr": "10.0.1.0/24",
            "security_group_ids": [instance_sg], "endpoint_security_group_id": endpoint_sg,
            "route_table_id": route_table, "ami_id": AMI_ID,
            "role_name": ROLE if attach else None, "instance_profile_arn": profile["Arn"] if attach else None,
            "instance_profile_id": profile_id,
            "credentials": (self._credentials(instance["InstanceId"]) if sc["iam"].get("trust_ec2", True)
                            else _untrusted(ROLE)) if attach else None,
            "endpoints": endpoints, "prefix_list_id": prefix_list.id,
            "s3_cidrs": [entry["Cidr"] for entries in prefix_list.entries.values() for entry in entries],
            "kms_key_arn": key_arn,
        }

    def _interface(self, ec2, vpc: str, svc: str, spec: dict, subnets: dict, endpoint_sg: str) -> dict:
        addresses = list(spec["addresses"])
        sg = endpoint_sg
        if not spec.get("sg_ingress_443", True) or spec.get("sg_ingress_cidr"):  # a group of its own
            sg = self._endpoint_sg(ec2, vpc, f"vpclab-{svc}-endpoint-sg", [spec["sg_ingress_cidr"]]
                                   if spec.get("sg_ingress_443", True) and spec.get("sg_ingress_cidr") else [])
        policy = spec.get("policy") or None
        vpce = ec2.create_vpc_endpoint(
            VpcId=vpc, ServiceName=f"com.amazonaws.{self.region}.{svc}", VpcEndpointType="Interface",
            SecurityGroupIds=[sg], SubnetIds=[_subnet_for(address, subnets) for address in addresses],
            PrivateDnsEnabled=bool(spec.get("private_dns", True)),
            **({"PolicyDocument": policy} if policy else {}))["VpcEndpoint"]
        self._fix_interface_endpoint(vpce["VpcEndpointId"], svc, addresses, bool(spec.get("private_dns", True)))
        # moto keeps no DnsOptions; DescribeVpcEndpoints shows them as EC2 does (API reference, DnsOptions)
        self.backend("ec2").vpc_end_points[vpce["VpcEndpointId"]].dns_options = {
            "DnsRecordIpType": {"ipv4": "ipv4", "dualstack": "dualstack", "ipv6": "ipv6"}.get(
                spec.get("ip_type", "ipv4"), "ipv4"),
            **({"PrivateDnsOnlyForInboundResolverEndpoint": bool(spec.get("inbound_only"))} if svc == "s3" else {})}
        return {"id": vpce["VpcEndpointId"], "type": "Interface", "addresses": addresses,
                "private_dns": bool(spec.get("private_dns", True))}

    @staticmethod
    def _seed_routes(ec2, vpc: str, subnets: dict, mode: str) -> str:
        """"explicit": a route table associated with both subnets; "main": no association, so the subnets use the
        VPC's main route table (which a DescribeRouteTables association.subnet-id filter does not return)."""
        if mode == "main":
            tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                        {"Name": "association.main", "Values": ["true"]}])
            return tables["RouteTables"][0]["RouteTableId"]
        route_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        for subnet in subnets.values():
            ec2.associate_route_table(RouteTableId=route_table, SubnetId=subnet)
        return route_table

    @staticmethod
    def _seed_network_policy(ec2, vpc: str, subnets: dict, instance_sg: str, sc: dict) -> None:
        """[instance] egress and [nacl] in moto; tests/lab/netpolicy.py makes nft agree."""
        mode = sc.get("instance", {}).get("egress", "all")
        if mode != "all":
            ec2.revoke_security_group_egress(GroupId=instance_sg, IpPermissions=[
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        if mode == "vpc-only":
            ec2.authorize_security_group_egress(GroupId=instance_sg, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
        for cidr, spec in (sc.get("nacl") or {}).items():
            acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
            for entry in netpolicy.acl_entries(spec):
                ec2.create_network_acl_entry(NetworkAclId=acl, **entry)
            current = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnets[cidr]]}])
            association = next(a["NetworkAclAssociationId"] for a in current["NetworkAcls"][0]["Associations"]
                               if a["SubnetId"] == subnets[cidr])
            ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)

    def _seed_admin(self, iam) -> None:
        iam.create_user(UserName="vpclab-admin")
        iam.put_user_policy(UserName="vpclab-admin", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="vpclab-admin")["AccessKey"]["AccessKeyId"]
        # Pin moto's random key to the one our clients sign with (IAM has no API to choose a key).
        for access_key in self.backend("iam").get_user("vpclab-admin").access_keys:
            if access_key.access_key_id == key:
                access_key.access_key_id, access_key.secret_access_key = ADMIN_KEY, ADMIN_SECRET

    @staticmethod
    def _endpoint_sg(ec2, vpc: str, name: str, cidrs) -> str:
        """A group admitting 443 from these CIDRs (none: no ingress at all)."""
        group = ec2.create_security_group(VpcId=vpc, GroupName=name, Description=f"{name}: interface endpoints")
        if cidrs:
            ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "IpRanges": [{"CidrIp": cidr, "Description": "HTTPS from the VPC"} for cidr in cidrs]}])
        return group["GroupId"]

    def _fix_interface_endpoint(self, vpce_id: str, svc: str, addresses: list, private_dns: bool) -> None:
        """moto gives endpoint ENIs random IPs outside the subnet and DnsEntries in a made-up format."""
        backend = self.backend("ec2")
        vpce = backend.vpc_end_points[vpce_id]
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
        base = f"{svc}.{self.region}.vpce.amazonaws.com"
        zone = VPCE_ZONE.get(self.region, "Z1VPCELAB00000")
        entries = [{"dns_name": f"{vpce_id}-{suffix}.{base}", "hosted_zone_id": zone}]
        for eni_id, address in zip(vpce.network_interface_ids, addresses):
            eni = backend.enis[eni_id]
            eni.private_ip_address = address
            eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": address}]
            if getattr(eni, "private_dns_name", None):
                eni.private_dns_name = f"ip-{address.replace('.', '-')}.{self.region}.compute.internal"
                eni.private_ip_addresses[0]["PrivateDnsName"] = eni.private_dns_name
            eni.interface_type, eni.requester_managed = "vpc_endpoint", True
            eni.description = f"VPC Endpoint Interface {vpce_id}"
            eni._group_set = [backend.get_security_group_from_id(g) for g in vpce.security_group_ids]
            entries.append({"dns_name": f"{vpce_id}-{suffix}-{eni.subnet.availability_zone}.{base}",
                            "hosted_zone_id": zone})
        if private_dns:
            private_zone = "Z" + "".join(random.choices(string.ascii_uppercase + string.digits, k=20))
            entries.append({"dns_name": f"{svc}.{self.region}.amazonaws.com", "hosted_zone_id": private_zone})
        vpce.dns_entries = entries

    def _pin_key(self, key_id: str) -> str:
        """One key id in every world, so a scenario's policy can name the key's ARN (moto's ids are random)."""
        keys = self.backend("kms").keys
        key = keys.pop(key_id)
        key.id, key.arn = KMS_KEY_ID, key.arn.replace(key_id, KMS_KEY_ID)
        keys[KMS_KEY_ID] = key
        return key.arn

    def _seed_kms_logs_ssm(self, sc: dict) -> str:
        kms = self.client("kms")
        key_arn = self._pin_key(kms.create_key(Description="vpclab session encryption")["KeyMetadata"]["KeyId"])
        kms.create_alias(AliasName="alias/vpclab-sessions", TargetKeyId=key_arn)
        if sc["logs"]["group"]:
            self.client("logs").create_log_group(logGroupName="/vpclab/sessions",
                                                 **({"kmsKeyId": key_arn} if sc["logs"]["kms_key"] else {}))
        if sc["logs"].get("reports", True):  # where vpce-doctor --ship sends its reports (the CloudFormation's)
            self.client("logs").create_log_group(logGroupName="/vpce-doctor/reports")
        session = dict(sc["session"])
        if session.pop("present", True):
            self.client("ssm").create_document(
                Name="SSM-SessionManagerRunShell", DocumentType="Session", DocumentFormat="JSON",
                Content=json.dumps({"schemaVersion": "1.0",
                                    "description": "Document to hold regional settings for Session Manager",
                                    "sessionType": "Standard_Stream", "inputs": session}, indent=2))
        return key_arn

    def _seed_bucket(self, name: str, spec: dict, key_arn: str) -> None:
        region = spec.get("region") or self.region
        s3 = self.client("s3", region)
        s3.create_bucket(Bucket=name, **({} if region == "us-east-1" else
                                         {"CreateBucketConfiguration": {"LocationConstraint": region}}))
        encryption = spec.get("encryption", "AES256")
        if encryption in ("AES256", "aws:kms", "aws:kms:dsse"):  # dsse: DSSE-KMS, answered by moto as S3 does
            rule = {"SSEAlgorithm": encryption, **({"KMSMasterKeyID": key_arn} if encryption != "AES256" else {})}
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": rule, "BucketKeyEnabled": encryption == "aws:kms"}]})
        else:
            s3.delete_bucket_encryption(Bucket=name)
        if spec.get("policy"):
            s3.put_bucket_policy(Bucket=name, Policy=spec["policy"])

    def _credentials(self, instance_id: str) -> dict:
        """What IMDS serves: an assumed-role session of the instance role, so moto's IAM checks apply."""
        creds = self.client("sts").assume_role(RoleArn=f"arn:aws:iam::{self.account}:role/{ROLE}",
                                               RoleSessionName=instance_id, DurationSeconds=21600)["Credentials"]
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {"Code": "Success", "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime(stamp),
                "Type": "AWS-HMAC", "AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
                "Token": creds["SessionToken"], "Expiration": creds["Expiration"].strftime(stamp)}


def _untrusted(role: str) -> dict:
    """IMDS's security-credentials answer when the role does not trust ec2.amazonaws.com (aws/aws-cli#2060): a Code,
    a Message, no keys; iam/info still says Success."""
    return {"Code": "AssumeRoleUnauthorizedAccess", "Message": f"EC2 cannot assume the role {role}.  Please see "
            "documentation at http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html.",
            "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _subnet_for(address: str, subnets: dict) -> str:
    for cidr, subnet in subnets.items():
        if ipaddress.ip_address(address) in ipaddress.ip_network(cidr):
            return subnet
    return subnets["10.0.1.0/24"]


def metadata_options(mode: str) -> dict:
    """DescribeInstances' MetadataOptions for the lab's IMDS mode (ModifyInstanceMetadataOptions' fields): v2 as
    AL2023 AMIs launch (tokens required, hop limit 2), v1 with tokens optional, hop-limit as a container sees a
    hop limit of 1, disabled with the endpoint off."""
    options = {"HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 2}
    return {**options, **{"v1": {"HttpTokens": "optional"}, "hop-limit": {"HttpPutResponseHopLimit": 1},
                          "disabled": {"HttpEndpoint": "disabled"}}.get(mode, {})}
