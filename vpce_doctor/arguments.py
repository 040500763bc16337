"""The argument parser every vpce-doctor command uses: a usage error is one line and exit 64, never argparse's 2."""
from __future__ import annotations

import argparse

from .settings import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2, which means "incomplete" here
        raise UsageError(message)
