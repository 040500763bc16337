#!/usr/bin/env python3
"""vpce-doctor fleet at the scale of a real estate, in the lab (on demand; never collected by pytest).

    .venv/bin/python bench/fleet_scale.py                 # 10,000 instances, one in 20 broken; JSON on stdout
    .venv/bin/python bench/fleet_scale.py --instances 2000 --ship

The lab's front simulates the [fleet] instances (tests/lab/README.md, "[fleet]") and refuses calls beyond the rates
below with ThrottlingException, as AWS does. The summaries the instances "print" (and, with --ship, the reports they
ship) come from real doctor runs in the lab's healthy and endpoint-sg-missing-443 scenarios. Measured, for the fleet
command as the operator runs it: wall time and peak RSS (GNU time inside the lab), the requests it made and how many
were throttled (its own count).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.lab.aws import ADMIN_KEY, ADMIN_SECRET  # noqa: E402
from tests.lab.fixture import Lab  # noqa: E402

DOCTOR = str(REPO / ".venv" / "bin" / "vpce-doctor")
OPERATOR = {"AWS_ACCESS_KEY_ID": ADMIN_KEY, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET}
# FilterLogEvents: 5 TPS per account and Region (https://repost.aws/knowledge-center/cloudwatch-logs-throttling).
# Systems Manager documents no rate for these reads: the lab holds them to the same 5 a second.
RATES = {"ListCommands": 5, "ListCommandInvocations": 5, "GetCommandInvocation": 5, "FilterLogEvents": 5,
         "GetLogEvents": 5}


def doctor_run(lab: Lab, scenario: str, path: Path) -> str:
    lab.switch(scenario)
    done = lab.run([DOCTOR, "--ship", "--output", "summary"], timeout=60)
    events = lab.aws("logs", "get_log_events", logGroupName="/vpce-doctor/reports",
                     logStreamName=lab.facts["instance_id"])["events"]
    path.write_text(next(e["message"] for e in events if '"vpce-doctor/report/1"' in e["message"]))
    return done.stdout.replace(f" {lab.facts['instance_id']} ", " {iid} ", 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=10_000)
    p.add_argument("--ship", action="store_true", help="the instances ship reports; the fleet reads them back")
    args = p.parse_args(argv)
    work = Path("/tmp/vpce-doctor-fleet-scale")
    work.mkdir(exist_ok=True)
    lab = Lab.start("healthy")
    try:
        healthy = doctor_run(lab, "healthy", work / "healthy.json")
        broken = doctor_run(lab, "endpoint-sg-missing-443", work / "broken.json")
        instances = []
        for n in range(args.instances):
            iid, bad = f"i-{n:017x}", n % 20 == 7
            instances.append({"id": iid, "tags": {"Fleet": "web"}, "outcome": "Failed" if bad else "Success",
                              "exit_code": 1 if bad else 0, "output": (broken if bad else healthy).format(iid=iid),
                              "seconds": 2 + (n % 10), **({"report": str(work / ("broken.json" if bad else
                                                                                  "healthy.json"))}
                                                          if args.ship else {})})
        lab.switch({"name": "fleet-scale", "fleet": {"instances": instances, "rates": RATES}})
        argv = ["/usr/bin/time", "-f", "%e %M", DOCTOR, "fleet", "--targets", "tag:Fleet=web", "--region",
                "ap-northeast-1", "--timeout", "600", "--output", "json"] + (["--ship"] if args.ship else [])
        done = lab.run(argv, env=OPERATOR, timeout=900)
        lines = done.stderr.strip().splitlines()
        wall, rss_kib = lines[-1].split()
        doc = json.loads(done.stdout)
        said = next(line for line in lines if " requests (" in line)
        result = {"instances": args.instances, "ship": args.ship, "exit_code": done.returncode,
                  "wall_s": float(wall), "peak_rss_mib": round(int(rss_kib) / 1024, 1), "client": said,
                  "verdicts": {k: v for k, v in doc["totals"].items() if isinstance(v, int)},
                  "sources": {s: sum(r["source"] == s for r in doc["instances"])
                              for s in ("logs", "output", "none", "conflict")},
                  "rates_enforced": RATES}
        print(json.dumps(result, indent=1))
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
