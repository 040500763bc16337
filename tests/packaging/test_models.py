"""The reduced service models (vpce_doctor/models/, written by packaging/reduce-models.py from botocore's own): up to
date, covering every operation the package calls, and making byte-equal requests on the newest and the oldest
botocore the project claims (.venv: requirements-test.txt; .venv-oldest: requirements-oldest.txt, botocore 1.33)."""
from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OLDEST_PYTHON = REPO / ".venv-oldest" / "bin" / "python"
CHECK = REPO / "tests" / "models_check.py"


def generator():
    spec = importlib.util.spec_from_file_location("reduce_models", REPO / "packaging" / "reduce-models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_services() -> set:
    """Every service the package makes a client for: `.client("svc")` with a literal."""
    found = set()
    for path in (REPO / "vpce_doctor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "client" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
    return found


def used_operations() -> set:
    """Every `call(client, "operation", ...)` and `get_paginator("operation")` in the package, by method name."""
    used = set()
    for path in (REPO / "vpce_doctor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == "call" and len(node.args) >= 2 and args and node.args[1].value == args[0]:
                used.add(args[0])
            elif name == "get_paginator" and args:
                used.add(args[0])
    return used - {"build_full_result"}  # a paginator's method, not an operation


def test_models_are_what_the_generator_writes_from_this_botocore():
    assert generator().main(["--check"]) == 0, "run: .venv/bin/python packaging/reduce-models.py"


def test_every_operation_the_package_calls_is_in_the_reduced_models():
    from botocore import xform_name
    carried = {xform_name(op) for ops in generator().OPERATIONS.values() for op in ops}
    used = used_operations()
    assert {"describe_vpc_endpoints", "put_object", "get_caller_identity", "put_log_events"} <= used  # the scan works
    assert used - carried == set(), "add them to OPERATIONS in packaging/reduce-models.py and run it"


def test_every_service_the_package_makes_clients_for_is_carried():
    """endpoints.json is reduced too: a client of a service it lacks could sign for the wrong Region (iam, a global
    service, signs for us-east-1 by its entry), so a new service must go through packaging/reduce-models.py."""
    services = client_services()
    assert {"ec2", "s3", "sts"} <= services  # the scan works
    assert services - set(generator().OPERATIONS) == set()


def run_check(python: str) -> dict:
    done = subprocess.run([python, str(CHECK)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("python", [sys.executable, str(OLDEST_PYTHON)], ids=["newest", "oldest"])
def test_requests_are_byte_equal_with_the_full_models(python):
    if not Path(python).exists():
        pytest.fail(f"{python} is missing: make oldest")
    result = run_check(python)
    assert result["calls"] >= 60 and result["clients"] >= 54
    assert result["differences"] == [], json.dumps(result["differences"], indent=1)[:4000]
    assert set(result["absent"]) <= {"s3.create_session"}  # only what is newer than botocore 1.33.0


def test_the_check_sees_a_wrong_header_name(tmp_path, monkeypatch):
    """A model whose ACL member names another header (as a botched reduction could) makes another request."""
    models = tmp_path / "models"
    shutil.copytree(REPO / "vpce_doctor" / "models", models)
    path = next(models.glob("s3/*/service-2.json"))
    model = json.loads(path.read_text())
    model["shapes"]["PutObjectRequest"]["members"]["ACL"]["locationName"] = "x-amz-grant-full-control"
    path.write_text(json.dumps(model))
    models_check = import_check()
    monkeypatch.setattr(models_check, "MODELS", str(models))
    call = next(c for c in models_check.CALLS if "ACL" in c[2])  # the session-log probe's PutObject
    full, reduced = models_check.capture(False, *call), models_check.capture(True, *call)
    assert full["headers"]["x-amz-acl"] == "bucket-owner-full-control" and "x-amz-acl" not in reduced["headers"]


def test_the_check_sees_a_missing_endpoints_entry(tmp_path, monkeypatch):
    """endpoints.json without s3's entries: an s3 client made without endpoint_url in us-east-1 no longer resolves."""
    models = tmp_path / "models"
    shutil.copytree(REPO / "vpce_doctor" / "models", models)
    data = json.loads((models / "endpoints.json").read_text())
    for partition in data["partitions"]:
        del partition["services"]["s3"]
    (models / "endpoints.json").write_text(json.dumps(data))
    models_check = import_check()
    monkeypatch.setattr(models_check, "MODELS", str(models))
    assert models_check.meta(False, "s3", "us-east-1")["url"] == "https://s3.amazonaws.com"
    assert models_check.meta(True, "s3", "us-east-1") != models_check.meta(False, "s3", "us-east-1")


def import_check():
    sys.path.insert(0, str(CHECK.parent))
    try:
        import models_check
    finally:
        sys.path.remove(str(CHECK.parent))
    return models_check
