"""The subscription routes of one app, and the app's page handlers made from config."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kabarfeed.config import Config
from kabarfeed.errors import StoreError
from kabarfeed.models import Clock
from kabarfeed.secrets import site_secret
from kabarfeed.store import Database
from kabarfeed.templating import bundled_templates
from kabarfeed.web.confirmations import ConfirmationMailer, TransportFactory
from kabarfeed.web.pages.archive import ArchivePages
from kabarfeed.web.pages.article import ArticlePages
from kabarfeed.web.pages.confirm import ConfirmPages
from kabarfeed.web.pages.core import CSS_PATH, Handler, Limits, Pages
from kabarfeed.web.pages.manage import ManagePages
from kabarfeed.web.pages.subscribe import SignUpPages
from kabarfeed.web.security import Signer

log = logging.getLogger(__name__)


async def stylesheet(request: Request) -> Response:
    """The pages' stylesheet (cached for a day; the CSP allows only it)."""
    css = (bundled_templates() / "web" / "web.css").read_bytes()
    return Response(
        css,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _guarded(pages: Pages, handler: Handler) -> Handler:
    """``handler`` with store failures turned into the friendly 503 page."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreError as e:
            log.error("web request %s failed: %s", request.url.path, e)
            return pages.unavailable(request)

    return run


def page_routes(pages: Pages) -> list[BaseRoute]:
    """Every subscription route, to mount before the static catch-all."""
    sign_up, confirm = SignUpPages(pages), ConfirmPages(pages)
    manage, archive = ManagePages(pages), ArchivePages(pages)
    table: list[tuple[str, Handler, str]] = [
        ("/subscribe", sign_up.subscribe_form, "GET"),
        ("/subscribe", sign_up.subscribe_submit, "POST"),
        ("/subscribe/check", sign_up.subscribe_check, "GET"),
        ("/confirm/{signed}", confirm.confirm_page, "GET"),
        ("/confirm/{signed}", confirm.confirm_submit, "POST"),
        ("/confirm/{signed}/resend", confirm.confirm_resend, "POST"),
        ("/preferences/{token}", manage.preferences_page, "GET"),
        ("/preferences/{token}", manage.preferences_submit, "POST"),
        ("/u/{token}", manage.unsubscribe_page, "GET"),
        ("/u/{token}", manage.unsubscribe_submit, "POST"),
        ("/digest/{token}/{day}", archive.digest_view, "GET"),
        ("/artikel/{slug}", ArticlePages(pages).article_page, "GET"),
        (CSS_PATH, stylesheet, "GET"),
    ]
    return [Route(path, _guarded(pages, fn), methods=[method]) for path, fn, method in table]


def create_pages(
    config: Config,
    db: Database,
    *,
    clock: Clock,
    transport_factory: TransportFactory | None = None,
) -> Pages:
    """The handlers for ``config``, keyed with the site secret (see :mod:`kabarfeed.secrets`)."""
    signer = Signer(site_secret(config, db, now=clock()))
    mailer = ConfirmationMailer(config, signer, db=db, transport_factory=transport_factory)
    return Pages(config, db, clock, signer, mailer, Limits.from_config(config, db))
