"""The HTML index page (``/index.html``): every feed with its links and counts,
plus ``<link rel="alternate">`` autodiscovery for the main feeds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_datetime
from babel.numbers import format_decimal

from kabarfeed.errors import RenderError
from kabarfeed.feeds.catalog import Catalog
from kabarfeed.feeds.opml import OPML_PATH
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.strings import strings
from kabarfeed.templating import make_environment

INDEX_PATH = "index.html"
TEMPLATE = "index.html.j2"
NOT_FOUND_TEMPLATE = "404.html.j2"
_LOCALES = {"id": "id_ID", "en": "en"}


class IndexPage:
    """Renders the index page from a :class:`Catalog`; holds only its template env."""

    def __init__(self, site: FeedSite, *, override: Path | None = None) -> None:
        self.site = site
        self.locale = _LOCALES.get(site.language, "id_ID")
        self.env: jinja2.Environment = make_environment("feeds", override=override)
        self.env.filters["articles"] = self._articles

    def _articles(self, count: int) -> str:
        number = format_decimal(count, locale=self.locale)
        return strings(self.site.language)["articles"].format(count=number)

    def updated_text(self, newest: datetime | None) -> str:
        """ "Last updated 17 November 2025 08.30 WITA" in the site language and zone."""
        if newest is None:
            return strings(self.site.language)["no_articles"]
        when = format_datetime(
            newest, "d MMMM y HH:mm zzz", tzinfo=ZoneInfo(self.site.timezone), locale=self.locale
        )
        return strings(self.site.language)["updated"].format(date=when)

    def render(self, catalog: Catalog, newest: datetime | None) -> bytes:
        """The page as UTF-8 bytes (deterministic for the same catalog)."""
        try:
            html = self.env.get_template(TEMPLATE).render(
                site=self.site,
                t=strings(self.site.language),
                catalog=catalog,
                opml_url=self.site.url(OPML_PATH),
                updated=self.updated_text(newest),
            )
        except jinja2.TemplateError as e:
            raise RenderError(f"index page template: {e}") from e
        return html.encode("utf-8")

    def render_not_found(self) -> bytes:
        """The 404 page served for unknown paths."""
        try:
            html = self.env.get_template(NOT_FOUND_TEMPLATE).render(
                site=self.site, t=strings(self.site.language)
            )
        except jinja2.TemplateError as e:
            raise RenderError(f"404 page template: {e}") from e
        return html.encode("utf-8")
