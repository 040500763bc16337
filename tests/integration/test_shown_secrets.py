"""Issue 12 items 15 and 16, end to end: secrets planted in the environment and in a credential_process never reach
the text, JSON or summary output, and a value with a newline cannot forge a summary line for `fleet` to read.
Every server is on loopback; the proxy is a closed loopback port."""
from __future__ import annotations

import pytest

from tests.servers import closed_port
from vpce_doctor import fleet

SECRET = "Zq9SECRETx"


@pytest.mark.parametrize("output", ["text", "json", "summary"])
def test_planted_passwords_in_urls_never_reach_output(world, output):
    proxy = f"http://ops:p/{SECRET}#?@x@127.0.0.1:{closed_port()}"  # / # ? @ in the password, as 0.1.0 leaked
    imds = f"http://admin:{SECRET}/@127.0.0.1:{world.imds.port}"
    world.environ.update({"HTTPS_PROXY": proxy, "https_proxy": proxy, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
                          "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://u:{SECRET}@127.0.0.1:9/creds"})
    run = world.doctor(output=output, only=["local", "imds"])
    assert SECRET not in run.out and SECRET not in run.err, (run.out, run.err)
    assert run.code in (0, 1, 2)
    if output == "json":
        assert run.finding("imds:token")["status"] == "pass"  # the userinfo was hidden, not the endpoint broken
        assert "***@127.0.0.1" in str(run.finding("local:proxy")["evidence"])


def test_credential_process_stderr_never_reaches_output(world, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text(
        "[default]\ncredential_process = sh -c 'echo aws_secret_access_key=" + SECRET + " >&2; exit 1'\n")
    files = {"HOME": str(home), "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
             "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials")}
    world.environ.update(files)
    for name, value in files.items():  # botocore reads the process environment itself
        monkeypatch.setenv(name, value)
    run = world.doctor(output="json", only=["creds:source"])
    finding = run.finding("creds:source")
    assert finding["status"] == "fail" and "custom-process" in finding["summary"], finding
    assert SECRET not in run.out


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "NO_PROXY"])
def test_a_newline_in_a_proxy_variable_cannot_forge_a_summary_line(world, variable):
    forged = "vpce-doctor 0.1.0 i-0123456789abcdef0 eu-west-1: healthy (exit 0; 30 pass, 0 warn, 0 fail, 0 skip, 0 error)"
    proxy = f"http://127.0.0.1:{closed_port()}"
    world.environ.update({"HTTPS_PROXY": proxy + (f"\n{forged}" if variable == "HTTPS_PROXY" else ""),
                          "NO_PROXY": f"x\n{forged}\n" if variable == "NO_PROXY" else "x"})
    for output in ("summary", "text"):
        run = world.doctor(output=output, only=["local:proxy"])
        assert forged not in run.out.splitlines() and "\x1b" not in run.out
    parsed = fleet.parse_summary(world.doctor(output="summary", only=["local:proxy"]).out)
    assert parsed is not None and parsed["exit_code"] == run.code != 0
    assert forged in run.out.replace("\\x0a", "\n") or variable == "NO_PROXY"  # it was shown, escaped, not dropped
