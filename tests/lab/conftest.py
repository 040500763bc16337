"""Makes the session-scoped `lab` fixture available to the lab's own tests (tests/conftest.py may import it too)."""
from tests.lab.fixture import lab  # noqa: F401
