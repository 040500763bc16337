"""The lab's S3 interface endpoint beside the gateway, read from the scenario without a lab: the VPC resolver's
answers and the scenario's own rules, as AWS PrivateLink for Amazon S3 describes them
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/privatelink-interface-endpoints.html, "Private DNS"; EC2 API
reference, DnsOptionsSpecification.PrivateDnsOnlyForInboundResolverEndpoint)."""
import pytest

from tests.lab import labd
from tests.lab.scenario import BASELINE, S3_INTERFACE_ENI, ScenarioError, merge

NAMES = ("s3.ap-northeast-1.amazonaws.com", "*.s3.ap-northeast-1.amazonaws.com")


def answers(**interface):
    return labd.dns_table(merge(BASELINE, {"endpoints": {"s3": {"interface": {"present": True, **interface}}}}))[0]


def test_private_dns_for_every_resolver_answers_the_interface_endpoints_addresses_to_the_vpc():
    table = answers()
    assert all(table[name] == [S3_INTERFACE_ENI] for name in NAMES)
    assert table["*.s3.ap-northeast-1.vpce.amazonaws.com"] == [S3_INTERFACE_ENI]


def test_inbound_only_or_no_private_dns_keeps_the_public_answer_and_the_gateway():
    for table in (answers(inbound_only=True), answers(private_dns=False)):
        assert all(table[name] == labd.S3_IP for name in NAMES)
        assert table["*.s3.ap-northeast-1.vpce.amazonaws.com"] == [S3_INTERFACE_ENI]  # its own names still resolve
    assert labd.dns_table(BASELINE)[0][NAMES[0]] == labd.S3_IP  # no interface endpoint: as before


def test_requests_to_its_network_interface_are_s3s_and_inbound_only_needs_the_gateway():
    scenario = merge(BASELINE, {"endpoints": {"s3": {"interface": {"present": True}}}})
    assert labd.endpoint_addresses(scenario)[S3_INTERFACE_ENI] == "s3"
    assert S3_INTERFACE_ENI not in labd.endpoint_addresses(BASELINE)
    with pytest.raises(ScenarioError, match="inbound_only needs the S3 gateway endpoint"):
        merge(BASELINE, {"endpoints": {"s3": {"present": False, "interface": {"present": True, "inbound_only": True}}}})
    closed = merge(BASELINE, {"endpoints": {"s3": {"interface": {"present": True, "sg_ingress_443": False}}}})
    assert f"ip daddr {S3_INTERFACE_ENI} tcp dport 443 drop" in labd.nft_ruleset(closed, set())
