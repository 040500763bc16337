"""The vendored bundle: built for this machine's architecture from the hashed lock (downloads from the package
index, cached under build/), unpacked, and run by the system's /usr/bin/python3 — and by a CPython 3.9 when one
is installed — isolated from this repository and its venv; then installed by the install document's own script
into a private /opt."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import NETWORK_LAYERS, world  # noqa: F401  (the loopback VPC fixture)

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "packaging" / "build-bundle.py"
CACHE = REPO / "build" / "packaging-cache" / "wheels"
SYSTEM_PYTHON = "/usr/bin/python3"
ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


def version() -> str:
    namespace: dict = {}
    exec((REPO / "vpce_doctor" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]


def lock() -> dict:
    pins = {}
    for line in (REPO / "packaging" / "requirements-al2023.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, pin = line.split(" ")[0].partition("==")
            pins[name] = pin
    return pins


def python39():
    """A real CPython 3.9 binary (not a pyenv shim, which needs pyenv's environment), if this machine has one."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")), reverse=True)
    candidates += [p for p in (shutil.which("python3.9", path="/usr/local/bin:/usr/bin"),) if p]
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and subprocess.run([candidate, "-I", "-S", "-c", "pass"],
                                                            capture_output=True).returncode == 0:
            return candidate
    return None


INTERPRETERS = [SYSTEM_PYTHON] + ([python39()] if python39() else [])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if ARCH not in ("x86_64", "aarch64"):
        pytest.fail(f"no bundle is built for {ARCH}: only x86_64 and aarch64")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail("no /usr/bin/python3: the bundle runs on the system python3 (Debian package python3)")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, str(BUILD), "--arch", "native", "--out", str(out), "--cache",
                             str(CACHE)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    tarball = out / f"vpce-doctor-{version()}-{ARCH}.tar.gz"
    assert tarball.exists(), result.stdout
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(tarball) as tar:
        tar.extractall(unpacked)
    return tarball, unpacked / tarball.name[:-len(".tar.gz")]


def test_tarball_layout_and_checksums(built):
    tarball, root = built
    sums = (tarball.parent / "SHA256SUMS").read_text()
    assert sums == f"{hashlib.sha256(tarball.read_bytes()).hexdigest()}  {tarball.name}\n"
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    top = root.name
    assert {m.name.split("/")[0] for m in members} == {top}
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "root" for m in members)
    assert len({m.mtime for m in members}) == 1
    modes = {m.name[len(top) + 1:]: m.mode for m in members}
    assert modes["bin/vpce-doctor"] == 0o755 and modes["libexec/vpce-doctor.py"] == 0o644
    assert not [n for n in modes if "__pycache__" in n or n.startswith("lib/bin/")]
    assert {"share/systemd/vpce-doctor.service", "share/systemd/vpce-doctor.timer", "BUILDINFO",
            "lib/vpce_doctor/report.schema.json", "lib/vpce_doctor/models/ec2/2016-11-15/service-2.json"} <= set(modes)
    info = dict(line.split("=", 1) for line in (root / "BUILDINFO").read_text().splitlines())
    assert info["version"] == version() and info["arch"] == ARCH
    installed = dict(p.name[:-len(".dist-info")].split("-") for p in (root / "lib").glob("*.dist-info"))
    installed = {name.lower().replace("_", "-"): pin for name, pin in installed.items()}
    assert installed == lock()
    # Compiled code: stable ABI only, so one bundle serves CPython 3.9 to 3.13.
    assert sorted(p.name for p in (root / "lib").rglob("*.so")) == ["_psutil_linux.abi3.so"]


def run_bundle(root: Path, *args: str, cwd: Path, env=None):
    return subprocess.run([str(root / "bin" / "vpce-doctor"), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=dict(CLEAN_ENV, **(env or {})))


def test_the_launcher_runs_on_the_system_python_without_the_repository(built, tmp_path):
    _, root = built
    # Decoys: a vpce_doctor and a botocore in the working directory and on PYTHONPATH must be ignored (-I -S).
    for decoy in ("vpce_doctor", "botocore"):
        (tmp_path / decoy).mkdir()
        (tmp_path / decoy / "__init__.py").write_text("raise SystemExit('decoy imported')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PYTHONHOME": "/nonexistent", "PYTHONSTARTUP": "/nonexistent",
           "VIRTUAL_ENV": str(REPO / ".venv")}
    result = run_bundle(root, "--version", cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"vpce-doctor {version()}\n", "")
    result = run_bundle(root, "--list-checks", "--region", "eu-west-1", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "imds:token" and "tls:ssm" in result.stdout and result.stderr == ""
    result = run_bundle(root, "--region", "nowhere", cwd=tmp_path)
    assert result.returncode == 64 and result.stdout == ""
    # Through a symlink, as /usr/local/bin/vpce-doctor would be.
    (tmp_path / "link").symlink_to(root / "bin" / "vpce-doctor")
    result = subprocess.run([str(tmp_path / "link"), "--version"], capture_output=True, text=True, env=CLEAN_ENV)
    assert result.returncode == 0, result.stderr


PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import botocore.session, dns.version, urllib3, psutil, vpce_doctor.doctor, vpce_doctor.aws
mods = [botocore, dns.version, urllib3, psutil, vpce_doctor.doctor]
session = botocore.session.Session()  # as vpce_doctor.aws makes it: the reduced models first
session.set_config_variable("data_path", vpce_doctor.aws.data_path(None))
session.create_client("sts", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
absent = []  # boto3 and requests are not dependencies (pyproject.toml): the bundle works without them
for name in ("boto3", "requests", "s3transfer", "certifi", "charset_normalizer", "idna"):
    try:
        __import__(name)
    except ImportError:
        absent.append(name)
print(json.dumps({"python": list(sys.version_info[:2]), "outside": [m.__name__ for m in mods
                  if not m.__file__.startswith(sys.argv[1])], "pid": psutil.Process().pid > 0, "absent": absent,
                  "models": session.get_component("data_loader").search_paths[0],
                  "versions": [botocore.__version__, urllib3.__version__, dns.version.version]}))
"""


@pytest.mark.parametrize("python", INTERPRETERS)
def test_every_library_comes_from_the_bundle(built, tmp_path, python):
    _, root = built
    result = subprocess.run([python, "-I", "-S", "-B", "-c", PROBE, str(root / "lib")], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env=CLEAN_ENV)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["outside"] == [] and seen["pid"]
    assert len(seen["absent"]) == 6 and seen["models"].startswith(str(root / "lib" / "vpce_doctor" / "models"))
    pins = lock()
    assert seen["versions"] == [pins["botocore"], pins["urllib3"], pins["dnspython"]]


@pytest.mark.parametrize("python", INTERPRETERS)
def test_the_bundled_doctor_checks_a_loopback_vpc(built, world, python):  # noqa: F811
    """End to end over real sockets (IMDSv2, DNS, TCP, TLS on 127.0.0.x), with the bundle's libraries and each
    interpreter: 3.9 is what AL2023 and RHEL 9 run."""
    _, root = built
    # The bundle's libexec/vpce-doctor.py does what tests/launch.py --lib does, but the endpoints' port is a seam of
    # main(), so the launcher runs the bundle's lib/ (-I: the tests' directory is not on sys.path).
    argv = [python, "-I", "-S", "-B", str(REPO / "tests" / "launch.py"), "--lib", str(root / "lib"), "--port",
            str(world.port), "--", "--resolver", f"127.0.0.1:{world.dns.port}", "--ca-bundle", world.ca_file,
            "--output", "json", "--timeout", "8", "--connect-timeout", "1", "--only", *NETWORK_LAYERS]
    env = dict(CLEAN_ENV, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{world.imds.port}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.stdout.startswith("{"), (result.returncode, result.stderr)
    report = json.loads(result.stdout)
    assert result.returncode == 0, [(f["id"], f["status"], f["summary"]) for f in report["findings"]]
    assert {f["status"] for f in report["findings"]} == {"pass"}
    assert report["tool_version"] == version()


def install_script() -> str:
    doc = yaml.safe_load((REPO / "packaging" / "ssm" / "vpce-doctor-install.yaml").read_text())
    (step,) = [s for s in doc["mainSteps"] if s["name"] == "installBundle"]
    return "\n".join(step["inputs"]["runCommand"]) + "\n"


def in_private_opt(tmp_path: Path, commands: str):
    """Run shell commands with a tmpfs on /opt in a private mount namespace (root only): the real /opt is untouched."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("needs root and unshare (util-linux) for a private /opt, as CI has")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot make a mount namespace: {probe.stderr.decode().strip()}")
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text("set -u\nmount -t tmpfs -o mode=0755 vpce-doctor-test /opt || exit 125\n" + commands)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", str(wrapper)], capture_output=True,
                          text=True, timeout=300, env=dict(CLEAN_ENV, TMP_DIR=str(tmp_path)))


ROLLBACK = "/opt/vpce-doctor/releases/vpce-doctor-0.0.9-x86_64-000000000000"
STALE = f"vpce-doctor-0.0.8-{ARCH}.tar.gz"


def test_the_install_document_installs_the_bundle(built, tmp_path):
    tarball, _ = built
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (tmp_path / "install.sh").write_text(install_script())
    shutil.copyfile(tarball, tmp_path / tarball.name)
    wrong_arch = tarball.name.replace(ARCH, "aarch64" if ARCH == "x86_64" else "x86_64")
    result = in_private_opt(tmp_path, f"""
stage() {{ mkdir -p /opt/vpce-doctor/incoming && cp "$TMP_DIR/$1" /opt/vpce-doctor/incoming/; }}
install() {{ SSM_sha256="$1" SSM_enableTimer=false sh "$TMP_DIR/install.sh"; echo "rc=$?"; }}
echo "== no SSM variables"; sh "$TMP_DIR/install.sh"; echo "rc=$?"
echo "== nothing downloaded"; install {sha}
echo "== bad sha"; stage {tarball.name}; install {"0" * 64}; ls /opt/vpce-doctor/incoming 2>&1
echo "== hostile sha"; stage {tarball.name}; install '$(touch /opt/pwned)'; ls /opt/pwned 2>&1
echo "== wrong arch"; cp "$TMP_DIR/{tarball.name}" "$TMP_DIR/{wrong_arch}"; stage {wrong_arch}; install {sha}
echo "== install"; stage {tarball.name}; install {sha}
echo "== run"; /opt/vpce-doctor/bin/vpce-doctor --version; readlink /opt/vpce-doctor/bin /opt/vpce-doctor/current
find /opt/vpce-doctor/current/lib/botocore -name '*.pyc' | head -1
echo "== again"; stage {tarball.name}; install {sha}; ls /opt/vpce-doctor/releases
echo "== rollback kept"; mkdir -p {ROLLBACK}/bin && cp /bin/true {ROLLBACK}/bin/vpce-doctor
ln -sfn releases/{ROLLBACK.rsplit("/", 1)[1]} /opt/vpce-doctor/current
stage {tarball.name}; install {sha} >/dev/null; stage {tarball.name}; install {sha}; ls /opt/vpce-doctor/releases
echo "== stale bundle"; stage {tarball.name}; head -c 1000 /dev/urandom > /opt/vpce-doctor/incoming/{STALE}
install {sha}; ls /opt/vpce-doctor/incoming 2>&1; true
""")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    sections = dict(part.split("\n", 1) for part in out.split("== ")[1:])
    assert sections["no SSM variables"].strip() == "rc=78"
    assert sections["nothing downloaded"].strip() == "rc=66"
    assert sections["bad sha"].splitlines()[0] == "rc=65" and "No such file" in sections["bad sha"]
    assert sections["hostile sha"].splitlines()[0] == "rc=64" and "No such file" in sections["hostile sha"]
    assert sections["wrong arch"].strip() == "rc=65"
    assert sections["install"].strip().endswith("rc=0")
    release = f"releases/{tarball.name[:-len('.tar.gz')]}-{sha[:12]}"
    assert sections["run"].splitlines()[:3] == [f"vpce-doctor {version()}", "current/bin", release]
    assert ".cpython-" in sections["run"].splitlines()[3]          # byte-compiled by the instance's python3
    assert sections["again"].splitlines()[-2:] == ["rc=0", release.split("/")[1]]
    assert "vpce-doctor 0" in result.stdout and "has SHA-256" in result.stderr and "is for" in result.stderr
    # Issue 12 item 23: the same bundle again kept the rollback release only by chance of order in 0.1.0 (it was
    # deleted); a bundle left in incoming/ by a cancelled install made the next install exit 66.
    assert sections["rollback kept"].splitlines()[-3:] == ["rc=0", ROLLBACK.rsplit("/", 1)[1], release.split("/")[1]]
    assert sections["stale bundle"].splitlines()[-2].startswith("rc=0") and "No such file" in sections["stale bundle"]
