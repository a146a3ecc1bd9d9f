"""Normalisation: sanitising, URLs, dates and text cleaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from kabarfeed.normalize import (
    canonical_url,
    clean_text,
    cut_html,
    cut_markup,
    decide_article_dates,
    decide_dates,
    sanitize_html,
    truncate,
)

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)


def test_scripts_handlers_and_javascript_urls_never_survive() -> None:
    dirty = (
        '<p onclick="steal()">Hi <script>alert(1)</script><a href="javascript:alert(1)">x</a>'
        '<img src="x.jpg" onerror="boom()"><iframe src="https://evil"></iframe>'
        '<a href="JaVaScRiPt:alert(2)">y</a><style>p{}</style></p>'
    )
    clean = sanitize_html(dirty, base_url="https://news.example.id/a/b.html")
    lowered = clean.lower()
    for bad in ("script", "onclick", "onerror", "javascript:", "iframe", "style"):
        assert bad not in lowered
    assert '<img src="https://news.example.id/a/x.jpg">' in clean


def test_relative_urls_become_absolute_and_links_get_rel() -> None:
    clean = sanitize_html('<a href="/berita/1">satu</a>', base_url="https://n.id/x/")
    assert 'href="https://n.id/berita/1"' in clean
    assert 'rel="noopener noreferrer"' in clean


def test_tracking_pixels_removed() -> None:
    html = '<p>x</p><img src="http://feeds.feedburner.com/~r/x/~4/abc" height="1" width="1">'
    assert "<img" not in sanitize_html(html, base_url=None)


def test_clean_text_entities_whitespace_controls() -> None:
    assert (
        clean_text("\n\t  Harga &amp;amp; <b>Inflasi</b>\x00\u200b  naik ")
        == "Harga & Inflasi naik"
    )
    assert clean_text(None) == ""


def test_truncate_at_word_boundary() -> None:
    assert truncate("satu dua tiga empat", 12) == "satu dua…"
    assert truncate("pendek", 12) == "pendek"


def test_canonical_url_drops_tracking_and_fragment() -> None:
    assert (
        canonical_url("HTTPS://News.Example.ID/a?utm_source=x&id=2#top")
        == "https://news.example.id/a?id=2"
    )


def test_dates_missing_future_and_zones() -> None:
    wita = timezone(timedelta(hours=8))
    pub, upd, warnings = decide_dates(datetime(2025, 11, 16, 13, 7, tzinfo=wita), None, now=NOW)
    assert pub == datetime(2025, 11, 16, 5, 7, tzinfo=UTC) and upd == pub and not warnings
    pub, _, warnings = decide_dates(None, None, now=NOW)
    assert pub == NOW and "no publication date" in warnings[0]
    pub, _, warnings = decide_dates(NOW + timedelta(days=30), None, now=NOW)
    assert pub == NOW and "in the future" in warnings[0]


# ---------------------------------------------------------------- issue 22 §3


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<p>", "</p>", "<b>", "</b>", "<a href='https://e.id/x'>", "</a>", "<ul><li>",
             "kata ", "&amp; ", "&lt;", "<img src='https://e.id/i.jpg'>", "<table><tr><td>",
             "\u00e9", "x" * 50, " "]
        ),
        max_size=80,
    ),
    st.integers(20, 400),
)  # fmt: skip
def test_cut_html_is_short_and_never_broken(pieces: list[str], limit: int) -> None:
    clean = sanitize_html("".join(pieces), base_url=None)
    cut = cut_html(clean, limit, base_url=None)
    assert len(cut) <= limit
    assert sanitize_html(cut, base_url=None) == cut  # complete markup: sanitising changes nothing
    if len(clean) > limit and cut:
        assert "…" in cut


def test_cut_markup_never_splits_a_tag_or_an_entity() -> None:
    assert cut_markup("ab <a href='x'>link</a>", 8) == "ab"
    assert cut_markup("ab &amp; cd", 6) == "ab"
    assert cut_markup("short", 10) == "short"


def test_a_date_from_the_clock_is_flagged() -> None:
    wita = timezone(timedelta(hours=8))
    given_date = decide_article_dates(datetime(2025, 11, 16, 13, tzinfo=wita), None, now=NOW)
    assert not given_date.from_clock
    assert decide_article_dates(None, None, now=NOW).from_clock
    assert decide_article_dates(NOW + timedelta(days=30), None, now=NOW).from_clock
    assert not decide_article_dates(None, NOW - timedelta(hours=1), now=NOW).from_clock
