"""The lab's own reading of the IPv6 knobs (tests/lab/family.py), checked without a lab."""
import pytest

from tests.lab import family
from tests.lab.scenario import BASELINE, ScenarioError, merge


def test_endpoint_records_follow_the_ip_type():
    assert family.endpoint_addresses({"ip_type": "ipv4"}, ["10.0.1.10"]) == ["10.0.1.10"]
    assert family.endpoint_addresses({"ip_type": "dualstack"}, ["10.0.1.10"]) == ["10.0.1.10", "2001:db8:1200:1::10"]
    assert family.endpoint_addresses({"ip_type": "ipv6"}, ["10.0.2.10"]) == ["2001:db8:1200:2::10"]


def test_dns64_adds_the_well_known_prefix_only_where_there_is_no_aaaa():
    answers = family.dns64({"a": ["10.0.1.10"], "b": ["10.0.1.11", "2001:db8:1200:1::11"], "c": "nxdomain",
                            "d": "203.0.113.10"})
    assert answers["a"] == ["10.0.1.10", "64:ff9b::a00:10a"]  # RFC 6052 §2.2: the IPv4 address in the low 32 bits
    assert answers["b"] == ["10.0.1.11", "2001:db8:1200:1::11"]
    assert answers["c"] == "nxdomain" and answers["d"] == ["203.0.113.10", "64:ff9b::cb00:710a"]


def test_nft_rules_name_each_family():
    assert family.daddr("10.0.1.10") == "ip daddr 10.0.1.10"
    assert family.daddr("2001:db8:1200:1::10") == "ip6 daddr 2001:db8:1200:1::10"
    rules = family.nft_rules({"subnet": {"ipv6_only": True}, "imds": {"ipv6": True}})
    assert rules == ["ip daddr != 127.0.0.0/8 reject with icmp type net-unreachable"]


def test_an_ipv6_only_subnet_needs_an_ipv6_cidr_and_ip_types_are_checked():
    with pytest.raises(ScenarioError):
        merge(BASELINE, {"subnet": {"ipv6_only": True}})
    with pytest.raises(ScenarioError):
        merge(BASELINE, {"endpoints": {"ssm": {"ip_type": "both"}}})


def test_imds_paths_of_an_ipv6_only_instance():
    mac = "0a:00:00:00:00:01"
    base = {f"meta-data/network/interfaces/macs/{mac}/local-ipv4s": "10.0.1.100", "meta-data/local-ipv4": "10.0.1.100"}
    data = family.imds_paths({"vpc": {"ipv6_cidr": family.VPC6}, "subnet": {"ipv6_only": True}}, base, mac)
    assert "meta-data/local-ipv4" not in data
    assert data[f"meta-data/network/interfaces/macs/{mac}/ipv6s"] == family.INSTANCE6
