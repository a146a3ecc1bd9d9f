"""``kabarfeed build`` (feeds, OPML, index page) and ``kabarfeed serve``."""

from __future__ import annotations

from pathlib import Path

import click

from kabarfeed.cli.context import AppContext
from kabarfeed.config import Config
from kabarfeed.feeds import cluster

pass_app = click.make_pass_decorator(AppContext)


def with_output(config: Config, output: str | None) -> Config:
    """``config`` with ``feeds.output`` replaced (``--output``), made absolute."""
    if not output:
        return config
    feeds = config.feeds.model_copy(update={"output": Path(output).resolve()})
    return config.model_copy(update={"feeds": feeds})


def register(main: click.Group) -> None:
    """Add ``build`` and ``serve`` to ``main``."""

    @main.command("build")
    @click.option(
        "--all",
        "full",
        is_flag=True,
        help="Rebuild every feed, not only those with changed articles.",
    )
    @click.option(
        "--output",
        type=click.Path(file_okay=False),
        default=None,
        help="Output folder (default: feeds.output from the config).",
    )
    @pass_app
    def build(app: AppContext, full: bool, output: str | None) -> None:
        """Write RSS, Atom and JSON feeds, feeds/index.opml and index.html."""
        config = with_output(app.config, output)
        report = cluster.build(config, app.db, app.clock, full=full)
        click.echo(f"{report.summary()} ({config.feeds.output})")

    @main.command("serve")
    @click.option("--host", default=None, help="Address to listen on (default: web.host).")
    @click.option("--port", type=int, default=None, help="Port (default: web.port).")
    @pass_app
    def serve(app: AppContext, host: str | None, port: int | None) -> None:
        """Serve the output folder (and the web pages) over HTTP."""
        from kabarfeed.web import create_app
        from kabarfeed.web.server import ServerLimits, WebServer, server_config

        config = app.config
        web = create_app(config, app.db, clock=app.clock)
        settings = server_config(
            web,
            host=host or config.web.host,
            port=config.web.port if port is None else port,
            limits=ServerLimits.from_config(config.web),
            log_level=config.logging.level.lower(),
            proxy_headers=True,
        )
        WebServer(settings).run()
