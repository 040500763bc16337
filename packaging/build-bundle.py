#!/usr/bin/env python3
"""Build the self-contained vpce-doctor bundle for private-subnet instances, one per architecture.

    python3 packaging/build-bundle.py [--arch x86_64|aarch64|native|all] [--out DIR] [--cache DIR]

For each architecture it
  1. downloads the wheels pinned (with hashes) in packaging/requirements-al2023.txt — binary wheels only, tagged for
     CPython 3.9 on manylinux2014_<arch>, and only pure (none) or stable-ABI (abi3) ones, so one bundle runs on any
     CPython >= 3.9 (AL2023/RHEL 9: 3.9, Ubuntu 22.04: 3.10, 24.04: 3.12). Downloads are cached in --cache;
  2. installs them with `pip install --target` (no build, no byte-compilation, no dependency resolution: the lock
     is complete) into <stage>/lib, adds the vpce_doctor package from this repository, the launcher
     (bin/vpce-doctor, which runs /usr/bin/python3 -I -S -B) and the systemd units (share/systemd);
  3. writes DIR/vpce-doctor-<version>-<arch>.tar.gz (reproducible: sorted entries, fixed mtime and owners, gzip
     without a timestamp) with one top directory vpce-doctor-<version>-<arch>/, and DIR/SHA256SUMS for
     `sha256sum -c`.

pip is the one of the interpreter running this script (any Python >= 3.9 with pip >= 22); it contacts only the
package index pip is configured with. Needs nothing else. Exit status: 0 built, 1 a step failed, 64 usage.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOCK = HERE / "requirements-al2023.txt"
ARCHES = ("x86_64", "aarch64")
PYTHON_VERSION = "3.9"          # the oldest interpreter the bundle must run on (AL2023's /usr/bin/python3)
PACKAGE = "vpce_doctor"
PACKAGE_FILES = ("*.py", "*.json")   # the package's modules and report.schema.json (pyproject's package-data)
UNITS = ("vpce-doctor.service", "vpce-doctor.timer")


def version() -> str:
    text = (REPO / PACKAGE / "__init__.py").read_text()
    found = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not found:
        raise SystemExit("build-bundle: no __version__ in vpce_doctor/__init__.py")
    return found.group(1)


def pip_target_options(arch: str) -> List[str]:
    """Wheel selection for the target, not for this interpreter: binary only, cp39 tags, abi3 or none."""
    return ["--only-binary=:all:", "--platform", f"manylinux2014_{arch}", "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "--abi", "abi3", "--abi", "none"]


def run(argv: List[str]) -> None:
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def download(arch: str, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--require-hashes", "-r", str(LOCK), "--dest", str(cache)] + pip_target_options(arch))


def install(arch: str, cache: Path, lib: Path) -> None:
    run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--require-hashes", "-r", str(LOCK), "--no-index", "--find-links", str(cache), "--target", str(lib),
         "--no-compile", "--no-warn-script-location"] + pip_target_options(arch))
    shutil.rmtree(lib / "bin", ignore_errors=True)   # console scripts with this build host's shebang


def add_package(lib: Path) -> None:
    source = REPO / PACKAGE
    for pattern in PACKAGE_FILES:
        for path in source.rglob(pattern):
            if "__pycache__" in path.parts:
                continue
            target = lib / PACKAGE / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def check_tree(lib: Path, arch: str) -> None:
    """Every compiled module must be stable-ABI for this architecture: nothing tied to the build interpreter."""
    machine = {"x86_64": "x86-64", "aarch64": "aarch64"}[arch]
    for so in lib.rglob("*.so"):
        if ".abi3." not in so.name:
            raise SystemExit(f"build-bundle: {so.relative_to(lib)} is not an abi3 extension")
        header = so.read_bytes()[:20]
        e_machine = int.from_bytes(header[18:20], "little")
        if header[:4] != b"\x7fELF" or e_machine != {"x86-64": 62, "aarch64": 183}[machine]:
            raise SystemExit(f"build-bundle: {so.relative_to(lib)} is not an ELF {machine} object")
    for cache in list(lib.rglob("__pycache__")):
        shutil.rmtree(cache)


def stage(arch: str, cache: Path, work: Path, name: str) -> Path:
    root = work / name
    if root.exists():
        shutil.rmtree(root)
    lib = root / "lib"
    lib.mkdir(parents=True)
    download(arch, cache)
    install(arch, cache, lib)
    add_package(lib)
    check_tree(lib, arch)
    for part in ("bin", "libexec"):
        shutil.copytree(HERE / "bundle" / part, root / part)
    (root / "share" / "systemd").mkdir(parents=True)
    for unit in UNITS:
        shutil.copyfile(REPO / "systemd" / unit, root / "share" / "systemd" / unit)
    (root / "BUILDINFO").write_text(
        f"name=vpce-doctor\nversion={version()}\narch={arch}\npython=>={PYTHON_VERSION} (/usr/bin/python3)\n"
        f"lock_sha256={hashlib.sha256(LOCK.read_bytes()).hexdigest()}\n")
    return root


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True,
                             check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def write_tarball(root: Path, out: Path, mtime: int) -> Path:
    tarball = out / f"{root.name}.tar.gz"
    executable = {"bin/vpce-doctor"}

    def entries(directory: Path):
        for path in sorted(directory.iterdir(), key=lambda p: p.name):
            yield path
            if path.is_dir() and not path.is_symlink():
                yield from entries(path)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(path: Path, arcname: str) -> None:
            info = tar.gettarinfo(str(path), arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = mtime
            relative = arcname.split("/", 1)[1] if "/" in arcname else ""
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            elif info.isfile():
                info.mode = 0o755 if relative in executable or path.suffix == ".so" else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                raise SystemExit(f"build-bundle: unexpected file type {path}")
        add(root, root.name)
        for path in entries(root):
            add(path, f"{root.name}/{path.relative_to(root).as_posix()}")
    with open(tarball, "wb") as handle:
        with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())
    return tarball


def write_sums(out: Path) -> Path:
    sums = out / "SHA256SUMS"
    lines = [f"{hashlib.sha256(t.read_bytes()).hexdigest()}  {t.name}\n"
             for t in sorted(out.glob("vpce-doctor-*.tar.gz"))]
    sums.write_text("".join(lines))
    return sums


def native_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine)


def build(arch: str, out: Path, cache_root: Path) -> Dict[str, object]:
    started = time.monotonic()
    name = f"vpce-doctor-{version()}-{arch}"
    root = stage(arch, cache_root / arch, out / "stage", name)
    tarball = write_tarball(root, out, source_date_epoch())
    unpacked = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"arch": arch, "tarball": tarball, "bytes": tarball.stat().st_size, "unpacked": unpacked,
            "seconds": time.monotonic() - started}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="all", choices=ARCHES + ("native", "all"))
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bundle", help="output directory")
    parser.add_argument("--cache", type=Path, help="wheel download cache (default: OUT/wheels)")
    args = parser.parse_args(argv)
    arches = ARCHES if args.arch == "all" else (native_arch() if args.arch == "native" else args.arch,)
    if any(a not in ARCHES for a in arches):
        print(f"build-bundle: this machine is {native_arch()}; build with --arch x86_64 or aarch64", file=sys.stderr)
        return 64
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = (args.cache or out / "wheels").resolve()
    try:
        for arch in arches:
            built = build(arch, out, cache)
            print(f"{built['tarball']}: {built['bytes'] / 1e6:.1f} MB ({built['unpacked'] / 1e6:.1f} MB unpacked), "
                  f"{built['seconds']:.1f} s", flush=True)
    except subprocess.CalledProcessError as error:
        print(f"build-bundle: {error.cmd[3] if len(error.cmd) > 3 else error.cmd} failed with {error.returncode}",
              file=sys.stderr)
        return 1
    print(write_sums(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
