"""Cases of bench/run.py kept apart: what s3:aws-buckets' anonymous probe adds to every timer run, and `vpce-doctor
remote` from a workstation. run.py calls `run(lab, meter, args, repeat)` and `rows(results, row, fmt_s, verdict)`."""
from __future__ import annotations

CASES = ("aws-buckets", "remote")
DEFAULT = ["--services", "ssm,ssmmessages,ec2messages,s3"]
# An operator's keys from a workstation (tests/lab/test_scenarios.py REMOTE_ENV): IAM is global, so the lab's front
# takes it on the ec2 listener.
REMOTE_TARGET_S = 5.0  # the "in one command": well inside the run's default 20 s deadline


# The probe alone, in one warm process inside the lab: both GETs at once (as the check sends them), 20 times, wall and
# CPU of this process per round. Whole runs differ by less than a loaded machine's noise; this is the probe's own cost.
PROBE_ALONE = r"""
import json, resource, ssl, time
import dns.resolver
from vpce_doctor import anonymous_get
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers, resolver.cache = ["10.0.0.2"], None
urls = ["https://al2023-repos-ap-northeast-1-de612dc2.s3.dualstack.ap-northeast-1.amazonaws.com/core/mirrors/latest/"
        "x86_64/mirror.list", "https://s3.ap-northeast-1.amazonaws.com/amazon-ssm-ap-northeast-1/ssm-agent-manifest.json"]
context = ssl.create_default_context()
anonymous_get.get_all(urls, anonymous_get.resolver_of(resolver), context, 3.0)
rounds = []
for _ in range(20):
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    got = anonymous_get.get_all(urls, anonymous_get.resolver_of(resolver), context, 3.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rounds.append({"wall_ms": (time.perf_counter() - started) * 1000, "cpu_ms": cpu * 1000,
                   "statuses": sorted(a.get("status") or 0 for a in got.values())})
print(json.dumps(rounds))
"""


def probe_alone(lab) -> dict:
    import statistics
    rounds = __import__("json").loads(lab.python(PROBE_ALONE, timeout=120).stdout.strip().splitlines()[-1])
    return {key: {"median": statistics.median(r[key] for r in rounds), "min": min(r[key] for r in rounds),
                  "max": max(r[key] for r in rounds)} for key in ("wall_ms", "cpu_ms")} | {
        "statuses": rounds[-1]["statuses"], "rounds": len(rounds)}


def run(lab, meter, args, repeat, doctor: str) -> dict:
    from tests.lab.test_scenarios import REMOTE_ENV
    results: dict = {}
    want = set(args.cases)
    if "aws-buckets" in want:
        lab.switch("healthy")
        print("bench: the probe of AWS-owned buckets, with and without it ...", flush=True)
        # --only keeps a check and what it needs: tls:s3 alone is the same run without the probe's requests.
        results["aws-buckets"] = {
            "with": dict(repeat(meter, [doctor, *DEFAULT, "--only", "s3:aws-buckets"], args.runs, args.warmup),
                         expect_exit=0),
            "without": dict(repeat(meter, [doctor, *DEFAULT, "--only", "tls:s3"], args.runs, args.warmup),
                            expect_exit=0)}
        both = results["aws-buckets"]
        both["added_wall_ms"] = (both["with"]["wall_s"]["median"] - both["without"]["wall_s"]["median"]) * 1000
        both["added_cpu_ms"] = (both["with"]["cpu_s"]["median"] - both["without"]["cpu_s"]["median"]) * 1000
        both["added_rss_mib"] = both["with"]["rss_mib"]["median"] - both["without"]["rss_mib"]["median"]
        both["probe_alone"] = probe_alone(lab)
    if "remote" in want:
        facts = lab.switch("instance-never-registered")["facts"]
        print("bench: vpce-doctor remote --instance-id (instance-never-registered) ...", flush=True)
        argv = [doctor, "remote", "--instance-id", facts["instance_id"], "--region", facts["region"]]
        results["remote"] = dict(repeat(meter, argv, args.runs, args.warmup, dict(REMOTE_ENV)), expect_exit=1,
                                 scenario="instance-never-registered", targets={"wall_s": REMOTE_TARGET_S})
    return results


def rows(results: dict, row, fmt_s, verdict) -> list:
    out = []
    if "aws-buckets" in results:
        r = results["aws-buckets"]
        out.append(row("7. `--only tls:s3` (default services): the run without the AWS-owned bucket probe",
                       r["without"], "", ""))
        out.append(row("7. `--only s3:aws-buckets`: the same plus 2 anonymous GETs (dnf's mirror list, the agent's "
                       "manifest)", r["with"], "(the added cost)",
                       f"{r['added_wall_ms']:+.0f} ms wall, {r['added_cpu_ms']:+.0f} ms CPU, "
                       f"{r['added_rss_mib']:+.1f} MiB"))
        alone = r["probe_alone"]
        out.append(f"| 7. the probe alone, in one warm process: both GETs at once, {alone['rounds']} rounds "
                   f"(statuses {alone['statuses']}) | {alone['wall_ms']['median']:.1f} ms "
                   f"[{alone['wall_ms']['min']:.1f}–{alone['wall_ms']['max']:.1f}] | | "
                   f"{alone['cpu_ms']['median']:.1f} ms [{alone['cpu_ms']['min']:.1f}–{alone['cpu_ms']['max']:.1f}] "
                   "| | |")
    if "remote" in results:
        r = results["remote"]
        out.append(row("8. `vpce-doctor remote --instance-id` (instance-never-registered, an operator's keys)", r,
                       f"≤ {REMOTE_TARGET_S:g} s", verdict(r["wall_s"]["median"], REMOTE_TARGET_S)))
    return out


def flat(results: dict) -> dict:
    """The measured commands by name, for run.py's exit and load checks."""
    found = {f"aws-buckets/{n}": results["aws-buckets"][n] for n in ("with", "without") if "aws-buckets" in results}
    found.update({"remote": results["remote"]} if "remote" in results else {})
    return found
