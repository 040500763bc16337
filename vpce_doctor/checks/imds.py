"""imds:token and imds:profile: what IMDSv2 said about this instance, judged from facts gathered up front."""
from __future__ import annotations

from ..addresses import parse
from ..facts import Facts, Imds, Reply
from ..model import Check, Remedy, Result, Severity, Status

IMDS_DOC = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html"
HOP_LIMIT = Remedy(
    "Raise the PUT response hop limit to 2 where the doctor runs in a container, or let 169.254.169.254 "
    "bypass any proxy or firewall on the instance (NO_PROXY=169.254.169.254).",
    # The EC2 user guide gives the hop limit with --http-endpoint enabled ("Configure the instance metadata options",
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-existing-instances.html).
    ("aws ec2 modify-instance-metadata-options --instance-id {instance} --http-put-response-hop-limit 2 "
     "--http-endpoint enabled",),
    (IMDS_DOC,))
ENABLE = Remedy(
    "Turn the instance metadata service on, with tokens required (IMDSv2).",
    ("aws ec2 modify-instance-metadata-options --instance-id {instance} --http-endpoint enabled "
     "--http-tokens required",), (IMDS_DOC,))
ENABLE_IPV6 = Remedy(
    "This instance has only IPv6 addresses, where IMDS is reachable only at [fd00:ec2::254], and that endpoint is "
    "off (HttpProtocolIpv6 is disabled by default). Turn it on; then point the SDKs at it "
    "(AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6, or ec2_metadata_service_endpoint_mode = IPv6 in ~/.aws/config).",
    # modify-instance-metadata-options --http-protocol-ipv6 (EC2 user guide, "Configure the instance metadata
    # options", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-existing-instances.html).
    ("aws ec2 modify-instance-metadata-options --instance-id {instance} --http-protocol-ipv6 enabled "
     "--http-endpoint enabled",), (IMDS_DOC,))
ATTACH_PROFILE = Remedy(
    "Attach an instance profile whose role has AmazonSSMManagedInstanceCore, or turn on Default Host "
    "Management Configuration for the account and Region.",
    ("aws ec2 associate-iam-instance-profile --instance-id {instance} --iam-instance-profile Name=<profile>",),
    ("https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html",))

TRUST_EC2 = Remedy(
    "Let EC2 assume the role: its trust policy must allow sts:AssumeRole to the service principal "
    "ec2.amazonaws.com (a trust policy that names another service, or only users, gives the instance nothing).",
    ("aws iam get-role --role-name {role} --query Role.AssumeRolePolicyDocument",
     "aws iam update-assume-role-policy --role-name {role} --policy-document '{{\"Version\":\"2012-10-17\","
     "\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"Service\":\"ec2.amazonaws.com\"}},"
     "\"Action\":\"sts:AssumeRole\"}}]}}'"),
    ("https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html",))

# (code, cause, remedy) for each way the token PUT can fail; the key is Reply.error or the HTTP status.
TOKEN_FAILURES = {
    "timeout": ("timeout", "The token PUT got no answer: the PUT response hop limit is lower than the number of "
                "hops to the doctor (containers need 2), or something on the instance intercepts "
                "169.254.169.254.", HOP_LIMIT),
    "refused": ("unreachable", "Nothing listens at the IMDS address: this is not an EC2 instance, or a local "
                "firewall rejects 169.254.169.254.", ENABLE),
    "unreachable": ("unreachable", "There is no route to the IMDS address from this network namespace.", ENABLE),
    403: ("forbidden", "IMDS refused the token request (403): the metadata endpoint is turned off for this "
          "instance, or the request passed through a proxy that added X-Forwarded-For.", ENABLE),
    401: ("unauthorized", "IMDS answered 401 to the token request itself.", ENABLE),
    400: ("bad-request", "IMDS rejected the token request (400): the TTL header did not arrive intact, "
          "which points at a proxy rewriting requests to 169.254.169.254.", HOP_LIMIT),
}


def checks():
    return (
        Check("imds:token", "IMDSv2 answers with a token and instance facts", Severity.CRITICAL, run_token),
        Check("imds:profile", "an instance profile is attached", Severity.CRITICAL, run_profile,
              needs=("imds:token",)),
    )


def run_token(ctx, prior) -> Result:
    return assess_token(ctx.facts, ctx.settings.region, local_families())


def local_families() -> tuple:
    """The families of this host's usable addresses (not loopback, not link-local): ("IPv4", "IPv6"), ("IPv6",) ..."""
    import socket
    try:
        import psutil
        interfaces = psutil.net_if_addrs()
    except Exception:  # psutil missing or /proc unreadable: the verdict then does not depend on it
        return ()
    found = set()
    for name, addresses in interfaces.items():
        if name == "lo":  # the loopback interface: nothing there reaches IMDS
            continue
        for address in addresses:
            kind = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}.get(address.family)
            ip, _ = parse(str(address.address).split("%")[0])
            if kind and ip is not None and not (ip.is_loopback or ip.is_link_local):
                found.add(kind)
    return tuple(sorted(found))


def run_profile(ctx, prior) -> Result:
    from .agent_files import IDENTITY, read_identity
    identity, _ = read_identity(ctx.path(IDENTITY))
    return assess_profile(ctx.facts, identity.get("CredentialSource") == "SSM")


def assess_token(facts: Facts, region_flag=None, local_families: tuple = ()) -> Result:
    imds: Imds = facts.imds
    evidence = {"endpoint": imds.endpoint, "token": _reply(imds.token),
                "replies": {path: _reply(r) for path, r in imds.replies.items()},
                "endpoints": {e: _reply(r) for e, r in imds.tokens.items()}, "local_families": list(local_families)}
    if imds.disabled_by_env:
        return Result(Status.WARN, "IMDS not consulted: AWS_EC2_METADATA_DISABLED=true",
                      cause="Instance facts (VPC CIDRs, instance profile) are unknown, so addresses are judged "
                            "as private or public only.", code="disabled-by-env", evidence=evidence)
    token = imds.token or Reply(error="timeout")
    if token.status != 200 or token.error in TOKEN_FAILURES:
        return _no_token(facts, token, local_families, evidence)
    return _answers(facts, token, region_flag, evidence)


def _no_token(facts: Facts, token: Reply, local_families: tuple, evidence: dict) -> Result:
    imds: Imds = facts.imds
    if token.status != 200 and len(imds.tokens) > 1 and tuple(local_families) == ("IPv6",):
        return _ipv6_disabled(facts, evidence)
    key = token.error or token.status
    seen = f"HTTP {token.status}" if token.status else token.error
    if key in TOKEN_FAILURES:
        code, cause, remedy = TOKEN_FAILURES[key]
        return Result(Status.FAIL, f"IMDSv2 token request to {imds.endpoint} failed: {seen} after "
                      f"{token.elapsed_ms:.0f} ms", cause=cause, code=code,
                      remedy=remedy.filled(instance=facts.instance_id or "<instance-id>"), evidence=evidence)
    return Result(Status.FAIL, f"IMDSv2 token request to {imds.endpoint} failed: {seen}",
                  cause="The answer is not what IMDS gives; something else is listening at its address.",
                  code="unexpected", evidence=evidence)


def _answers(facts: Facts, token: Reply, region_flag, evidence: dict) -> Result:
    """A token came: judge what IMDS answered with it."""
    imds: Imds = facts.imds
    if not facts.instance_id or not facts.region or facts.malformed:
        bad = ", ".join(facts.malformed) or "instance-id or placement/region missing"
        return Result(Status.FAIL, f"IMDS gave a token but its answers are unusable: {bad}",
                      cause="Something other than IMDS answers at its address, or a proxy rewrites the replies.",
                      code="garbage", evidence=evidence)
    summary = (f"{facts.instance_id} in {facts.az or facts.region}, {facts.vpc_id or 'VPC unknown'} "
               f"{' '.join(facts.vpc_cidrs + facts.vpc_ipv6_cidrs) or ''}".rstrip()
               + f", token in {token.elapsed_ms:.0f} ms" + (f" from {imds.endpoint}" if "[" in imds.endpoint else ""))
    if region_flag and region_flag != facts.region:
        return Result(Status.WARN, summary, code="region-mismatch", evidence=evidence,
                      cause=f"--region {region_flag} differs from the instance's region {facts.region}; "
                            f"names are built for {region_flag}.")
    if not facts.vpc_cidrs and not facts.vpc_ipv6_cidrs:
        return Result(Status.WARN, summary, code="no-vpc-cidrs", evidence=evidence,
                      cause="IMDS did not give the VPC's CIDR blocks, so resolved addresses are judged as private "
                            "or public only.")
    return Result(Status.PASS, summary, evidence=evidence)


def _ipv6_disabled(facts: Facts, evidence: dict) -> Result:
    seen = ", ".join(f"{e}: {r.error or f'HTTP {r.status}'}" for e, r in facts.imds.tokens.items())
    return Result(Status.FAIL, f"IMDS answers on neither family ({seen}) on an instance with only IPv6 addresses",
                  cause="In an IPv6-only subnet there is no IPv4 path to 169.254.169.254; IMDS is reachable only at "
                        "[fd00:ec2::254], which answers only when the instance's HttpProtocolIpv6 option is enabled.",
                  code="ipv6-disabled", remedy=ENABLE_IPV6.filled(instance=facts.instance_id or "<instance-id>"),
                  evidence=evidence)


def assess_profile(facts: Facts, dhmc: bool = False) -> Result:
    reply = facts.imds.replies.get("iam/info")
    evidence = {"iam/info": _reply(reply), "agent_uses_dhmc": dhmc}
    code = facts.credentials_code
    evidence["credentials_code"] = code
    if facts.instance_profile_arn and code and code != "Success":
        role = facts.role_name or "<role>"
        trust = code == "AssumeRoleUnauthorizedAccess"
        return Result(Status.FAIL, f"instance profile {facts.instance_profile_arn} is attached, but IMDS gives no "
                      f"credentials for its role {role}: Code {code}",
                      code="trust-policy" if trust else "no-credentials",
                      cause=("iam/info says Success, yet iam/security-credentials/ answers "
                             "AssumeRoleUnauthorizedAccess: the role's trust policy does not let ec2.amazonaws.com "
                             "assume it (aws/aws-cli#2060), so the agent, the CLI and every SDK on the instance have "
                             "no credentials." if trust else "IMDS could not issue the role's credentials."),
                      remedy=TRUST_EC2.filled(role=role) if trust else None, evidence=evidence)
    if facts.instance_profile_arn:
        return Result(Status.PASS, f"instance profile {facts.instance_profile_arn}", evidence=evidence)
    if reply is not None and reply.status == 404 and dhmc:
        return Result(Status.WARN, "no instance profile: the SSM agent's identity_config.json says Default Host "
                      "Management credentials (written at its last success)",
                      code="dhmc", evidence=evidence,
                      cause="The agent is managed through Default Host Management, so its permissions (session "
                            "logging included) are the DHMC role's; the doctor's own AWS checks have no "
                            "credentials of their own. To test the DHMC role, run with "
                            "AWS_SHARED_CREDENTIALS_FILE=/var/lib/amazon/ssm/credentials.")
    if reply is not None and reply.status == 404:
        return Result(Status.FAIL, "no instance profile is attached (IMDS iam/info: 404)",
                      cause="Without an instance profile the SSM agent has no credentials, unless Default Host "
                            "Management Configuration is on; the instance never shows as managed.",
                      code="none", remedy=ATTACH_PROFILE.filled(instance=facts.instance_id or "<instance-id>"),
                      evidence=evidence)
    seen = f"HTTP {reply.status}" if reply and reply.status else (reply.error if reply else "no answer")
    return Result(Status.FAIL, f"IMDS iam/info could not be read: {seen}",
                  cause="IMDS answered the other paths but not this one, or answered it with something that is "
                        "not an instance profile.", code="unreadable", evidence=evidence)


def _reply(reply) -> dict:
    if reply is None:
        return {}
    # Bodies can hold credentials (iam/security-credentials) or junk: keep only their size.
    return {"status": reply.status, "error": reply.error, "ms": reply.elapsed_ms, "bytes": len(reply.body)}
