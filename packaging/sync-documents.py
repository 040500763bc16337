#!/usr/bin/env python3
"""Keep one source of truth for the SSM documents: packaging/ssm/<name>.yaml.

    python3 packaging/sync-documents.py          # write <name>.json and the copies inside the CloudFormation template
    python3 packaging/sync-documents.py --check  # exit 1 if any of them differs from the YAML (what the tests run)

The template holds each document verbatim between "# BEGIN packaging/ssm/<name>.yaml" and "# END ..." comment
lines, indented under its Content: key. Needs PyYAML.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict

import yaml

HERE = Path(__file__).resolve().parent
DOCUMENTS = ("vpce-doctor-run", "vpce-doctor-install")
TEMPLATE = HERE / "cloudformation" / "vpce-doctor.yaml"


def block(name: str) -> "re.Pattern[str]":
    path = re.escape(f"packaging/ssm/{name}.yaml")
    return re.compile(rf"^(?P<indent>[ ]*)# BEGIN {path}(?P<note>[^\n]*)\n(?P<body>.*?)^(?P=indent)# END {path}\n",
                      re.M | re.S)


def expected() -> Dict[Path, str]:
    files: Dict[Path, str] = {}
    template = TEMPLATE.read_text()
    for name in DOCUMENTS:
        text = (HERE / "ssm" / f"{name}.yaml").read_text()
        files[HERE / "ssm" / f"{name}.json"] = json.dumps(yaml.safe_load(text), indent=2) + "\n"
        found = block(name).search(template)
        if not found:
            raise SystemExit(f"sync-documents: no BEGIN/END block for {name} in {TEMPLATE}")
        indent = found.group("indent")
        body = "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))
        template = (template[:found.start("body")] + body + template[found.end("body"):])
    files[TEMPLATE] = template
    return files


def main(argv) -> int:
    check = "--check" in argv
    stale = []
    for path, text in expected().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    for path in stale:
        print(f"{'stale' if check else 'wrote'}: {path.relative_to(HERE.parent)}")
    if check and stale:
        print("run: python3 packaging/sync-documents.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
