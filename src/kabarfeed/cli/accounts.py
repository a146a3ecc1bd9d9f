"""``kabarfeed admin``: console accounts (add, list, remove, reset, role).

Every change is written to the console's audit log as ``cli:<user>``.
"""

from __future__ import annotations

import click

from kabarfeed.admin import accounts
from kabarfeed.admin.audit import Actor
from kabarfeed.cli.context import AppContext

pass_app = click.make_pass_decorator(AppContext)
ROLES = click.Choice([r.value for r in accounts.Role], case_sensitive=False)


def _print_link(app: AppContext, invite: accounts.Invite) -> None:
    expires = invite.expires.strftime("%Y-%m-%d %H:%M UTC")
    click.echo(f"one-time set-password link (valid until {expires}):")
    click.echo(f"  {invite.url(app.config.site.base_url)}")
    click.echo("send it to its owner over a trusted channel; it works once.")


def register(main: click.Group) -> None:
    """Add the ``admin`` group to ``main``."""

    @main.group("admin")
    def admin_group() -> None:
        """Newsroom console accounts (the console is at /admin)."""

    @admin_group.command("add")
    @click.argument("email")
    @click.option("--role", type=ROLES, default="editor", show_default=True)
    @pass_app
    def add(app: AppContext, email: str, role: str) -> None:
        """Create an account and print its one-time set-password link."""
        invite = accounts.add_account(
            app.db,
            email,
            accounts.Role.parse(role),
            Actor.cli(),
            now=app.clock(),
            ttl=app.config.admin.invite_ttl,
        )
        click.echo(f"added {invite.account.email} ({invite.account.role.value})")
        _print_link(app, invite)

    @admin_group.command("list")
    @pass_app
    def list_(app: AppContext) -> None:
        """Every account with its role, password state and last login."""
        found = accounts.list_accounts(app.db)
        if not found:
            click.echo("no console accounts yet: kabarfeed admin add EMAIL --role admin")
            return
        now = app.clock()
        for acc in found:
            if acc.has_password:
                state = "active"
            elif acc.invite_expires_at and acc.invite_expires_at > now:
                state = "invited"
            else:
                state = "invite expired (admin reset)"
            last = acc.last_login_at.strftime("%Y-%m-%d %H:%M") if acc.last_login_at else "never"
            click.echo(f"{acc.email}\t{acc.role.value}\t{state}\tlast login {last}")

    @admin_group.command("remove")
    @click.argument("email")
    @pass_app
    def remove(app: AppContext, email: str) -> None:
        """Delete an account; its sessions end at once."""
        gone = accounts.remove_account(app.db, email, Actor.cli(), now=app.clock())
        click.echo(f"removed {gone.email}")

    @admin_group.command("reset")
    @click.argument("email")
    @pass_app
    def reset(app: AppContext, email: str) -> None:
        """Clear the password, end all sessions and print a new set-password link."""
        invite = accounts.reset_account(
            app.db, email, Actor.cli(), now=app.clock(), ttl=app.config.admin.invite_ttl
        )
        click.echo(f"reset {invite.account.email}: password cleared, sessions ended")
        _print_link(app, invite)

    @admin_group.command("role")
    @click.argument("email")
    @click.argument("role", type=ROLES)
    @pass_app
    def role(app: AppContext, email: str, role: str) -> None:
        """Make an account an admin or an editor."""
        changed = accounts.set_role(
            app.db, email, accounts.Role.parse(role), Actor.cli(), now=app.clock()
        )
        click.echo(f"{changed.email} is now {changed.role.value}")
