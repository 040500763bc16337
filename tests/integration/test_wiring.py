"""One wiring step (issue 13 item 1): a run reads the agent's config, builds its targets and its catalogue once, on
the loopback VPC (tests/integration/conftest.py), also when Ctrl-C arrives between the plan and the first check."""
from __future__ import annotations

from collections import Counter

import pytest

import vpce_doctor.checks
from vpce_doctor import plan
from vpce_doctor.checks import api_services, catalogue
from vpce_doctor.render import text
from vpce_doctor.settings import Settings


@pytest.fixture
def built(monkeypatch):
    """How many times each part of the plan is made, counted where it is defined."""
    counts: Counter = Counter()

    def counting(name, real):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)
        return wrapper
    monkeypatch.setattr(plan, "read_agent_config", counting("agent config", plan.read_agent_config))
    monkeypatch.setattr(plan, "targets", counting("targets", plan.targets))
    monkeypatch.setattr(vpce_doctor.checks, "catalogue", counting("catalogue", vpce_doctor.checks.catalogue))
    return counts


def test_a_run_builds_its_plan_once(world, built):
    run = world.doctor()
    assert run.code == 0, run.err
    assert built == {"agent config": 1, "targets": 1, "catalogue": 1}


def test_a_run_interrupted_after_its_plan_reports_that_plan_without_rebuilding_it(world, built, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(text, "header", interrupted)  # Ctrl-C while the header is written, before any check
    run = world.doctor(output="text")
    assert run.code == 2 and "interrupted: the run was stopped before this check started" in run.out
    assert built == {"agent config": 1, "targets": 1, "catalogue": 1}


def test_listing_the_checks_builds_the_plan_a_run_would_once(world, built):
    run = world.doctor("--list-checks", "--region", "eu-west-1", only=None)
    assert run.code == 0 and run.out.startswith("imds:token")
    assert built == {"agent config": 1, "targets": 1, "catalogue": 1}


def test_the_clients_made_ahead_are_those_the_checks_declare():
    """No table from check ids to services: each authenticated check names the service it calls."""
    targets = plan.targets(("ssm", "ssmmessages", "ec2messages", "s3", "ec2", "sts", "logs", "kms"), "eu-west-1",
                           "amazonaws.com", plan.AgentConfig(""))
    checks = catalogue(targets, Settings(bucket="probe-bucket"))
    declared = {c.id: c.clients for c in checks if c.clients}
    assert declared == {"sts:identity": ("sts",), "vpc:endpoints": ("ec2",), "s3:bucket": ("s3",),
                        "s3:get_put": ("s3",), "s3:list": ("s3",), "session:preferences": ("ssm",),
                        "session:s3": ("s3",), "session:logs": ("logs",), "session:kms": ("kms",),
                        "ssm:registration": ("ssm",)}
    assert api_services(checks) == ("sts", "ec2", "s3", "ssm", "logs", "kms")
