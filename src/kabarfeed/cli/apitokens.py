"""``kabarfeed api-token``: tokens of the CMS push API (add, list, remove).

A token is printed once, when it is made; only its SHA-256 digest is kept.
Each token writes into one configured source.
"""

from __future__ import annotations

import click

from kabarfeed import push
from kabarfeed.cli.context import AppContext

pass_app = click.make_pass_decorator(AppContext)


def register(main: click.Group) -> None:
    """Add the ``api-token`` group to ``main``."""

    @main.group("api-token")
    def token_group() -> None:
        """Tokens of the push API at /api/v1 (one source each)."""

    @token_group.command("add")
    @click.argument("name")
    @click.option("--source", required=True, help="The configured source it writes into.")
    @pass_app
    def add(app: AppContext, name: str, source: str) -> None:
        """Make a token and print it (once: it is stored hashed)."""
        made = push.add_token(app.config, app.db, name, source, now=app.clock())
        click.echo(f"token {made.row.name!r} for source {made.row.source!r}:")
        click.echo(f"  {made.secret}")
        click.echo("it is shown only now; send it as 'Authorization: Bearer <token>'.")

    @token_group.command("list")
    @pass_app
    def list_(app: AppContext) -> None:
        """Every token: name, source, first characters, creation and last use."""
        rows = push.list_tokens(app.db)
        if not rows:
            click.echo("no API tokens: kabarfeed api-token add NAME --source SOURCE")
            return
        for row in rows:
            used = row.last_used_at.strftime("%Y-%m-%d %H:%M UTC") if row.last_used_at else "never"
            made = row.created_at.strftime("%Y-%m-%d %H:%M UTC")
            click.echo(f"{row.name}\t{row.source}\t{row.prefix}…\tcreated {made}\tused {used}")

    @token_group.command("remove")
    @click.argument("name")
    @pass_app
    def remove(app: AppContext, name: str) -> None:
        """Revoke a token at once."""
        push.remove_token(app.db, name)
        click.echo(f"removed token {name!r}")
