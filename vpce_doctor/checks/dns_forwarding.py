"""The DNS server of the customer's own: when dns:resolver found one in use, a dns:<service> failure leads with
forwarding the AWS names to Amazon DNS (inside the VPC) or to an inbound Resolver endpoint (outside it)."""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List

from ..addresses import inside
from ..model import Remedy, Result, Status
from . import resolver

AMAZON_DNS_DOC = "https://docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html"
INBOUND_DOC = "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resolver-forwarding-inbound-queries.html"
# A DNS server of your own in the VPC: only the Amazon DNS server (base + 2, 169.254.169.253) knows endpoints'
# private DNS and private hosted zones, so it must forward the AWS names there.
FORWARD = Remedy(
    "Forward {domain} (at least {region}.{domain}) from {resolver} to the VPC resolver {vpc_resolver}: only Amazon "
    "DNS answers with the endpoints' private addresses and private hosted zones.",
    ("dig +short @{vpc_resolver} {name}   # what the VPC resolver answers", "dig +short @{resolver} {name}"),
    (AMAZON_DNS_DOC,))
# A DNS server outside the VPC (on premises): the VPC resolver answers only inside the VPC, so it forwards to an
# inbound Route 53 Resolver endpoint instead.
FORWARD_INBOUND = Remedy(
    "{resolver} is outside {vpc}: it cannot query the VPC resolver, which answers only inside the VPC. Create an "
    "inbound Route 53 Resolver endpoint in {vpc} and forward {region}.{domain} from {resolver} to its addresses.",
    ("aws route53resolver create-resolver-endpoint --name vpce-doctor-inbound --direction INBOUND "
     "--creator-request-id vpce-doctor-inbound --security-group-ids <sg-admitting-53-from-{resolver}> "
     "--ip-addresses SubnetId={subnet} SubnetId=<a-subnet-in-another-az>",
     "aws route53resolver list-resolver-endpoints --filters Name=HostVPCId,Values={vpc}"),
    (INBOUND_DOC,))


def context(prior, vpc_cidrs: List[str]) -> Dict[str, str]:
    """The DNS server of the customer's own dns:resolver found in use (and whether it is inside the VPC), else {}."""
    servers = resolver.in_use(prior["dns:resolver"]) if "dns:resolver" in prior else []
    mine = [s for s in servers if resolver.custom(s, vpc_cidrs)]
    if not mine:
        return {}
    return {"resolver": mine[0], "vpc_resolver": resolver.vpc_resolver(vpc_cidrs) or "<vpc-cidr-base+2>",
            "resolver_in_vpc": "yes" if inside(mine[0], vpc_cidrs) else ""}


def framed(result: Result, context: Dict[str, str]) -> Result:
    """result, led by forwarding when it failed and context names a DNS server of the customer's own."""
    if result.status is Status.PASS or not context.get("resolver") or result.code == "error":
        return result
    own, vpc_resolver = context["resolver"], context.get("vpc_resolver")
    remedy = FORWARD if context.get("resolver_in_vpc") else FORWARD_INBOUND
    where = "a DNS server in this VPC" if context.get("resolver_in_vpc") else "a DNS server outside this VPC"
    domain = context.get("domain", "amazonaws.com")
    return replace(result, cause=f"This instance asks {own}, {where}, not the VPC resolver {vpc_resolver}: unless it "
                   f"forwards {domain} there, it answers without the endpoints' private DNS. " + result.cause,
                   remedy=remedy.filled(**{"domain": "amazonaws.com", **context}),
                   evidence={**result.evidence, "resolver": own})
