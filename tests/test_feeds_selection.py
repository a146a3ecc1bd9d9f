"""Pure planning: which feeds exist, what they hold, which a change reaches
and which documents a build writes or removes."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kabarfeed.feeds.plan import (
    differing,
    feed_documents,
    inserted_since,
    joined,
    missing_feeds,
    old_feeds,
    settled,
    wanted_paths,
)
from kabarfeed.feeds.queries import Changed
from kabarfeed.feeds.selection import (
    ALL,
    Contents,
    Matcher,
    Selection,
    contents,
    region_order,
    selection_of,
    touched,
)
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


def _contents(rows: list[tuple[str, tuple[str, ...], tuple[str, ...]]], items: int) -> Contents:
    """:func:`contents` from ``(id, regions, categories)`` rows, newest first."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    for position, (_, regions, categories) in enumerate(rows):
        groups.setdefault((regions, categories), []).append(position)
    return contents(TAXONOMY, [r[0] for r in rows], groups, items=items)


def test_contents_count_cap_and_keep_newest_first() -> None:
    rows = [(f"id{n}", ("samarinda",) if n % 2 else ("papua",), ("hukum",)) for n in range(10)]
    result = _contents(rows, 3)
    assert result.items[ALL] == ["id0", "id1", "id2"] and result.counts[ALL] == 10
    assert result.items[Selection("kaltim")] == ["id1", "id3", "id5"]
    assert result.counts[Selection("kaltim", "hukum")] == 5
    # pairs exist only with articles; base feeds always exist
    assert Selection("balikpapan", "hukum") not in result.counts
    assert Selection("kaltim", "ekonomi") not in result.counts
    assert result.counts[Selection(category="ekonomi")] == 0
    assert result.items[Selection(category="ekonomi")] == []
    assert result.selections[0] == ALL
    assert (
        result.selections.index(Selection("kaltim"))
        < result.selections.index(Selection(category="ekonomi"))
        < result.selections.index(Selection("kaltim", "hukum"))
    )


def test_contents_equal_a_naive_filter_and_sort() -> None:
    rng = random.Random(3)
    regions = ("balikpapan", "samarinda", "papua", "gone")
    rows = [
        (
            f"id{n:03d}",
            tuple(sorted(set(rng.sample(regions, rng.randint(0, 2))))),
            tuple(sorted(set(rng.sample(("ekonomi", "hukum", "nope"), rng.randint(0, 2))))),
        )
        for n in range(200)
    ]
    result = _contents(rows, 7)
    matcher = Matcher(TAXONOMY)
    for selection in result.counts:
        members = [r[0] for r in rows if selection in matcher.selections(r[1], r[2])]
        assert result.counts[selection] == len(members)
        assert result.items[selection] == members[:7]


def test_region_order_is_depth_first() -> None:
    assert region_order(TAXONOMY) == (
        ("kaltim", 0),
        ("balikpapan", 1),
        ("samarinda", 1),
        ("papua", 0),
    )


def test_a_change_reaches_the_feeds_it_belongs_to_and_those_that_showed_it() -> None:
    matcher = Matcher(TAXONOMY)
    now = touched(matcher, [(("papua",), ("hukum",))], {Selection("samarinda", "hukum")})
    assert now == {
        ALL,
        Selection("papua"),
        Selection(None, "hukum"),
        Selection("papua", "hukum"),
        Selection("samarinda", "hukum"),
    }
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
    items = {ALL: ["a", "b"], Selection("papua"): ["b"]}
    shown = {"feeds/all.rss": ("a", "b"), "feeds/all.json": ("a", "b")}
    shown |= {"feeds/region/papua.rss": ("b",), "feeds/region/papua.json": ("c",)}
    assert differing(items, shown, formats) == {Selection("papua")}


def test_inserts_since_the_marker_are_counted_by_first_seen() -> None:
    t = datetime(2025, 11, 1, tzinfo=UTC)
    changed = [
        Changed("a:1", t, t - timedelta(minutes=1), t, (), ()),  # re-read from the lookback
        Changed("b:1", t, t + timedelta(minutes=1), t, (), ()),
        Changed("c:2", t, t - timedelta(days=3), t, (), ()),  # an edit
    ]
    assert inserted_since(changed, t) == 1
    assert inserted_since(changed, None) == 3


def test_a_change_the_last_build_took_in_is_settled() -> None:
    t = datetime(2025, 11, 1, tzinfo=UTC)
    feeds = [ALL, Selection("papua")]
    shown = {"feeds/all.rss": ("a:2", "b:1"), "feeds/region/papua.rss": ("a:2",)}
    seen = Changed("a:2", t - timedelta(minutes=1), t, t, ("papua",), ())
    assert settled(seen, t, shown, feeds, "rss")
    assert not settled(replace(seen, token="a:3"), t, shown, feeds, "rss")  # edited since
    assert not settled(replace(seen, changed=t + timedelta(seconds=1)), t, shown, feeds, "rss")
    assert not settled(seen, t, {"feeds/all.rss": ("a:2",)}, feeds, "rss")  # not in papua


def test_new_articles_join_in_front_only_when_all_are_newer() -> None:
    t = datetime(2025, 11, 1, tzinfo=UTC)

    def new(token: str, minutes: int) -> Changed:
        return Changed(token, t, t, t + timedelta(minutes=minutes), (), ())

    old = ("c:1", "b:1", "a:1")
    published = {"c": t, "b": t - timedelta(hours=1)}
    assert joined([new("e:1", 2), new("d:1", 1)], old, published, 4) == ["e:1", "d:1", "c:1", "b:1"]
    assert joined([new("d:1", 1)], (), published, 4) == ["d:1"]  # a feed's first article
    assert joined([new("d:1", -1)], old, published, 4) is None  # backdated: ask the store
    assert joined([new("d:1", 1)], ("x:1",), published, 4) is None  # newest item gone
    assert joined([new("b0:1", 0)], old, published, 4) is None  # same time: the id decides
    assert joined([new("d:1", 0)], old, published, 1) == ["d:1"]
    assert joined([new("z:1", 0)], old, published, 2) == ["z:1", "c:1"]
