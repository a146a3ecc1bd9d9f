"""``kabarfeed digest preview``: the exact message a subscriber would get.

The ``digest`` group is created here; the delivery module adds ``digest send``.
"""

from __future__ import annotations

import sys
import tempfile
import webbrowser
from pathlib import Path

import click

from kabarfeed.cli.context import AppContext, parse_date_option
from kabarfeed.config import Config
from kabarfeed.digest.preview import Preview, build_preview
from kabarfeed.digest.render import DigestRenderer
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.store import subscribers as store

pass_app = click.make_pass_decorator(AppContext)


def _open(html: str, path: Path | None) -> None:
    if path is None:
        with tempfile.NamedTemporaryFile(
            "w", suffix=".html", delete=False, encoding="utf-8"
        ) as tmp:
            tmp.write(html)
            path = Path(tmp.name)
    if not webbrowser.open(path.resolve().as_uri()):
        click.echo(f"no browser available; the HTML is in {path}", err=True)


def register(main: click.Group) -> None:
    """Create the ``digest`` group on ``main`` with ``preview``."""

    @main.group("digest")
    def digest() -> None:
        """Daily digest editions: preview (and send, from the delivery engine)."""

    @digest.command("preview")
    @click.option("--email", required=True, help="The subscriber's address.")
    @click.option("--date", "on", help="Local date YYYY-MM-DD (default: next edition, now).")
    @click.option(
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the complete message (.eml) here.",
    )
    @click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write only the HTML part here.",
    )
    @click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a browser.")
    @pass_app
    def preview(
        app: AppContext,
        email: str,
        on: str | None,
        output: Path | None,
        html_path: Path | None,
        open_browser: bool,
    ) -> None:
        """Write the exact message a subscriber would get; records nothing.

        Without --output or --html the message goes to stdout.
        """
        if output and html_path:
            raise InputError("give either --output or --html, not both")
        with app.db.connect() as conn:
            sub = store.get_by_email(conn, email)
        if sub is None:
            raise NotFoundError(f"no subscriber with address {email.strip()}")
        built = build_preview(app.db, app.config, sub, now=app.clock(), on=parse_date_option(on))
        renderer = DigestRenderer(app.config, clock=app.clock)
        _report(app.config, built)
        html = renderer.render_html(built.edition) if html_path or open_browser else ""
        if html_path:
            html_path.write_text(html, encoding="utf-8")
        elif output:
            output.write_bytes(renderer.render_one(built.edition).data)
        elif not open_browser:
            sys.stdout.buffer.write(renderer.render_one(built.edition).data)
        if open_browser:
            _open(html, html_path)

    _ = preview


def _report(config: Config, built: Preview) -> None:
    sel, ed = built.selection, built.edition
    click.echo(
        f"edition {ed.local_date} for {ed.subscriber.email}: {len(sel.articles)} of "
        f"{sel.total_matching} matching articles, first seen "
        f"{sel.since.isoformat()} .. {sel.cutoff.isoformat()}",
        err=True,
    )
    if not sel.articles and config.digest.skip_empty:
        click.echo(
            "note: this edition is empty and would not be sent ([digest] skip_empty)", err=True
        )
