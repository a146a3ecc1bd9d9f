"""Pure planning: which feeds exist, what they hold, and what a build must redo."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from kabarfeed.feeds.build import to_remove, to_render
from kabarfeed.feeds.queries import StoredBuild
from kabarfeed.feeds.selection import (
    ALL,
    Change,
    IndexRow,
    Matcher,
    Plan,
    Selection,
    plan,
    region_order,
    replan,
    times_needed,
    touched,
    unseen,
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
    assert to_render(result, builds, formats, full=False) == ()
    assert len(to_render(result, builds, formats, full=True)) == len(result.selections)
    missing = to_render(result, builds, formats, full=False, damaged={"feeds/region/papua.atom"})
    assert missing == (Selection("papua"),)

    edited = plan(TAXONOMY, [IndexRow("a:2", ("balikpapan",), ("ekonomi",)), rows[1]], items=5)
    redo = set(to_render(edited, builds, formats, full=False))
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


# ---------------------------------------------------------------- carrying a plan forward

Stored = dict[str, tuple[str, datetime, tuple[str, ...], tuple[str, ...]]]
REGION_CHOICES: tuple[tuple[str, ...], ...] = (
    (),
    ("balikpapan",),
    ("samarinda",),
    ("kaltim",),
    ("papua",),
    ("balikpapan", "papua"),
)
CATEGORY_CHOICES: tuple[tuple[str, ...], ...] = ((), ("ekonomi",), ("hukum",), ("ekonomi", "hukum"))
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _rows(
    store: dict[str, tuple[str, datetime, tuple[str, ...], tuple[str, ...]]],
) -> list[IndexRow]:
    newest = sorted(store.items(), key=lambda kv: (kv[1][1], kv[0]), reverse=True)
    return [IndexRow(token, regions, cats) for _, (token, _, regions, cats) in newest]


def _carry(
    before: Plan, changes: list[Change], after: Plan, published: dict[str, datetime]
) -> Plan:
    """What the builder does, with ``after`` standing in for its SQL queries."""
    matcher = Matcher(TAXONOMY)
    changes = unseen(before, changes, matcher)
    hit = touched(before, changes, matcher)
    needed = times_needed(before, changes, hit, matcher)
    draft = replan(
        before, changes, hit, {i: published[i] for i in needed if i in published}, matcher, items=3
    )
    ids = {s: found if found is not None else after.ids(s) for s, found in draft.ids.items()}
    counts = draft.counts if draft.counts is not None else after.counts()
    return before.updated(TAXONOMY, ids, counts)


def test_carried_plans_equal_full_plans_after_inserts_edits_and_reclassification() -> None:
    """Random stores and random changes: carrying the last plan forward over the
    changes gives exactly the plan of a full walk over the changed store."""
    for seed in range(300):
        rng = random.Random(seed)
        store: Stored = {}
        for n in range(rng.randrange(0, 15)):
            when = T0 + timedelta(minutes=rng.randrange(40))
            store[f"a{n:03d}"] = (
                f"a{n:03d}:r0",
                when,
                rng.choice(REGION_CHOICES),
                rng.choice(CATEGORY_CHOICES),
            )
        before = plan(TAXONOMY, _rows(store), items=3)
        changes = []
        for k in range(rng.randrange(1, 5)):
            if store and rng.random() < 0.5:  # edit: title, time or classification
                article_id = rng.choice(sorted(store))
                _, when, regions, cats = store[article_id]
                if rng.random() < 0.5:
                    when = T0 + timedelta(minutes=rng.randrange(40))
                if rng.random() < 0.5:
                    regions, cats = rng.choice(REGION_CHOICES), rng.choice(CATEGORY_CHOICES)
                kind = "edited"
                article_id_token = f"{article_id}:r{k + 1}"
            else:
                article_id = f"n{seed:03d}{k}"
                when = T0 + timedelta(minutes=rng.randrange(60))
                regions, cats = rng.choice(REGION_CHOICES), rng.choice(CATEGORY_CHOICES)
                kind = "new"
                article_id_token = f"{article_id}:r0"
            store[article_id] = (article_id_token, when, regions, cats)
            changes.append(Change(article_id_token, when, regions, cats, kind))
        untouched = sorted(set(store) - {c.id for c in changes})
        for article_id in rng.sample(untouched, min(len(untouched), rng.randrange(3))):
            token, when, regions, cats = store[article_id]
            if token.endswith(":r0"):  # re-read by the lookback, never edited
                changes.append(Change(token, when, regions, cats, "seen"))
        latest = {c.id: c for c in changes}  # an article edited twice shows once
        after = plan(TAXONOMY, _rows(store), items=3)
        published = {i: when for i, (_, when, _, _) in store.items()}
        carried = _carry(before, list(latest.values()), after, published)
        assert carried.slices == after.slices, seed


def test_re_read_changes_already_listed_are_dropped() -> None:
    """The lookback re-reads the last build's articles: those every feed of
    theirs already lists at that revision need no carrying over; one a feed
    does not list (behind its items, or stamped late) is kept."""
    rows = [IndexRow(f"a{n}:r", ("balikpapan",), ("hukum",)) for n in range(5, 0, -1)]
    before = plan(TAXONOMY, rows, items=3)
    matcher = Matcher(TAXONOMY)
    listed = Change("a5:r", T0 + timedelta(minutes=5), ("balikpapan",), ("hukum",), "seen")
    behind = Change("a1:r", T0 + timedelta(minutes=1), ("balikpapan",), ("hukum",), "seen")
    fresh = Change("a9:r", T0 + timedelta(days=1), ("balikpapan",), ("hukum",))
    edited = Change("a4:r2", T0 + timedelta(minutes=4), ("balikpapan",), ("hukum",), "edited")
    assert unseen(before, [listed, behind, fresh, edited], matcher) == [behind, fresh, edited]
    assert touched(before, unseen(before, [listed], matcher), matcher) == set()


def test_new_articles_go_in_front_knowing_only_the_newest_items_time() -> None:
    """A feed that only gains new articles needs the time of its newest item
    alone; one backdated behind that item makes the builder ask the store."""
    rows = [IndexRow(f"a{n}:r", ("balikpapan",), ("hukum",)) for n in range(5, 0, -1)]
    before = plan(TAXONOMY, rows, items=3)
    matcher = Matcher(TAXONOMY)
    fresh = Change("a9:r", T0 + timedelta(days=1), ("balikpapan",), ("hukum",))
    hit = touched(before, [fresh], matcher)
    assert times_needed(before, [fresh], hit, matcher) == {"a5"}
    newest = {"a5": T0 + timedelta(minutes=5)}
    draft = replan(before, [fresh], hit, newest, matcher, items=3)
    assert draft.ids[Selection("balikpapan", "hukum")] == ("a9:r", "a5:r", "a4:r")
    late = Change("a8:r", T0, ("balikpapan",), ("hukum",))
    hit = touched(before, [late], matcher)
    assert times_needed(before, [late], hit, matcher) == {"a5"}
    draft = replan(before, [late], hit, newest, matcher, items=3)
    assert draft.ids[Selection("balikpapan", "hukum")] is None  # the store knows where
    edited = Change("a4:r2", T0 + timedelta(minutes=4), ("balikpapan",), ("hukum",), "edited")
    assert times_needed(before, [edited], touched(before, [edited], matcher), matcher) == {
        "a5",
        "a4",
        "a3",
    }


def test_inserts_alone_are_merged_and_counted_without_queries() -> None:
    rows = [IndexRow(f"a{n}:r", ("balikpapan",), ("hukum",)) for n in range(5, 0, -1)]
    before = plan(TAXONOMY, rows, items=3)
    fresh = Change("a9:r", T0 + timedelta(days=1), ("samarinda",), ("hukum",))
    published = {f"a{n}": T0 + timedelta(minutes=n) for n in range(1, 6)}
    matcher = Matcher(TAXONOMY)
    hit = touched(before, [fresh], matcher)
    assert Selection("balikpapan") not in hit and Selection("samarinda", "hukum") in hit
    draft = replan(before, [fresh], hit, published, matcher, items=3)
    assert all(found is not None for found in draft.ids.values())
    assert draft.counts is not None and draft.counts[Selection(None, "hukum")] == 6
    assert draft.ids[ALL] == ("a9:r", "a5:r", "a4:r")


def test_losing_a_listed_article_with_more_behind_asks_for_a_query() -> None:
    rows = [IndexRow(f"a{n}:r", ("balikpapan",), ("hukum",)) for n in range(5, 0, -1)]
    before = plan(TAXONOMY, rows, items=3)
    moved = Change("a5:r2", T0 + timedelta(minutes=5), ("papua",), ("hukum",), "edited")
    published = {f"a{n}": T0 + timedelta(minutes=n) for n in range(1, 6)}
    matcher = Matcher(TAXONOMY)
    hit = touched(before, [moved], matcher)
    draft = replan(before, [moved], hit, published, matcher, items=3)
    assert draft.ids[Selection("balikpapan")] is None  # a2 moves up: only a query knows
    assert draft.ids[Selection("papua")] == ("a5:r2",)
    assert draft.counts is None  # an edit: recount
