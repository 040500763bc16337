#!/usr/bin/env python3
"""vpce-doctor benchmarks, run on demand (never collected by pytest: it is not under tests/).

    .venv/bin/python bench/run.py --runs 5            # every case; table on stdout, JSON in bench/results.json
    .venv/bin/python bench/run.py --cases healthy version --runs 10 --out /tmp/r.json
    .venv/bin/python bench/run.py --profile    # also pyinstrument over one healthy run, all threads: bench/profile.*

One lab (tests/lab) is brought up for the whole run and switched per case. Every measured command runs inside the
lab, wrapped there by GNU time (`/usr/bin/time -f '%e %M %U %S'`: wall, peak RSS and CPU of the command itself, not of
nsenter) or, when /usr/bin/time is missing (`--meter wrapper` forces it), by a tiny Python wrapper that spawns the
command and reads os.wait4's rusage, timing with perf_counter. Each case runs `--warmup` discarded times, then
`--runs` measured times. Targets are reported as pass/miss; a miss never makes this script fail (exit 1 only if a
measured command did not behave as its case expects, e.g. the healthy run did not exit 0).

Cases:
  healthy   the lab's healthy scenario: default services, the S3 probe (bucket vpclab-probe), session readiness, --ship
  healthy-all  the same scenario with the lab's config (8 services: also sts, logs, kms, ec2), by_hand.sh's names
  paired    healthy-all and ONE `aws sts get-caller-identity` (aws CLI v1 from PyPI, bench/.venv-awscli) in the same
            lab, alternated run by run: the ratio of each pair, then its median (a loaded machine slows both alike)
  dropped   every ENI (10.0.1.10-.17) silently dropped and no S3 gateway route; --connect-timeout 1
  scaling   --services of 3, 10 and 40 known services with --only dns tcp (names the lab has no endpoint for get
            DNS answers pointing at healthy ENIs, so it measures the doctor, not timeouts); linear fit ms/service
  version   vpce-doctor --version
  baseline  bench/by_hand.sh (dig, /dev/tcp, openssl s_client, aws CLI v1) in the healthy scenario; ratio to healthy
  aws-buckets  default services, `--only s3:aws-buckets` against `--only tls:s3`: what the anonymous probe of the
            AWS-owned buckets adds to every timer run (bench/more_cases.py)
  remote    `vpce-doctor remote --instance-id` with an operator's keys, instance-never-registered (bench/more_cases.py)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.lab.fixture import Lab, LabError, lab_python  # noqa: E402
from tests.lab.scenario import INTERFACE_ENIS, REGION, DOMAIN, S3_IP  # noqa: E402
from bench import more_cases  # noqa: E402

DOCTOR = OWN_DOCTOR = str(REPO / ".venv" / "bin" / "vpce-doctor")
AWSCLI_VENV = BENCH / ".venv-awscli"
AWS = str(AWSCLI_VENV / "bin" / "aws")
GNU_TIME = "/usr/bin/time"
MARK = "VPCE_BENCH"
MIB = 1024 * 1024

# The services vpce-doctor accepts (vpce_doctor/settings.py KNOWN_SERVICES less s3-global.accesspoint), in the order
# the scaling case takes its first 3, 10 and 40 from.
SERVICES = [
    "ssm", "ssmmessages", "ec2messages", "s3", "logs", "kms", "sts", "ec2", "monitoring", "secretsmanager", "ecr.api",
    "ecr.dkr", "sqs", "sns", "events", "lambda", "elasticloadbalancing", "autoscaling", "cloudformation",
    "execute-api", "xray", "ssm-contacts", "ssm-incidents", "elasticfilesystem", "ebs", "codeartifact.api",
    "codeartifact.repositories", "kinesis-streams", "athena", "glue", "rds", "ecs", "ecs-agent", "ecs-telemetry",
    "states", "application-autoscaling", "servicecatalog", "backup", "ssm-quicksetup", "dynamodb",
]
SCALING_SIZES = (3, 10, 40)
CASES = ("healthy", "healthy-all", "paired", "dropped", "scaling", "version", "baseline", *more_cases.CASES)
# The healthy full run: default services, the S3 probe (the lab config's bucket), session readiness, shipping.
HEALTHY = ["--services", "ssm,ssmmessages,ec2messages,s3", "--ship"]

# Runs inside the lab when GNU time is missing: spawn argv, wait4 it, report wall (perf_counter) and ru_maxrss (KiB).
WRAPPER = r"""
import os, sys, time
argv = sys.argv[1:]
path = argv[0] if "/" in argv[0] else next((os.path.join(d, argv[0]) for d in os.environ.get("PATH", "").split(":")
                                            if os.access(os.path.join(d, argv[0]), os.X_OK)), argv[0])
started = time.perf_counter()
pid = os.posix_spawn(path, argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
sys.stderr.write("\n%s %.6f %d %.3f %.3f\n" % (MARK, wall, usage.ru_maxrss, usage.ru_utime, usage.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
""".replace("MARK", repr(MARK))


def dropped_overrides() -> dict:
    """Every interface-endpoint ENI silently dropped, and the S3 gateway route gone (52.216.8.10 dropped)."""
    return {"name": "bench-all-dropped",
            "eni": {f"10.0.1.{i}": {"mode": "drop"} for i in range(10, 18)},
            "endpoints": {"s3": {"route": False}}}


def scaling_overrides() -> dict:
    """DNS answers for the services the lab has no endpoint for: healthy ENI addresses (in the VPC), round robin;
    dynamodb (a gateway service, where public answers are expected) gets the S3 gateway address, which answers on
    443. Full names as keys: the [dns] knob reads a key with a dot as a full name (ecr.api, ...)."""
    enis = list(INTERFACE_ENIS.values())
    answers, spare = {}, 0
    for service in SERVICES:
        if service in INTERFACE_ENIS or service == "s3":
            continue
        answers[f"{service}.{REGION}.{DOMAIN}"] = S3_IP if service == "dynamodb" else enis[spare % len(enis)]
        spare += 1
    return {"name": "bench-scaling", "dns": answers}


# -- measuring ------------------------------------------------------------------------------------------------------

def labd_pid(lab: Lab):
    """labd's PID in our (host) view: the lab's simulated AWS (moto, DNS, TLS listeners) runs there, on the same
    CPUs as the doctor; its CPU time during a run is reported beside the doctor's."""
    todo, seen = [lab.inner_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid is None:
            continue
        seen.add(pid)
        try:
            if b"labd.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return None


def busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs, /proc/stat), to tell how much other work ran meanwhile."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait
    except (OSError, ValueError, IndexError):
        return float("nan")


def cpu_seconds(pid) -> float:
    """utime + stime of a process (host view), or NaN."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return float("nan")


def wait_for_quiet(threshold: float, longest: float) -> float:
    """Wait (at most `longest` s) until the machine is busy on fewer than `threshold` CPUs over half a second: other
    work on a shared machine inflates every figure. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < longest:
        before = busy_seconds()
        time.sleep(0.5)
        if (busy_seconds() - before) / 0.5 < threshold:
            break
    return time.monotonic() - started


class Meter:
    def __init__(self, lab: Lab, kind: str, quiet: float = 0.0, quiet_wait: float = 0.0) -> None:
        self.lab = lab
        self.labd = labd_pid(lab)
        self.quiet, self.quiet_wait = quiet, quiet_wait
        if kind == "auto":
            kind = "time" if lab.run(["test", "-x", GNU_TIME], timeout=30).returncode == 0 else "wrapper"
        if kind == "time" and lab.run(["test", "-x", GNU_TIME], timeout=30).returncode != 0:
            raise SystemExit(f"bench: {GNU_TIME} is missing in the lab (apt package `time`); use --meter wrapper")
        self.kind = kind

    def describe(self) -> str:
        if self.kind == "time":
            return f"GNU time inside the lab ({GNU_TIME} -f '%e %M %U %S': wall at 10 ms resolution, peak RSS, CPU)"
        return "Python wrapper inside the lab (posix_spawn + os.wait4: perf_counter wall, ru_maxrss of the command)"

    def wrap(self, argv: list) -> list:
        if self.kind == "time":
            return [GNU_TIME, "-f", f"{MARK} %e %M %U %S", *argv]
        return [lab_python(), "-c", WRAPPER, *argv]

    def measure(self, argv: list, env: dict | None = None, timeout: float = 180) -> dict:
        if argv[0] == DOCTOR and DOCTOR != OWN_DOCTOR:
            # another checkout's venv: the lab overlays only this tree's CA bundles, so give it the system store
            env = {"AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt", **(env or {})}
        waited = wait_for_quiet(self.quiet, self.quiet_wait) if self.quiet_wait > 0 else 0.0
        labd_before, busy_before = cpu_seconds(self.labd), busy_seconds()
        started = time.perf_counter()
        done = self.lab.run(self.wrap(argv), env=env, timeout=timeout)
        outer = time.perf_counter() - started
        labd_cpu, busy = cpu_seconds(self.labd) - labd_before, busy_seconds() - busy_before
        line = next((ln for ln in reversed(done.stderr.splitlines()) if ln.startswith(MARK + " ")), None)
        if line is None:
            raise RuntimeError(f"no measurement from {argv!r} (exit {done.returncode}): {done.stderr[-500:]}")
        _, wall, kib, user, system = line.split()
        stderr = "\n".join(ln for ln in done.stderr.splitlines()
                           if not ln.startswith(MARK + " ") and not ln.startswith("Command exited with"))
        tail = [ln for ln in done.stdout.splitlines() if ln.strip()]
        cpu = float(user) + float(system)
        return {"wall_s": float(wall), "rss_mib": int(kib) * 1024 / MIB, "cpu_s": cpu, "labd_cpu_s": labd_cpu,
                "other_cpu_s": max(0.0, busy - cpu - labd_cpu), "exit": done.returncode, "stdout": done.stdout,
                "waited_for_quiet_s": round(waited, 2),
                "outer_s": round(outer, 4), "last_line": tail[-1] if tail else "", "stderr": stderr.strip()[-300:]}


def stats(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def linear_fit(xs: list, ys: list) -> tuple:
    """Least squares y = a + b x: (a, b)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


# -- the cases -----------------------------------------------------------------------------------------------------

def repeat(meter: Meter, argv: list, runs: int, warmup: int, env: dict | None = None,
           keep_outputs: bool = False) -> dict:
    for _ in range(warmup):
        meter.measure(argv, env)
    return summarise(argv, env, [meter.measure(argv, env) for _ in range(runs)], keep_outputs)


# The aws CLI in the lab: the Region a private-subnet shell must give it, regional STS (never sts.amazonaws.com), and
# the system CA bundle (the lab overlays only its own Python's bundles, not the awscli venv's vendored one).
AWSCLI_ENV = {"AWS_DEFAULT_REGION": REGION, "AWS_STS_REGIONAL_ENDPOINTS": "regional",
              "AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}


def paired(meter: Meter, runs: int, warmup: int) -> dict:
    """The doctor's full run (the lab config) and one `aws sts get-caller-identity`, alternated run by run, so both of
    a pair meet the same load; the ratios are per pair."""
    doctor, cli = [DOCTOR], [AWS, "sts", "get-caller-identity"]
    for _ in range(warmup):
        meter.measure(doctor), meter.measure(cli, AWSCLI_ENV)
    pairs = [(meter.measure(doctor), meter.measure(cli, AWSCLI_ENV)) for _ in range(runs)]
    result = {"doctor": dict(summarise(doctor, None, [d for d, _ in pairs]), expect_exit=0),
              "awscli": dict(summarise(cli, AWSCLI_ENV, [c for _, c in pairs]), expect_exit=0)}
    for key in ("wall_s", "cpu_s", "rss_mib"):
        result[f"ratio_{key}"] = stats([d[key] / c[key] for d, c in pairs if c[key] > 0] or [float("nan")])
    return result


def summarise(argv: list, env: dict | None, samples: list, keep_outputs: bool = False) -> dict:
    outputs = [s.pop("stdout") for s in samples]
    return {"argv": argv, "env": env or {}, "samples": samples,
            "wall_s": stats([s["wall_s"] for s in samples]), "rss_mib": stats([s["rss_mib"] for s in samples]),
            "cpu_s": stats([s["cpu_s"] for s in samples]), "labd_cpu_s": stats([s["labd_cpu_s"] for s in samples]),
            "exits": sorted({s["exit"] for s in samples}), "last_line": samples[-1]["last_line"],
            "stderr": samples[-1]["stderr"], **({"outputs": outputs} if keep_outputs else {})}


def by_hand_steps(outputs: list) -> dict:
    """From by_hand.sh's lines `ok   LABEL (N ms)`: median per run of the time in network probes (dig, /dev/tcp,
    openssl) and in aws CLI calls, and the last run's lines."""
    network, cli = [], []
    for text in outputs:
        steps = [(ln, int(m.group(1))) for ln in text.splitlines() if (m := re.search(r"\((\d+) ms\)$", ln))]
        cli.append(sum(ms for ln, ms in steps if ln[5:].startswith("aws ")) / 1000)
        network.append(sum(ms for ln, ms in steps if not ln[5:].startswith("aws ")) / 1000)
    return {"network_s": stats(network), "awscli_s": stats(cli), "last_run": outputs[-1].splitlines()}


def ensure_awscli(spec: str) -> str:
    """bench/.venv-awscli with the aws CLI v1 from PyPI, made on first use (python3 -m venv; pip install awscli)."""
    if not os.access(AWS, os.X_OK):
        python = shutil.which("python3") or sys.executable
        print(f"bench: creating {AWSCLI_VENV.relative_to(REPO)} ({python} -m venv; pip install {spec})", flush=True)
        subprocess.run([python, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run([str(AWSCLI_VENV / "bin" / "python"), "-m", "pip", "install", "-q", spec], check=True)
    return subprocess.run([AWS, "--version"], capture_output=True, text=True).stdout.strip() or "?"


def bundle_doctor() -> str:
    """The deliverable as an instance runs it: the native bundle (packaging/build-bundle.py; wheels cached where the
    bundle tests cache them) unpacked in bench/.bundle and byte-compiled as the install document does
    (packaging/ssm/vpce-doctor-install.yaml: compileall, unchecked-hash); its bin/vpce-doctor runs /usr/bin/python3."""
    import tarfile
    out = BENCH / ".bundle"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, str(REPO / "packaging" / "build-bundle.py"), "--arch", "native", "--out",
                    str(out / "dist"), "--cache", str(REPO / "build" / "packaging-cache" / "wheels")], check=True)
    with tarfile.open(next((out / "dist").glob("*.tar.gz"))) as tar:
        tar.extractall(out / "root")
    root = next((out / "root").iterdir())
    subprocess.run(["/usr/bin/python3", "-I", "-S", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                    "unchecked-hash", str(root / "lib"), str(root / "libexec")], check=True, stdout=subprocess.DEVNULL)
    return str(root / "bin" / "vpce-doctor")


def run_cases(lab: Lab, meter: Meter, args) -> dict:
    results: dict = {}
    want = set(args.cases)

    if want & {"healthy", "healthy-all", "version", "baseline"}:
        lab.switch("healthy")
    if "healthy" in want:
        print("bench: healthy full run ...", flush=True)
        results["healthy"] = dict(repeat(meter, [DOCTOR, *HEALTHY], args.runs, args.warmup), scenario="healthy",
                                  expect_exit=0, targets={"rss_mib": 50, "cpu_s": 0.3})
    if "healthy-all" in want:
        print("bench: healthy run, the lab's 8 services ...", flush=True)
        results["healthy-all"] = dict(repeat(meter, [DOCTOR], args.runs, args.warmup), scenario="healthy",
                                      expect_exit=0)
    if "paired" in want:
        print("bench: the lab config's run paired with one aws sts get-caller-identity ...", flush=True)
        results["paired"] = dict(paired(meter, args.runs, args.warmup), scenario="healthy",
                                 awscli_version=args.awscli_version,
                                 targets={"ratio_wall_s": 1.0, "rss_mib": 60})
    if "version" in want:
        print("bench: --version ...", flush=True)
        results["version"] = dict(repeat(meter, [DOCTOR, "--version"], args.runs, args.warmup), scenario="healthy",
                                  expect_exit=0, targets={"wall_s": 0.08})
    if "baseline" in want:
        print("bench: by-hand baseline (bench/by_hand.sh) ...", flush=True)
        # AWS_CA_BUNDLE: the lab overlays the CA bundles of its own Python (certifi, the .venv's botocore), not the
        # vendored bundle of the separate awscli venv's botocore; the system bundle in the lab has the lab CA.
        env = {"AWS": AWS, "AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
        results["baseline"] = dict(repeat(meter, [str(BENCH / "by_hand.sh")], args.runs, args.warmup, env, True),
                                   scenario="healthy", expect_exit=0, awscli=args.awscli_version)
        results["baseline"]["steps"] = by_hand_steps(results["baseline"].pop("outputs"))
        same = "healthy-all" if "healthy-all" in results else "healthy"  # the same 8 names as by_hand.sh
        if same in results:
            results["baseline"]["ratio"] = (results["baseline"]["wall_s"]["median"]
                                            / results[same]["wall_s"]["median"])
            results["baseline"]["ratio_against"] = same
    if "dropped" in want:
        print("bench: everything silently dropped ...", flush=True)
        lab.switch(dropped_overrides())
        results["dropped"] = dict(repeat(meter, [DOCTOR, "--connect-timeout", "1"], args.runs, args.warmup),
                                  scenario=dropped_overrides(), expect_exit=1, targets={"wall_s": 2.0})
    if "scaling" in want:
        lab.switch(scaling_overrides())
        sizes = {}
        for size in SCALING_SIZES:
            print(f"bench: scaling, {size} services ...", flush=True)
            argv = [DOCTOR, "--services", ",".join(SERVICES[:size]), "--only", "dns", "tcp"]
            sizes[str(size)] = dict(repeat(meter, argv, args.runs, args.warmup), expect_exit=0)
        xs = [float(n) for n in SCALING_SIZES]
        intercept, slope = linear_fit(xs, [sizes[str(n)]["wall_s"]["median"] for n in SCALING_SIZES])
        _, rss_slope = linear_fit(xs, [sizes[str(n)]["rss_mib"]["median"] for n in SCALING_SIZES])
        _, cpu_slope = linear_fit(xs, [sizes[str(n)]["cpu_s"]["median"] for n in SCALING_SIZES])
        _, labd_slope = linear_fit(xs, [sizes[str(n)]["labd_cpu_s"]["median"] for n in SCALING_SIZES])
        results["scaling"] = {"scenario": scaling_overrides(), "only": ["dns", "tcp"], "sizes": sizes,
                              "fit": {"ms_per_service": slope * 1000, "intercept_s": intercept,
                                      "rss_kib_per_service": rss_slope * 1024,
                                      "cpu_ms_per_service": cpu_slope * 1000,
                                      "labd_cpu_ms_per_service": labd_slope * 1000},
                              "targets": {"ms_per_service": 10}}
    results.update(more_cases.run(lab, meter, args, repeat, DOCTOR))
    return results


# -- reporting -------------------------------------------------------------------------------------------------------

def machine(meter: Meter, lab: Lab) -> dict:
    model = "?"
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        kib = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                       if ln.startswith("MemTotal")))
        mem = f"{kib / MIB:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    pyver = subprocess.run([lab_python(), "-c", "import platform; print(platform.python_version())"],
                           capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "vpce_doctor"],
                           capture_output=True, text=True).stdout.strip()
    doctor = lab.run([DOCTOR, "--version"], timeout=30).stdout.strip()
    doctor += "" if DOCTOR == OWN_DOCTOR else f" ({DOCTOR})"
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem, "kernel": platform.release(),
            "python": pyver, "doctor": doctor, "commit": commit + ("+dirty vpce_doctor/" if dirty else ""),
            "meter": meter.describe(), "lab_start_s": lab.start_seconds}


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "pass" if ok else "MISS"


def fmt_s(st: dict) -> str:
    if st["median"] < 1:
        return f"{st['median'] * 1000:.0f} ms [{st['min'] * 1000:.0f}–{st['max'] * 1000:.0f}]"
    return f"{st['median']:.2f} s [{st['min']:.2f}–{st['max']:.2f}]"


def fmt_mib(st: dict) -> str:
    return f"{st['median']:.1f} [{st['min']:.1f}–{st['max']:.1f}]"


def fmt_cpu(st: dict) -> str:
    return "?" if st["median"] != st["median"] else f"{st['median']:.2f} s"


def fmt_ratio(st: dict) -> str:
    return f"**{st['median']:.2f}×** [{st['min']:.2f}–{st['max']:.2f}]"


def table(results: dict) -> list:
    """Markdown rows: case | wall | peak RSS | CPU | target | result (medians [min–max]), the README's table."""
    rows = ["| case | wall, median [min–max] | peak RSS MiB, median [min–max] | CPU user+sys (lab's AWS side) "
            "| target | result |", "|---|---|---|---|---|---|"]

    def row(name: str, r: dict, target: str, result: str, rss_note: str = "") -> str:
        return (f"| {name} | {fmt_s(r['wall_s'])} | {fmt_mib(r['rss_mib'])}{rss_note} | {fmt_cpu(r['cpu_s'])} "
                f"({fmt_cpu(r['labd_cpu_s'])}) | {target} | {result} |")

    if "healthy" in results:
        r = results["healthy"]
        rows.append(row("1. default run (default services, S3 probe, session readiness, `--ship`)", r,
                        "≤ 50 MiB, CPU ≤ 0.3 s",
                        f"RSS {verdict(r['rss_mib']['median'], 50)}, CPU {verdict(r['cpu_s']['median'], 0.3)}"))
    if "paired" in results:
        r = results["paired"]
        rows.append(row("2. full diagnosis, the lab's config (8 services incl. sts, logs, kms, ec2 cross-check)",
                        r["doctor"], "≤ 1.0 × one aws CLI call, ≤ 60 MiB",
                        f"{fmt_ratio(r['ratio_wall_s'])} {verdict(r['ratio_wall_s']['median'], 1.0)}, "
                        f"RSS {verdict(r['doctor']['rss_mib']['median'], 60)}"))
        cli = r.get("awscli_version") or "?"
        rows.append(row(f"2. paired with it, run by run: ONE `aws sts get-caller-identity` ({cli})", r["awscli"], "",
                        f"CPU ratio {fmt_ratio(r['ratio_cpu_s'])}, RSS ratio {fmt_ratio(r['ratio_rss_mib'])}"))
    if "healthy-all" in results:
        rows.append(row("2b. full diagnosis, the lab's config, unpaired", results["healthy-all"], "", ""))
    if "dropped" in results:
        r = results["dropped"]
        rows.append(row("3. everything silently dropped, `--connect-timeout 1`", r,
                        "≤ 2.0 s (connect timeout + 1 s)", verdict(r["wall_s"]["median"], 2.0)))
    if "scaling" in results:
        r = results["scaling"]
        for size in SCALING_SIZES:
            rows.append(row(f"4. `--only dns tcp`, {size} services", r["sizes"][str(size)], "", ""))
        fit = r["fit"]
        rows.append(f"| 4. marginal cost per service (least squares over the medians) | "
                    f"**{fit['ms_per_service']:.1f} ms/service** (intercept {fit['intercept_s'] * 1000:.0f} ms) | "
                    f"{fit['rss_kib_per_service']:.0f} KiB/service | {fit['cpu_ms_per_service']:.1f} ms/service "
                    f"({fit['labd_cpu_ms_per_service']:.1f} ms) "
                    f"| ≤ 10 ms/service | {verdict(fit['ms_per_service'], 10)} |")
    if "version" in results:
        r = results["version"]
        rows.append(row("5. `vpce-doctor --version`", r, "≤ 80 ms", verdict(r["wall_s"]["median"], 0.08)))
    if "baseline" in results:
        r = results["baseline"]
        ratio = r.get("ratio")
        rows.append(row("6. by hand (`bench/by_hand.sh`: dig, /dev/tcp, openssl s_client ×8, aws CLI ×5)", r,
                        f"by hand / {r.get('ratio_against', 'healthy')} doctor",
                        f"**{ratio:.1f}×**" if ratio else "(no healthy case)", " (largest process)"))
    return rows + more_cases.rows(results, row, fmt_s, verdict)


def flat_results(results: dict) -> dict:
    """Every measured command's summary by name (the scaling sizes and the two sides of the pairs apart)."""
    flat = {k: v for k, v in results.items() if k not in ("scaling", "paired", "aws-buckets")}
    flat.update(more_cases.flat(results))
    flat.update({f"scaling/{n}": v for n, v in results.get("scaling", {}).get("sizes", {}).items()})
    flat.update({f"paired/{n}": results["paired"][n] for n in ("doctor", "awscli") if "paired" in results})
    return flat


def check_exits(results: dict) -> list:
    problems = []
    for name, r in flat_results(results).items():
        if r["exits"] != [r["expect_exit"]]:
            problems.append(f"{name}: exit {r['exits']}, expected {r['expect_exit']} "
                            f"(last line: {r['last_line']!r}; stderr: {r['stderr']!r})")
    return problems


def profile(lab: Lab, prefix: Path) -> list:
    """pyinstrument over one healthy run inside the lab, every thread (bench/profile_doctor.py); pyinstrument must be
    in .venv (`.venv/bin/python -m pip install pyinstrument`, not a project dependency)."""
    lab.switch("healthy")
    done = lab.run([lab_python(), str(BENCH / "profile_doctor.py"), str(prefix)], timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"bench: profiling failed (exit {done.returncode}): {done.stderr[-500:]}")
    return [str(prefix) + suffix for suffix in (".main.txt", ".threads.txt", ".html")]


def write_readme(lines: list) -> None:
    """The README's measured table, exactly as printed: between <!-- bench:start --> and <!-- bench:end -->."""
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit("bench: README.md has no <!-- bench:start --> ... <!-- bench:end --> block")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n".join(lines).strip() + "\n" + end + rest.split(end, 1)[1])
    print(f"bench: table written into {readme}")


def main(argv=None) -> int:
    global DOCTOR
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="measured runs per case (default 5; at least 5 recommended)")
    p.add_argument("--warmup", type=int, default=1, help="discarded runs before each case (default 1)")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), metavar="CASE",
                   help="which cases: " + ", ".join(CASES) + " (default: all)")
    p.add_argument("--out", default=str(BENCH / "results.json"), help="JSON results (default bench/results.json)")
    p.add_argument("--meter", choices=("auto", "time", "wrapper"), default="auto",
                   help="auto: GNU time when the lab has /usr/bin/time, else the Python wrapper")
    p.add_argument("--quiet", type=float, default=0.3, metavar="CPUS",
                   help="before each run, wait until other work keeps fewer than CPUS busy (default 0.3) ...")
    p.add_argument("--quiet-wait", type=float, default=20, metavar="S",
                   help="... for at most S seconds (default 20; 0: never wait)")
    p.add_argument("--awscli", default="awscli", help="pip requirement for bench/.venv-awscli (default awscli)")
    p.add_argument("--readme", action="store_true",
                   help="also write the table and its notes into README.md (between the bench:start/end markers)")
    p.add_argument("--doctor", default=DOCTOR, help="the vpce-doctor to measure (default: this tree's .venv), e.g. "
                   "another checkout's, for a before/after comparison")
    p.add_argument("--bundle", action="store_true", help="measure the bundle as installed on an instance (built, "
                   "unpacked and byte-compiled under bench/.bundle; /usr/bin/python3) instead of this tree's .venv")
    p.add_argument("--profile", action="store_true",
                   help="also profile one healthy run with pyinstrument (every thread): bench/profile.*")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    DOCTOR = bundle_doctor() if args.bundle else args.doctor
    command = shlex.join([".venv/bin/python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])])

    args.awscli_version = ensure_awscli(args.awscli) if {"baseline", "paired"} & set(args.cases) else None
    started = time.perf_counter()
    try:
        lab = Lab.start("healthy")
    except LabError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 125
    try:
        meter = Meter(lab, args.meter, args.quiet, args.quiet_wait)
        info = machine(meter, lab)
        print(f"bench: lab up in {lab.start_seconds:.2f} s; meter: {meter.describe()}", flush=True)
        profile_path = profile(lab, BENCH / "profile") if args.profile else None
        results = run_cases(lab, meter, args)
    finally:
        lab.stop()
    total = time.perf_counter() - started

    rows = table(results)
    problems = check_exits(results)
    notes = [f"Medians of {args.runs} runs (after {args.warmup} discarded), [min–max]; wall time, peak RSS and CPU "
             f"(user+sys) of the measured process itself, inside the lab ("
             + ("GNU time, 10 ms resolution" if meter.kind == "time" else "os.wait4") + "). In parentheses: the CPU "
             "labd (the lab's simulated AWS: moto, DNS, TLS listeners) used meanwhile, on the same CPUs."
             + (f" Before each run it waited up to {args.quiet_wait:g} s for the machine to be quiet (other work "
                f"< {args.quiet:g} CPUs)." if args.quiet_wait > 0 else "")]
    if "scaling" in results:
        notes.append("Case 4 runs `--only dns tcp` (not tls): the services the lab has no endpoint for get DNS "
                     "answers pointing at healthy ENIs of other services, so TLS would fail on the name; "
                     "`dynamodb` points at the S3 gateway address.")
    if "baseline" in results:
        notes.append(f"Case 6 runs in the healthy scenario with {args.awscli_version} (bench/.venv-awscli) and "
                     "AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt (the lab overlays only its own Python's "
                     "CA bundles). Of its wall time, by its own step timings (medians): dig + /dev/tcp + openssl "
                     f"{results['baseline']['steps']['network_s']['median']:.2f} s, the 5 aws CLI calls "
                     f"{results['baseline']['steps']['awscli_s']['median']:.2f} s.")
    busy = {}
    for name, r in flat_results(results).items():
        # /proc/stat counts in 10 ms ticks and the harness (nsenter, time) costs a little: runs whose other work is
        # under 0.1 CPU-seconds are not called loaded
        r["other_cpus"] = stats([s["other_cpu_s"] / s["outer_s"] for s in r["samples"] if s["outer_s"] > 0] or [0])
        if r["other_cpus"]["median"] > 0.25 and statistics.median(s["other_cpu_s"] for s in r["samples"]) > 0.1:
            busy[name] = r["other_cpus"]
    if busy:
        notes.append("Other processes loaded this machine during some runs (CPUs busy besides the measured command "
                     "and labd, median [max]: " + ", ".join(f"{n} {b['median']:.1f} [{b['max']:.1f}]"
                                                             for n, b in busy.items())
                     + f", of {os.cpu_count()}): those figures are inflated.")
    lines = ["## Benchmarks", "", *rows, "", *notes, "",
             f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}, "
             f"Python {info['python']}; {info['doctor']} at commit {info['commit']}.", "",
             f"Reproduce: `{command}` (lab start {info['lab_start_s']:.2f} s, whole benchmark {total:.0f} s)."]
    print()
    print("\n".join(lines))
    if profile_path:
        print("\nprofile: " + ", ".join(profile_path))
    if problems:
        print("\nUNEXPECTED:\n  " + "\n  ".join(problems))
    if args.readme:
        write_readme(lines[2:])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "command": command, "runs": args.runs, "warmup": args.warmup,
                               "total_s": round(total, 1), "results": results, "markdown": "\n".join(lines),
                               "problems": problems}, indent=2) + "\n")
    print(f"\nbench: results in {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
