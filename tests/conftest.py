"""Shared fixtures: a clean environment that can never reach the real IMDS, and report validation."""
from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

import vpce_doctor.doctor
from vpce_doctor.render import document

SCHEMA = json.loads(resources.files("vpce_doctor").joinpath("report.schema.json").read_text())
# Port 9 on loopback: nothing listens, so an unconfigured IMDS lookup is refused at once, locally.
DEAD_IMDS = "http://127.0.0.1:9"


def validate_report(data: dict) -> dict:
    jsonschema.validate(data, SCHEMA)
    return data


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch):
    import os
    for name in list(os.environ):
        if name.startswith(("AWS_", "VPCE_DOCTOR_")) or name.lower() in (
                "http_proxy", "https_proxy", "no_proxy", "all_proxy", "requests_ca_bundle", "no_color"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", DEAD_IMDS)


@pytest.fixture(autouse=True)
def every_report_is_schema_valid(monkeypatch):
    """Every report any test produces in-process (a run's, or one interrupted before its checks) is validated
    against the shipped schema."""
    for name in ("diagnose", "interrupted_report"):
        monkeypatch.setattr(vpce_doctor.doctor, name, _validated(getattr(vpce_doctor.doctor, name)))


def _validated(real):
    def make(*args, **kwargs):
        report = real(*args, **kwargs)
        validate_report(document.to_dict(report))
        return report
    return make
