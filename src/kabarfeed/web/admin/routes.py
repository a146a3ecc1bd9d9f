"""The console's routes under ``/admin`` (none when ``[admin] enabled = false``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kabarfeed.admin.sessions import Session
from kabarfeed.config import Config
from kabarfeed.models import Clock
from kabarfeed.secrets import site_secret
from kabarfeed.store import Database
from kabarfeed.templating import bundled_templates
from kabarfeed.web.admin import (
    account_pages,
    article_pages,
    auth_pages,
    config_pages,
    digest_pages,
    job_pages,
    overview,
    subscriber_pages,
)
from kabarfeed.web.admin.core import PREFIX, Console, Handler, PublicHandler
from kabarfeed.web.security import Signer

ASSETS = {"admin.css": "text/css; charset=utf-8", "admin.js": "text/javascript; charset=utf-8"}


async def asset(request: Request) -> Response:
    """The console's stylesheet and script (served locally; no CDN)."""
    name = request.path_params["name"]
    if name not in ASSETS:
        return Response("Not Found", status_code=404, media_type="text/plain")
    body = (bundled_templates() / "admin" / name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=300"})


def create_console(
    config: Config,
    db: Database,
    *,
    clock: Clock,
    reload: Callable[[str], Awaitable[bool]] | None = None,
    now: datetime | None = None,
) -> Console:
    """The console for ``config`` (keys from the site secret)."""
    key = site_secret(config, db, now=now or clock())
    return Console(config, db, clock, Signer(key), reload=reload)


# Methods of a route: a page read, a plain GET, a form post.
READ = ("GET", "HEAD")
GET = ("GET",)
POST = ("POST",)
# Who may use a session page: any logged-in account, or admins only.
ANYONE = False
ADMIN = True

PublicSpec = tuple[str, tuple[str, ...], PublicHandler]
PageSpec = tuple[str, tuple[str, ...], Handler, bool]

# Pages reachable without a session: (path under /admin, methods, handler).
PUBLIC_PAGES: tuple[PublicSpec, ...] = (
    ("/login", READ, auth_pages.login_form),
    ("/login", POST, auth_pages.login_submit),
    ("/set-password/{token}", READ, auth_pages.set_password_form),
    ("/set-password/{token}", POST, auth_pages.set_password_submit),
)

# Pages behind the session (and CSRF on posts): (path, methods, handler, admin only).
SESSION_PAGES: tuple[PageSpec, ...] = (
    ("/logout", POST, auth_pages.logout, ANYONE),
    ("/logout-all", POST, auth_pages.logout_all, ANYONE),
    ("", READ, overview.dashboard_page, ANYONE),
    ("/", READ, overview.dashboard_page, ANYONE),
    ("/audit", READ, overview.audit_page, ANYONE),
    ("/subscribers", GET, subscriber_pages.list_page, ANYONE),
    ("/subscribers/export.csv", GET, subscriber_pages.export_csv, ADMIN),
    ("/subscribers/import", GET, subscriber_pages.import_page, ADMIN),
    ("/subscribers/import", POST, subscriber_pages.import_submit, ADMIN),
    ("/subscribers/{id:int}", GET, subscriber_pages.subscriber_page, ANYONE),
    ("/subscribers/{id:int}/unsubscribe", POST, subscriber_pages.unsubscribe, ADMIN),
    ("/subscribers/{id:int}/resend", POST, subscriber_pages.resend, ADMIN),
    ("/editions", GET, digest_pages.editions_page, ANYONE),
    ("/editions/retry", POST, digest_pages.editions_retry, ADMIN),
    ("/editions/pause", POST, digest_pages.editions_pause, ADMIN),
    ("/editions/resume", POST, digest_pages.editions_pause, ADMIN),
    ("/preview", GET, digest_pages.preview_page, ANYONE),
    ("/preview/frame", GET, digest_pages.preview_frame, ANYONE),
    ("/preview/send", POST, digest_pages.preview_send, ANYONE),
    ("/accounts", GET, account_pages.accounts_page, ADMIN),
    ("/accounts", POST, account_pages.add, ADMIN),
    ("/accounts/{id:int}/reset", POST, account_pages.reset, ADMIN),
    ("/accounts/{id:int}/role", POST, account_pages.change, ADMIN),
    ("/accounts/{id:int}/remove", POST, account_pages.change, ADMIN),
    ("/articles", GET, article_pages.list_page, ANYONE),
    ("/articles/unpublished", GET, article_pages.unpublished_page, ANYONE),
    ("/articles/{id}", GET, article_pages.article_page, ANYONE),
    ("/articles/{id}/correct", POST, article_pages.correct, ANYONE),
    ("/articles/{id}/clear", POST, article_pages.correct, ANYONE),
    ("/articles/{id}/unpublish", POST, article_pages.unpublish, ANYONE),
    ("/articles/{id}/breaking", POST, article_pages.breaking, ANYONE),
    ("/articles/{id}/republish", POST, article_pages.republish, ANYONE),
    ("/jobs/rebuild-feeds", POST, job_pages.rebuild_feeds, ADMIN),
    ("/jobs/{id}", GET, job_pages.job_page, ANYONE),
)

# The configuration editor (only when the process knows its config file).
CONFIG_PAGES: tuple[PageSpec, ...] = (
    ("/config", GET, config_pages.config_page, ADMIN),
    ("/config/check", POST, config_pages.config_check, ADMIN),
    ("/config/validate", POST, config_pages.config_validate, ADMIN),
    ("/config/apply", POST, config_pages.config_apply, ADMIN),
    ("/config/rollback/{id:int}", POST, config_pages.config_rollback, ADMIN),
)


def admin_routes(console: Console) -> list[BaseRoute]:
    """Every ``/admin`` route; empty when the console is switched off."""
    if not console.config.admin.enabled:
        return []
    c = console
    pages = SESSION_PAGES + (CONFIG_PAGES if c.config.path is not None else ())
    return [
        Route(f"{PREFIX}/assets/{{name}}", asset, methods=list(READ)),
        *(_route(path, methods, c.public(handler)) for path, methods, handler in PUBLIC_PAGES),
        *(_route(path, methods, c.page(h, admin=admin)) for path, methods, h, admin in pages),
        # Anything else under /admin: behind the session too, then "not found".
        _route("/{rest:path}", (*READ, *POST), c.page(not_found)),
    ]


def _route(path: str, methods: tuple[str, ...], endpoint: Callable[[Request], Any]) -> Route:
    """One route at ``path`` under ``/admin``."""
    return Route(f"{PREFIX}{path}", endpoint, methods=list(methods))


async def not_found(console: Console, request: Request, session: Session) -> Response:
    """An unknown console page (only ever shown to a logged-in account)."""
    return console.not_found(request, session)
