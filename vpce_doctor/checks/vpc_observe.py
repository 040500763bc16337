"""What vpc:endpoints reads from the control plane: the Describe* answers, as vpce_doctor.aws.call() results, for
the VPC of one instance. Used on the instance (checks/vpc.py) and from outside (checks/vpc_remote.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from ..aws import Call, call

NOTHING = Call(True)  # nothing to describe: no call made


@dataclass(frozen=True)
class PrefixList:
    """The AWS-managed S3 prefix list a gateway endpoint's routes target: its id, and its entries as read."""
    id: str
    entries: Call

    @property
    def cidrs(self) -> List[str]:
        return [str(e["Cidr"]) for e in self.entries.response.get("Entries", []) if e.get("Cidr")]


def observe(ec2, vpc_id: Optional[str], subnet_id: Optional[str], security_groups: Sequence[str],
            s3_prefix_list: Optional[str]) -> Dict[str, Call]:
    """The Describe* answers assess() judges (used on the instance and by `vpce-doctor remote`)."""
    seen = {"endpoints": call(ec2, "describe_vpc_endpoints", Filters=[{"Name": "vpc-id", "Values": [vpc_id or ""]}])}
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        seen[attribute] = call(ec2, "describe_vpc_attribute", VpcId=vpc_id or "", Attribute=attribute)
    # Every table of the VPC: the subnet's explicit one, or the main one (which a subnet-id filter never returns).
    seen["routes"] = call(ec2, "describe_route_tables", Filters=[{"Name": "vpc-id", "Values": [vpc_id or ""]}])
    endpoints = seen["endpoints"].response.get("VpcEndpoints", [])
    groups = sorted({g["GroupId"] for e in endpoints for g in e.get("Groups", [])} | set(security_groups))
    seen["groups"] = call(ec2, "describe_security_groups", GroupIds=groups) if groups else NOTHING
    subnets = sorted({s for e in endpoints for s in e.get("SubnetIds", [])})
    seen["subnets"] = call(ec2, "describe_subnets", SubnetIds=subnets) if subnets else NOTHING
    acl_subnets = sorted(set(subnets) | ({subnet_id} if subnet_id else set()))
    seen["acls"] = call(ec2, "describe_network_acls", Filters=[
        {"Name": "association.subnet-id", "Values": acl_subnets}]) if acl_subnets else NOTHING
    if s3_prefix_list:
        seen["s3_prefix_lists"] = call(ec2, "describe_managed_prefix_lists",
                                       Filters=[{"Name": "prefix-list-name", "Values": [s3_prefix_list]}])
        found = _prefix_list_id(seen["s3_prefix_lists"])
        if found:
            seen["s3_prefix_list"] = call(ec2, "get_managed_prefix_list_entries", PrefixListId=found)
    return seen


def prefix_list(seen: Mapping[str, Call]) -> Optional[PrefixList]:
    """The S3 prefix list observe() found by name, with its entries (or why they could not be read); None: none."""
    found, entries = _prefix_list_id(seen.get("s3_prefix_lists")), seen.get("s3_prefix_list")
    return PrefixList(found, entries) if found and entries else None


def _prefix_list_id(lists: Optional[Call]) -> str:
    return str(((lists.response.get("PrefixLists") if lists else None) or [{}])[0].get("PrefixListId") or "")
