"""Settings precedence and validation, the service plan, and the catalogue's own rules."""
import json

import pytest

from vpce_doctor import plan
from vpce_doctor.checks import catalogue, select
from vpce_doctor.runner import validate
from vpce_doctor.settings import Settings, UsageError, load


def test_precedence_is_flags_then_environment_then_file_then_defaults(tmp_path):
    config = tmp_path / "doctor.conf"
    config.write_text("[vpce-doctor]\nregion = eu-west-1\nservices = ssm, kms\ntimeout = 9\nconnect-timeout = 1\n")
    settings = load({"config": str(config), "timeout": "7"}, {"VPCE_DOCTOR_REGION": "us-east-2"})
    assert (settings.region, settings.services, settings.timeout, settings.connect_timeout) == (
        "us-east-2", ("ssm", "kms"), 7.0, 1.0)
    assert load({}, {}).services == ("ssm", "ssmmessages", "ec2messages", "s3")


def test_what_the_doctor_observes_is_no_setting(tmp_path):
    """Issue 13 item 1: the filesystem root and the endpoints' port are main()'s parameters (tests only): no config
    file or environment variable can point a real run at other files or another port."""
    config = tmp_path / "doctor.conf"
    for key in ("port = 8443", "root = /tmp"):
        config.write_text(f"[vpce-doctor]\n{key}\n")
        with pytest.raises(UsageError, match=f"unknown key '{key.split()[0]}'"):
            load({"config": str(config)}, {})
    config.write_text("[vpce-doctor]\n")
    settings = load({"config": str(config)}, {"VPCE_DOCTOR_PORT": "8443", "VPCE_DOCTOR_ROOT": str(tmp_path)})
    assert settings == load({"config": str(config)}, {}) and not hasattr(settings, "port")


@pytest.mark.parametrize("flags, environ, message", [
    ({"services": "ssm,sqs3"}, {}, "unknown service 'sqs3'"),
    ({"region": "eu_west_1"}, {}, "region 'eu_west_1' is not a region name"),
    ({"timeout": "soon"}, {}, "timeout must be a number"),
    ({"timeout": "5", "connect_timeout": "9"}, {}, "connect-timeout must be positive and at most the timeout"),
    ({}, {"VPCE_DOCTOR_TIMEOUT": "-1"}, "timeout must be between"),
    ({"config": "/nonexistent/doctor.conf"}, {}, "does not exist"),
    ({"resolver": "dns.example"}, {}, "resolver must be an IP"),
])
def test_bad_input_is_one_clear_line(flags, environ, message):
    with pytest.raises(UsageError) as error:
        load(flags, environ)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("region = x\n", "malformed"),
    ("[other]\nregion = eu-west-1\n", "no [vpce-doctor] section"),
    ("[vpce-doctor]\nregoin = eu-west-1\n", "unknown key 'regoin'"),
    ("[vpce-doctor]\nregion = eu-west-1\n", None),
])
def test_config_file_problems_name_the_file(tmp_path, text, message):
    config = tmp_path / "doctor.conf"
    config.write_text(text)
    if message is None:
        assert load({"config": str(config)}, {}).region == "eu-west-1"
        return
    with pytest.raises(UsageError) as error:
        load({"config": str(config)}, {})
    assert str(config) in str(error.value) and message in str(error.value)


def test_unreadable_config_is_a_usage_error(tmp_path):
    config = tmp_path / "doctor.conf"
    config.write_bytes(b"\xff\xfe[vpce-doctor]\n")
    with pytest.raises(UsageError, match="cannot be read"):
        load({"config": str(config)}, {})


def write_agent_config(root, data):
    path = root / plan.AGENT_CONFIG
    path.parent.mkdir(parents=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def test_names_follow_region_and_domain_and_agent_overrides(tmp_path):
    write_agent_config(tmp_path, {"Ssm": {"Endpoint": "https://vpce-0abc-xyz.ssm.eu-west-1.vpce.amazonaws.com"},
                                  "Mgs": {"Endpoint": ""}})
    agent = plan.read_agent_config(str(tmp_path))
    targets = {t.service: t for t in plan.targets(("ssm", "ssmmessages", "s3"), "eu-west-1",
                                                  plan.domain_for("eu-west-1"), agent)}
    assert targets["ssm"].name == "vpce-0abc-xyz.ssm.eu-west-1.vpce.amazonaws.com"
    assert targets["ssm"].source == "amazon-ssm-agent.json Ssm.Endpoint"
    assert targets["ssmmessages"].name == "ssmmessages.eu-west-1.amazonaws.com"
    assert targets["s3"].gateway and not targets["ssm"].gateway
    assert plan.domain_for("cn-north-1") == "amazonaws.com.cn"


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"Ssm": {"Endpoint": "https://bad host/"}}', "ignored malformed Ssm.Endpoint"),
])
def test_a_broken_agent_config_is_reported_and_ignored(tmp_path, text, problem):
    write_agent_config(tmp_path, text)
    agent = plan.read_agent_config(str(tmp_path))
    assert problem in agent.problem and agent.endpoints == ()


def targets():
    return plan.targets(("ssm", "s3"), "eu-west-1", "amazonaws.com", plan.AgentConfig("x"))


def test_the_catalogue_is_ordered_unique_and_well_formed():
    checks = catalogue(targets(), Settings())
    validate(checks)
    for check in checks:
        assert len(check.title) <= 80 and not check.title.lower().startswith("ensure")


def test_every_check_family_is_documented_in_the_readme():
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for check in catalogue(targets(), Settings()):
        family = check.id.split(":")[0] + ":" + ("<service>" if check.id.split(":")[0] in ("dns", "tcp", "tls")
                                                 and check.id != "dns:resolver" else check.id.split(":")[1])
        assert f"`{family}`" in readme, family


def test_only_adds_what_the_named_checks_need():
    chosen = [c.id for c in select(catalogue(targets(), Settings()), ["tls:ssm"])]
    assert chosen == ["dns:resolver", "dns:ssm", "tcp:ssm", "tls:ssm"]
    assert [c.id for c in select(catalogue(targets(), Settings()), ["imds"])] == ["imds:token", "imds:profile"]
    with pytest.raises(LookupError):
        select(catalogue(targets(), Settings()), ["nope:x"])
