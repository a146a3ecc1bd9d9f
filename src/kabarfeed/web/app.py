"""Assemble the Starlette application. Kept small: feature modules contribute
routes; the static catch-all over the output folder is mounted last."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from kabarfeed.config import Config
from kabarfeed.feeds.index import IndexPage
from kabarfeed.feeds.render import FeedSite
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.web.admin import admin_routes, create_console
from kabarfeed.web.api import PushApi, api_routes
from kabarfeed.web.assets import asset_routes
from kabarfeed.web.bodylimit import BodyLimit
from kabarfeed.web.ops import ops_routes
from kabarfeed.web.pages import create_pages, page_routes
from kabarfeed.web.security import SecurityHeaders, static_csp
from kabarfeed.web.static import StaticFiles, static_routes
from kabarfeed.web.webhooks import webhook_routes


class KabarfeedApp(Starlette):
    """Starlette with the security headers outside everything, its own
    500 handler included: every response carries them, errors too."""

    def __init__(self, *, csp: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.csp = csp

    def build_middleware_stack(self) -> ASGIApp:
        """The usual stack (errors → body limit → exceptions → routes) inside
        :class:`SecurityHeaders`."""
        return SecurityHeaders(super().build_middleware_stack(), csp=self.csp)


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
    routes += webhook_routes(config, db, clock=clock)
    routes += api_routes(PushApi(config, db, clock))
    routes += admin_routes(create_console(config, db, clock=clock))
    routes += asset_routes(config)
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

    # The body limit wraps every route, present and future (APIs, webhooks).
    body_limit = Middleware(BodyLimit, max_bytes=config.web.max_body)
    app = KabarfeedApp(
        csp=static_csp(config.site.base_url),
        routes=routes,
        middleware=[body_limit],
        exception_handlers={HTTPException: http_error},
    )
    app.state.config = config
    app.state.db = db
    app.state.clock = clock
    return app
