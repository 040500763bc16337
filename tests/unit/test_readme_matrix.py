"""README.md's fault matrix is exactly what the scenario files (asserted in the lab) say."""
from pathlib import Path

from tests.lab.matrix import table


def test_readme_carries_the_current_fault_matrix():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start, end = readme.index("<!-- matrix:start -->\n"), readme.index("<!-- matrix:end -->")
    assert readme[start + len("<!-- matrix:start -->\n"):end] == table(), "run: .venv/bin/python -m tests.lab.matrix"
