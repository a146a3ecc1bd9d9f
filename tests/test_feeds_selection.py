"""Pure planning: which feeds exist, what they hold, and what a build must redo."""

from __future__ import annotations

from kabarfeed.feeds.build import to_remove, to_render
from kabarfeed.feeds.queries import StoredBuild
from kabarfeed.feeds.selection import ALL, IndexRow, Matcher, Selection, plan, region_order
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


def test_plan_counts_caps_and_keeps_newest_first() -> None:
    rows = [
        IndexRow(f"id{n}", ("samarinda",) if n % 2 else ("papua",), ("hukum",)) for n in range(10)
    ]
    result = plan(TAXONOMY, rows, items=3)
    assert result.ids(ALL) == ("id0", "id1", "id2") and result.count(ALL) == 10
    assert result.ids(Selection("kaltim")) == ("id1", "id3", "id5")
    assert result.count(Selection("kaltim", "hukum")) == 5
    # pairs exist only with articles; base feeds always exist
    assert Selection("balikpapan", "hukum") not in result.slices
    assert Selection("kaltim", "ekonomi") not in result.slices
    assert result.count(Selection(category="ekonomi")) == 0
    assert result.selections[0] == ALL
    assert (
        result.selections.index(Selection("kaltim"))
        < result.selections.index(Selection(category="ekonomi"))
        < result.selections.index(Selection("kaltim", "hukum"))
    )


def test_region_order_is_depth_first() -> None:
    assert region_order(TAXONOMY) == (
        ("kaltim", 0),
        ("balikpapan", 1),
        ("samarinda", 1),
        ("papua", 0),
    )


def test_only_feeds_whose_items_changed_are_rendered() -> None:
    rows = [IndexRow("a:1", ("balikpapan",), ("ekonomi",)), IndexRow("b:1", ("papua",), ())]
    result = plan(TAXONOMY, rows, items=5)
    formats = ("rss", "atom")
    builds = {
        s.path(f): StoredBuild(s.path(f), "h", result.ids(s))
        for s in result.selections
        for f in formats
    }
    assert to_render(result, builds, formats, full=False, exists=lambda _: True) == ()
    assert len(to_render(result, builds, formats, full=True, exists=lambda _: True)) == len(
        result.selections
    )
    missing = to_render(
        result, builds, formats, full=False, exists=lambda p: p != "feeds/region/papua.atom"
    )
    assert missing == (Selection("papua"),)

    edited = plan(TAXONOMY, [IndexRow("a:2", ("balikpapan",), ("ekonomi",)), rows[1]], items=5)
    redo = set(to_render(edited, builds, formats, full=False, exists=lambda _: True))
    assert redo == {
        ALL,
        Selection("kaltim"),
        Selection("balikpapan"),
        Selection(None, "ekonomi"),
        Selection("balikpapan", "ekonomi"),
        Selection("kaltim", "ekonomi"),
    }


def test_removal_of_feeds_no_longer_planned() -> None:
    result = plan(TAXONOMY, [IndexRow("a:1", ("papua",), ("hukum",))], items=5)
    known = {
        "feeds/all.rss",
        "feeds/region/bontang.rss",
        "feeds/region/papua/hukum.json",
        "feeds/region/papua/ekonomi.rss",
    }
    assert to_remove(result, ("rss",), known) == (
        "feeds/region/bontang.rss",
        "feeds/region/papua/ekonomi.rss",
        "feeds/region/papua/hukum.json",
    )
