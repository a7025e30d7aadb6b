"""Asking before a change: only 'yes' goes on, and without a terminal nothing is asked."""

from __future__ import annotations

import sys

import click

from batchspec.errors import UsageError


def confirm(action: str, auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {action} without confirmation: no terminal to ask on", hint="pass --auto-approve"
        )
    answer = click.prompt(
        f"Do you want to {action}? Only 'yes' will be accepted", default="", show_default=False
    )
    if answer.strip() != "yes":
        raise UsageError(f"{action} cancelled")
