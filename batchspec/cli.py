"""The `batchspec` command: parse, call, render, map errors to exit codes. No logic lives here."""

from __future__ import annotations

import sys

import click

from batchspec import __version__
from batchspec.errors import BatchspecError


class _Group(click.Group):
    """Turns every expected failure into one clear line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BatchspecError as exc:
            click.echo(f"error: {exc}" if "\n" not in str(exc) else str(exc), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="batchspec")
def cli() -> None:
    """A declarative runner for Azure Batch."""


def main() -> None:
    cli(prog_name="batchspec")
