"""The SSM Command documents: schema basics, parameter patterns that reject injection, and the run script itself,
executed by sh (dash) and bash with hostile SSM_* values, never running what they carry."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SSM = REPO / "packaging" / "ssm"
RUN = SSM / "vpce-doctor-run.yaml"
INSTALL = SSM / "vpce-doctor-install.yaml"
SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]

# What an attacker (or a typo) might send. Commands only ever touch MARKER, so a failure is harmless.
MARKER = "__MARKER__"
HOSTILE = [
    f"$(touch {MARKER})", f"`touch {MARKER}`", f"; touch {MARKER}", f"&& touch {MARKER}", f"| touch {MARKER}",
    f"x\ntouch {MARKER}", f"x\rtouch {MARKER}", f'"; touch {MARKER}; "', f"'; touch {MARKER}; '",
    f"${{IFS}}touch${{IFS}}{MARKER}", f"x;touch {MARKER}#", f"$(touch\t{MARKER})",
    "--output json --config /etc/shadow", "--config=/etc/shadow", "-h", "ssm --only imds", "ssm,s3 ", " ssm",
    "*", "$HOME", "ssm\n", "ssm\x00s3", "ssm\u2028s3", "\u0663\u0660", "٣",
]
# Never executed, only matched against the patterns.
PATTERN_ONLY = ["; rm -rf /", "$(rm -rf /)", "`rm -rf /`", "\n rm -rf /"]

VALID = {
    "bucket": ["", "my-bucket", "probe.bucket.eu-west-1", "a1b", "x" * 63],
    "services": ["ssm", "ssm,ssmmessages,ec2messages,s3", "ecr.api,ecr.dkr,s3-global.accesspoint", "execute-api"],
    "ship": ["true", "false"],
    "logGroup": ["/vpce-doctor/reports", "/aws/ssm/SessionLogs", "app.logs#1", "a" * 512],
    "timeoutSeconds": ["1", "9", "20", "99", "120", "299", "300"],
}
INVALID = {
    "bucket": ["ab", "-bucket", "bucket-", "Bucket", "b" * 64, "my_bucket", "my bucket"],
    "services": ["", ",", "ssm,", ",ssm", "ssm,,s3", "SSM", "ssm s3", "ssm;s3", ".ssm", "ssm."],
    "ship": ["", "True", "yes", "1", "true ", "false\n"],
    "logGroup": ["", "-x", "a" * 513, "log group", "log:group", "log*"],
    "timeoutSeconds": ["", "0", "301", "020", "1e3", "-1", "1.5", " 20", "20 ", "999"],
}
FLAGS = {"bucket": "--bucket", "services": "--services", "logGroup": "--log-group", "timeoutSeconds": "--timeout"}
DEFAULTS = {"bucket": "probe-bucket", "services": "ssm,s3", "ship": "true", "logGroup": "/vpce-doctor/reports",
            "timeoutSeconds": "20"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def script(path: Path, step: str) -> str:
    (found,) = [s for s in load(path)["mainSteps"] if s["name"] == step]
    return "\n".join(found["inputs"]["runCommand"]) + "\n"


# --- schema -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [RUN, INSTALL], ids=lambda p: p.name)
def test_schema_basics(path):
    doc = load(path)
    assert doc["schemaVersion"] == "2.2"  # a string: CloudFormation and SSM reject the float 2.2
    assert set(doc) == {"schemaVersion", "description", "parameters", "mainSteps"}
    names = [s["name"] for s in doc["mainSteps"]]
    assert len(names) == len(set(names))
    for step in doc["mainSteps"]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", step["name"])
        assert step["precondition"] == {"StringEquals": ["platformType", "Linux"]}
        if step["action"] == "aws:runShellScript":
            assert all(isinstance(line, str) for line in step["inputs"]["runCommand"])
            assert 0 < int(step["inputs"]["timeoutSeconds"]) <= 172800
    for name, parameter in doc["parameters"].items():
        assert parameter["type"] == "String"
        pattern = parameter["allowedPattern"]
        assert pattern.startswith("^") and pattern.endswith("$"), "the agent's Go regexp searches; anchor it"
        if "default" in parameter:
            assert re.fullmatch(pattern, parameter["default"]), name
            assert len(parameter["default"]) <= parameter.get("maxChars", 4096)


def test_run_document_shape():
    doc = load(RUN)
    assert list(doc["parameters"]) == ["bucket", "services", "ship", "logGroup", "timeoutSeconds"]
    assert all(p["interpolationType"] == "ENV_VAR" for p in doc["parameters"].values())
    (step,) = doc["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    text = script(RUN, "runVpceDoctor")
    assert "{{" not in text and "}}" not in text      # nothing is substituted into the script
    assert "eval" not in text.split() and "sh -c" not in text
    assert int(step["inputs"]["timeoutSeconds"]) > 300 + 60  # the doctor's largest deadline, plus shipping


def test_json_document_is_the_yaml_document():
    assert json.loads((SSM / "vpce-doctor-run.json").read_text()) == load(RUN)
    assert json.loads((SSM / "vpce-doctor-install.json").read_text()) == load(INSTALL)


def test_install_document_shape():
    doc = load(INSTALL)
    download, install = doc["mainSteps"]
    assert download["action"] == "aws:downloadContent" and download["inputs"]["sourceType"] == "S3"
    assert json.loads(download["inputs"]["sourceInfo"].replace("{{ bundleUrl }}", "u")) == {"path": "u"}
    assert download["inputs"]["destinationPath"] == "/opt/vpce-doctor/incoming/"
    assert install["action"] == "aws:runShellScript"
    assert "{{" not in script(INSTALL, "installBundle")
    assert doc["parameters"]["sha256"]["interpolationType"] == "ENV_VAR"
    assert doc["parameters"]["enableTimer"]["interpolationType"] == "ENV_VAR"
    assert "interpolationType" not in doc["parameters"]["bundleUrl"]  # used only as downloadContent data


# --- patterns ---------------------------------------------------------------------------------------------------

def pattern(path: Path, name: str) -> str:
    return load(path)["parameters"][name]["allowedPattern"]


def test_patterns_stay_in_the_java_go_python_common_subset():
    """SSM checks allowedPattern with Java regex (API) and Go regexp (agent); these tests use Python's re.
    Keep to what all three read alike: no lookaround, backreferences, lazy/possessive quantifiers, \\d \\w \\s \\b
    (Unicode-aware in Python) or inline flags."""
    for path in (RUN, INSTALL):
        for name, parameter in load(path)["parameters"].items():
            p = parameter["allowedPattern"]
            assert not re.search(r"\(\?|\\[1-9dDwWsSbBAzZ]|[*+?}]\?|[*+?}]\+|\\[pP]\{", p), (name, p)
            re.compile(p)


@pytest.mark.parametrize("name", list(VALID))
def test_patterns_accept_real_values_and_reject_hostile_ones(name):
    p = pattern(RUN, name)
    max_chars = load(RUN)["parameters"][name].get("maxChars", 4096)
    for value in VALID[name]:
        assert re.fullmatch(p, value) and len(value) <= max_chars, (name, value)
    for value in INVALID[name] + HOSTILE + PATTERN_ONLY:
        assert not (re.fullmatch(p, value) and len(value) <= max_chars), (name, value)


def test_install_patterns():
    url = pattern(INSTALL, "bundleUrl")
    good = ["https://artifacts.s3.eu-west-1.amazonaws.com/vpce-doctor/vpce-doctor-0.1.0-x86_64.tar.gz",
            "https://artifacts.s3.eu-west-1.amazonaws.com/vpce-doctor-1.2.3-aarch64.tar.gz",
            "https://s3.cn-north-1.amazonaws.com.cn/my.bucket/a/b/vpce-doctor-0.2.0.dev1-x86_64.tar.gz"]
    bad = ["http://artifacts.s3.eu-west-1.amazonaws.com/vpce-doctor-0.1.0-x86_64.tar.gz",
           "https://artifacts.s3.amazonaws.com.evil.example/vpce-doctor-0.1.0-x86_64.tar.gz",
           "https://evil.example/vpce-doctor-0.1.0-x86_64.tar.gz",
           "https://my.bucket.s3.eu-west-1.amazonaws.com/vpce-doctor-0.1.0-x86_64.tar.gz",  # TLS name mismatch
           "https://artifacts.s3.eu-west-1.amazonaws.com/../vpce-doctor-0.1.0-x86_64.tar.gz",
           "https://artifacts.s3.eu-west-1.amazonaws.com/x/vpce-doctor-0.1.0-i686.tar.gz",
           'https://artifacts.s3.eu-west-1.amazonaws.com/"}/vpce-doctor-0.1.0-x86_64.tar.gz',
           "https://artifacts.s3.eu-west-1.amazonaws.com/vpce-doctor-0.1.0-x86_64.tar.gz\n"]
    for value in good:
        assert re.fullmatch(url, value), value
    for value in bad + HOSTILE + PATTERN_ONLY:
        assert not re.fullmatch(url, value), value
    sha = pattern(INSTALL, "sha256")
    assert re.fullmatch(sha, "0" * 64) and not re.fullmatch(sha, "0" * 63) and not re.fullmatch(sha, "A" * 64)
    for value in HOSTILE + PATTERN_ONLY:
        assert not re.fullmatch(sha, value)
        assert not re.fullmatch(pattern(INSTALL, "enableTimer"), value)


JAVA_CHECK = textwrap.dedent("""\
    import java.nio.file.*; import java.util.regex.*; import java.util.*;
    public class Check { public static void main(String[] a) throws Exception {
      List<String> lines = Files.readAllLines(Paths.get(a[0]));
      for (int i = 0; i < lines.size(); i += 2) {
        String p = new String(Base64.getDecoder().decode(lines.get(i)), "UTF-8");
        String v = new String(Base64.getDecoder().decode(lines.get(i + 1)), "UTF-8");
        System.out.println(Pattern.compile(p).matcher(v).matches() ? "1" : "0");
      } } }
    """)


def test_java_regex_agrees_with_python(tmp_path):
    """The API validates with java.util.regex: the same verdict for every value tried here."""
    import base64
    cases = []
    for path in (RUN, INSTALL):
        for name, parameter in load(path)["parameters"].items():
            for value in VALID.get(name, []) + INVALID.get(name, []) + HOSTILE + PATTERN_ONLY:
                cases.append((parameter["allowedPattern"], value))
    (tmp_path / "Check.java").write_text(JAVA_CHECK)
    (tmp_path / "cases").write_text("".join(base64.b64encode(p.encode()).decode() + "\n" +
                                            base64.b64encode(v.encode()).decode() + "\n" for p, v in cases))
    result = subprocess.run(["java", str(tmp_path / "Check.java"), str(tmp_path / "cases")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    java = result.stdout.split()
    python = ["1" if re.fullmatch(p, v) else "0" for p, v in cases]
    assert java == python, [c for c, j, y in zip(cases, java, python) if j != y]


# --- the run script, executed ------------------------------------------------------------------------------------

@pytest.fixture
def sandbox(tmp_path):
    if os.path.exists("/opt/vpce-doctor/bin/vpce-doctor"):
        pytest.fail("a real vpce-doctor is installed in /opt/vpce-doctor: the script under test would run it")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vpce-doctor"
    # A stand-in that records its argv exactly (NUL-separated) and exits as told.
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$ARGV_FILE"\n'
                    'echo "vpce-doctor summary: 1 problem"\nexit "$FAKE_EXIT"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "work").mkdir()
    (tmp_path / "run.sh").write_text(script(RUN, "runVpceDoctor"))
    return tmp_path


def run_script(sandbox: Path, shell: str, values, fake_exit: int = 0, path_has_doctor: bool = True):
    argv_file = sandbox / "argv.json"
    if argv_file.exists():
        argv_file.unlink()
    marker = sandbox / "work" / MARKER
    env = {"PATH": (f"{sandbox / 'bin'}:" if path_has_doctor else "") + "/usr/bin:/bin", "HOME": str(sandbox),
           "ARGV_FILE": str(argv_file), "FAKE_EXIT": str(fake_exit), "LC_ALL": "C"}
    env.update({f"SSM_{k}": v for k, v in values.items()})
    result = subprocess.run([shell, str(sandbox / "run.sh")], cwd=sandbox / "work", env=env, capture_output=True,
                            text=True, timeout=30)
    argv = argv_file.read_bytes().decode().split("\0")[:-1] if argv_file.exists() else None
    assert not marker.exists(), f"{shell} executed an injected command"
    assert not list((sandbox / "work").iterdir())
    return result, argv


def expected_argv(values):
    argv = ["--output", "summary", f"--services={values['services']}", f"--timeout={values['timeoutSeconds']}"]
    if values["bucket"]:
        argv.append(f"--bucket={values['bucket']}")
    return argv + (["--ship", f"--log-group={values['logGroup']}"] if values["ship"] == "true" else [])


@pytest.mark.parametrize("shell", SHELLS)
def test_defaults_become_the_expected_argv(sandbox, shell):
    doc = load(RUN)
    values = {k: p["default"] for k, p in doc["parameters"].items()}
    result, argv = run_script(sandbox, shell, values)
    assert result.returncode == 0, result.stderr
    assert argv == ["--output", "summary", "--services=ssm,ssmmessages,ec2messages,s3", "--timeout=20"]
    assert result.stdout == "vpce-doctor summary: 1 problem\n"
    result, argv = run_script(sandbox, shell, DEFAULTS)
    assert argv == expected_argv(DEFAULTS) == ["--output", "summary", "--services=ssm,s3", "--timeout=20",
                                               "--bucket=probe-bucket", "--ship", "--log-group=/vpce-doctor/reports"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("name", list(FLAGS))
def test_hostile_values_are_one_argument_and_never_run(sandbox, shell, name):
    """As if an agent had skipped allowedPattern: each value reaches the doctor as exactly one argument."""
    for hostile in HOSTILE:
        if "\x00" in hostile:
            continue  # an environment variable cannot hold NUL
        values = dict(DEFAULTS, **{name: hostile})
        result, argv = run_script(sandbox, shell, values)
        assert result.returncode == 0, (hostile, result.stderr)
        assert argv == expected_argv(values), hostile
        assert f"{FLAGS[name]}={hostile}" in argv


@pytest.mark.parametrize("shell", SHELLS)
def test_ship_must_be_true_or_false(sandbox, shell):
    for hostile in HOSTILE + ["", "TRUE", "yes"]:
        if "\x00" in hostile:
            continue
        result, argv = run_script(sandbox, shell, dict(DEFAULTS, ship=hostile))
        assert result.returncode == 64 and argv is None, hostile
        assert "ship must be true or false" in result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_an_agent_without_env_var_interpolation_is_refused(sandbox, shell):
    """Agents before 3.3.2746.0 set no SSM_* variables: the script refuses instead of falling back to {{ }}. Only
    parameters that can never be empty tell (issue 12 item 25): bucket's default is empty, and whether an agent
    exports an empty parameter is not documented (the agent turns the plugin input's Environment map into variables,
    agent/plugins/runscript/runscript.go and agent/executers/executers.go prepareEnvironment, as the service sent it)."""
    for missing in [list(DEFAULTS)] + [[k] for k in DEFAULTS if k != "bucket"]:
        values = {k: v for k, v in DEFAULTS.items() if k not in missing}
        result, argv = run_script(sandbox, shell, values)
        assert result.returncode == 78 and argv is None, missing
        assert "3.3.2746.0" in result.stderr


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("bucket", ["unset", "empty"])
def test_an_unset_or_empty_bucket_is_the_default_no_probe(sandbox, shell, bucket):
    values = {k: v for k, v in DEFAULTS.items() if k != "bucket"}
    if bucket == "empty":
        values["bucket"] = ""
    result, argv = run_script(sandbox, shell, values)
    assert result.returncode == 0, result.stderr
    assert argv == expected_argv(dict(values, bucket="")) and not any(a.startswith("--bucket") for a in argv)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_doctors_exit_status_is_the_commands(sandbox, shell):
    for code in (0, 1, 2, 64, 70):
        result, argv = run_script(sandbox, shell, DEFAULTS, fake_exit=code)
        assert result.returncode == code and argv is not None
    for code in (168, 169, 194):  # would skip steps or reboot the instance: reported as an internal error
        result, _ = run_script(sandbox, shell, DEFAULTS, fake_exit=code)
        assert result.returncode == 70


@pytest.mark.parametrize("shell", SHELLS)
def test_a_missing_doctor_is_127(sandbox, shell):
    result, argv = run_script(sandbox, shell, DEFAULTS, path_has_doctor=False)
    assert result.returncode == 127 and argv is None
    assert "not installed" in result.stderr
