#!/usr/bin/env python3
"""Write vpce_doctor/models/: botocore's own service models reduced to the operations vpce-doctor calls.

    .venv/bin/python packaging/reduce-models.py          # rewrite the models from the installed botocore
    .venv/bin/python packaging/reduce-models.py --check  # exit 1 when the committed models differ (a test runs it)

botocore reads service models through its loader's search paths, the first path holding a file winning
(botocore/loaders.py, Loader.load_data_with_path; docs: https://botocore.amazonaws.com/v1/documentation/api/latest/
reference/loaders.html). vpce_doctor.aws puts this directory first for the doctor's own session only, so each
client parses a few kilobytes instead of the whole model (ec2's: 0.55 MB gzipped, ~65 ms and ~23 MiB), and the
session a reduced endpoints.json (below). Everything else still comes from botocore: the endpoint rule sets,
paginators, sdk-extras, partitions.json, _retry.json.

A reduced model is the full one with: only the listed operations (each operation kept whole: http, traits,
httpChecksum, context params, ...), only the shapes they reach (input, output, errors, members, list members, map
keys and values), and no documentation in them. Top-level keys and metadata are kept as they are.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "vpce_doctor" / "models"

# Every operation the package calls, by service (tests/unit/test_models.py checks the package calls no other).
# sts AssumeRole and AssumeRoleWithWebIdentity: botocore's credential providers for assume-role and web-identity
# profiles call them through the same session (botocore/credentials.py, AssumeRoleProvider and
# AssumeRoleWithWebIdentityProvider create an 'sts' client with the session's create_client).
OPERATIONS = {
    "cloudtrail": ["LookupEvents"],  # trail.py (vpce-doctor history)
    "ec2": ["DescribeVpcEndpoints", "DescribeVpcAttribute", "DescribeRouteTables", "DescribeSecurityGroups",
            "DescribeSubnets", "DescribeNetworkAcls", "DescribeManagedPrefixLists", "GetManagedPrefixListEntries",
            "DescribeInstances", "DescribeVpcs", "DescribeNetworkInterfaces"],  # the last three: remote.py
    "iam": ["GetInstanceProfile", "SimulatePrincipalPolicy"],  # checks/remote.py
    "kms": ["DescribeKey"],
    "logs": ["CreateLogStream", "DescribeLogGroups", "FilterLogEvents", "GetLogEvents", "PutLogEvents"],
    # s3 CreateSession: botocore's S3 Express identity resolver calls it for directory buckets (names ending in
    # --x-s3; botocore/utils.py S3ExpressIdentityResolver), which --bucket may name.
    "s3": ["CreateSession", "DeleteObject", "GetBucketEncryption", "GetBucketPolicy", "GetObject", "HeadBucket",
           "ListBuckets", "PutObject"],
    "ssm": ["DescribeInstanceInformation", "GetCommandInvocation", "GetConnectionStatus", "GetDocument",
            "ListCommandInvocations", "ListCommands", "SendCommand"],  # the first and third: checks/ssm_view.py
    "sts": ["AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity"],
}


def reachable(shapes: dict, roots) -> list:
    """Names of every shape reachable from roots, in the full model's order (rest-xml serialises in member order)."""
    seen, todo = set(), [r for r in roots if r]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        refs = list(shape.get("members", {}).values()) + [shape[k] for k in ("member", "key", "value") if k in shape]
        todo.extend(ref["shape"] for ref in refs)
    return [name for name in shapes if name in seen]


def undocumented(value):
    if isinstance(value, dict):
        return {k: undocumented(v) for k, v in value.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [undocumented(v) for v in value]
    return value


def reduce(model: dict, operations: list) -> dict:
    missing = [op for op in operations if op not in model["operations"]]
    if missing:
        raise SystemExit(f"reduce-models: not in botocore's model: {missing}")
    ops = {name: op for name, op in model["operations"].items() if name in operations}
    roots = [ref["shape"] for op in ops.values()
             for ref in [op.get("input", {}), op.get("output", {}), *op.get("errors", [])] if ref]
    reduced = {k: v for k, v in model.items() if k not in ("operations", "shapes", "documentation")}
    # documentation goes from operations and shapes only: botocore reads clientContextParams' (model.py)
    reduced["operations"] = undocumented(ops)
    reduced["shapes"] = undocumented({name: model["shapes"][name] for name in reachable(model["shapes"], roots)})
    return reduced


# endpoints.json (the legacy endpoint data, 1.25 MB parsed into ~7 MiB of OrderedDicts and 18 ms on every run) is
# reduced to the services any client of the doctor's session may be made for: the ones above, and those botocore's
# credential and token providers create through the same session (botocore/credentials.py: 'sts', 'sso', 'signin';
# botocore/tokens.py: 'sso-oidc'). Keyed by endpoint prefix, as botocore looks them up (args.py: endpoint_prefix).
PROVIDER_SERVICES = ("sso", "sso-oidc", "signin")


def reduce_endpoints(endpoints: dict, prefixes: set) -> dict:
    partitions = [{**p, "services": {k: v for k, v in p["services"].items() if k in prefixes}}
                  for p in endpoints["partitions"]]
    return {**endpoints, "partitions": partitions}


def build() -> dict:
    """{relative path: file text} for every reduced model, from the installed botocore's builtin data."""
    import botocore
    from botocore.loaders import Loader
    loader = Loader()  # builtin paths only: never a previous reduction
    files = {}
    for service, operations in sorted(OPERATIONS.items()):
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_data(f"{service}/{version}/service-2")  # raw: botocore merges sdk-extras at load time
        text = json.dumps(reduce(model, operations), indent=None, separators=(",", ":")) + "\n"
        files[f"{service}/{version}/service-2.json"] = text
    services = sorted(OPERATIONS) + [s for s in PROVIDER_SERVICES if s in loader.list_available_services("service-2")]
    prefixes = {loader.load_service_model(s, "service-2")["metadata"]["endpointPrefix"] for s in services}
    endpoints = reduce_endpoints(loader.load_data("endpoints"), prefixes)
    files["endpoints.json"] = json.dumps(endpoints, indent=None, separators=(",", ":")) + "\n"
    files["SOURCE.json"] = json.dumps({"botocore": botocore.__version__, "operations": OPERATIONS,
                                       "endpoints.json": sorted(prefixes)}, indent=1) + "\n"
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with vpce_doctor/models/ instead of writing")
    args = p.parse_args(argv)
    files = build()
    if args.check:
        stale = [path for path, text in files.items()
                 if not (OUT / path).is_file() or (OUT / path).read_text() != text]
        extra = [str(p.relative_to(OUT)) for p in OUT.rglob("*.json") if str(p.relative_to(OUT)) not in files]
        for path in stale + extra:
            print(f"reduce-models: {path} is out of date; run packaging/reduce-models.py", file=sys.stderr)
        return 1 if stale or extra else 0
    for path, text in files.items():
        (OUT / path).parent.mkdir(parents=True, exist_ok=True)
        (OUT / path).write_text(text)
    print(f"reduce-models: {len(files) - 2} models and endpoints.json in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
