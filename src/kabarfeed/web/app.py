"""Assemble the Starlette application. Kept small: feature modules contribute
routes; the static catch-all over the output folder is mounted last."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from kabarfeed.config import Config
from kabarfeed.feeds.index import IndexPage
from kabarfeed.feeds.render import FeedSite
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.web.ops import ops_routes
from kabarfeed.web.pages import create_pages, page_routes
from kabarfeed.web.security import SecurityHeaders, static_csp
from kabarfeed.web.static import StaticFiles, static_routes


def create_app(config: Config, db: Database, *, clock: Clock) -> Starlette:
    """The web application: feature routes first, then the output folder.

    ``config``, ``db`` and ``clock`` are kept on ``app.state`` for the route
    modules that need them.
    """
    not_found = IndexPage(FeedSite.from_config(config)).render_not_found()
    static = StaticFiles(
        config.feeds.output,
        max_age=int(config.feeds.cache_max_age.total_seconds()),
        not_found=not_found,
    )
    routes: list[BaseRoute] = []
    # Feature modules (subscription pages, APIs) add their routes here, before
    # the static catch-all below.
    routes += ops_routes(db, metrics_token=config.web.metrics_token.get_secret_value())
    routes += page_routes(create_pages(config, db, clock=clock))
    routes += static_routes(static)

    async def http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 404:
            return static.not_found()
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None
        return Response(
            str(getattr(exc, "detail", "")),
            status_code=status,
            headers=headers,
            media_type="text/plain",
        )

    headers = Middleware(SecurityHeaders, csp=static_csp(config.site.base_url))
    app = Starlette(
        routes=routes, middleware=[headers], exception_handlers={HTTPException: http_error}
    )
    app.state.config = config
    app.state.db = db
    app.state.clock = clock
    return app
