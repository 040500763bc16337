"""Breaking a healthy lab between two runs: the second report names the change that broke it (--since FILE: the lab
makes a new instance per switch, so the runs kept beside the spool, which belong to one instance, are proven on
loopback in tests/integration/test_changes.py)."""
import json

import pytest

from tests.conftest import validate_report

from .test_scenarios import DOCTOR

# scenario -> (the new failure, the check whose evidence changed, what changed, the value it now has)
BREAKS = {
    "private-dns-off-ssmmessages": ("dns:ssmmessages", "dns:ssmmessages", "addresses", ["203.0.113.10"]),
    "endpoint-sg-missing-443": ("tcp:ssm", "tcp:ssm", "probes.10.0.1.10.result", "timeout"),
    "tls-intercepted": ("tls:ssm", "tls:ssm", "handshakes.10.0.1.10.result", "untrusted"),
}


@pytest.fixture(scope="module")
def healthy_report(lab, tmp_path_factory):
    lab.switch("healthy")
    done = lab.run([DOCTOR, "--output", "json"], timeout=60)
    path = tmp_path_factory.mktemp("changes") / "healthy.json"
    path.write_text(done.stdout)
    assert json.loads(done.stdout)["exit_code"] == 0
    return path


@pytest.mark.parametrize("scenario", sorted(BREAKS))
def test_the_second_run_names_the_change_that_broke_it(lab, healthy_report, scenario):
    failure, check_id, what, now = BREAKS[scenario]
    lab.switch(scenario)
    done = lab.run([DOCTOR, "--output", "json", "--since", str(healthy_report)], timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    report = validate_report(json.loads(done.stdout))
    change = report["changes"]["comparisons"][0]
    assert change["against"] == "file" and failure in change["new_failures"], change
    named = [c for c in change["changed"] if (c["id"], c["what"]) == (check_id, what)]
    assert named and named[0]["now"] == now, change["changed"]
    text = lab.run([DOCTOR, "--since", str(healthy_report)], timeout=60).stdout
    assert "since the given report" in text and "now failing: " in text and failure in text.split("since the")[1]
