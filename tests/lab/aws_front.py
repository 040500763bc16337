"""WSGI front for moto: makes its answers look like AWS seen through VPC endpoints.

moto alone answers unsigned requests with S3 listings, ignores endpoint policies, gives JSON services
query-style XML denials and HTML 500s, and has no clock. This front reads the body once (botocore's S3
uploads are chunked with no Content-Length), applies what the endpoint that received the request would
(clock check, endpoint policy), stubs what moto lacks, and rewrites moto's answers into AWS's shapes.
"""
from __future__ import annotations

import calendar
import email.utils
import http
import io
import json
import logging
import re
import time
import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape as xml_escape

from moto.iam.access_control import IAMRequestBase
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.s3 import responses as moto_s3_responses

from tests.lab import aws_fleet, aws_owned, iam, trail

log = logging.getLogger("vpclab.aws")
JSON_TYPE = "application/x-amz-json-1.1"
NO_BACKEND = ("ssmmessages", "ec2messages")  # moto has no backend: the doctor only needs TCP/TLS there


class AwsRequestHandler(MotoRequestHandler):
    """Serve AwsWorld.app with this: werkzeug.serving.make_server(ip, port, world.app, threaded=True,
    request_handler=AwsRequestHandler, ssl_context=...)."""

    disable_nagle_algorithm = True  # else every response stalls ~40 ms (Nagle + the client's delayed ACK)

    def send_response(self, code, message=None):
        # http.server adds its own Server and Date; the front sends AWS's, on the scenario's clock.
        self.log_request(code)
        self.send_response_only(code, message)


def patch_moto() -> None:
    """The front judges every request's permissions itself (Front._authorize); moto keeps checking signatures and
    keys only. moto names two S3 actions differently from IAM; policies must see the IAM names."""
    IAMRequestBase.check_action_permitted = lambda self, resource: None
    actions = moto_s3_responses.ACTION_MAP["BUCKET"]
    actions["HEAD"]["DEFAULT"] = "ListBucket"  # HeadBucket is authorised as s3:ListBucket
    actions["GET"]["encryption"] = "GetEncryptionConfiguration"
    actions["PUT"]["encryption"] = "PutEncryptionConfiguration"


def _amz_time(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


class Request:
    """One request, classified: protocol, signer, IAM action and resource."""

    def __init__(self, environ: dict):
        self.environ, self.endpoint = environ, environ.get("lab.endpoint", "s3")
        self.via = environ.get("lab.via")  # S3's gateway or interface endpoint (labd: by the receiving address)
        self.method, self.path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        self.query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""):
            self.body = environ["wsgi.input"].read()  # chunked: no Content-Length, read to the end
        else:
            self.body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"], environ["wsgi.input_terminated"] = io.BytesIO(self.body), True
        auth = environ.get("HTTP_AUTHORIZATION", "")
        credential = re.search(r"Credential=([^,\s]+)", auth)
        scope = credential.group(1) if credential else self.query.get("X-Amz-Credential", [""])[0]
        parts = scope.split("/")
        self.signed = bool(auth) or "X-Amz-Signature" in self.query
        self.access_key = parts[0] if len(parts) == 5 else ""
        self.signing_service = parts[3] if len(parts) == 5 else self.endpoint
        self.amz_date = environ.get("HTTP_X_AMZ_DATE") or self.query.get("X-Amz-Date", [""])[0]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        self.protocol = ("s3" if self.endpoint == "s3" else "json" if target or self.endpoint in NO_BACKEND
                         else "ec2" if self.endpoint == "ec2" and self.signing_service == "ec2" else "query")
        self.bucket = self.key = self.head_length = None
        self.params: dict = {}
        self.operation = ""
        if self.protocol == "s3":
            self._classify_s3()
        elif self.protocol == "json":
            self.operation = target.rsplit(".", 1)[-1]
            try:
                self.params = json.loads(self.body or b"{}")
            except ValueError:
                self.params = {}
        else:
            form = parse_qs(self.body.decode("utf-8", "replace")) if self.method == "POST" else {}
            self.operation = (form.get("Action") or self.query.get("Action") or [""])[0]
            self.params = {name: values[0] for name, values in form.items()}
        if self.protocol != "s3":
            self.action = f"{self.signing_service}:{self.operation}"

    def _classify_s3(self) -> None:
        host = self.environ.get("HTTP_HOST", "").split(":")[0]
        # bucket.s3.<region>.amazonaws.com, and S3's dual-stack bucket.s3.dualstack.<region>.amazonaws.com
        # (https://docs.aws.amazon.com/AmazonS3/latest/API/dual-stack-endpoints.html)
        match = re.match(r"(.+)\.s3[.-](dualstack\.)?([a-z0-9-]+\.)?amazonaws\.com$", host)
        if match:  # virtual-host style: the bucket is in the name
            self.bucket, self.key = match.group(1), self.path.lstrip("/") or None
        else:
            bucket, _, key = self.path.lstrip("/").partition("/")
            self.bucket, self.key = bucket or None, key or None
        if not self.bucket:
            operation = "ListAllMyBuckets"
        elif self.method == "POST" and "delete" in self.query:
            operation = "DeleteObject"
        else:
            table = moto_s3_responses.ACTION_MAP["KEY" if self.key else "BUCKET"].get(self.method, {})
            hits = [name for q, name in table.items() if q != "DEFAULT" and q in self.query]
            operation = hits[-1] if hits else table.get("DEFAULT", "ListBucket")
        self.operation, self.action = operation, f"s3:{operation}"

    def resource(self, account: str, region: str) -> str | None:
        """The ARN the doctor's calls act on (None: unknown, or the action has no resource)."""
        if self.protocol == "s3":
            return None if not self.bucket else f"arn:aws:s3:::{self.bucket}" + (f"/{self.key}" if self.key else "")
        name, prefix = self.params.get("Name"), f"arn:aws:{self.signing_service}:{region}:{account}"
        if self.action in ("ssm:GetDocument", "ssm:DescribeDocument") and name:
            return f"{prefix}:document/{name}"
        if self.action.startswith("ssm:GetParameter") and name:
            return f"{prefix}:parameter/{name.lstrip('/')}"
        if self.action == "ec2:GetManagedPrefixListEntries" and self.params.get("PrefixListId"):
            # an AWS-managed prefix list is owned by "aws" (EC2 user guide, managed prefix lists)
            return f"arn:aws:ec2:{region}:aws:prefix-list/{self.params['PrefixListId']}"
        if self.action == "logs:DescribeLogGroups":  # as AWS names it in its denials (tests/unit/test_denials.py)
            return f"{prefix}:log-group::log-stream:"
        if self.signing_service == "logs" and self.params.get("logGroupName"):
            stream = self.params.get("logStreamName")
            return f"{prefix}:log-group:{self.params['logGroupName']}" + (f":log-stream:{stream}" if stream else "")
        key = self.params.get("KeyId")
        if self.signing_service == "kms" and key:
            return key if key.startswith("arn:") else f"{prefix}:{key if key.startswith('alias/') else 'key/' + key}"
        return None


def ssm_stub(world, req: "Request") -> dict | None:
    """SSM operations moto lacks and the doctor calls; None lets moto answer."""
    if req.operation == "DescribeInstanceInformation":
        wanted = {v for f in req.params.get("Filters", []) if f.get("Key") == "InstanceIds" for v in f["Values"]}
        wanted |= {v for f in req.params.get("InstanceInformationFilterList", [])
                   if f.get("key") == "InstanceIds" for v in f["valueSet"]}
        iid = world.facts["instance_id"]
        if world.ssm_ping is None or (wanted and iid not in wanted):
            return {"InstanceInformationList": []}
        last_ping = time.time() + world.clock_offset - (0 if world.ssm_ping == "Online" else 3600)
        return {"InstanceInformationList": [{
            "InstanceId": iid, "PingStatus": world.ssm_ping, "LastPingDateTime": last_ping,
            "AgentVersion": world.agent_version, "IsLatestVersion": False, "PlatformType": "Linux",
            "PlatformName": "Amazon Linux", "PlatformVersion": "2023", "ResourceType": "EC2Instance",
            "IPAddress": world.facts["private_ip"], "SourceId": iid, "SourceType": "AWS::EC2::Instance",
            "ComputerName": f"ip-{world.facts['private_ip'].replace('.', '-')}.{world.region}.compute.internal"}]}
    if req.operation == "GetConnectionStatus":  # moto lacks it
        from tests.lab.ssm_view import connection_answer
        return connection_answer(world, req.params)
    return aws_fleet.run_command(world, req.operation, req.params)


def iam_simulate(world, req: "Request"):
    """SimulatePrincipalPolicy, which moto lacks: the role's policies judged by the lab's own IAM for each action
    and resource, answered in IAM's shape (https://docs.aws.amazon.com/IAM/latest/APIReference/
    API_SimulatePrincipalPolicy.html: EvalDecision allowed | explicitDeny | implicitDeny)."""
    form = parse_qs(req.body.decode("utf-8", "replace"))
    source = (form.get("PolicySourceArn") or [""])[0]
    actions = [form[k][0] for k in sorted(form, key=_member_order) if k.startswith("ActionNames.member.")]
    resources = [form[k][0] for k in sorted(form, key=_member_order) if k.startswith("ResourceArns.member.")] or ["*"]
    name = source.rsplit("/", 1)[-1]
    if ":role/" not in source or name not in {r.name for r in world.backend("iam").get_roles()}:
        return Front._error(req, 404, "NoSuchEntity", f"The role with name {name} cannot be found.")
    decision = {"allow": "allowed", "explicit": "explicitDeny", "implicit": "implicitDeny"}
    members = "".join(
        f"<member><EvalActionName>{xml_escape(a)}</EvalActionName><EvalResourceName>{xml_escape(r)}"
        f"</EvalResourceName><EvalDecision>{decision[world.identity_decision(source, a, r)]}</EvalDecision>"
        "<MatchedStatements/><MissingContextValues/></member>" for a in actions for r in resources)
    body = (f'<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{members}"
            f"</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}"
            "</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>")
    return 200, [("Content-Type", "text/xml")], body.encode()


def _member_order(key: str):
    return (key.rsplit(".", 1)[0], int(key.rsplit(".", 1)[1]) if key.rsplit(".", 1)[-1].isdigit() else 0)


class Front:
    def __init__(self, world):
        self.world = world

    def __call__(self, environ, start_response):
        world = self.world
        req = Request(environ)
        now = time.time() + world.clock_offset
        try:
            status, headers, body = self._handle(req, now)
        except Exception as error:  # moto's NotImplementedError and crashes: AWS's error shape, not HTML
            log.exception("moto failed on %s %s", req.method, req.path)
            status, headers, body = self._error(req, 500, "InternalFailure", f"{type(error).__name__}: {error}")
        headers = [(k, v) for k, v in headers if k.lower() not in ("date", "content-length", "transfer-encoding",
                                                                     "connection", "server")]
        bucket_region = world.bucket_region(req.bucket) if req.protocol == "s3" and req.bucket and not req.key else None
        if bucket_region and "x-amz-bucket-region" not in {k.lower() for k, _ in headers}:
            headers.append(("x-amz-bucket-region", bucket_region))  # S3 names a bucket's region on bucket-level answers
        if req.method == "HEAD":  # HeadObject's Content-Length is the object's, not this empty body's
            headers.append(("Content-Length", req.head_length or "0"))
            body = b""
        else:
            headers.append(("Content-Length", str(len(body))))
        headers += [("Date", email.utils.formatdate(now, usegmt=True)),
                    ("Server", "AmazonS3" if req.protocol == "s3" else "Server")]
        start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
        return [body]

    def _handle(self, req: Request, now: float):
        world = self.world
        if not req.signed:
            return self._unsigned(req)
        skew_error = self._clock(req, now)
        if skew_error:
            return skew_error
        if req.endpoint in NO_BACKEND:
            return self._error(req, 400, "ValidationException", f"The lab emulates no {req.endpoint} API.")
        arn = world.principal_arn(req.access_key)
        resource = req.resource(world.account, world.region)
        resource = world.kms_key_arn(resource) if req.signing_service == "kms" and resource else resource
        bucket_region = world.bucket_region(req.bucket) if req.bucket else None
        if bucket_region and bucket_region != world.region:  # the wrong Region's S3 redirects before judging
            return self._s3_redirect(req, bucket_region)
        denied = self._authorize(req, arn, resource) if arn else None
        if denied:
            return denied
        if aws_fleet.throttled(world, req.operation):
            return self._error(req, 400, "ThrottlingException", "Rate exceeded")
        denied = self._user(req) if not arn else None
        if denied:
            return denied
        if req.action == "iam:SimulatePrincipalPolicy":
            return iam_simulate(world, req)
        if req.action == "cloudtrail:LookupEvents":  # moto has no event history: tests/lab/trail.py
            answer = trail.lookup_events(world, req.params)
            if isinstance(answer, tuple):
                return self._error(req, *answer)
            return 200, [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))], \
                json.dumps(answer).encode()
        stub = ssm_stub(world, req) if req.signing_service == "ssm" else None
        if stub is not None:
            return 200, [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))], \
                json.dumps(stub).encode()
        return self._answer(req, arn, *self._backend(req))

    def _answer(self, req: Request, arn: str | None, status: int, headers: list, body: bytes):
        """moto's answer, made AWS's."""
        if req.protocol == "json" and req.action == "ssm:SendCommand" and status == 200:
            aws_fleet.sent(self.world, json.loads(body)["Command"]["CommandId"], req.params)
        if arn and status == 404 and req.action in ("s3:GetObject", "s3:GetObjectVersion") and \
                self._judge(arn, req, "s3:ListBucket", f"arn:aws:s3:::{req.bucket}") is not None:
            # S3 answers 403, not 404, for a missing key to a caller without s3:ListBucket (GetObject API
            # reference, "Permissions": https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html)
            return self._error(req, 403, "AccessDenied", "Access Denied")
        if req.protocol == "json" and status >= 400 and not body.lstrip().startswith(b"{"):
            found = re.search(rb"<Code>([^<]+)</Code>", body)
            code = found.group(1).decode() if found else "InternalFailure"
            found = re.search(rb"<Message>([^<]*)</Message>", body)
            message = (found.group(1) if found else body[:200]).decode("utf-8", "replace")
            code = {"InvalidClientTokenId": "UnrecognizedClientException",
                    "SignatureDoesNotMatch": "InvalidSignatureException"}.get(code, code)
            return self._error(req, 500 if status >= 500 else 400, code, message)
        return status, headers, body

    def _authorize(self, req: Request, arn: str, resource: str | None):
        """IAM on every call as AWS builds the resource: the endpoint policy, the role's policies and (S3) the bucket
        policy, then for SSE-KMS writes and reads the KMS key S3 uses on the caller's behalf. GetCallerIdentity
        needs no permission ("No permissions are required to perform this operation", STS API reference:
        https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)."""
        if req.action == "sts:GetCallerIdentity":
            return None
        found = self._judge(arn, req, req.action, resource)
        if found is None and req.protocol == "s3" and req.key:
            found = self._kms(arn, req)
        if found is None:
            return None
        kind, policy_type, action, target = found
        log.info("%s denies %s on %s (%s)", policy_type, action, target, kind)
        self.world.denied.append(f"{action} {target or '*'} ({kind}: {policy_type})")
        return self._access_denied(req, iam.denial_message(arn, action, target, kind, policy_type))

    def _user(self, req: Request):
        """An IAM user's call (an operator's, not the admin's) judged on the user's policies, on the resource the
        service authorization reference names: the role for SimulatePrincipalPolicy, the instance profile for
        GetInstanceProfile, the document for GetDocument, "*" for EC2's and SSM's Describe calls (https://docs.aws.amazon.com/service-
        authorization/latest/reference/list_awsidentityandaccessmanagementiam.html)."""
        form = parse_qs(req.body.decode("utf-8", "replace")) if req.protocol != "json" else {}
        profile = (form.get("InstanceProfileName") or [""])[0]
        named = req.resource(self.world.account, self.world.region) or "*"
        resource = (form.get("PolicySourceArn") or [
            f"arn:aws:iam::{self.world.account}:instance-profile/{profile}" if profile else named])[0]
        found = self.world.user_decision(req.access_key, req.action, resource)
        if found is None or found[1] == "allow":
            return None
        return self._access_denied(req, iam.denial_message(found[0], req.action, resource, found[1],
                                                           "identity-based policy"))

    def _judge(self, arn: str, req: Request, action: str, named: str | None):
        """(kind, policy type, action, resource as named) of a denial, or None: allowed."""
        world, resource = self.world, named or "*"
        context = world.request_context(arn, req.endpoint, req.environ.get("REMOTE_ADDR"), req.via)
        policy = world.endpoint_policy(req.endpoint, req.via)
        endpoint = "allow" if policy is None else iam.evaluate(policy, action, resource,
                                                               world.principals(arn, req.endpoint, req.via), context)
        identity = world.identity_decision(arn, action, resource, context)
        bucket_policy = world.bucket_policy(req.bucket) if req.protocol == "s3" and req.bucket else None
        on_bucket = None if bucket_policy is None else iam.evaluate(bucket_policy, action, resource,
                                                                    world.principals(arn), context)
        denied = iam.combine(endpoint, identity, on_bucket)
        return None if denied is None else (*denied, action, named)

    def _kms(self, arn: str, req: Request):
        """S3 asks KMS for a data key (writes) or a decryption (reads) as the caller; KMS's denial comes back
        through S3 naming the key (aws-deadline/deadline-cloud test/unit/deadline_job_attachments/test_upload.py:
        'is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:...:key/...')."""
        key = self.world.bucket_kms_key(req.bucket)
        action = {"s3:PutObject": "kms:GenerateDataKey", "s3:GetObject": "kms:Decrypt"}.get(req.action)
        if not key or not action:
            return None
        context = self.world.request_context(arn, req.endpoint, req.environ.get("REMOTE_ADDR"), req.via)
        identity = self.world.identity_decision(arn, action, key, context)
        return None if identity == "allow" else (identity, "identity-based policy", action, key)

    def _backend(self, req: Request):
        captured: dict = {}

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = int(status.split()[0]), list(headers)
            return lambda data: None

        result = self.world.backend_app(req.environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        req.head_length = dict((k.lower(), v) for k, v in captured["headers"]).get("content-length")
        return captured["status"], captured["headers"], body

    def _unsigned(self, req: Request):
        if req.protocol != "s3":
            if req.protocol == "json":
                return 403, [("Content-Type", "application/json")], b'{"message":"Missing Authentication Token"}'
            return self._error(req, 403, "MissingAuthenticationToken", "Request is missing Authentication Token")
        if req.key and req.method in ("GET", "HEAD"):  # dnf, curl, the agent's fallback: AWS's public objects
            served = aws_owned.read(self.world, req, self.world.network_context(
                req.endpoint, req.environ.get("REMOTE_ADDR"), req.via))
            return served or self._error(req, 403, "AccessDenied", "Access Denied")
        region = self.world.bucket_region(req.bucket) if req.bucket else None
        if req.method == "HEAD" and req.bucket and not req.key:  # how SDKs and the agent discover a bucket's region
            if not region:
                return 404, [], b""
            return 403 if region == self.world.region else 301, [("x-amz-bucket-region", region)], b""
        return self._error(req, 403, "AccessDenied", "Access Denied")

    def _clock(self, req: Request, now: float):
        try:
            signed_at = calendar.timegm(time.strptime(req.amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None  # no X-Amz-Date: moto's signature check decides
        skew = signed_at - now
        if req.protocol == "s3":
            if abs(skew) <= 900:
                return None
            server_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            extra = (f"<RequestTime>{req.amz_date}</RequestTime><ServerTime>{server_time}</ServerTime>"
                     "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>")
            return self._error(req, 403, "RequestTimeTooSkewed",
                               "The difference between the request time and the current time is too large.", extra)
        if abs(skew) <= 300:
            return None
        message = (f"Signature expired: {req.amz_date} is now earlier than {_amz_time(now - 300)} "
                   f"({_amz_time(now)} - 5 min.)" if skew < 0 else
                   f"Signature not yet current: {req.amz_date} is still later than {_amz_time(now + 300)} "
                   f"({_amz_time(now)} + 5 min.)")
        code = "InvalidSignatureException" if req.protocol == "json" else "SignatureDoesNotMatch"
        return self._error(req, 400 if req.protocol == "json" else 403, code, message)

    def _access_denied(self, req: Request, message: str):
        if req.protocol == "ec2":
            return self._error(req, 403, "UnauthorizedOperation",
                               f"You are not authorized to perform this operation. {message}")
        code = "AccessDeniedException" if req.protocol == "json" else "AccessDenied"
        return self._error(req, 400 if req.protocol == "json" else 403, code, message)

    def _s3_redirect(self, req: Request, region: str):
        headers = [("x-amz-bucket-region", region)]
        if req.method == "HEAD":
            return 301, headers, b""
        return self._error(req, 301, "PermanentRedirect", "The bucket you are attempting to access must be addressed "
                           "using the specified endpoint. Please send all future requests to this endpoint.",
                           f"<Endpoint>{req.bucket}.s3.{region}.amazonaws.com</Endpoint><Bucket>{req.bucket}</Bucket>",
                           headers)

    @staticmethod
    def _error(req: Request, status: int, code: str, message: str, extra: str = "", headers=None):
        """An error in the shape of the service that received the request."""
        rid, headers = str(uuid.uuid4()), list(headers or [])
        esc = xml_escape(message)
        if req.protocol == "json":
            headers += [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", rid), ("x-amzn-ErrorType", code)]
            return status, headers, json.dumps({"__type": code, "message": message}).encode()
        if req.protocol == "s3":
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{esc}</Message>{extra}'
                    f"<RequestId>{rid[:16].upper()}</RequestId><HostId>{uuid.uuid4().hex}</HostId></Error>")
            headers += [("x-amz-request-id", rid[:16].upper())]
        elif req.protocol == "ec2":
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                    f"<Message>{esc}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>")
        else:
            body = (f'<ErrorResponse xmlns="https://{req.signing_service}.amazonaws.com/doc/2011-06-15/"><Error>'
                    f"<Type>Sender</Type><Code>{code}</Code><Message>{esc}</Message></Error>"
                    f"<RequestId>{rid}</RequestId></ErrorResponse>")
        return status, headers + [("Content-Type", "application/xml")], body.encode()
