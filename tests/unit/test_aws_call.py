"""aws.call(): one API call as a Call, never an exception; and the evidence it gives, key for key and in order, as the
loose dicts of 0.1.0 gave it (reports stay byte-identical).

The errors are botocore's own exception classes with the shapes botocore gives them: a ClientError's parsed
response is {"Error": {"Code", "Message"}, "ResponseMetadata": {"HTTPStatusCode", "HTTPHeaders", ...}}
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/error-handling.html); EndpointConnectionError and
ConnectTimeoutError take the endpoint URL (botocore/exceptions.py). The client is a stand-in object: call() only
looks an operation up on it by name."""
from dataclasses import FrozenInstanceError

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from vpce_doctor.aws import Call, call

DENIED = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
          "ResponseMetadata": {"RequestId": "0A1B2C3D4E5F6A7B", "HTTPStatusCode": 403,
                               "HTTPHeaders": {"x-amz-request-id": "0A1B2C3D4E5F6A7B",
                                               "x-amz-bucket-region": "eu-west-1"}}}


class Client:
    def __init__(self, outcome):
        self.outcome, self.asked = outcome, []

    def put_object(self, **params):
        self.asked.append(params)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def test_an_answer_is_ok_with_its_response_and_no_body_in_evidence():
    got = call(Client({"ETag": '"9b2cf535f27731c974343645a3985328"'}), "put_object", Bucket="b", Key="k")
    assert got.ok and got.response == {"ETag": '"9b2cf535f27731c974343645a3985328"'} and got.ms >= 0
    assert list(got.summary()) == ["ok", "ms"] and got.summary()["ok"] is True
    assert got.evidence() == got.summary()


def test_an_api_error_keeps_code_message_status_and_headers_in_the_old_order():
    got = call(Client(ClientError(DENIED, "PutObject")), "put_object", Bucket="b", Key="k")
    assert (got.ok, got.kind, got.code, got.message, got.status) == (False, "api", "AccessDenied", "Access Denied",
                                                                       403)
    assert got.headers["x-amz-bucket-region"] == "eu-west-1" and got.response == {}
    assert list(got.summary()) == ["ok", "kind", "code", "message", "status", "ms"]
    assert list(got.evidence()) == ["ok", "kind", "code", "message", "status", "headers", "ms"]
    assert got.evidence()["headers"] == DENIED["ResponseMetadata"]["HTTPHeaders"]


def test_no_answer_says_why_with_botocores_name_and_no_status():
    unreachable = call(Client(EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com/")),
                       "put_object")
    assert (unreachable.kind, unreachable.code) == ("unreachable", "EndpointConnectionError")
    assert "https://ssm.eu-west-1.amazonaws.com/" in unreachable.message
    assert list(unreachable.summary()) == ["ok", "kind", "code", "message", "ms"]
    slow = call(Client(ConnectTimeoutError(endpoint_url="https://ssm.eu-west-1.amazonaws.com/")), "put_object")
    assert (slow.kind, slow.code, slow.status) == ("timeout", "ConnectTimeoutError", None)


def test_the_s3_probes_read_back_is_the_last_key():
    read = Call(True, 4.0, {"Body": b"..."}, matches=False)
    assert read.summary() == {"ok": True, "ms": 4.0, "matches": False}


def test_a_call_is_frozen():
    with pytest.raises(FrozenInstanceError):
        Call(False, code="AccessDenied").code = "other"  # type: ignore[misc]
