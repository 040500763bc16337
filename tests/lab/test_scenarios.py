"""The fault matrix: every scenario in tests/lab/scenarios, the doctor run inside the lab, its verdict asserted.

Each scenario file records what the doctor must conclude ([expect]): the exit code, the root causes (check id and
cause code) and any other statuses or codes. The report must be schema-valid whatever happened.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import validate_report
from tests.lab.scenario import load

SCENARIOS = sorted(Path(__file__).parent.joinpath("scenarios").glob("*.toml"))
DOCTOR = str(Path(__file__).parents[2] / ".venv" / "bin" / "vpce-doctor")


def run_doctor(lab, scenario: dict, *extra: str):
    done = lab.run([DOCTOR, "--output", "json", *scenario["doctor"]["args"], *extra],
                   env=dict(scenario["doctor"]["env"]), timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout, f"no report; stderr: {done.stderr}"
    return done.returncode, validate_report(json.loads(done.stdout))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_verdict(lab, path):
    scenario = load(path)
    lab.switch(path)
    code, report = run_doctor(lab, scenario)
    expect = scenario["expect"]
    found = {f["id"]: f for f in report["findings"]}
    causes = [(c["id"], c["code"]) for c in report["summary"]["root_causes"]]
    context = json.dumps(report["summary"], indent=1)
    for wanted in expect["root_causes"]:
        assert (wanted["check"], wanted["code"]) in causes, context
    if not expect["root_causes"]:
        assert causes == [], context
    for check_id, status in expect["statuses"].items():
        assert found[check_id]["status"] == status, (check_id, found[check_id]["summary"])
    for check_id, cause_code in expect.get("codes", {}).items():
        assert found[check_id]["code"] == cause_code, (check_id, found[check_id]["summary"])
    assert code == report["exit_code"] == expect["exit_code"], context


def test_a_scenario_file_from_anywhere_and_text_output(lab, tmp_path):
    scenario_file = tmp_path / "elsewhere.toml"
    scenario_file.write_text('description = "ssmmessages answers NXDOMAIN"\n[dns]\nssmmessages = "nxdomain"\n')
    lab.switch(scenario_file)
    done = lab.run([DOCTOR], timeout=60)
    assert done.returncode == 1
    assert "[FAIL] dns:ssmmessages" in done.stdout and "NXDOMAIN" in done.stdout
    assert "problem to fix:" in done.stdout and "\033[" not in done.stdout
