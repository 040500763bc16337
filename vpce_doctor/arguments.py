"""The argument parser every vpce-doctor command uses: a usage error is one line and exit 64, never argparse's 2."""
from __future__ import annotations

import argparse
from typing import Mapping, Optional

from .settings import INSTANCE_RE, UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2, which means "incomplete" here
        raise UsageError(message)


def instance_id(value: str) -> str:
    """--instance-id as given, or a one-line usage error before any request is made."""
    if not INSTANCE_RE.fullmatch(value):
        raise UsageError(f"--instance-id {value!r} is not an instance id like i-0123456789abcdef0")
    return value


def operator_region(flag: Optional[str], environ: Mapping[str, str]) -> Optional[str]:
    """Off the instance, the Region the operator's own tools would use: --region, AWS_REGION, AWS_DEFAULT_REGION,
    then the profile's (botocore's config chain)."""
    found = flag or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if found:
        return found
    import botocore.session
    return botocore.session.Session().get_config_variable("region")
