"""The lab's [proxy] and [vpc] cidrs knobs, read without a lab."""
import base64

import pytest

from tests.lab import labd, netpolicy, proxy
from tests.lab.scenario import BASELINE, ScenarioError, merge

CONNECT = b"CONNECT ssm.ap-northeast-1.amazonaws.com:443 HTTP/1.1\r\nHost: ssm.ap-northeast-1.amazonaws.com:443\r\n"


def test_the_proxy_challenges_without_credentials_and_refuses_when_told():
    # RFC 9110 15.5.8: 407 with a Proxy-Authenticate challenge (squid: Basic realm="...")
    challenge = proxy.answer("auth", CONNECT + b"\r\n", "build:s3cret")
    assert challenge.startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    assert b'Proxy-Authenticate: Basic realm="vpclab proxy"' in challenge
    given = CONNECT + b"Proxy-Authorization: Basic " + base64.b64encode(b"build:s3cret") + b"\r\n\r\n"
    assert proxy.answer("auth", given, "build:s3cret").startswith(b"HTTP/1.1 403 ")  # the lab tunnels nowhere
    assert proxy.answer("refuse", CONNECT + b"\r\n").startswith(b"HTTP/1.1 403 Forbidden")
    with pytest.raises(ScenarioError):
        merge(BASELINE, {"proxy": {"mode": "squid"}})


def test_a_rule_for_the_primary_cidr_does_not_admit_an_instance_in_a_secondary_one():
    secondary = merge(BASELINE, {"vpc": {"cidrs": ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]},
                                 "endpoints": {"ssm": {"sg_ingress_cidr": "10.0.0.0/24"}}})
    assert netpolicy.sg_blocks(secondary["endpoints"]["ssm"]) and not netpolicy.sg_blocks({"sg_ingress_cidr": ""})
    assert "ip daddr 10.0.1.10 tcp dport 443 drop" in labd.nft_ruleset(secondary, set())
    assert "10.0.1.10" not in labd.nft_ruleset(BASELINE, set())
    for cidrs in (["10.0.1.0/24", "10.0.0.0/24"], ["10.0.0.0/24", "10.0.1.0/24"], ["not a cidr"]):
        with pytest.raises(ScenarioError):  # the resolver at base + 2 of the primary; both lab subnets inside
            merge(BASELINE, {"vpc": {"cidrs": cidrs}})
