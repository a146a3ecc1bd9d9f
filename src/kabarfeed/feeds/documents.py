"""A feed's documents from its articles, each article rendered once per build.

An article appears in several feeds (all, its city, its province, its
categories, the pairs): its RSS item, Atom entry and JSON item are
serialised once and joined into every document that carries it, so a
document costs its head plus a join. Nothing is read back from earlier
output: a :class:`Renderer` holds rendered entries by item token (article id
and revision), so the builder keeps one from build to build while the config
stays the same.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from kabarfeed.feeds import jsonfeed, xml
from kabarfeed.feeds.queries import token_id
from kabarfeed.feeds.render import EMPTY_FEED_UPDATED, FeedSite, entry_values
from kabarfeed.feeds.selection import Selection
from kabarfeed.models import Article


@dataclass(frozen=True, slots=True)
class Entries:
    """One article's serialised entries by format (the JSON item as UTF-8)."""

    updated: datetime
    by_format: Mapping[str, bytes]


class Renderer:
    """Renders the feeds of one site in ``formats``. Create one per build; not
    thread-safe (feedgen switches the process locale while writing RSS dates)."""

    def __init__(self, site: FeedSite, formats: Sequence[str]):
        self.site = site
        self.formats = tuple(formats)
        self._entries: dict[str, Entries] = {}
        self._writer = xml.EntryWriter(site)

    def has(self, token: str) -> bool:
        """Whether the article at ``token`` (its item token) is rendered."""
        return token in self._entries

    def missing(self, tokens: Iterable[str]) -> list[str]:
        """Those of ``tokens`` not rendered yet, each once."""
        return [t for t in dict.fromkeys(tokens) if t not in self._entries]

    def add(self, articles: Mapping[str, Article]) -> None:
        """Render ``articles`` (by item token)."""
        for token, article in articles.items():
            self._entries[token] = self.entries(article)

    def forget(self, ids: Collection[str]) -> None:
        """Drop the entries of the articles ``ids`` (at any revision)."""
        if ids:
            self._entries = {t: e for t, e in self._entries.items() if token_id(t) not in ids}

    def shrink(self, size: int) -> None:
        """Keep only the ``size`` entries rendered or added last."""
        if len(self._entries) > size:
            self._entries = dict(list(self._entries.items())[len(self._entries) - size :])

    def entries(self, article: Article) -> Entries:
        """``article``'s entries in every format."""
        values = entry_values(self.site, article)
        out: dict[str, bytes] = {}
        if "rss" in self.formats or "atom" in self.formats:
            entry = xml.feed_entry(self.site, article, values)
            for fmt in ("rss", "atom"):
                if fmt in self.formats:
                    out[fmt] = self._writer.write(entry, fmt)
        if "json" in self.formats:
            out["json"] = jsonfeed.json_item(self.site, article, values)
        return Entries(article.updated, out)

    def documents(self, selection: Selection, tokens: Sequence[str]) -> dict[str, bytes]:
        """Every format of one feed from rendered articles, ``tokens`` newest first."""
        parts = [self._entries[t] for t in tokens]
        updated = max((p.updated for p in parts), default=EMPTY_FEED_UPDATED)
        out = {}
        for fmt in self.formats:
            entries = [p.by_format[fmt] for p in parts]
            out[fmt] = self._document(selection, updated, fmt, entries)
        return out

    def _document(
        self, selection: Selection, updated: datetime, fmt: str, entries: list[bytes]
    ) -> bytes:
        if fmt == "json":
            return jsonfeed.json_document(self.site, selection, entries)
        return xml.splice(xml.head(self.site, selection, updated, fmt), fmt, entries)


def render(
    site: FeedSite, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
) -> dict[str, bytes]:
    """Every requested format of one feed: ``{"rss": b"...", "atom": ..., "json": ...}``;
    ``articles`` newest first."""
    renderer = Renderer(site, formats)
    renderer.add({a.id: a for a in articles})
    return renderer.documents(selection, [a.id for a in articles])
