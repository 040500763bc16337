"""ssm:registration's observer: the two calls it makes (through the clients seam), in order and with the instance's
id, and the runs kept beside the spool read for the timeline (written by history.keep, as a --ship run writes them)."""
from datetime import datetime, timezone
from types import SimpleNamespace

from vpce_doctor import history
from vpce_doctor.changes import record
from vpce_doctor.checks import ssm_view
from vpce_doctor.facts import Facts, Imds
from vpce_doctor.model import Result, Status
from vpce_doctor.settings import Settings

IID = "i-0598c7d356eba48d7"


class FakeSsm:
    """The ssm client's two operations, answering in the API reference's shapes (see test_ssm_view.py); botocore
    clients are thread-safe, and so is list.append."""

    def __init__(self, ping="ConnectionLost", denied=False):
        self.calls, self.ping, self.denied = [], ping, denied

    def describe_instance_information(self, **params):
        self.calls.append(("describe_instance_information", params))
        return {"InstanceInformationList": [{"InstanceId": IID, "PingStatus": self.ping, "AgentVersion": "3.3.2958.0",
                                             "LastPingDateTime": datetime(2026, 11, 28, 11, 58, tzinfo=timezone.utc)}]}

    def get_connection_status(self, **params):
        self.calls.append(("get_connection_status", params))
        return {"Target": params["Target"], "Status": "notconnected"}


def report(started_at, exit_code, status):
    return {"schema": "vpce-doctor/report/1", "started_at": started_at, "exit_code": exit_code,
            "instance": {"instance_id": IID},
            "findings": [{"id": "dns:ssm", "status": status, "code": "" if status == "pass" else "public-answer",
                          "needs": ["dns:resolver"], "summary": "", "evidence": {}}]}


def test_run_asks_ssm_about_this_instance_and_dates_it_by_the_kept_runs(tmp_path):
    spool = str(tmp_path / "spool")
    healthy = record(report("2026-11-28T11:45:02.000Z", 0, "pass"))
    assert history.keep(spool, healthy, {}) is None
    broken = record(report("2026-11-28T12:00:03.000Z", 1, "fail"))
    assert history.keep(spool, broken, {"healthy": healthy}) is None
    ssm = FakeSsm()
    ctx = SimpleNamespace(settings=Settings(spool_dir=spool), clients=SimpleNamespace(client=lambda name: ssm),
                          facts=Facts(Imds("http://169.254.169.254"), instance_id=IID, role_name="web-ssm"))
    prior = {"dns:ssm": Result(Status.FAIL, "ssm.eu-west-1.amazonaws.com resolves to 52.119.196.10",
                               code="public-answer")}
    result = ssm_view.run(ctx, prior)
    assert sorted(ssm.calls) == [("describe_instance_information", {"Filters": [{"Key": "InstanceIds",
                                                                                 "Values": [IID]}]}),
                                 ("get_connection_status", {"Target": IID})]  # made at once
    assert result.code == "connection-lost" and result.caused_by == ("dns:ssm",)
    assert "last healthy run was 2026-11-28T11:45:02Z; its first broken run 2026-11-28T12:00:03Z, when dns:ssm " \
           "began to fail" in result.cause


def test_run_fills_the_role_into_the_statement_to_add(tmp_path):
    class Denied(FakeSsm):
        def describe_instance_information(self, **params):
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
                              "DescribeInstanceInformation")
    ssm = Denied()
    ctx = SimpleNamespace(settings=Settings(spool_dir=str(tmp_path / "none")),
                          clients=SimpleNamespace(client=lambda name: ssm),
                          facts=Facts(Imds("http://169.254.169.254"), instance_id=IID, role_name="web-ssm"))
    result = ssm_view.run(ctx, {})
    assert result.status is Status.WARN and result.code == "not-permitted"
    assert "connection" not in result.evidence  # asked, but not judged without SSM's list
    assert "--role-name web-ssm " in result.remedy.commands[0]
    nameless = SimpleNamespace(**{**vars(ctx), "facts": Facts(Imds("http://169.254.169.254"), instance_id=IID)})
    assert "--role-name <role> " in ssm_view.run(nameless, {}).remedy.commands[0]  # IMDS named no role
