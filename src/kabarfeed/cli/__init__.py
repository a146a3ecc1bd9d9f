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

COMMANDS: dict[str, tuple[str, ...]] = {
    "config": ("kabarfeed.cli.admin",),
    "db": ("kabarfeed.cli.admin",),
    "admin": ("kabarfeed.cli.accounts",),
    "ingest": ("kabarfeed.cli.ingest",),
    "articles": ("kabarfeed.cli.ingest",),
    "sources": ("kabarfeed.cli.ingest",),
    "subscribers": ("kabarfeed.cli.subscribers",),
    "digest": ("kabarfeed.cli.digest", "kabarfeed.cli.delivery"),
    "deliveries": ("kabarfeed.cli.delivery",),
    "build": ("kabarfeed.cli.feeds",),
    "serve": ("kabarfeed.cli.feeds",),
    "run": ("kabarfeed.cli.service",),
    "status": ("kabarfeed.cli.service",),
    "worker": ("kabarfeed.cli.worker",),
    "bounces": ("kabarfeed.cli.bounces",),
    "api-token": ("kabarfeed.cli.apitokens",),
}
"""Top-level command -> the modules whose ``register(group)`` define it, in
order. Modules are imported only when their command runs, so ``kabarfeed
status`` does not pay for the web server, SMTP and feed libraries."""


class _Group(click.Group):
    """Loads commands lazily; maps kabarfeed errors to friendly messages and exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            scratch = click.Group()
            for module in COMMANDS[cmd_name]:
                importlib.import_module(module).register(scratch)
            self.add_command(scratch.commands[cmd_name])
        return self.commands.get(cmd_name)

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
