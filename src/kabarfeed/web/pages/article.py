"""``/artikel/<slug>``: the page of an article whose permalink kabarfeed made.

Articles from a ``directory`` source without a URL of their own get the
permalink ``<base_url>/artikel/<file stem>``, which feeds and digests link
to; this page answers it with the stored (sanitised) article. Any other slug
is the shared 404 page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kabarfeed.models import Article
from kabarfeed.normalize import canonical_url, stable_key
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import articles
from kabarfeed.web.pages.core import Pages

ARTICLE_PREFIX = "/artikel/"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,199}$")


def permalink(base_url: str, slug: str) -> str:
    """The permalink a directory source gives the file ``<slug>.*``."""
    return f"{base_url}{ARTICLE_PREFIX}{slug}"


@dataclass
class ArticlePages:
    """The article route of one app."""

    pages: Pages

    def _find(self, slug: str) -> Article | None:
        url = permalink(self.pages.config.site.base_url, slug)
        key = stable_key(canonical_url(url))
        with self.pages.db.connect() as conn:
            ids = list(
                conn.execute(select(articles.c.id).where(articles.c.url_key == key)).scalars()
            )
            found = load_articles(conn, ids=ids) if ids else []
        return next((a for a in found if a.url == url), found[0] if found else None)

    def _context(self, article: Article, lang: str) -> dict[str, Any]:
        config = self.pages.config
        taxonomy = config.taxonomy
        zone = article.local_tz or config.site.timezone
        when = format_datetime(
            article.published.astimezone(ZoneInfo(zone)), "d MMM y, HH.mm zzz", locale=lang
        )
        regions = [r.name for s in article.regions if (r := taxonomy.region(s)) is not None]
        categories = [c.name for s in article.categories if (c := taxonomy.category(s)) is not None]
        return {
            "article": article,
            "when": when,
            "labels": regions + categories,
            "advertorial_label": config.digest.advertorial_label,
        }

    async def article_page(self, request: Request) -> Response:
        """GET /artikel/<slug>: the article, or the 404 page."""
        slug = str(request.path_params["slug"])
        lang = self.pages.language(request)
        found = await run_in_threadpool(self._find, slug) if _SLUG.match(slug) else None
        if found is None:
            return self.pages.not_found(request, lang)
        context = self._context(found, found.language if found.language in ("id", "en") else lang)
        return self.pages.render(request, "article.html.j2", lang, found.title, **context)
