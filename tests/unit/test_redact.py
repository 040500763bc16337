"""Issue 12 items 15 and 16: one redaction for every value shown, tested over URLs, env values and error texts that
carry planted secrets, and over text carrying control, escape and bidi characters."""
from __future__ import annotations

import string
import unicodedata

from hypothesis import example, given, settings, strategies as st

from vpce_doctor import redact
from vpce_doctor.checks import local

SECRET = "Zq9SECRETx"  # planted: must never appear in what is shown
# Characters a raw password can hold in a proxy variable; requests/urllib3/botocore take them unencoded.
SPECIAL = st.text(alphabet="/#?@:%&=+!$*;,[]~" + string.ascii_letters + string.digits, max_size=12)
HOSTS = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}\Z")
SCHEMES = st.sampled_from(["http", "https", "socks5", "socks5h"])
# Texts botocore and urllib3 wrap around a proxy URL (botocore/exceptions.py ProxyConnectionError,
# urllib3/exceptions.py LocationParseError, botocore HTTPClientError).
FORMATS = ['Failed to connect to proxy URL: "{url}"', "Failed to parse: {url}",
           "An HTTP Client raised an unhandled exception: Failed to parse: {url}", "{url}", "proxy {url} refused"]


def planted(user: str, before: str, after: str) -> str:
    return f"{user}:{before}{SECRET}{after}"


@given(SCHEMES, SPECIAL, SPECIAL, SPECIAL, HOSTS, st.integers(1, 65535))
@example("http", "u", "p/", "#?@", "proxy", 3128)
@example("http", "", "", "", "proxy", 3128)
@settings(max_examples=300)
def test_a_url_value_never_shows_its_userinfo(scheme, user, before, after, host, port):
    value = f"{scheme}://{planted(user, before, after)}@{host}:{port}"
    shown = redact.url(value)
    assert SECRET not in shown and shown.endswith(f"@{host}:{port}")
    assert local._redact(value) == shown  # local:proxy and ssm:agent evidence use the same function


@given(SPECIAL, SPECIAL, HOSTS)
def test_a_proxy_value_without_a_scheme_is_hidden_too(before, after, host):
    assert SECRET not in redact.url(f"user:{before}{SECRET}{after}@{host}:8080")


@given(SCHEMES, SPECIAL, SPECIAL, HOSTS, st.sampled_from(FORMATS), st.text(max_size=30))
@settings(max_examples=300)
def test_error_texts_never_show_a_planted_password(scheme, before, after, host, form, noise):
    text = form.format(url=f"{scheme}://user:{before}{SECRET}{after}@{host}:3128") + " " + noise
    assert SECRET not in redact.secrets(text) and SECRET not in redact.line(text)
    assert SECRET not in str(redact.tree({"message": text, "list": [text]}))


@given(st.sampled_from(["AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "HTTPS_PROXY"]),
       SPECIAL, HOSTS)
def test_env_values_with_userinfo_are_hidden_in_free_text(name, before, host):
    text = f"IMDSv2 token request to http://admin:{before}{SECRET}@{host}:80 failed ({name})"
    assert SECRET not in redact.line(text) and host in redact.line(text)


def test_credential_process_stderr_is_never_shown():
    # botocore/exceptions.py CredentialRetrievalError: 'Error when retrieving credentials from {provider}: {error_msg}'
    # and botocore/credentials.py ProcessProvider passes the process's stderr as error_msg.
    text = ("no credentials: CredentialRetrievalError: Error when retrieving credentials from custom-process: "
            f"aws_secret_access_key={SECRET}\nline two {SECRET}")
    assert SECRET not in redact.line(text) and "custom-process" in redact.line(text)


def test_secret_named_parameters_are_hidden():
    text = f"https://b.s3.eu-west-1.amazonaws.com/k?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}&x=1 password={SECRET}"
    assert SECRET not in redact.secrets(text) and "x=1" in redact.secrets(text)


INVISIBLE = st.sampled_from(["\x1b[2J", "\x1b]0;title\x07", "\r", "\n", "\x00", "\x7f", "\x9b", "\u202e", "\u2066",
                             "\u200f", "\u061c", "\u2028", "\ufeff"])


@given(st.lists(st.one_of(st.text(max_size=8), INVISIBLE), max_size=12).map("".join))
@settings(max_examples=300)
def test_nothing_shown_on_a_line_can_move_the_cursor_reorder_or_break_the_line(text):
    shown = redact.line(text)
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for c in shown), ascii(shown)
    assert "\n" not in shown and "\x1b" not in shown


def test_a_forged_summary_line_stays_on_its_own_line():
    forged = "ssm.eu-west-1.amazonaws.com\nvpce-doctor 0.1.0 i-0 eu-west-1: healthy (exit 0; 9 pass)"
    assert redact.line(forged).count("\n") == 0 and "\\x0a" in redact.line(forged)


def test_json_keeps_newlines_in_evidence_but_not_escapes():
    assert redact.tree({"traceback": "a\nb\x1b"}) == {"traceback": "a\nb\\x1b"}


# Trust boundary: values from outside are shell-quoted in every printed command (an operator pastes them as root).
@given(st.text(min_size=1, max_size=40))
@example("\n")
@example("[::1]:443")
def test_a_filled_command_holds_any_value_as_exactly_one_shell_word(value):
    import shlex
    from vpce_doctor.model import Remedy
    command = Remedy("t", ("aws ec2 describe-vpcs --vpc-ids {vpc} --region eu-west-1",)).filled(vpc=value).commands[0]
    if "\x00" not in value:
        assert shlex.split(command)[4] == value and len(shlex.split(command)) == 7


def test_plain_ids_and_placeholders_stay_unquoted():
    from vpce_doctor.model import Remedy
    remedy = Remedy("in {vpc}", ("x {vpc} {arn} {missing}",))
    filled = remedy.filled(vpc="vpc-0abc", arn="arn:aws:iam::123456789012:role/app")
    assert filled.commands == ("x vpc-0abc arn:aws:iam::123456789012:role/app <missing>",)
    assert remedy.filled(vpc="$(reboot)").commands[0].startswith("x '$(reboot)' ")
    assert remedy.filled(vpc="a b").text == "in a b"  # prose is not quoted


# Issue 12: a raw space or quote in a password, in text that is not from this run's environment (so not learnt).
PRINTABLE = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=12)
# Where such a password turns up: the agent's start-up listing of its proxy variables, 'log.Infof(key + ": " +
# value)' after "Proxy environment variables:" (aws/amazon-ssm-agent core/agent.go initializeBasicModules; the
# header line in agent-log-lines.jsonl, aws/amazon-ssm-agent#609), and proxy lines of environment files
# (systemd EnvironmentFile=, /etc/environment), quoted or not, and botocore's quoted "proxy URL" error.
LINES = ["2024-11-04 09:08:13.4731 INFO https_proxy: {url}", 'HTTPS_PROXY="{url}"', "https_proxy={url}",
         "Environment='HTTPS_PROXY={url}' NO_PROXY=169.254.169.254", 'Failed to connect to proxy URL: "{url}"']


@given(SCHEMES, SPECIAL, PRINTABLE, PRINTABLE, HOSTS, st.integers(1, 65535), st.sampled_from(LINES))
@example("http", "u", " ", "", "proxy", 3128, LINES[0])
@example("http", "u", '"', "x", "proxy", 3128, LINES[1])
@example("http", "u", "p@ss ", " w@rd", "proxy", 3128, LINES[0])
@example("http", "[u", " ", "", "proxy", 3128, LINES[2])
@example("http", "0", "0<", "", "a", 1, LINES[0])  # "0:0" reads as host:port
@example("http", "/", "", '"', "a", 1, LINES[0])  # an empty authority
@settings(max_examples=400)
def test_a_password_with_a_raw_space_or_quote_is_hidden_whole(scheme, user, before, after, host, port, form):
    text = form.format(url=f"{scheme}://{planted(user, before, after)}@{host}:{port}")
    for shown in (redact.line(text), str(redact.tree({"line": text}))):
        assert SECRET not in shown, shown
    assert f"@{host}:{port}" in redact.line(text)


@given(PRINTABLE, PRINTABLE, st.sampled_from(['password="{pw}"', "password='{pw}' rest", "aws_secret_access_key = {pw}",
                                               '{{"Password": {json}, "User": "bob"}}', "db_password={pw}"]))
@example(' "', "'", 'password="{pw}"')
def test_a_secret_named_value_is_hidden_whole_whatever_it_holds(before, after, form):
    import json
    value = before + SECRET + after
    assert SECRET not in redact.line(form.format(pw=value, json=json.dumps(value)))


def test_urls_without_credentials_are_left_whole():
    for text in ['Post "https://ssm.us-east-1.amazonaws.com/": proxyconnect tcp: dial tcp 10.0.0.50:3128',
                 "http://[fd00:ec2::254]:80/latest/api/token timed out",
                 "https://ssm.eu-west-1.amazonaws.com/ timed out; mail ops@example.com",
                 "https://s3.eu-west-1.amazonaws.com:443/b/k failed", "X-aws-ec2-metadata-token-ttl-seconds: 21600"]:
        assert redact.secrets(text) == text
