"""Edition selection as a pure function of subscriber, articles, cut-offs and config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from digest_support import CUTOFF, article, subscriber
from kabarfeed.config import Config, DigestConfig
from kabarfeed.digest.selection import Selection, edition_since, select_articles
from kabarfeed.models import Article, Subscriber, Taxonomy

CFG = DigestConfig()


@pytest.fixture
def taxonomy(make_config: Callable[..., Config]) -> Taxonomy:
    return make_config().taxonomy


def pick(
    sub: Subscriber,
    arts: Sequence[Article],
    taxonomy: Taxonomy,
    *,
    since: datetime | None = None,
    cutoff: datetime = CUTOFF,
    config: DigestConfig = CFG,
) -> Selection:
    since = since or edition_since(None, cutoff, config)
    return select_articles(sub, arts, since=since, cutoff=cutoff, taxonomy=taxonomy, config=config)


def test_first_edition_covers_first_window_and_later_ones_start_at_previous_cutoff() -> None:
    assert edition_since(None, CUTOFF, CFG) == CUTOFF - timedelta(hours=24)
    prev = CUTOFF - timedelta(hours=20)
    assert edition_since(prev, CUTOFF, CFG) == prev


def test_window_is_half_open_so_nothing_is_lost_or_repeated(taxonomy: Taxonomy) -> None:
    late = article(0, at=CUTOFF + timedelta(minutes=1))  # first seen at 06:01
    edge = article(5, at=CUTOFF)
    arts = [late, edge, article(2)]
    today = pick(subscriber(), arts, taxonomy)
    assert [a.id for a in today.articles] == [edge.id, "art0002"]
    tomorrow = pick(subscriber(), arts, taxonomy, since=CUTOFF, cutoff=CUTOFF + timedelta(days=1))
    assert [a.id for a in tomorrow.articles] == [late.id]


def test_province_matches_its_cities_and_categories_filter(taxonomy: Taxonomy) -> None:
    arts = [
        article(1, regions=("samarinda",)),
        article(2, regions=("surabaya",)),
        article(3, regions=("balikpapan",), categories=("olahraga",)),
    ]
    sub = subscriber(regions=("kalimantan-timur",))
    assert [a.id for a in pick(sub, arts, taxonomy).articles] == ["art0001", "art0003"]
    sub = subscriber(regions=("kalimantan-timur",), categories=("olahraga",))
    assert [a.id for a in pick(sub, arts, taxonomy).articles] == ["art0003"]
    everything = pick(subscriber(regions=()), arts, taxonomy)
    assert everything.total_matching == 3


def test_sections_follow_preferences_and_articles_appear_once(taxonomy: Taxonomy) -> None:
    both = article(1, regions=("balikpapan", "samarinda"))
    arts = [
        both,
        article(2, regions=("samarinda",)),
        article(3, regions=("balikpapan",)),
        article(4, regions=("balikpapan",)),
    ]
    sub = subscriber(regions=("samarinda", "balikpapan"))
    sel = pick(sub, arts, taxonomy)
    assert [s.slug for s in sel.sections] == ["samarinda", "balikpapan"]
    assert [a.id for a in sel.sections[0].articles] == ["art0001", "art0002"]
    assert [a.id for a in sel.sections[1].articles] == ["art0003", "art0004"]
    assert len({a.id for a in sel.articles}) == len(sel.articles) == 4


def test_category_sections_when_no_regions(taxonomy: Taxonomy) -> None:
    arts = [article(1, categories=("ekonomi", "olahraga")), article(2, categories=("olahraga",))]
    sub = subscriber(regions=(), categories=("olahraga", "ekonomi"))
    sel = pick(sub, arts, taxonomy)
    assert [(s.slug, [a.id for a in s.articles]) for s in sel.sections] == [
        ("olahraga", ["art0001", "art0002"])
    ]


def test_freshness_limit_by_published_time(taxonomy: Taxonomy) -> None:
    backlog = article(1, published=CUTOFF - timedelta(hours=49))  # first seen recently
    fresh = article(2, published=CUTOFF - timedelta(hours=47))
    sel = pick(subscriber(), [backlog, fresh], taxonomy)
    assert [a.id for a in sel.articles] == ["art0002"]


def test_cap_keeps_total_matching_and_newest_first(taxonomy: Taxonomy) -> None:
    arts = [article(i, at=CUTOFF - timedelta(minutes=i)) for i in range(1, 41)]
    sel = pick(subscriber(), list(reversed(arts)), taxonomy)
    assert len(sel.articles) == 30 and sel.total_matching == 40
    assert [a.id for a in sel.articles] == [a.id for a in arts[:30]]
    small = pick(subscriber(), arts, taxonomy, config=DigestConfig(max_articles=5))
    assert len(small.articles) == 5 and small.total_matching == 40


def test_duplicates_in_candidates_count_once(taxonomy: Taxonomy) -> None:
    a = article(1)
    assert pick(subscriber(), [a, a, a], taxonomy).total_matching == 1
