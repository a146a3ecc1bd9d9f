"""The ``kabarfeed`` command line. Each sub-module registers one group of commands.

Errors from the :class:`~kabarfeed.errors.KabarfeedError` tree become one clear
line on stderr and a non-zero exit code; ``-v`` adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from kabarfeed import __version__
from kabarfeed.cli.context import AppContext
from kabarfeed.errors import ConfigError, KabarfeedError

COMMAND_MODULES = (
    "kabarfeed.cli.admin",
    "kabarfeed.cli.ingest",
    "kabarfeed.cli.subscribers",
    "kabarfeed.cli.digest",
    "kabarfeed.cli.feeds",
    "kabarfeed.cli.service",
    "kabarfeed.cli.delivery",
    "kabarfeed.cli.worker",
)


class _Group(click.Group):
    """Maps kabarfeed errors to friendly messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KabarfeedError as e:
            app = ctx.obj if isinstance(ctx.obj, AppContext) else None
            if app and app.verbose:
                traceback.print_exc()
            _print_error(e)
            sys.exit(e.exit_code)


def _print_error(error: KabarfeedError) -> None:
    lines = error.problems if isinstance(error, ConfigError) else [error.message]
    label = f"{len(lines)} problems in config" if len(lines) > 1 else "error"
    click.secho(f"{label}:" if len(lines) > 1 else f"error: {lines[0]}", fg="red", err=True)
    if len(lines) > 1:
        for line in lines:
            click.echo(f"  {line}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $KABARFEED_CONFIG or ./config.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.version_option(__version__, prog_name="kabarfeed")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """kabarfeed: regional news as RSS/Atom/JSON feeds and daily email digests."""
    ctx.obj = AppContext.create(config_path, verbose=verbose)
    ctx.call_on_close(ctx.obj.close)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)
