"""What a feed and its entries show, worked out once for every format.

Pure: no clock, no I/O, so the same store gives the same bytes. Text is
stripped of characters XML cannot carry (lxml raises on them). The documents
are made by :mod:`feeds.xml` (RSS, Atom), :mod:`feeds.jsonfeed` and
:mod:`feeds.documents` (which renders each article once per build).
"""

from __future__ import annotations

import html
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from kabarfeed.config import Config
from kabarfeed.feeds.selection import Selection
from kabarfeed.feeds.strings import list_join, strings
from kabarfeed.models import Article, Image, Taxonomy

EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
"""``updated`` of a feed without entries: fixed, so empty feeds keep their bytes."""

MEDIA_TYPES: Mapping[str, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
_NOT_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


def xml_safe(text: str | None) -> str:
    """``text`` without characters XML 1.0 forbids or discourages (controls, lone
    surrogates, non-characters). Everything else, emoji and RTL included, stays."""
    return _NOT_XML.sub("", text) if text else ""


@dataclass(frozen=True, slots=True)
class Term:
    """One category of an entry: ``term`` (slug), ``label`` (name), ``scheme`` URL."""

    term: str
    label: str
    scheme: str


@dataclass(frozen=True, slots=True)
class FeedSite:
    """Everything rendering needs from the config, frozen."""

    title: str
    base_url: str
    language: str
    timezone: str
    taxonomy: Taxonomy
    full_content: bool = True
    hub: str = ""
    advertorial_label: str = "Advertorial"
    description: str = ""
    domain: str = "localhost"
    """The host name of ``base_url`` (for tag: URIs)."""
    known_terms: Mapping[tuple[str, str], Term] = field(init=False, repr=False, compare=False)
    """``(kind, slug)`` -> :class:`Term` for every region and category."""

    def __post_init__(self) -> None:
        known = {
            ("region", r.slug): Term(r.slug, xml_safe(r.name), self.scheme("region"))
            for r in self.taxonomy.regions
        }
        known.update(
            (("category", c.slug), Term(c.slug, xml_safe(c.name), self.scheme("category")))
            for c in self.taxonomy.categories
        )
        object.__setattr__(self, "known_terms", known)

    @classmethod
    def from_config(cls, config: Config) -> FeedSite:
        """The rendering view of ``config``."""
        return cls(
            title=xml_safe(config.site.title),
            base_url=config.site.base_url,
            language=config.site.language,
            timezone=config.site.timezone,
            taxonomy=config.taxonomy,
            full_content=config.feeds.full_content,
            hub=config.feeds.websub_hub,
            advertorial_label=xml_safe(config.digest.advertorial_label) or "Advertorial",
            description=xml_safe(config.site.description),
            domain=urlsplit(config.site.base_url).hostname or "localhost",
        )

    @property
    def home(self) -> str:
        """The site's front page URL."""
        return self.base_url + "/"

    def url(self, path: str) -> str:
        """The public URL of an output-relative ``path``."""
        return f"{self.base_url}/{path}"

    def scheme(self, kind: str) -> str:
        """The category scheme/domain URL for ``"region"``, ``"category"`` or ``"label"``."""
        return f"{self.base_url}/feeds/{kind}/"


@dataclass(frozen=True, slots=True)
class Describe:
    """Title and subtitle of one feed, in the site language."""

    title: str
    subtitle: str


def describe(site: FeedSite, selection: Selection) -> Describe:
    """Name the feed after its region/category, e.g. "Nusantara Plus: Balikpapan"."""
    text, names = strings(site.language), _names(site, selection)
    subtitle = text[f"{selection.kind}_subtitle"].format(**names)
    region = selection.region if selection.kind == "region" else None
    below = site.taxonomy.descendants(region) if region else ()
    children = [xml_safe(r.name) for r in site.taxonomy.regions if r.slug in below]
    if children:
        includes = text["region_includes"].format(children=list_join(children, site.language))
        subtitle = f"{subtitle} ({includes})"
    return Describe(feed_title(site, selection, names), subtitle)


def feed_title(site: FeedSite, selection: Selection, names: Mapping[str, str] | None = None) -> str:
    """The feed's title alone (see :func:`describe`)."""
    pattern = strings(site.language)[f"{selection.kind}_title"]
    return pattern.format(**(names or _names(site, selection)))


def _names(site: FeedSite, selection: Selection) -> dict[str, str]:
    """What feed titles and subtitles name: the site, the region, the category."""
    region = site.taxonomy.region(selection.region) if selection.region else None
    category = site.taxonomy.category(selection.category) if selection.category else None
    return {
        "site": site.title,
        "region": xml_safe(region.name) if region else (selection.region or ""),
        "category": xml_safe(category.name) if category else (selection.category or ""),
    }


# ---------------------------------------------------------------- entry values


def entry_id(site: FeedSite, article: Article) -> str:
    """The article's guid when it is a URL, else a stable ``tag:`` URI."""
    guid = (article.guid or "").strip()
    if guid.startswith(("http://", "https://")):
        return xml_safe(guid)
    day = article.first_seen.astimezone(UTC).strftime("%Y-%m-%d")
    return f"tag:{site.domain},{day}:{article.id}"


def image_type(image: Image) -> str:
    """The image's media type, guessed from its URL when the source did not say."""
    if image.type and "/" in image.type:
        return image.type.strip().lower()
    guessed, _ = mimetypes.guess_type(urlsplit(image.url).path)
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


def local(site: FeedSite, article: Article, moment: datetime) -> datetime:
    """``moment`` in the article's (else the site's) zone, for readable offsets."""
    zone = ZoneInfo(article.local_tz or site.timezone)
    return moment.astimezone(zone).replace(microsecond=0)


def content_html(site: FeedSite, article: Article) -> str:
    """The full content, led by a visible label for advertorials."""
    body = xml_safe(article.content_html)
    if article.advertorial:
        label = html.escape(site.advertorial_label, quote=False)
        return f"<p><strong>{label}</strong></p>\n{body}"
    return body


def summary_text(site: FeedSite, article: Article) -> str:
    """The plain-text summary, prefixed with the label for advertorials."""
    summary = xml_safe(article.summary)
    if article.advertorial:
        return f"[{site.advertorial_label}] {summary}".strip()
    return summary


def summary_html(summary: str) -> str:
    """The plain-text ``summary`` as HTML, for RSS ``<description>``: readers
    render that element as HTML, so text that reads ``<img onerror=...>``
    must reach them escaped, as text, never as markup."""
    return html.escape(summary, quote=False)


def terms(site: FeedSite, article: Article) -> tuple[Term, ...]:
    """Region and category terms (known to the taxonomy) plus the advertorial label."""
    known = site.known_terms
    out = [known[k] for k in (("region", s) for s in article.regions) if k in known]
    out += [known[k] for k in (("category", s) for s in article.categories) if k in known]
    if article.advertorial:
        out.append(Term("advertorial", site.advertorial_label, site.scheme("label")))
    return tuple(out)


def feed_updated(articles: Sequence[Article]) -> datetime:
    """The newest entry's ``updated`` (not the build time)."""
    return max((a.updated for a in articles), default=EMPTY_FEED_UPDATED)


@dataclass(frozen=True, slots=True)
class EntryValues:
    """What an article's entries show, worked out once for every format."""

    id: str
    title: str
    author: str
    summary: str
    content: str | None
    """The full content (``None``: summary only, by config or for want of content)."""
    published: datetime
    updated: datetime
    terms: tuple[Term, ...]
    image_type: str = ""
    caption: str = ""


def entry_values(site: FeedSite, article: Article) -> EntryValues:
    """The values of ``article``'s entries in ``site``'s feeds."""
    shown = site.full_content and bool(article.content_html)
    image = article.image
    return EntryValues(
        id=entry_id(site, article),
        title=xml_safe(article.title),
        author=xml_safe(article.author),
        summary=summary_text(site, article),
        content=content_html(site, article) if shown else None,
        published=local(site, article, article.published),
        updated=local(site, article, article.updated),
        terms=terms(site, article),
        image_type=image_type(image) if image else "",
        caption=xml_safe(image.caption) if image else "",
    )
