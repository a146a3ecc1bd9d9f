"""The console's routes under ``/admin`` (none when ``[admin] enabled = false``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

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
from kabarfeed.web.admin.core import PREFIX, Console
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


def admin_routes(console: Console) -> list[BaseRoute]:
    """Every ``/admin`` route; empty when the console is switched off."""
    if not console.config.admin.enabled:
        return []
    c = console
    return [
        Route(f"{PREFIX}/assets/{{name}}", asset, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/login", c.public(auth_pages.login_form), methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/login", c.public(auth_pages.login_submit), methods=["POST"]),
        Route(
            f"{PREFIX}/set-password/{{token}}",
            c.public(auth_pages.set_password_form),
            methods=["GET", "HEAD"],
        ),
        Route(
            f"{PREFIX}/set-password/{{token}}",
            c.public(auth_pages.set_password_submit),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/logout", c.page(auth_pages.logout), methods=["POST"]),
        Route(f"{PREFIX}/logout-all", c.page(auth_pages.logout_all), methods=["POST"]),
        Route(PREFIX, c.page(overview.dashboard_page), methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/", c.page(overview.dashboard_page), methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/audit", c.page(overview.audit_page), methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/subscribers", c.page(subscriber_pages.list_page), methods=["GET"]),
        Route(
            f"{PREFIX}/subscribers/export.csv",
            c.page(subscriber_pages.export_csv, admin=True),
            methods=["GET"],
        ),
        Route(
            f"{PREFIX}/subscribers/import",
            c.page(subscriber_pages.import_page, admin=True),
            methods=["GET"],
        ),
        Route(
            f"{PREFIX}/subscribers/import",
            c.page(subscriber_pages.import_submit, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/subscribers/{{id:int}}",
            c.page(subscriber_pages.subscriber_page),
            methods=["GET"],
        ),
        Route(
            f"{PREFIX}/subscribers/{{id:int}}/unsubscribe",
            c.page(subscriber_pages.unsubscribe, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/subscribers/{{id:int}}/resend",
            c.page(subscriber_pages.resend, admin=True),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/editions", c.page(digest_pages.editions_page), methods=["GET"]),
        Route(
            f"{PREFIX}/editions/retry",
            c.page(digest_pages.editions_retry, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/editions/pause",
            c.page(digest_pages.editions_pause, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/editions/resume",
            c.page(digest_pages.editions_pause, admin=True),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/preview", c.page(digest_pages.preview_page), methods=["GET"]),
        Route(f"{PREFIX}/preview/frame", c.page(digest_pages.preview_frame), methods=["GET"]),
        Route(f"{PREFIX}/preview/send", c.page(digest_pages.preview_send), methods=["POST"]),
        Route(
            f"{PREFIX}/accounts", c.page(account_pages.accounts_page, admin=True), methods=["GET"]
        ),
        Route(f"{PREFIX}/accounts", c.page(account_pages.add, admin=True), methods=["POST"]),
        Route(
            f"{PREFIX}/accounts/{{id:int}}/reset",
            c.page(account_pages.reset, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/accounts/{{id:int}}/role",
            c.page(account_pages.change, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/accounts/{{id:int}}/remove",
            c.page(account_pages.change, admin=True),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/articles", c.page(article_pages.list_page), methods=["GET"]),
        Route(
            f"{PREFIX}/articles/unpublished",
            c.page(article_pages.unpublished_page),
            methods=["GET"],
        ),
        Route(f"{PREFIX}/articles/{{id}}", c.page(article_pages.article_page), methods=["GET"]),
        Route(f"{PREFIX}/articles/{{id}}/correct", c.page(article_pages.correct), methods=["POST"]),
        Route(f"{PREFIX}/articles/{{id}}/clear", c.page(article_pages.correct), methods=["POST"]),
        Route(
            f"{PREFIX}/articles/{{id}}/unpublish",
            c.page(article_pages.unpublish),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/articles/{{id}}/republish",
            c.page(article_pages.republish),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/jobs/rebuild-feeds",
            c.page(job_pages.rebuild_feeds, admin=True),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/jobs/{{id}}", c.page(job_pages.job_page), methods=["GET"]),
        *(_config_routes(c) if console.config.path is not None else []),
        # Anything else under /admin: behind the session too, then "not found".
        Route(f"{PREFIX}/{{rest:path}}", c.page(not_found), methods=["GET", "HEAD", "POST"]),
    ]


def _config_routes(c: Console) -> list[BaseRoute]:
    """The configuration editor (only when the process knows its config file)."""
    return [
        Route(f"{PREFIX}/config", c.page(config_pages.config_page, admin=True), methods=["GET"]),
        Route(
            f"{PREFIX}/config/check",
            c.page(config_pages.config_check, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/config/validate",
            c.page(config_pages.config_validate, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/config/apply",
            c.page(config_pages.config_apply, admin=True),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/config/rollback/{{id:int}}",
            c.page(config_pages.config_rollback, admin=True),
            methods=["POST"],
        ),
    ]


async def not_found(console: Console, request: Request, session: Session) -> Response:
    """An unknown console page (only ever shown to a logged-in account)."""
    return console.render(
        request,
        "message.html.j2",
        "not_found",
        session=session,
        status=404,
        message=console.text(request, "not_found"),
    )
