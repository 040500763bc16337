"""The checks of `vpce-doctor remote`: what the control plane says about one instance, judged from a workstation
(remote:instance, imds:options, iam:role, ssm:registration). Observing is one call each; judging is pure."""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..aws import Call, call
from ..model import MET, Check, Remedy, Result, Severity, Status
from . import session

# What the agent calls to register, take Run Command and open sessions: the core of the AWS managed policy
# AmazonSSMManagedInstanceCore (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/
# AmazonSSMManagedInstanceCore.html), which the SSM guide's instance profile uses.
AGENT_ACTIONS = ("ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                 "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
                 "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
                 "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply")
CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# The trust policy of an instance role (IAM user guide, "Using an IAM role to grant permissions to applications
# running on Amazon EC2 instances"): EC2 assumes the role for IMDS.
TRUST_EC2 = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},'
             '"Action":"sts:AssumeRole"}]}')
# Why registration fails, as far as the outside can tell: these, when they did not pass, explain ssm:registration.
EXPLAINERS = ("remote:instance", "iam:role", "imds:options", "vpc:endpoints")
# SSM's PlatformName -> os-release ID (DescribeInstanceInformation reports "Amazon Linux", version "2023" or "2").
PLATFORM_IDS = {"Amazon Linux": "amzn"}


def checks(described: Call) -> Tuple[Check, ...]:
    """described: vpce_doctor.aws.call() of DescribeInstances, made before the run to learn the instance's VPC."""
    return (
        Check("remote:instance", "the instance exists in this account and Region", Severity.CRITICAL,
              lambda ctx, prior: assess_instance(described, ctx.facts.instance_id or "", ctx.region)),
        Check("imds:options", "the instance metadata service is on, so the agent can get credentials",
              Severity.CRITICAL, lambda ctx, prior: assess_imds_options(instance_of(described)),
              needs=("remote:instance",)),
        Check("iam:role", "the instance profile's role allows what the SSM agent calls", Severity.CRITICAL, run_role,
              needs=("remote:instance",)),
    )


def session_logging(document: str) -> Tuple[Check, ...]:
    """The Session Manager preferences (read as on the instance) and whether the role may write where they log."""
    return (replace(session.checks(document, agent_planned=False)[0], needs=("remote:instance",)),
            Check("iam:session-logging", "the role may write session logs where the preferences send them",
                  Severity.HIGH, run_session_logging, needs=("iam:role", "session:preferences")))


def registration() -> Check:
    return Check("ssm:registration", "Systems Manager has heard from the agent", Severity.CRITICAL, run_registration,
                 needs=("remote:instance",), after=EXPLAINERS[1:])


def instance_of(described: Call) -> Mapping:
    reservations = described.response.get("Reservations") or []
    return next((i for r in reservations for i in r.get("Instances", [])), {})


def assess_instance(described: Call, instance_id: str, region: str) -> Result:
    if not described.ok:
        code, message = str(described.code or ""), str(described.message or "")[:200]
        if code.startswith("InvalidInstanceID"):  # .NotFound and .Malformed: EC2 says the same for another account's
            return Result(Status.FAIL, f"{instance_id} is not an instance of this account in {region} ({code})",
                          code="instance-not-found", cause="EC2 knows no such instance here: a typo, another "
                          "Region, or another account's instance (credentials of that account are needed).",
                          evidence={"error": {"code": code, "message": message}})
        return Result(Status.ERROR, f"DescribeInstances failed: {code or described.kind}: {message}",
                      code="unavailable", cause="Without the instance nothing else can be judged from outside. "
                      "The caller needs ec2:DescribeInstances (packaging/iam/vpce-doctor-remote-policy.json).",
                      evidence={"error": {"code": code, "message": message}})
    found = instance_of(described)
    state = (found.get("State") or {}).get("Name")
    evidence = {"state": state, "subnet": found.get("SubnetId"), "vpc": found.get("VpcId"),
                "profile": (found.get("IamInstanceProfile") or {}).get("Arn")}
    if state != "running":
        return Result(Status.FAIL, f"{instance_id} is {state}", code="not-running", evidence=evidence,
                      cause="Only a running instance can register with Systems Manager.",
                      remedy=Remedy("Start it.", (f"aws ec2 start-instances --instance-ids {instance_id}",)))
    return Result(Status.PASS, f"{instance_id} runs in {found.get('SubnetId')} of {found.get('VpcId')}",
                  evidence=evidence)


def assess_imds_options(instance: Mapping) -> Result:
    """MetadataOptions of DescribeInstances (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/
    API_InstanceMetadataOptionsResponse.html): with HttpEndpoint disabled nothing on the instance, the agent
    included, gets instance-profile credentials."""
    options = instance.get("MetadataOptions") or {}
    evidence = {k: options.get(k) for k in ("State", "HttpEndpoint", "HttpTokens", "HttpPutResponseHopLimit",
                                            "HttpProtocolIpv6", "InstanceMetadataTags")}
    iid = instance.get("InstanceId") or "<instance-id>"
    if options.get("HttpEndpoint") == "disabled":
        return Result(Status.FAIL, f"{iid} has its instance metadata service turned off (HttpEndpoint disabled)",
                      code="imds-disabled", evidence=evidence,
                      cause="The agent takes its credentials and Region from IMDS: with it off it never registers.",
                      remedy=Remedy("Turn IMDS on, IMDSv2 only.", (
                          f"aws ec2 modify-instance-metadata-options --instance-id {iid} --http-endpoint enabled "
                          "--http-tokens required",)))
    return Result(Status.PASS, f"IMDS on, tokens {options.get('HttpTokens')}, hop limit "
                  f"{options.get('HttpPutResponseHopLimit')}", evidence=evidence)


def run_role(ctx, prior) -> Result:
    profile = ctx.facts.instance_profile_arn
    if not profile:
        return assess_role(None, None, None, ctx.facts.instance_id or "")
    iam = ctx.clients.client("iam")
    got = call(iam, "get_instance_profile", InstanceProfileName=profile.rsplit("/", 1)[-1])
    roles = got.response.get("InstanceProfile", {}).get("Roles", []) if got.ok else []
    simulated = call(iam, "simulate_principal_policy", PolicySourceArn=roles[0]["Arn"],
                     ActionNames=list(AGENT_ACTIONS)) if roles else None
    return assess_role(profile, got, simulated, ctx.facts.instance_id or "")


def assess_role(profile: Optional[str], got: Optional[Call], simulated: Optional[Call],
                instance_id: str) -> Result:
    if not profile:
        return Result(Status.FAIL, f"{instance_id} has no instance profile", code="no-instance-profile",
                      cause="Without an instance profile the agent has no credentials (unless Default Host "
                            "Management Configuration is on in this Region), so it never registers.",
                      remedy=Remedy("Attach a profile whose role has AmazonSSMManagedInstanceCore.", (
                          f"aws ec2 associate-iam-instance-profile --instance-id {instance_id} "
                          "--iam-instance-profile Name=<profile>",)))
    if got is None or not got.ok or simulated is None or not simulated.ok:
        failed = got if got is None or not got.ok else simulated
        what = "GetInstanceProfile" if failed is got else "SimulatePrincipalPolicy"
        if failed is None:
            return Result(Status.FAIL, f"{profile} holds no role", code="profile-without-role",
                          remedy=Remedy("Add a role to the profile.", (
                              f"aws iam add-role-to-instance-profile --instance-profile-name "
                              f"{profile.rsplit('/', 1)[-1]} --role-name <role>",)))
        return Result(Status.WARN, f"{what} failed: {failed.code}", code="unavailable",
                      cause=f"The role's permissions cannot be judged from here; grant the caller iam:{what}.",
                      evidence={"profile": profile, "error": failed.code})
    role = got.response["InstanceProfile"]["Roles"][0]
    if not trusts_ec2(role.get("AssumeRolePolicyDocument")):
        return Result(Status.FAIL, f"{role['Arn']} does not trust ec2.amazonaws.com", code="role-not-trusted-by-ec2",
                      cause="EC2 cannot assume the role, so IMDS has no credentials for it (iam/info says Success, "
                            "iam/security-credentials answers AssumeRoleUnauthorizedAccess: aws/aws-cli#2060).",
                      evidence={"profile": profile, "role": role["Arn"]},
                      remedy=Remedy("Let EC2 assume the role.", (
                          f"aws iam update-assume-role-policy --role-name {role['Arn'].rsplit('/', 1)[-1]} "
                          "--policy-document '" + TRUST_EC2 + "'",)))
    return _simulated(role["Arn"], simulated.response.get("EvaluationResults", []), profile)


def trusts_ec2(document) -> bool:
    """Does the trust policy let ec2.amazonaws.com (ec2.amazonaws.com.cn in China) call sts:AssumeRole? Unknown
    shapes count as trusting: only a policy that plainly leaves EC2 out is a finding. botocore decodes the
    URL-encoded document into a dict; a string is parsed here."""
    import json
    from urllib.parse import unquote
    try:
        document = json.loads(unquote(document)) if isinstance(document, str) else document
        statements = document.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else list(statements)
    except (ValueError, AttributeError, TypeError):
        return True
    for st in statements:
        services = (st.get("Principal") or {}).get("Service") if isinstance(st.get("Principal"), dict) else None
        services = [services] if isinstance(services, str) else services or []
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if st.get("Effect") == "Allow" and any(str(s).startswith("ec2.amazonaws.com") for s in services) and \
                any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            return True
    return not statements


def _simulated(role: str, results: Sequence[Mapping], profile: str) -> Result:
    denied = [(r.get("EvalActionName"), r.get("EvalDecision")) for r in results if r.get("EvalDecision") != "allowed"]
    evidence = {"profile": profile, "role": role, "denied": [{"action": a, "decision": d} for a, d in denied]}
    if not denied:
        return Result(Status.PASS, f"{role} allows the {len(results)} actions the agent calls", evidence=evidence)
    name = role.rsplit("/", 1)[-1]
    return Result(Status.FAIL, f"{role} does not allow " + ", ".join(f"{a} ({d})" for a, d in denied),
                  code="role-missing-actions", evidence=evidence,
                  cause="IAM's policy simulator says the agent's calls are denied: it cannot register, take "
                        "commands or open sessions.",
                  remedy=Remedy("Attach the managed policy the SSM guide names (or remove the explicit deny).", (
                      f"aws iam attach-role-policy --role-name {name} --policy-arn {CORE_POLICY}",)))


def session_actions(inputs: Mapping[str, object], role: str, region: str) -> List[Tuple[str, str]]:
    """(action, resource) the agent needs for the preferences' destinations (session:outcome's list, on the
    instance): PutObject under the key prefix, the log group's stream calls, Decrypt with the session key."""
    partition, account = role.split(":")[1], role.split(":")[4]
    wanted = []
    if inputs.get("s3BucketName"):
        prefix = inputs.get("s3KeyPrefix") or ""
        wanted.append(("s3:PutObject", f"arn:{partition}:s3:::{inputs['s3BucketName']}/{prefix}*"))
    group = inputs.get("cloudWatchLogGroupName")
    if group:
        arn = f"arn:{partition}:logs:{region}:{account}:log-group:{group}:*"
        wanted += [("logs:CreateLogStream", arn), ("logs:PutLogEvents", arn)]
    key = str(inputs.get("kmsKeyId") or "")
    if key:
        wanted.append(("kms:Decrypt", key if key.startswith("arn:") else
                       f"arn:{partition}:kms:{region}:{account}:{key if key.startswith('alias/') else 'key/' + key}"))
    return wanted


def run_session_logging(ctx, prior) -> Result:
    role = role_arn(prior.get("iam:role"))
    if not role:
        return Result(Status.WARN, "the role is unknown (see iam:role), so its session-log permissions are too",
                      code="unavailable")
    wanted = session_actions(session.inputs_of(prior) or {}, role, ctx.region)
    iam = ctx.clients.client("iam")
    results: Dict[Tuple[str, str], Call] = {pair: call(iam, "simulate_principal_policy", PolicySourceArn=role,
                                                         ActionNames=[pair[0]], ResourceArns=[pair[1]])
                                              for pair in wanted}
    return assess_session_logging(role, results)


def assess_session_logging(role: str, results: Mapping[Tuple[str, str], Call]) -> Result:
    if not results:
        return Result(Status.PASS, "sessions are not logged: nothing to write")
    failed = [r for r in results.values() if not r.ok]
    if failed:
        return Result(Status.WARN, f"SimulatePrincipalPolicy failed: {failed[0].code}", code="unavailable",
                      cause="Grant the caller iam:SimulatePrincipalPolicy on the role to judge this.")
    denied = [(a, r, e.get("EvalDecision")) for (a, r), got in results.items()
              for e in got.response.get("EvaluationResults", []) if e.get("EvalDecision") != "allowed"]
    evidence = {"role": role, "checked": [f"{a} on {r}" for a, r in results],
                "denied": [{"action": a, "resource": r, "decision": d} for a, r, d in denied]}
    if not denied:
        return Result(Status.PASS, f"{role} may write session logs ({len(results)} actions)", evidence=evidence)
    return Result(Status.FAIL, f"{role} may not " + "; ".join(f"{a} on {r} ({d})" for a, r, d in denied),
                  code="role-missing-actions", evidence=evidence,
                  cause="The agent writes session logs with the instance role: with logging required the session "
                        "fails to start, otherwise its log is lost.",
                  remedy=Remedy("Allow these actions on these resources in the role's policies.", tuple(
                      f"aws iam simulate-principal-policy --policy-source-arn {role} --action-names {a} "
                      f"--resource-arns '{r}'" for a, r, _ in denied)))


def run_registration(ctx, prior) -> Result:
    listed = call(ctx.clients.client("ssm"), "describe_instance_information",
                  Filters=[{"Key": "InstanceIds", "Values": [ctx.facts.instance_id or ""]}])
    return assess_registration(listed, ctx.facts.instance_id or "", _explaining(prior))


def _explaining(prior) -> List[str]:
    return [c for c in EXPLAINERS if c in prior and prior[c].status not in MET]


UNEXPLAINED_FROM_OUTSIDE = ("Nothing the control plane shows explains it: what only the instance sees (the agent "
                            "installed and running, DNS, TLS, its logs) remains. Run vpce-doctor on the instance by "
                            "other means (EC2 serial console, user data, an SSH bastion).")


def assess_registration(listed: Call, instance_id: str, explaining: Sequence[str] = (),
                        unexplained: str = UNEXPLAINED_FROM_OUTSIDE) -> Result:
    """DescribeInstanceInformation judged (shared by `remote` and the instance's ssm:registration): InstanceInformation
    (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_InstanceInformation.html): PingStatus
    Online | ConnectionLost | Inactive (deprecated); no entry: SSM never heard from the instance."""
    if not listed.ok:
        return Result(Status.WARN, f"DescribeInstanceInformation failed: {listed.code}", code="unavailable",
                      cause="SSM's view cannot be read; grant the caller ssm:DescribeInstanceInformation.")
    info = (listed.response.get("InstanceInformationList") or [{}])[0]
    evidence = {k: info.get(k) for k in ("PingStatus", "AgentVersion", "IsLatestVersion", "PlatformName",
                                         "PlatformVersion")}
    evidence["last_ping"] = ping_time(info.get("LastPingDateTime"))
    why = f"Explained by {', '.join(explaining)} above." if explaining else unexplained
    if not info.get("InstanceId"):
        return Result(Status.FAIL, f"Systems Manager has never heard from {instance_id}", code="not-registered",
                      cause=why, evidence=evidence, caused_by=tuple(explaining))
    if info.get("PingStatus") != "Online":
        return Result(Status.FAIL, f"{instance_id} is {info.get('PingStatus')} since {evidence['last_ping']}",
                      code="connection-lost", cause=why, evidence=evidence, caused_by=tuple(explaining))
    return Result(Status.PASS, f"{instance_id} is Online, agent {info.get('AgentVersion')} on "
                  f"{info.get('PlatformName')} {info.get('PlatformVersion')}", evidence=evidence)


def ping_time(value) -> Optional[str]:
    """LastPingDateTime (botocore gives a datetime) as UTC to the second."""
    from datetime import datetime, timezone
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else None


def platform(result: Optional[Result]) -> Tuple[str, str]:
    """(os-release ID, VERSION_ID) as SSM reports the instance's platform; ("", "") when it does not."""
    evidence = result.evidence if result is not None else {}
    return PLATFORM_IDS.get(str(evidence.get("PlatformName") or ""), ""), str(evidence.get("PlatformVersion") or "")


def role_arn(result: Optional[Result]) -> Optional[str]:
    return result.evidence.get("role") if result is not None else None
