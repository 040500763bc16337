"""The lab's fleet: Run Command at scale, as SSM answers it (the front, aws_front.py, hands it the calls).

moto resolves a SendCommand's Targets against its EC2 instances and reports Success at once with no output. The
scenario's [fleet] instances exist only here: SendCommand reaches those whose tags match its Targets, their
invocations reach the scenario's outcome after `seconds`, and with ship=true the doctor's report (a JSON report
file made by a real doctor run) is in the log group from the moment the command is sent. ListCommandInvocations is
paged as SSM pages it, ListCommands counts as SSM counts, and [fleet] rates throttle as AWS throttles.
"""
from __future__ import annotations

import calendar
import json
import re
import time


def run_command(world, operation: str, params: dict) -> dict | None:
    """The Run Command reads moto lacks or answers without the [fleet] instances; None lets moto answer."""
    if operation == "ListCommandInvocations":
        return list_invocations(world, params)
    if operation == "ListCommands" and params.get("CommandId") in world.fleet_runs:
        return counts(world, params["CommandId"])
    if operation == "GetCommandInvocation":  # a [fleet] instance's; None: moto answers for its own
        return next((invocation(world, c, params.get("InstanceId"), listed=False)
                     for c in world.backend("ssm")._commands if c.command_id == params.get("CommandId")), None)
    return None


OUTCOMES = {"Success": ("Success", "Success"), "Failed": ("Failed", "Failed"),  # outcome: (Status, details)
            "Undeliverable": ("Failed", "Undeliverable"),
            "Delivery Timed Out": ("TimedOut", "Delivery Timed Out"),
            "Execution Timed Out": ("TimedOut", "Execution Timed Out")}
KEYS = {"id", "tags", "outcome", "exit_code", "report", "output", "seconds"}


def validate(instances: list) -> None:
    """A scenario's [fleet] instances, refused with one line when malformed (before the world is reset)."""
    for spec in instances:
        if not isinstance(spec, dict) or not re.fullmatch(r"i-[0-9a-f]{8,17}", str(spec.get("id"))) or \
                spec.get("outcome") not in OUTCOMES or set(spec) - KEYS:
            raise ValueError(f"[fleet] instance {spec!r}: needs id = 'i-<hex>' and outcome in "
                             f"{', '.join(OUTCOMES)}; keys {', '.join(sorted(KEYS))}")


def _targeted(spec: dict, params: dict) -> bool:
    if spec["id"] in (params.get("InstanceIds") or []):
        return True
    targets = params.get("Targets") or []
    tags = spec.get("tags") or {}
    return bool(targets) and all(
        (t["Key"].startswith("tag:") and tags.get(t["Key"][4:]) in t.get("Values", [])) or
        (t["Key"].lower() == "instanceids" and spec["id"] in t.get("Values", [])) for t in targets)


def sent(world, command_id: str, params: dict) -> None:
    """After moto's SendCommand: add the [fleet] instances it targets; ship their reports when ship=true."""
    specs = [s for s in world.scenario.get("fleet", {}).get("instances", []) if _targeted(s, params)]
    if not specs:
        return
    command = next(c for c in world.backend("ssm")._commands if c.command_id == command_id)
    command.instance_ids += [s["id"] for s in specs if s["id"] not in command.instance_ids]
    command.target_count = len(command.instance_ids)
    world.fleet_runs[command_id] = {"sent": time.time(), "instances": {s["id"]: s for s in specs}}
    parameters = params.get("Parameters") or {}
    if parameters.get("ship") != ["true"]:
        return
    group, logs = (parameters.get("logGroup") or ["/vpce-doctor/reports"])[0], world.client("logs")
    for spec in specs:
        if spec.get("report") and spec["outcome"] in ("Success", "Failed"):
            with open(spec["report"]) as handle:
                report = json.load(handle)
            report["instance"]["instance_id"] = spec["id"]
            try:
                logs.create_log_stream(logGroupName=group, logStreamName=spec["id"])
            except logs.exceptions.ResourceAlreadyExistsException:
                pass
            logs.put_log_events(logGroupName=group, logStreamName=spec["id"], logEvents=[
                {"timestamp": int(time.time() * 1000), "message": json.dumps(report)}])


def invocation(world, command, instance_id, listed: bool, with_plugins: bool = False) -> dict | None:
    """A [fleet] instance's invocation (ListCommandInvocations' shape, or GetCommandInvocation's)."""
    run = world.fleet_runs.get(command.command_id) or {"instances": {}}
    spec = run["instances"].get(instance_id)
    if spec is None:
        return None
    status, details = OUTCOMES[spec["outcome"]]
    ran = spec["outcome"] in ("Success", "Failed")
    if time.time() < run["sent"] + float(spec.get("seconds", 0)):
        status = details = "InProgress" if ran or spec["outcome"] == "Execution Timed Out" else "Pending"
    done = status in ("Success", "Failed", "TimedOut")
    answer = {"CommandId": command.command_id, "InstanceId": instance_id, "DocumentName": command.document_name,
              "DocumentVersion": "$DEFAULT", "Comment": command.comment, "Status": status, "StatusDetails": details,
              "StandardOutputUrl": "", "StandardErrorUrl": ""}
    code = int(spec.get("exit_code", 0 if spec["outcome"] == "Success" else 1))
    if listed:
        plugins = [{"Name": "runVpceDoctor", "Status": status, "StatusDetails": details,
                    "ResponseCode": code if done and ran else -1,
                    "Output": (spec.get("output", "") if done and ran else "")[:2500]}] if with_plugins else []
        return {**answer, "RequestedDateTime": calendar.timegm(command.requested_date_time.utctimetuple()),
                "CommandPlugins": plugins}
    return {**answer, "PluginName": "runVpceDoctor", "ResponseCode": code if done and ran else -1,
            "StandardOutputContent": spec.get("output", "") if done and ran else "", "StandardErrorContent": ""}


def list_invocations(world, params: dict) -> dict:
    """ListCommandInvocations as SSM pages it: MaxResults 1-50 (default 50), NextToken; with Details, each
    invocation's CommandPlugins (Output cut at 2,500 characters, as CommandPluginOutput's max in the SSM model)."""
    pairs = [(c, iid) for c in world.backend("ssm")._commands for iid in c.instance_ids
             if params.get("CommandId") in (None, c.command_id) and params.get("InstanceId") in (None, iid)]
    start, size = int(params.get("NextToken") or 0), min(50, int(params.get("MaxResults") or 50))
    page = []
    for command, iid in pairs[start:start + size]:
        listed = invocation(world, command, iid, listed=True, with_plugins=bool(params.get("Details")))
        page.append(listed or {
            "CommandId": command.command_id, "InstanceId": iid, "DocumentName": command.document_name,
            "DocumentVersion": "$DEFAULT", "Comment": command.comment, "Status": command.status,
            "RequestedDateTime": calendar.timegm(command.requested_date_time.utctimetuple()),
            "StatusDetails": command.status, "StandardOutputUrl": "", "StandardErrorUrl": "", "CommandPlugins": []})
    more = {"NextToken": str(start + size)} if start + size < len(pairs) else {}
    return {"CommandInvocations": page, **more}


def counts(world, command_id: str) -> dict:
    """ListCommands for a command that reached [fleet] instances: its counts as SSM keeps them (CompletedCount: a
    terminal state; ErrorCount: Failed or Execution Timed Out; DeliveryTimedOutCount;
    https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Command.html)."""
    command = next(c for c in world.backend("ssm")._commands if c.command_id == command_id)
    states = [invocation(world, command, iid, listed=True) for iid in world.fleet_runs[command_id]["instances"]]
    details = [s["StatusDetails"] for s in states if s]
    done = [d for d in details if d not in ("Pending", "InProgress")]
    errors = sum(d in ("Failed", "Execution Timed Out") for d in details)
    status = "InProgress" if len(done) < len(details) else "Success" if errors == 0 and set(done) <= {"Success"} \
        else "Failed"
    answer = {"CommandId": command_id, "DocumentName": command.document_name, "Status": status,
              "StatusDetails": status, "TargetCount": len(details), "CompletedCount": len(done),
              "ErrorCount": errors, "DeliveryTimedOutCount": details.count("Delivery Timed Out"),
              "Targets": command.targets, "Parameters": command.parameters, "MaxErrors": command.max_errors,
              "MaxConcurrency": command.max_concurrency,
              "RequestedDateTime": calendar.timegm(command.requested_date_time.utctimetuple())}
    return {"Commands": [answer]}


def throttled(world, operation: str) -> bool:
    """[fleet] rates: a token bucket per operation (requests per second, burst of one second's worth), so the fleet
    view meets the rates AWS documents; over it, the call is refused as AWS refuses it (ThrottlingException)."""
    rate = (world.scenario.get("fleet", {}).get("rates") or {}).get(operation)
    if not rate:
        return False
    now, buckets = time.monotonic(), world.__dict__.setdefault("rate_buckets", {})
    tokens, last = buckets.get(operation, (float(rate), now))
    tokens = min(float(rate), tokens + (now - last) * float(rate))
    counts = world.__dict__.setdefault("rate_counts", {})
    counts[operation] = counts.get(operation, 0) + 1
    if tokens < 1:
        buckets[operation] = (tokens, now)
        counts[operation + ":throttled"] = counts.get(operation + ":throttled", 0) + 1
        return True
    buckets[operation] = (tokens - 1, now)
    return False
