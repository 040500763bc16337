"""What vpc:endpoints reads from the control plane: the Describe* answers, as vpce_doctor.aws.call() results, for
the VPC of one instance. Used on the instance (checks/vpc.py) and from outside (checks/vpc_remote.py)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

from ..aws import call


def observe(ec2, vpc_id: Optional[str], subnet_id: Optional[str], security_groups: Sequence[str],
            s3_prefix_list: Optional[str]) -> Dict[str, dict]:
    """The Describe* answers assess() judges, as vpce_doctor.aws.call() results (used on the instance and by
    `vpce-doctor remote`)."""
    seen = {"endpoints": call(ec2, "describe_vpc_endpoints", Filters=[{"Name": "vpc-id", "Values": [vpc_id or ""]}])}
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        seen[attribute] = call(ec2, "describe_vpc_attribute", VpcId=vpc_id or "", Attribute=attribute)
    # Every table of the VPC: the subnet's explicit one, or the main one (which a subnet-id filter never returns).
    seen["routes"] = call(ec2, "describe_route_tables", Filters=[{"Name": "vpc-id", "Values": [vpc_id or ""]}])
    endpoints = (seen["endpoints"].get("response") or {}).get("VpcEndpoints", [])
    groups = sorted({g["GroupId"] for e in endpoints for g in e.get("Groups", [])} | set(security_groups))
    seen["groups"] = call(ec2, "describe_security_groups", GroupIds=groups) if groups else {"ok": True, "response": {}}
    subnets = sorted({s for e in endpoints for s in e.get("SubnetIds", [])})
    seen["subnets"] = call(ec2, "describe_subnets", SubnetIds=subnets) if subnets else {"ok": True, "response": {}}
    acl_subnets = sorted(set(subnets) | ({subnet_id} if subnet_id else set()))
    seen["acls"] = call(ec2, "describe_network_acls", Filters=[
        {"Name": "association.subnet-id", "Values": acl_subnets}]) if acl_subnets else {"ok": True, "response": {}}
    if s3_prefix_list:
        seen["s3_prefix_list"] = _prefix_list(ec2, s3_prefix_list)
    return seen


def _prefix_list(ec2, name: str) -> dict:
    lists = call(ec2, "describe_managed_prefix_lists", Filters=[{"Name": "prefix-list-name", "Values": [name]}])
    found = (lists.get("response") or {}).get("PrefixLists") or [{}]
    if not found[0].get("PrefixListId"):
        return {}
    entries = call(ec2, "get_managed_prefix_list_entries", PrefixListId=found[0]["PrefixListId"])
    return {**entries, "id": found[0]["PrefixListId"]}
