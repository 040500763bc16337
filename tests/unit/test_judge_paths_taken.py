"""What the clients really dial and get: /etc/hosts pins, DNS Firewall OVERRIDE answers, and a role IMDS cannot
issue credentials for (fidelity.md §D)."""
from vpce_doctor.checks import dns, imds, local
from vpce_doctor.facts import Imds, Reply, interpret
from vpce_doctor.model import Status

NAME = "ssm.eu-west-1.amazonaws.com"


def test_a_pinned_address_that_does_not_answer_is_what_the_agent_dials():
    entries = local.parse_hosts(f"127.0.0.1 localhost\n10.0.3.99 {NAME}\n")
    dead = local.assess_hosts(entries, [NAME], "amazonaws.com", {"10.0.3.99": {"result": "timeout", "ms": 1000.0}})
    assert (dead.status, dead.code) == (Status.FAIL, "hosts-pin-dead")
    assert f"{NAME} → 10.0.3.99 (timeout on 443)" in dead.summary
    assert dead.remedy.commands == ("sudo sed -i.bak '/ssm[.]eu-west-1[.]amazonaws[.]com/d' /etc/hosts",)
    alive = local.assess_hosts(entries, [NAME], "amazonaws.com", {"10.0.3.99": {"result": "open", "ms": 1.0}})
    assert (alive.status, alive.code) == (Status.WARN, "hosts-override")


def test_a_dns_firewall_override_is_named_as_such():
    # Route 53 Resolver DNS Firewall OVERRIDE: a CNAME to the rule's BlockOverrideDomain, then its answer.
    rewritten = {"type": "A", "code": "answer", "addresses": ["10.0.9.53"], "cnames": ["sinkhole.corp.example"]}
    result = dns.assess(NAME, False, rewritten, {}, ["10.0.0.0/16"], {"vpc": "vpc-1", "domain": "amazonaws.com"})
    assert (result.status, result.code) == (Status.FAIL, "firewall-override")
    assert "rewritten by a CNAME to sinkhole.corp.example → 10.0.9.53" in result.summary
    assert any("list-firewall-rule-group-associations --vpc-id vpc-1" in c for c in result.remedy.commands)
    s3 = {"type": "A", "code": "answer", "addresses": ["52.219.1.1"], "cnames": ["s3-r-w.eu-west-1.amazonaws.com"]}
    assert dns.assess("s3.eu-west-1.amazonaws.com", True, s3, {}, ["10.0.0.0/16"]).status is Status.PASS


def test_a_role_that_does_not_trust_ec2_is_named_not_a_missing_profile():
    # aws/aws-cli#2060: iam/info says Success; security-credentials/<role> answers AssumeRoleUnauthorizedAccess.
    body = ('{"Code" : "AssumeRoleUnauthorizedAccess", "Message" : "EC2 cannot assume the role app-role.  Please see '
            'documentation at http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html.", '
            '"LastUpdated" : "2026-11-29T12:00:00Z"}')
    replies = {"instance-id": Reply(200, "i-0123456789abcdef0"), "placement/region": Reply(200, "eu-west-1"),
               "iam/info": Reply(200, '{"Code":"Success","InstanceProfileArn":'
                                      '"arn:aws:iam::123456789012:instance-profile/app","InstanceProfileId":"AIPA1"}'),
               "iam/security-credentials/": Reply(200, "app-role"), "credentials": Reply(200, body)}
    from vpce_doctor import facts as facts_mod
    replies["credentials"] = facts_mod._code_only(replies["credentials"])
    assert replies["credentials"].body == "AssumeRoleUnauthorizedAccess"  # nothing else of the body is kept
    found = interpret(Imds("http://169.254.169.254", token=Reply(200, "t"), replies=replies))
    assert (found.role_name, found.credentials_code) == ("app-role", "AssumeRoleUnauthorizedAccess")
    result = imds.assess_profile(found)
    assert (result.status, result.code) == (Status.FAIL, "trust-policy")
    assert "update-assume-role-policy --role-name app-role" in result.remedy.commands[1]
    assert '"Principal":{"Service":"ec2.amazonaws.com"}' in result.remedy.commands[1]
    secret = facts_mod._code_only(Reply(200, '{"Code":"Success","SecretAccessKey":"wJalr/XUtnFEMI"}'))
    assert secret.body == "Success"
