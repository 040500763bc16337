"""--ship: the report reaches CloudWatch Logs with its EMF metrics; a broken logs path spools it, the next run sends it."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import validate_report

DOCTOR = str(Path(__file__).parents[2] / ".venv" / "bin" / "vpce-doctor")
GROUP = "/vpce-doctor/reports"
SPOOL = "/var/lib/vpce-doctor/spool"


def events(lab):
    stream = lab.facts["instance_id"]
    found = lab.aws("logs", "get_log_events", logGroupName=GROUP, logStreamName=stream, startFromHead=True)
    return [json.loads(e["message"]) for e in found["events"]]


def clear(lab):
    lab.run(["rm", "-rf", SPOOL])
    for stream in lab.aws("logs", "describe_log_streams", logGroupName=GROUP)["logStreams"]:
        lab.aws("logs", "delete_log_stream", logGroupName=GROUP, logStreamName=stream["logStreamName"])


def test_healthy_run_ships_one_report_with_emf_metrics(lab):
    lab.switch("healthy")
    clear(lab)
    done = lab.run([DOCTOR, "--ship", "--output", "json"], timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"report shipped to {GROUP} stream {lab.facts['instance_id']}" in done.stderr
    shipped = events(lab)
    assert len(shipped) == 1
    report = validate_report(shipped[0])
    assert report["findings"] == json.loads(done.stdout)["findings"]
    directive = report["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "VpceDoctor" and report["Failures"] == 0 and report["Region"] == "ap-northeast-1"


def test_failed_checks_get_one_metric_event_each(lab):
    lab.switch("endpoint-sg-missing-443")
    clear(lab)
    done = lab.run([DOCTOR, "--ship", "--output", "summary"], timeout=60)
    assert done.returncode == 1 and "report shipped" in done.stderr
    assert len(done.stdout) <= 2500 and "tcp:ssm [timeout]" in done.stdout
    shipped = events(lab)
    per_check = [e for e in shipped if "CheckFailed" in e]
    assert [(e["Check"], e["Code"]) for e in per_check] == [("tcp:ssm", "timeout")]
    assert next(e for e in shipped if "findings" in e)["Failures"] >= 1


def test_a_dead_logs_endpoint_spools_and_the_next_run_sends_both(lab):
    lab.switch({"eni": {"10.0.1.13": {"mode": "drop"}}})  # the logs ENI silently drops everything
    clear(lab)
    first = lab.run([DOCTOR, "--ship", "--output", "json"], timeout=60)
    assert "report not shipped" in first.stderr and f"spooled in {SPOOL}" in first.stderr
    assert first.stdout and json.loads(first.stdout)["schema"] == "vpce-doctor/report/1"  # local output came first
    lab.switch("healthy")
    second = lab.run([DOCTOR, "--ship", "--output", "json"], timeout=60)
    assert "with 1 spooled report(s)" in second.stderr, second.stderr
    shipped = [e for e in events(lab) if "findings" in e]
    assert [e["started_at"] for e in shipped] == sorted(
        [json.loads(first.stdout)["started_at"], json.loads(second.stdout)["started_at"]])
    assert lab.run(["sh", "-c", f"ls {SPOOL}/*.json 2>/dev/null | wc -l"]).stdout.strip() == "0"


def test_denied_put_log_events_spools(lab):
    deny = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
                                     {"Effect": "Deny", "Principal": "*", "Action": "logs:PutLogEvents",
                                      "Resource": "*"}]})
    lab.switch({"endpoints": {"logs": {"policy": deny}}})
    clear(lab)
    done = lab.run([DOCTOR, "--ship", "--output", "json"], timeout=60)
    assert "report not shipped (ShipError: PutLogEvents" in done.stderr and "AccessDenied" in done.stderr
    assert lab.run(["sh", "-c", f"ls {SPOOL}/*.json | wc -l"]).stdout.strip() == "1"


# Issue 12 item 12: stdout closed (`>&-`) with --ship gave a traceback and shipped nothing; `| head -c 1` neither
# shipped nor spooled. The report goes out whatever happens to local output, and the exit code is still the report's.
def test_a_closed_stdout_does_not_stop_shipping(lab):
    lab.switch("healthy")
    clear(lab)
    done = lab.run(["sh", "-c", f"exec {DOCTOR} --ship --output json >&-"], timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and f"report shipped to {GROUP}" in done.stderr, done.stderr
    assert len([e for e in events(lab) if "findings" in e]) == 1


def test_a_reader_that_goes_away_does_not_stop_shipping(lab):
    lab.switch("healthy")
    clear(lab)
    done = lab.run(["sh", "-c", f"{DOCTOR} --ship --output text | head -c 1"], timeout=60)
    assert "Traceback" not in done.stderr and f"report shipped to {GROUP}" in done.stderr, done.stderr
    assert "could not be written to stdout (BrokenPipeError)" in done.stderr, done.stderr
    assert len([e for e in events(lab) if "findings" in e]) == 1


# Issue 12 items 9 and 14: an event CloudWatch rejects is not shipped; the spool is the doctor's alone (0700/0600).
def test_spooled_reports_are_private_and_rejected_ones_are_kept(lab):
    lab.switch({"eni": {"10.0.1.13": {"mode": "drop"}}})  # the logs ENI silently drops everything
    clear(lab)
    first = lab.run(["sh", "-c", f"umask 022; exec {DOCTOR} --ship --output json"], timeout=60)
    assert "report not shipped" in first.stderr, first.stderr
    modes = lab.run(["sh", "-c", f"stat -c '%a %n' {SPOOL} {SPOOL}/*"]).stdout.split("\n")
    assert all(line.split()[0] in ("700", "600") for line in modes if line), modes
    old = json.dumps([[1_000_000_000_000, json.dumps({"old": True})]])  # 2001: older than 14 days, never accepted
    lab.run(["sh", "-c", f"umask 077; printf '%s' '{old}' > {SPOOL}/report-001000000000000-1-1.json"])
    lab.switch("healthy")
    second = lab.run([DOCTOR, "--ship", "--output", "json"], timeout=60)
    assert "with 1 spooled report(s); 1 spooled report(s) rejected by CloudWatch (too old)" in second.stderr, \
        second.stderr
    assert len([e for e in events(lab) if "findings" in e]) == 2
    assert lab.run(["sh", "-c", f"ls {SPOOL}"]).stdout.split() == ["report-001000000000000-1-1.rejected"]


# Issue 12 item 7: SIGTERM while shipping (a Run Command timeout, systemd stop) left the report neither shipped nor
# spooled in 0.1.0: KeyboardInterrupt is no Exception. The report is spooled before anything is sent.
SIGTERM_WHILE_SHIPPING = r'''
work=$(mktemp -d)
"$1" --ship --output json --timeout 20 --connect-timeout 5 > "$work/out" 2> "$work/err" &
pid=$!
i=0
until grep -q '^}' "$work/out" 2>/dev/null || [ $i -gt 600 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.5
kill -TERM $pid
wait $pid
echo "rc=$? report=$(sed -n 's/^  "exit_code": \([0-9]*\),$/\1/p' "$work/out")"
cat "$work/err"
ls /var/lib/vpce-doctor/spool
'''


def test_sigterm_while_shipping_leaves_the_report_spooled(lab):
    lab.switch({"eni": {"10.0.1.13": {"mode": "drop"}}})  # the logs ENI drops everything: shipping waits
    clear(lab)
    done = lab.run(["sh", "-c", SIGTERM_WHILE_SHIPPING, "sh", DOCTOR], timeout=60)
    lines = done.stdout.splitlines()
    rc, report = (part.split("=")[1] for part in lines[0].split())
    assert rc == report != "", done.stdout  # the process exits with the code its report printed
    assert lines[1] == f"vpce-doctor: interrupted while shipping; the report waits in {SPOOL} for the next run"
    assert len([n for n in lines[2:] if n.startswith("report-") and n.endswith(".json")]) == 1, lines
    lab.switch("healthy")
    second = lab.run([DOCTOR, "--ship", "--output", "json"], timeout=60)
    assert "with 1 spooled report(s)" in second.stderr, second.stderr
