"""The doctor's botocore clients verify TLS as strictly as its own probes, with the CA bundle loaded once
(vpce_doctor/cas.py), on the newest (.venv) and the oldest (.venv-oldest: botocore 1.33) botocore claimed."""
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
PYTHONS = {"newest": str(REPO / ".venv" / "bin" / "python"), "oldest": str(REPO / ".venv-oldest" / "bin" / "python")}
SNIPPET = """
import ssl
from botocore import httpsession
from vpce_doctor.aws import Clients, call
loads = []
original = ssl.SSLContext.load_verify_locations
def counting(self, *args, **kwargs):
    loads.append(args[0] if args else kwargs.get("cafile") or kwargs.get("capath"))
    return original(self, *args, **kwargs)
ssl.SSLContext.load_verify_locations = counting
endpoints = {s: f"https://{s}.ap-northeast-1.amazonaws.com" for s in ("sts", "ec2", "ssm", "logs")}
clients = Clients("ap-northeast-1", endpoints, 2, lambda: 10)
for service, operation in (("sts", "get_caller_identity"), ("ec2", "describe_vpc_endpoints"),
                           ("ssm", "get_document"), ("logs", "describe_log_groups")):
    params = {"Name": "SSM-SessionManagerRunShell"} if service == "ssm" else {}
    result = call(clients.client(service), operation, **params)
    print(service, result.ok, result.kind, result.message[:200].replace(chr(10), " "))
print("patched", getattr(httpsession.URLLib3Session, "_vpce_doctor_cas_once", False))
print("loads", len(loads), len(set(loads)))
"""


@pytest.mark.parametrize("botocore", sorted(PYTHONS))
def test_untrusted_and_wrong_name_certificates_still_fail_for_api_calls(lab, botocore):
    lab.switch({"eni": {"10.0.1.14": {"mode": "untrusted"}, "10.0.1.16": {"mode": "wrong-name"}}})
    # the oldest, as distro botocore: the system trust store, where the lab puts its CA (tests/lab/test_scenarios.py)
    env = {"AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"} if botocore == "oldest" else {}
    done = lab.run([PYTHONS[botocore], "-c", SNIPPET], env=env, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 6, done.stderr[-2000:]
    assert lines[0].startswith("sts False tls") and "CERTIFICATE_VERIFY_FAILED" in lines[0]
    assert lines[1].startswith("ec2 False tls") and "doesn't match" in lines[1]
    assert lines[2].startswith("ssm True") and lines[3].startswith("logs True")
    assert lines[4] == "patched True"
    assert lines[5] == "loads 1 1"  # four clients, four connections, one CA bundle parse
