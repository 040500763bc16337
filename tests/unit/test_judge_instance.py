"""IMDS (domain.md §4 A1–A2), the resolver and local configuration (§4 B), judged from literal observations."""
from vpce_doctor.checks import imds, local, resolver
from vpce_doctor.facts import Facts, Imds, Reply, interpret
from vpce_doctor.model import Status

MAC = "0a:1b:2c:3d:4e:5f"


def replies(**overrides):
    base = {
        "instance-id": Reply(200, "i-0123456789abcdef0"), "placement/region": Reply(200, "eu-west-1"),
        "placement/availability-zone": Reply(200, "eu-west-1a"), "services/domain": Reply(200, "amazonaws.com"),
        "services/partition": Reply(200, "aws"), "mac": Reply(200, MAC), "local-ipv4": Reply(200, "10.0.1.100"),
        "iam/info": Reply(200, '{"Code":"Success","InstanceProfileArn":'
                               '"arn:aws:iam::123456789012:instance-profile/app","InstanceProfileId":"AIPA1"}'),
        "vpc-id": Reply(200, "vpc-0abc1234"), "vpc-ipv4-cidr-blocks": Reply(200, "10.0.0.0/16\n100.64.0.0/16"),
        "subnet-id": Reply(200, "subnet-0abc1234"), "subnet-ipv4-cidr-block": Reply(200, "10.0.1.0/24"),
        "security-group-ids": Reply(200, "sg-0abc1234\nsg-0def5678"),
    }
    base.update(overrides)
    return base


def facts(token=Reply(200, "AQAEAtoken", elapsed_ms=2.0), **overrides):
    return interpret(Imds("http://169.254.169.254", token=token, replies=replies(**overrides)))


def test_imds_healthy_facts_are_all_read():
    f = facts()
    assert (f.instance_id, f.region, f.az, f.vpc_id) == ("i-0123456789abcdef0", "eu-west-1", "eu-west-1a",
                                                         "vpc-0abc1234")
    assert f.vpc_cidrs == ("10.0.0.0/16", "100.64.0.0/16")
    assert f.security_groups == ("sg-0abc1234", "sg-0def5678")
    assert f.instance_profile_arn == "arn:aws:iam::123456789012:instance-profile/app"
    result = imds.assess_token(f)
    assert result.status is Status.PASS and "i-0123456789abcdef0 in eu-west-1a" in result.summary


def test_imds_token_failures_are_distinct_findings():
    cases = {Reply(error="timeout", elapsed_ms=1000): "timeout", Reply(403, "Forbidden"): "forbidden",
             Reply(401, ""): "unauthorized", Reply(error="refused"): "unreachable", Reply(400, ""): "bad-request"}
    for token, code in cases.items():
        result = imds.assess_token(Facts(Imds("http://169.254.169.254", token=token)))
        assert (result.status, result.code) == (Status.FAIL, code), token
        assert result.cause and result.remedy.commands


def test_imds_timeout_names_the_hop_limit():
    result = imds.assess_token(Facts(Imds("http://169.254.169.254", token=Reply(error="timeout"))))
    assert "hop limit" in result.cause
    assert "--http-put-response-hop-limit 2" in result.remedy.commands[0]


def test_imds_garbage_answers_are_dropped_and_reported():
    f = facts(**{"instance-id": Reply(200, "<html>captive portal</html>"), "vpc-ipv4-cidr-blocks": Reply(200, "x")})
    assert f.instance_id is None and f.vpc_cidrs == ()
    assert set(f.malformed) == {"instance-id", "vpc-ipv4-cidr-blocks"}
    result = imds.assess_token(f)
    assert (result.status, result.code) == (Status.FAIL, "garbage")
    assert "instance-id" in result.summary


def test_imds_disabled_by_environment_is_a_warning():
    result = imds.assess_token(Facts(Imds("http://169.254.169.254", disabled_by_env=True)))
    assert (result.status, result.code) == (Status.WARN, "disabled-by-env")


def test_imds_region_flag_that_differs_is_a_warning():
    result = imds.assess_token(facts(), region_flag="us-east-1")
    assert (result.status, result.code) == (Status.WARN, "region-mismatch")


def test_imds_evidence_never_carries_bodies():
    secret = '{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t","Token":"tok"}'
    result = imds.assess_token(facts(**{"iam/info": Reply(200, secret)}))
    assert "s3cr3t" not in repr(result.evidence) and "AQAEAtoken" not in repr(result.evidence)


def test_profile_missing_is_a_failure_with_the_attach_command():
    result = imds.assess_profile(facts(**{"iam/info": Reply(404, "Not Found")}))
    assert (result.status, result.code) == (Status.FAIL, "none")
    assert "associate-iam-instance-profile --instance-id i-0123456789abcdef0" in result.remedy.commands[0]


def test_profile_present_passes_with_its_arn():
    result = imds.assess_profile(facts())
    assert result.status is Status.PASS and "instance-profile/app" in result.summary


def ok(ms=2.0):
    return {"rcode": "NOERROR", "ms": ms}


def test_resolver_vpc_resolver_answers():
    result = resolver.assess(["10.0.0.2"], "/etc/resolv.conf", "", [], {"10.0.0.2": ok()}, ["10.0.0.0/16"], "vpc-1")
    assert result.status is Status.PASS and "10.0.0.2 (VPC resolver)" in result.summary


def test_resolver_dead_is_one_failure_naming_it():
    dead = {"rcode": None, "error": "timeout", "ms": 2000}
    result = resolver.assess(["10.0.0.2"], "/etc/resolv.conf", "", [], {"10.0.0.2": dead}, ["10.0.0.0/16"], "vpc-1")
    assert (result.status, result.code) == (Status.FAIL, "timeout")
    assert "--vpc-id vpc-1 --enable-dns-support" in result.remedy.commands[0]


def test_resolver_refusing_everything_and_missing_are_distinct():
    refused = resolver.assess(["10.9.9.9"], "x", "", [], {"10.9.9.9": {"rcode": "REFUSED", "ms": 1}}, [], None)
    missing = resolver.assess([], "x", "/etc/resolv.conf names no nameserver", [], {}, [], None)
    assert (refused.code, missing.code) == ("refused", "no-resolver")


def test_resolver_one_dead_of_two_is_a_warning():
    answers = {"10.0.0.2": ok(), "10.9.9.9": {"rcode": None, "error": "timeout", "ms": 2000}}
    result = resolver.assess(["10.9.9.9", "10.0.0.2"], "x", "", [], answers, ["10.0.0.0/16"], None)
    assert (result.status, result.code) == (Status.WARN, "partial") and "10.9.9.9" in result.summary


def test_resolver_names_the_systemd_stub_upstream(tmp_path):
    (tmp_path / "resolv.conf").write_text("# stub\nnameserver 127.0.0.53\noptions edns0\n")
    assert resolver.read_resolv_conf(tmp_path / "resolv.conf") == (("127.0.0.53",), "")
    result = resolver.assess(["127.0.0.53"], "x", "", ["10.0.0.2"], {"127.0.0.53": ok()}, [], None)
    assert "systemd-resolved stub → 10.0.0.2" in result.summary


def test_resolv_conf_unreadable_is_a_problem_not_an_exception(tmp_path):
    servers, problem = resolver.read_resolv_conf(tmp_path / "missing")
    assert servers == () and "cannot be read" in problem


def test_hosts_override_of_an_aws_name_warns():
    entries = local.parse_hosts("127.0.0.1 localhost\n10.9.9.9 ssm.eu-west-1.amazonaws.com # pinned\n")
    result = local.assess_hosts(entries, ["ssm.eu-west-1.amazonaws.com"], "amazonaws.com")
    assert (result.status, result.code) == (Status.WARN, "hosts-override")
    assert "ssm.eu-west-1.amazonaws.com → 10.9.9.9" in result.summary


def test_hosts_without_aws_names_passes():
    result = local.assess_hosts(local.parse_hosts("127.0.0.1 localhost\n"), ["ssm.x.amazonaws.com"], "amazonaws.com")
    assert result.status is Status.PASS


def test_proxy_without_no_proxy_warns_and_hides_credentials():
    environ = {"HTTPS_PROXY": "http://user:pa55@proxy.corp:3128"}
    result = local.assess_proxy(environ, ["ssm.eu-west-1.amazonaws.com"])
    assert (result.status, result.code) == (Status.WARN, "proxy-without-no-proxy")
    # IMDS is http://: HTTPS_PROXY does not apply to it (fidelity.md §D, Proxies)
    assert "169.254.169.254" not in result.summary and "ssm.eu-west-1.amazonaws.com" in result.summary
    assert "pa55" not in repr(result.evidence) and "***@proxy.corp:3128" in repr(result.evidence)


def test_proxy_with_covering_no_proxy_passes():
    environ = {"https_proxy": "http://proxy:3128", "no_proxy": "169.254.169.254,.amazonaws.com"}
    assert local.assess_proxy(environ, ["ssm.eu-west-1.amazonaws.com"]).status is Status.PASS
    assert local.bypassed("x.amazonaws.com", "*")
    assert not local.bypassed("ssm.eu-west-1.amazonaws.com", "amazonaws.co")


def test_proxy_passwords_with_a_raw_at_sign_are_hidden_whole():
    from vpce_doctor.checks import agent_logs
    result = local.assess_proxy({"HTTPS_PROXY": "http://user:p@ss@proxy.corp:3128/x"}, ["ssm.x.amazonaws.com"])
    assert "ss@" not in repr(result.evidence) and "http://***@proxy.corp:3128/x" in repr(result.evidence)
    assert agent_logs.SECRET_RE.sub(r"\1***@", "proxy http://u:p@ss@host:3128 set") == "proxy http://***@host:3128 set"


def test_values_with_a_trailing_newline_are_refused():
    import pytest
    from vpce_doctor.settings import UsageError, load
    for flags in ({"region": "eu-west-1\n"}, {"bucket": "my-bucket\n"}, {"resolver": "10.0.0.2\n"}):
        with pytest.raises(UsageError):
            load(flags, {})
