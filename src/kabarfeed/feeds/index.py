"""The HTML index page (``/index.html``): every feed with its links and counts,
plus ``<link rel="alternate">`` autodiscovery for the main feeds."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal
from markupsafe import Markup, escape

from kabarfeed.errors import RenderError
from kabarfeed.feeds.catalog import Catalog, FeedInfo
from kabarfeed.feeds.opml import OPML_PATH
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.strings import strings
from kabarfeed.templating import make_environment

INDEX_PATH = "index.html"
TEMPLATE = "index.html.j2"
NOT_FOUND_TEMPLATE = "404.html.j2"
_LOCALES = {"id": "id_ID", "en": "en"}
_FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON"}


def format_links(feed: FeedInfo) -> Markup:
    """A feed's RSS/Atom/JSON links for the index page (its ``formats`` global).

    Built here rather than by a template macro: the page carries one per feed
    (656 for 40 regions and 15 categories), and a macro call per feed was
    most of the page's render time. Every value is escaped (the few fixed
    ones once: :func:`_escaped`).
    """
    title = escape(feed.title)
    links = "".join(
        f'<a href="{escape(link.url)}" type="{_escaped(link.media_type)}" '
        f'title="{title} ({_escaped(link.format.upper())})">'
        f"{_escaped(_FORMAT_LABELS[link.format])}</a>"
        for link in feed.links
    )
    return Markup(f'<span class="formats">{links}</span>')  # noqa: S704 - values escaped above


@cache
def _escaped(text: str) -> Markup:
    """``escape`` for the handful of fixed strings every feed's links repeat."""
    return escape(text)


class IndexPage:
    """Renders the index page from a :class:`Catalog`; holds only its template env."""

    def __init__(self, site: FeedSite, *, override: Path | None = None) -> None:
        self.site = site
        self.locale = Locale.parse(_LOCALES.get(site.language, "id_ID"))
        self.env: jinja2.Environment = make_environment("feeds", override=override)
        self.env.filters["articles"] = self._articles
        self.env.globals["formats"] = format_links
        self._counts: dict[int, str] = {}

    def _articles(self, count: int) -> str:
        """ "1.234 artikel": counts repeat across feeds, so each is formatted once."""
        text = self._counts.get(count)
        if text is None:
            number = format_decimal(count, locale=self.locale)
            text = strings(self.site.language)["articles"].format(count=number)
            self._counts[count] = text
        return text

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
        self._counts.clear()
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
