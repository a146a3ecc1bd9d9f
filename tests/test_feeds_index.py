"""The index page's per-feed format links: built in Python, byte-identical to
the template macro they replaced, and escaped."""

from __future__ import annotations

import jinja2
import pytest

from kabarfeed.feeds.catalog import FeedInfo, FeedLink
from kabarfeed.feeds.index import format_links
from kabarfeed.feeds.selection import Selection

# The macro that used to render these links (templates/feeds/_macros.html.j2).
REFERENCE_MACRO = (
    "{% macro formats(feed) -%}\n"
    '<span class="formats">{% for link in feed.links %}<a href="{{ link.url }}" '
    'type="{{ link.media_type }}" title="{{ feed.title }} ({{ link.format | upper }})">'
    '{{ {"rss": "RSS", "atom": "Atom", "json": "JSON"}[link.format] }}</a>{% endfor %}</span>\n'
    "{%- endmacro %}"
    "{{ formats(feed) }}"
)
LINKS = (
    FeedLink("rss", "https://x.example/feeds/a.rss?q=1&b=<2>", "application/rss+xml"),
    FeedLink("atom", "https://x.example/feeds/a.atom", "application/atom+xml"),
    FeedLink("json", "https://x.example/feeds/\"a'.json", "application/feed+json"),
)


def _reference(feed: FeedInfo) -> str:
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(REFERENCE_MACRO).render(feed=feed)


@pytest.mark.parametrize(
    "title",
    [
        "Nusantara Plus: Balikpapan",
        "Berita <b>\"tajam\"</b> & 'kutip' ]]> 🚀",
        "\u0627\u0644\u0623\u062e\u0628\u0627\u0631 · Kota",
        "",
    ],
)
@pytest.mark.parametrize("links", [LINKS, LINKS[1:2], ()])
def test_format_links_match_the_macro(title: str, links: tuple[FeedLink, ...]) -> None:
    feed = FeedInfo(Selection(), "n", title, 3, links)
    html = format_links(feed)
    assert str(html) == _reference(feed)
    assert "<b>" not in html and "b=<2>" not in html
    assert html.count("<a ") == len(links)
