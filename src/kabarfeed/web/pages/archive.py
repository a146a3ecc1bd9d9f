"""A digest edition as a web page ("view in browser"): GET
/digest/<token>/<YYYY-MM-DD>, rendered from the articles the edition carried."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.models import Subscriber
from kabarfeed.store import welcomes
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import greets
from kabarfeed.web.pages.core import PAGE_HEADERS, Pages
from kabarfeed.web.security import DIGEST_CSP


@dataclass
class ArchivePages:
    """The "view in browser" route of one app."""

    pages: Pages
    _digest: DigestRenderer = field(init=False)
    _digest_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._digest = DigestRenderer(self.pages.config, clock=self.pages.clock)

    def _edition(self, sub: Subscriber, day: date) -> EditionInput | None:
        with self.pages.db.connect() as conn:
            row = conn.execute(
                select(deliveries.c.article_ids, deliveries.c.cutoff_at).where(
                    deliveries.c.subscriber_id == sub.id,
                    deliveries.c.local_date == day.isoformat(),
                )
            ).one_or_none()
            if row is None:
                return None
            ids = [str(i) for i in json.loads(row.article_ids or "[]")]
            found = {a.id: a for a in load_articles(conn, ids=ids)} if ids else {}
            first = (
                greets(sub) and welcomes.first_cutoffs(conn, [sub.id]).get(sub.id) == row.cutoff_at
            )
        articles = tuple(found[i] for i in ids if i in found)
        return EditionInput(sub, day, articles, len(ids), first)

    def _digest_html(self, sub: Subscriber, day: date) -> str | None:
        edition = self._edition(sub, day)
        if edition is None:
            return None
        with self._digest_lock:
            return self._digest.render_html(edition)

    async def digest_view(self, request: Request) -> Response:
        """GET /digest/<token>/<YYYY-MM-DD>: that edition as a web page."""
        sub = await self.pages.subscriber(request.path_params["token"])
        day = _parse_day(request.path_params["day"])
        if sub is None or day is None:
            return self.pages.not_found(request, sub.language if sub else None)
        html = await run_in_threadpool(self._digest_html, sub, day)
        if html is None:
            return self.pages.not_found(request, sub.language)
        headers = {**PAGE_HEADERS, "Content-Security-Policy": DIGEST_CSP}
        return HTMLResponse(html, headers=headers)


def _parse_day(text: str) -> date | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
