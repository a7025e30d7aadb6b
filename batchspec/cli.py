"""The `batchspec` command: parse, call, render, map errors to exit codes. No logic lives here."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from batchspec import __version__, render
from batchspec.errors import BatchspecError
from batchspec.spec import schema, variables
from batchspec.spec.build import build


class _Group(click.Group):
    """Turns every expected failure into clear lines on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BatchspecError as exc:
            text = str(exc)
            click.echo(text if "\n" in text or text.count(": ") > 1 else f"error: {text}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def _console() -> Console:
    return Console(highlight=False)


_var_option = click.option(
    "--var", "var_pairs", multiple=True, metavar="NAME=VALUE",
    help="Override a variable of the spec (repeatable).")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchspec")
def cli() -> None:
    """A declarative runner for Azure Batch."""


@cli.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@_var_option
def validate(specs: tuple[str, ...], var_pairs: tuple[str, ...]) -> None:
    """Check specs: every error, each with its file:line:column and field."""
    overrides = variables.parse_overrides(var_pairs)
    failed: list[BatchspecError] = []
    for spec in specs:
        try:
            state = build(spec, overrides)
        except BatchspecError as exc:
            failed.append(exc)
            click.echo(str(exc), err=True)
            continue
        click.echo(f"{spec}: valid ({len(state.blobs)} blob(s), {len(state.tasks)} task(s))")
    if failed:
        sys.exit(max(e.exit_code for e in failed))


@cli.command("render")
@click.argument("spec")
@_var_option
@click.option("--json", "as_json", is_flag=True, help="Print the desired state as JSON.")
def render_cmd(spec: str, var_pairs: tuple[str, ...], as_json: bool) -> None:
    """Print the fully expanded desired state of a spec."""
    state = build(spec, variables.parse_overrides(var_pairs))
    if as_json:
        click.echo(render.to_json(state.to_dict()))
    else:
        render.desired_state(state, _console())


@cli.command("schema")
def schema_cmd() -> None:
    """Print the JSON schema of spec files (for editors and CI)."""
    click.echo(schema.schema_text(), nl=False)


def main() -> None:
    cli(prog_name="batchspec")
