"""Operator subcommands of this domain for `auth-service`."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private API
    """Add this domain's subcommands to the `auth-service` parser."""
