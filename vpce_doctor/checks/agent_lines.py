"""What one SSM agent log entry means: its most specific cause, as the agent and the Go libraries word it.

Sources: aws/amazon-ssm-agent at 1c217c89b42de51d4f4063363d8ec1f2eef56055 (Oct 2024; "agent@1c217c89" below), the
AWS SDK for Go v1 vendored there (awserr: "RequestError: send request failed\\ncaused by: ..."), Go's net, net/http
and crypto/x509 error texts, and lines quoted in public issues (tests/data/agent-log-lines.jsonl). The agent wraps
errors in other errors (hibernate, health ping, "RequestError ... caused by:", the credential refresher), so an
entry takes the code of the innermost cause it contains: CAUSES come first, wrappers last.
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

from ..model import Remedy

DOCS = "https://docs.aws.amazon.com/systems-manager/latest/userguide/"
TS_DOC = DOCS + "troubleshooting-ssm-agent.html"
_R = Remedy
ENDPOINTS = _R("Check that the VPC has an interface endpoint for the service with private DNS on, and that its "
               "security group admits TCP 443 from this instance; then restart the agent.",
               ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} --query "
                "'VpcEndpoints[].[ServiceName,PrivateDnsEnabled,State,Groups[0].GroupId]' --output table",
                "sudo systemctl restart amazon-ssm-agent"), (TS_DOC,))
RESOLVER = _R("The agent could not resolve an endpoint name: check the VPC's DNS attributes and the private DNS "
              "of its endpoints (see dns:resolver and dns:<service>).",
              ("aws ec2 describe-vpc-attribute --vpc-id {vpc} --attribute enableDnsSupport",
               "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} --query "
               "'VpcEndpoints[].[ServiceName,PrivateDnsEnabled]' --output table"))
INTERCEPTED = _R("Something presents its own certificate for AWS names (TLS inspection): exempt *.{domain} or "
                 "give the agent the inspecting CA.",
                 ("openssl s_client -connect {name_ssm}:443 -servername {name_ssm} "
                  "</dev/null | openssl x509 -noout -issuer -subject",))
RESET = _R("Something between the agent and the endpoint resets its connections (a firewall, proxy or TLS "
           "inspection). Agents built with Go >= 1.23 (3.3.2299.0 and later) offer a post-quantum key share some "
           "middleboxes reset: test with GODEBUG=tlskyber=0 (Go 1.23 builds) or tlsmlkem=0 (Go >= 1.24 builds) in "
           "the agent's environment (aws/amazon-ssm-agent#640, golang/go#69985); Go ignores the one it lacks.",
           ("sudo systemctl edit amazon-ssm-agent   # [Service] Environment=GODEBUG=tlskyber=0,tlsmlkem=0",
            "sudo systemctl restart amazon-ssm-agent"), ("https://github.com/aws/amazon-ssm-agent/issues/640",))
PROXY = _R("The agent sends its calls to a proxy that does not get them through: give the agent a no_proxy that "
           "covers 169.254.169.254 and the endpoint names (a systemd drop-in), or fix the proxy and its "
           "credentials.", ("sudo systemctl show amazon-ssm-agent -p Environment",),
           (DOCS + "configure-proxy-ssm-agent.html",))
PROFILE = _R("Attach an instance profile whose role has AmazonSSMManagedInstanceCore, or turn on Default Host "
             "Management Configuration; then restart the agent.",
             ("aws ec2 describe-iam-instance-profile-associations --filters Name=instance-id,Values={instance}",
              "aws ec2 associate-iam-instance-profile --instance-id {instance} --iam-instance-profile Name=<profile>",
              "sudo systemctl restart amazon-ssm-agent"))
IMDS = _R("The agent cannot reach IMDS (169.254.169.254): check the metadata options (endpoint enabled, PUT hop "
          "limit) and that nothing on the instance (firewall, proxy, routes) blocks it.",
          ("aws ec2 describe-instances --instance-ids {instance} --query 'Reservations[].Instances[].MetadataOptions'",
           "aws ec2 modify-instance-metadata-options --instance-id {instance} --http-endpoint enabled "
           "--http-put-response-hop-limit 2"))
ROLE_POLICY = _R("The agent's role is missing a Systems Manager permission: attach AmazonSSMManagedInstanceCore "
                 "to it.", ("aws iam attach-role-policy --role-name <role> "
                            "--policy-arn arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",))
DHMC = _R("Default Host Management cannot get credentials: check that it is on for this account and Region, that "
          "IMDSv2 is reachable and that the agent is >= 3.2.582.0.",
          ("aws ssm get-service-setting --setting-id arn:aws:ssm:{region}:<account-id>:servicesetting/ssm/"
           "managed-instance/default-ec2-instance-management-role",),
          (DOCS + "managed-instances-default-host-management.html",))
CLOCK = _R("The instance clock is off by more than 5 minutes: SigV4 signatures are refused. Sync it with the "
           "Amazon Time Sync Service (169.254.169.123).", ("chronyc tracking", "sudo systemctl restart chronyd"))
MESSAGES = _R("Session Manager and Run Command need the ssmmessages endpoint and the ssmmessages:* permissions "
              "(AmazonSSMManagedInstanceCore) on the agent's role.",
              ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
               "Name=service-name,Values={endpoint_ssmmessages}",))
LOGS = _R("Session logging to CloudWatch Logs needs a logs interface endpoint, the log group, and logs:Describe*/"
          "PutLogEvents (and the KMS key, when encryption is required) on the agent's role.",
          ("aws ssm get-document --name SSM-SessionManagerRunShell --query Content --output text",
           "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
           "Name=service-name,Values={endpoint_logs}"))
S3 = _R("Session logging to S3 needs a route to S3 (a gateway endpoint on this subnet's route table, or an S3 "
        "interface endpoint) and s3:PutObject/GetEncryptionConfiguration on the bucket for the agent's role.",
        ("aws ssm get-document --name SSM-SessionManagerRunShell --query Content --output text",
         "aws ec2 describe-route-tables --filters Name=association.subnet-id,Values={subnet}"))
KMS = _R("Session encryption needs the kms endpoint and kms:Decrypt/GenerateDataKey on the key for the agent's "
         "role.", ("aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values={vpc} "
                   "Name=service-name,Values={endpoint_kms}", "aws kms describe-key --key-id <key-id>"))
RUN_AS = _R("Create the runAs user on the instance, or change runAsDefaultUser in the Session Manager preferences.",
            ("sudo useradd -m <user>",), (DOCS + "session-preferences-run-as.html",))
UPDATE = _R("Update the agent: old agents fall back to plain-HTTP S3 queries that hang in a private subnet.",
            ("aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids {instance}",))
CHECKS = _R("The agent's line no longer says why; the network checks of this report say which layer fails.")

# (pattern, code, meaning, remedy), most specific first: an entry takes the first that matches anywhere in it.
# A remedy of None marks a line that is no problem (evidence only).
_CAUSES = (
    # Go net/http transport.go: a CONNECT answered with a non-200 status becomes the bare status text.
    (r"Proxy Authentication Required", "proxy-auth", "the agent's proxy wants credentials (407)", PROXY),
    (r"proxyconnect tcp|\"?https?://\S+\"?: Forbidden\s*$", "proxyconnect", "the agent's proxy could not be "
     "reached or refused the connection", PROXY),
    # agent@1c217c89 extra/aws-sdk-go/aws/ec2metadata/token_provider.go; IMDSv1 fallback off since 3.2.1041.0
    (r"failed to get IMDSv2 token", "imds-token", "the agent's IMDSv2 token request failed (hop limit, IMDS off "
     "or blocked)", IMDS),
    # Go net.OpError on the IMDS address, e.g. #609: "dial tcp 169.254.169.254:80: connect: network is unreachable"
    (r"169\.254\.169\.254:80: (?:connect: |i/o timeout)", "imds-unreachable", "the agent cannot reach IMDS",
     IMDS),
    # service wording quoted in aws/aws-sdk-js#254 and #1652
    (r"Signature expired:|Signature not yet current:", "clock-skew", "AWS refuses the agent's signatures: the "
     "clock is off by more than 5 minutes", CLOCK),
    # Go crypto/x509 HostnameError, CertificateInvalidError, UnknownAuthorityError texts
    (r"x509: certificate is valid for .*, not \S+", "tls-name-mismatch", "the endpoint address serves a "
     "certificate for other names", INTERCEPTED),
    (r"x509: certificate signed by unknown authority", "tls-untrusted", "a TLS certificate from an unknown CA: "
     "TLS interception", INTERCEPTED),
    (r"net/http: TLS handshake timeout", "tls-handshake-timeout", "TCP connects but the TLS handshake never "
     "completes", ENDPOINTS),
    # Go net.DNSError: "lookup NAME on SERVER:53: read udp A->B: i/o timeout" (#312), "lookup NAME: i/o timeout"
    (r"lookup \S+?(?: on \S+?)?: (?:(?:read|dial|write) (?:udp|tcp) \S+: )?i/o timeout", "dns-timeout",
     "DNS queries time out: the resolver does not answer", RESOLVER),
    (r"lookup \S+?(?: on \S+?)?: no such host", "nxdomain", "an endpoint name does not resolve (NXDOMAIN: a "
     "private hosted zone shadowing it, a DNS firewall, or a typo in an override)", RESOLVER),
    # agent@1c217c89 agent/session/plugins/port/port_basic.go:154: the forwarded port, not an endpoint
    (r"Unable to connect to specified port: ", "port-closed", "a port-forwarding session's target port on this "
     "instance refused: nothing listens there; not an endpoint problem", None),
    (r"connect: connection refused", "connection-refused", "something at the endpoint address answers TCP 443 "
     "with a reset", ENDPOINTS),
    (r"connection reset by peer", "connection-reset", "the network reset the agent's connection", RESET),
    (r"dial tcp \S+: (?:i/o timeout|connect: connection timed out|connect: no route to host|connect: network is "
     r"unreachable)", "dial-timeout", "TCP 443 to an endpoint gets no answer", ENDPOINTS),
    # aws/amazon-ssm-agent#522: DHMC's shared credentials; aws-sdk-go ExpiredToken
    (r"credentials are already expired|ExpiredToken", "credentials-expired", "the agent's credentials expired "
     "and were not refreshed", DHMC),
    # agent@1c217c89 common/identity/credentialproviders/ec2roleprovider/ec2_role_provider.go:131,144,146
    (r"EC2RoleRequestError: no EC2 instance role found", "no-role", "the instance has no instance profile role "
     "(since agent 3.3.1230.0 the line also says this when IMDS is unreachable)", PROFILE),
    (r"instance profile role credentials\..*(?:AccessDenied|not authorized to perform)", "profile-rejected",
     "the instance profile's role was refused by Systems Manager (ssm:UpdateInstanceInformation); the agent "
     "falls back to Default Host Management", ROLE_POLICY),
    # ec2_role_provider.go:97: the shared credentials file is Default Host Management's (ShareFile, :215-216)
    (r"error calling RequestManagedInstanceRoleToken|instance management role is not configured|unable to load "
     r"shared credentials", "dhmc-failed", "Default Host Management could not get credentials", DHMC),
    (r"is not authorized to perform", "access-denied", "the agent's role lacks a permission", ROLE_POLICY),
    # agent@1c217c89 common/identity/identity/identity_selector.go:98,109
    (r"Agent failed to assume any identity|failed to find agent identity", "no-identity", "the agent found no "
     "identity (no IMDS, no registration)", IMDS),
    (r"failed to start pty since RunAs user \S+ does not exist", "run-as-missing", "the runAs user of the "
     "session preferences does not exist here", RUN_AS),                  # shell_unix.go:129
    (r"Encountered error while initiating handshake\.", "kms-handshake", "the session's KMS handshake fails",
     KMS),                                                                 # sessionplugin.go:109
    (r"encryption is not set up", "encryption-not-set-up", "a session was refused because the log group or "
     "bucket looked unencrypted; the agent says this also when it cannot look the log group up", LOGS),
    (r"Validation failed, err:", "session-validation", "a session was refused by the preference validation", LOGS),
    (r"The CloudWatch log group specified in session preferences either does not exist or unable to validate",
     "log-group", "the session log group is missing, unreachable or not describable", LOGS),   # shell.go:112
    (r"Error (?:in calling|Calling) (?:DescribeLogGroups|DescribeLogStreams)|Error in PutLogEvents", "logs-api",
     "CloudWatch Logs calls fail", LOGS),                                  # cloudwatchlogsservice.go:281,316,341
    (r"Encountered an error while calling S3 API GetBucketEncryption", "s3-encryption", "the session-log "
     "bucket's encryption cannot be checked", S3),                         # s3util.go:150
    (r"Error when querying S3 bucket using address http://", "s3-port-80", "an agent older than 2020 queries S3 "
     "over plain HTTP, which hangs in a private subnet", UPDATE),
    (r"HTTP HEAD request failed: url=|no region in HEAD response for bucket|Signed HeadBucket request failed",
     "bucket-region", "finding the session-log bucket's Region fails: sessions start after minutes of blank "
     "screen", S3),                                                        # s3util_dep.go:66, crossregion.go:156,211
    # shell.go:665, and s3util.go:127,134 (S3Upload, used for session logs and command output); the updater's
    # lower-case "failed uploading" (update/processor/context.go:224) is not session logging
    (r"Failed to upload shell session logs to S3|Failed uploading \S+ to s3://|Failed to upload \S+ to s3://",
     "s3-upload", "an upload to S3 (session logs or command output) failed", S3),
    (r"Failed to get datachannel token|CreateDataChannel failed|Setting up data channel with id \S+ failed",
     "data-channel", "sessions end as soon as they open: the data channel to ssmmessages fails", MESSAGES),
    (r"Failed to get controlchannel token|CreateControlChannel failed", "control-channel", "the control channel "
     "to ssmmessages could not be opened: no sessions, Run Command falls back to ec2messages", MESSAGES),
    (r"Failed to dial websocket|Reach the retry limit \d+ for receive messages", "websocket", "the websocket to "
     "ssmmessages breaks", MESSAGES),                                     # websocketutil.go:71, websocketchannel.go:205
    # ec2_role_provider.go:134: a first ssm call that failed for a non-permission reason (network, usually)
    (r"Skipping default host management fallback", "profile-network-error", "the agent's first call to Systems "
     "Manager failed with a non-permission error, so Default Host Management was not tried", CHECKS),
    # credentialrefresher.go:218 and :311 ("Credentials are not available when they should be: %v")
    (r"Retrieve credentials produced error|failed to retrieve instance profile role credentials|Credentials are "
     r"not available when they should be",
     "credentials-retry", "the agent keeps failing to get credentials", CHECKS),   # credentialrefresher.go:218
    # agent/agent.go:113 and hibernation.go:77,104,141: the wrapper; its cause, if any, was matched above
    (r"Entering SSM Agent hibernate|Health ping failed with error|Backing off health check|Agent is in hibernate "
     r"mode", "hibernate", "the agent could not report to Systems Manager and hibernates (it retries at most "
     "every 30 minutes)", CHECKS),
)
CAUSES: Tuple[Tuple["re.Pattern[str]", str, str, Optional[Remedy]], ...] = tuple(
    (re.compile(p, re.M), c, m, r) for p, c, m, r in _CAUSES)
# Codes that follow from another cause logged in the same seconds: the cause is reported first (fidelity.md §A.2).
CONSEQUENCES = ("dhmc-failed", "no-identity", "imds-unreachable", "credentials-retry", "hibernate")


def classify(text: str) -> Optional[Tuple[str, str, Optional[Remedy]]]:
    """(code, meaning, remedy) of one log entry (its continuation lines included), or None for nothing known."""
    return next(((c, m, r) for rx, c, m, r in CAUSES if rx.search(text)), None)
