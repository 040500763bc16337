"""The fault matrix for the README: every scenario and the verdict the doctor must give (its [expect]).

    .venv/bin/python -m tests.lab.matrix      # prints the markdown table README.md carries

tests/lab/test_scenarios.py asserts each verdict in the lab; tests/unit/test_readme_matrix.py keeps README.md equal
to this output, so the table in the README is always what CI proved.
"""
from __future__ import annotations

from pathlib import Path

from tests.lab.scenario import load

SCENARIOS = Path(__file__).parent / "scenarios"


def table() -> str:
    rows = ["| scenario | what is broken | the doctor's verdict (root cause: check, code) | exit |", "|---|---|---|---|"]
    for path in sorted(SCENARIOS.glob("*.toml")):
        scenario = load(path)
        expect = scenario["expect"]
        causes = ", ".join(f"`{c['check']}` {c['code']}" for c in expect["root_causes"]) or "healthy"
        notes = ", ".join(f"`{check}` {code}" for check, code in expect.get("codes", {}).items())
        verdict = causes + (f"; also {notes}" if notes else "")
        rows.append(f"| `{path.stem}` | {scenario['description']} | {verdict} | {expect['exit_code']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
