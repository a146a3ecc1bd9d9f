"""Pure planning: which feeds exist, what they hold, which a change reaches
and which documents a build writes or removes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kabarfeed.feeds.plan import (
    existing,
    feed_documents,
    inserted_since,
    missing_feeds,
    old_feeds,
    settled,
    touched,
    wanted_paths,
)
from kabarfeed.feeds.queries import Changed
from kabarfeed.feeds.selection import ALL, Matcher, Selection, region_order, selection_of
from kabarfeed.models import Category, Region, Taxonomy

TAXONOMY = Taxonomy(
    regions=(
        Region("kaltim", "Kalimantan Timur", "Asia/Makassar"),
        Region("balikpapan", "Balikpapan", "Asia/Makassar", "kaltim"),
        Region("samarinda", "Samarinda", "Asia/Makassar", "kaltim"),
        Region("papua", "Papua", "Asia/Jayapura"),
    ),
    categories=(Category("ekonomi", "Ekonomi"), Category("hukum", "Hukum")),
)


def test_paths_follow_the_url_space() -> None:
    assert ALL.path("rss") == "feeds/all.rss"
    assert Selection(region="balikpapan").path("atom") == "feeds/region/balikpapan.atom"
    assert Selection(category="hukum").path("json") == "feeds/category/hukum.json"
    assert Selection("kaltim", "hukum").path("rss") == "feeds/region/kaltim/hukum.rss"
    assert [s.kind for s in (ALL, Selection("a"), Selection(None, "b"), Selection("a", "b"))] == [
        "all",
        "region",
        "category",
        "pair",
    ]


def test_matcher_includes_ancestors_and_ignores_unknown_slugs() -> None:
    found = Matcher(TAXONOMY).selections(("balikpapan", "gone"), ("ekonomi", "nope"))
    assert set(found) == {
        ALL,
        Selection("balikpapan"),
        Selection("kaltim"),
        Selection(None, "ekonomi"),
        Selection("balikpapan", "ekonomi"),
        Selection("kaltim", "ekonomi"),
    }


def test_a_feed_has_the_articles_of_its_region_and_those_below() -> None:
    matcher = Matcher(TAXONOMY)
    assert matcher.regions(Selection("kaltim", "hukum")) == ("kaltim", "balikpapan", "samarinda")
    assert matcher.regions(Selection("papua")) == ("papua",)
    assert matcher.regions(Selection(category="hukum")) == matcher.regions(ALL) == ()


def test_pair_feeds_exist_only_with_articles_base_feeds_always() -> None:
    counts = {ALL: 0, Selection("papua"): 0, Selection("papua", "hukum"): 0}
    counts |= {Selection(None, "hukum"): 0, Selection("kaltim", "hukum"): 2}
    assert set(existing(counts)) == set(counts) - {Selection("papua", "hukum")}


def test_region_order_is_depth_first() -> None:
    assert region_order(TAXONOMY) == (
        ("kaltim", 0),
        ("balikpapan", 1),
        ("samarinda", 1),
        ("papua", 0),
    )


def test_a_change_reaches_the_feeds_it_belongs_to_and_those_that_showed_it() -> None:
    t = datetime(2025, 11, 1, tzinfo=UTC)
    shown = {
        "feeds/all.rss": ("a:1", "b:1"),
        "feeds/region/samarinda.atom": ("b:2",),
        "feeds/region/kaltim/hukum.json": ("c:1",),
        "feeds/region/gone.rss": ("b:1",),
        "feeds/index.opml": ("b:1",),
    }
    assert old_feeds(shown, {"b"}) == {ALL, Selection("samarinda"), Selection("gone")}
    assert old_feeds(shown, {"c", "x"}) == {Selection("kaltim", "hukum")}
    assert old_feeds(shown, set()) == set()
    # "c" reclassified from samarinda to papua: its new feeds and its old pair feed
    moved = Changed("c:2", t, t, ("papua",), ("hukum",))
    assert touched(Matcher(TAXONOMY), [moved], shown, set()) == {
        ALL,
        Selection("papua"),
        Selection(None, "hukum"),
        Selection("papua", "hukum"),
        Selection("kaltim", "hukum"),
    }
    # "b" deleted: the feeds that showed it
    assert touched(Matcher(TAXONOMY), [], shown, {"b"}) == old_feeds(shown, {"b"})


def test_paths_map_back_to_their_feeds() -> None:
    for selection in (ALL, Selection("kaltim"), Selection(None, "hukum"), Selection("a", "b")):
        for fmt in ("rss", "atom", "json"):
            assert selection_of(selection.path(fmt)) == selection
    for other in ("index.html", "feeds/index.opml", "feeds/all.xml", "feeds/x/y.rss", "all.rss"):
        assert selection_of(other) is None


def test_what_a_build_writes_removes_and_finds_missing() -> None:
    counts = {ALL: 2, Selection("papua"): 1, Selection("papua", "hukum"): 1}
    formats = ("rss", "json")
    wanted = wanted_paths(counts, formats)
    assert len(wanted) == 6 and "feeds/region/papua/hukum.json" in wanted
    present = {p for path in wanted for p in (path, path + ".gz")}
    assert missing_feeds(counts, formats, present) == set()
    present -= {"feeds/region/papua.json.gz", "feeds/all.rss"}
    assert missing_feeds(counts, formats, present) == {ALL, Selection("papua")}
    on_disk = {"feeds/all.rss", "feeds/old.atom.gz", "feeds/.kf-1.tmp", "feeds/index.opml"}
    assert feed_documents(on_disk) == {"feeds/all.rss", "feeds/old.atom"}


def test_inserts_since_the_marker_are_counted_by_first_seen() -> None:
    t = datetime(2025, 11, 1, tzinfo=UTC)
    changed = [
        Changed("a:1", t, t - timedelta(minutes=1), (), ()),  # re-read from the lookback
        Changed("b:1", t, t + timedelta(minutes=1), (), ()),
        Changed("c:2", t, t - timedelta(days=3), (), ()),  # an edit
    ]
    assert inserted_since(changed, t) == 1


def test_a_change_the_last_build_took_in_is_settled() -> None:
    t = datetime(2025, 11, 1, tzinfo=UTC)
    feeds = [ALL, Selection("papua")]
    shown = {"feeds/all.rss": ("a:2", "b:1"), "feeds/region/papua.rss": ("a:2",)}
    seen = Changed("a:2", t - timedelta(minutes=1), t, ("papua",), ())
    assert settled(seen, t, shown, feeds, "rss")
    assert not settled(replace(seen, token="a:3"), t, shown, feeds, "rss")  # edited since
    assert not settled(replace(seen, changed=t + timedelta(seconds=1)), t, shown, feeds, "rss")
    assert not settled(seen, t, {"feeds/all.rss": ("a:2",)}, feeds, "rss")  # not in papua
