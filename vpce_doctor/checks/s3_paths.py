"""Which of two S3 endpoints this instance's requests take, when a VPC has both a gateway and an interface endpoint
for S3, and what that means for the policy that judges them. Pure functions; vpc:endpoints and the S3 checks call
them.

AWS PrivateLink for Amazon S3 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/privatelink-interface-endpoints
.html, "Private DNS"): with private DNS on an S3 interface endpoint, the VPC resolver answers the Region's S3 names
(s3.<region>.amazonaws.com, *.s3.<region>.amazonaws.com) with the interface endpoint's addresses, so requests from
the VPC go through the interface endpoint and its policy; with "Enable private DNS only for inbound endpoints"
(DnsOptions PrivateDnsOnlyForInboundResolverEndpoint, which needs a gateway endpoint in the VPC: EC2 API reference,
DnsOptionsSpecification) only queries arriving through a Route 53 Resolver inbound endpoint get those addresses, and
requests from the VPC keep S3's public addresses and the gateway endpoint's route and policy. A gateway endpoint's
policy never sees a request that went to the interface endpoint, nor the other way round.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .. import policy
from . import dns

DOC = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/privatelink-interface-endpoints.html"


def _kind(endpoint: Mapping) -> str:
    return str(endpoint.get("type") or "").lower()


def on_path(candidates: Sequence[dict], addresses: Sequence[str]) -> Tuple[Optional[dict], List[dict]]:
    """(the endpoint this instance's requests take, the others) among one service's endpoints in the VPC. The DNS
    answer decides: the interface endpoint's private addresses, or S3's public ones (the gateway's route). Without
    an answer, what the VPC resolver would say: the interface endpoint's when its private DNS is on for every
    resolver."""
    if not candidates[1:]:  # one endpoint (or none): no choice to make
        return (candidates[0] if candidates else None), []
    if addresses:
        want = "interface" if all(dns.is_private(a) for a in addresses) else "gateway"
    else:
        want = "interface" if any(_kind(c) == "interface" and c.get("private_dns") and not c.get("inbound_only")
                                  for c in candidates) else "gateway"
    chosen = next((c for c in candidates if _kind(c) == want), candidates[0])
    return chosen, [c for c in candidates if c is not chosen]


def bypassed(chosen: Mapping, others: Sequence[Mapping]) -> Dict[str, object]:
    """What the report keeps of the endpoint not taken, beside the one taken (vpc:endpoints' evidence)."""
    if not others:
        return {}
    other = others[0]
    return {"other": {"id": other.get("id"), "type": other.get("type"), "policy": other.get("policy"),
                      "private_dns": other.get("private_dns"), "inbound_only": other.get("inbound_only")}}


def explain(endpoint: Mapping, action: str, resource: str, principal: Optional[str],
            context: Optional[Mapping[str, Optional[str]]]) -> Tuple[str, Tuple[str, ...]]:
    """(a sentence for a denial's cause, commands to add to its remedy) when the VPC has both S3 endpoints: whose
    policy judged the request, and, when the other endpoint's policy would allow it, how to send the VPC's requests
    there instead. endpoint: api.endpoint_of's view for s3 (id, type, policy, other ...)."""
    other = endpoint.get("other") or {}
    if not isinstance(other, Mapping) or not other.get("id") or not endpoint.get("id"):
        return "", ()
    taken = _kind(endpoint)
    sentence = (f" This VPC has two S3 endpoints: s3 names resolve here to {endpoint['id']}'s network interfaces "
                f"(interface endpoint, private DNS), so its policy judges this instance's S3 requests and the gateway "
                f"endpoint {other['id']}'s policy never sees them." if taken == "interface" else
                f" This VPC has two S3 endpoints: s3 names resolve here to S3's public addresses, routed through the "
                f"gateway endpoint {endpoint['id']}, so its policy judges this instance's S3 requests; the interface "
                f"endpoint {other['id']}'s policy applies only to requests sent to its addresses"
                + (" (its private DNS is for inbound Resolver endpoints only)." if other.get("inbound_only") else "."))
    if taken != "interface" or not _allows(other, action, resource, principal, context):
        return sentence, ()
    return (sentence + f" {other['id']}'s policy allows it: with private DNS only for inbound Resolver endpoints "
            f"on {endpoint['id']}, requests from this VPC take the gateway endpoint ({DOC}).",
            (f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint['id']} --dns-options "
             "PrivateDnsOnlyForInboundResolverEndpoint=true",))


def _allows(other: Mapping, action: str, resource: str, principal: Optional[str],
            context: Optional[Mapping[str, Optional[str]]]) -> bool:
    text = other.get("policy")
    if text is None:
        return True  # no policy: the default, full access
    keys = {**(context or {}), "aws:sourcevpce": other.get("id")}
    try:
        return policy.evaluate(policy.parse(str(text)), action, resource, principal, keys,
                               _kind(other) == "gateway").allowed
    except policy.PolicyError:
        return False
