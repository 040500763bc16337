"""The doctor's botocore clients verify TLS as strictly as its own probes, with the CA bundle loaded once."""
from pathlib import Path

PYTHON = str(Path(__file__).parents[2] / ".venv" / "bin" / "python")
SNIPPET = """
from botocore import httpsession
from vpce_doctor.aws import Clients, call
endpoints = {s: f"https://{s}.ap-northeast-1.amazonaws.com" for s in ("sts", "ec2", "ssm")}
clients = Clients("ap-northeast-1", endpoints, 2, lambda: 10)
for service, operation in (("sts", "get_caller_identity"), ("ec2", "describe_vpcs"), ("ssm", "get_document")):
    params = {"Name": "SSM-SessionManagerRunShell"} if service == "ssm" else {}
    result = call(clients.client(service), operation, **params)
    print(service, result.get("ok"), result.get("kind"), str(result.get("message"))[:200].replace(chr(10), " "))
print("patched", getattr(httpsession.URLLib3Session, "_vpce_doctor_cas_once", False))
"""


def test_untrusted_and_wrong_name_certificates_still_fail_for_api_calls(lab):
    lab.switch({"eni": {"10.0.1.14": {"mode": "untrusted"}, "10.0.1.16": {"mode": "wrong-name"}}})
    lines = lab.run([PYTHON, "-c", SNIPPET], timeout=60).stdout.splitlines()
    assert lines[0].startswith("sts False tls") and "CERTIFICATE_VERIFY_FAILED" in lines[0]
    assert lines[1].startswith("ec2 False tls") and "doesn't match" in lines[1]
    assert lines[2].startswith("ssm True")
    assert lines[3] == "patched True"
