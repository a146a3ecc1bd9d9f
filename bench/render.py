"""Digest rendering throughput: kabarfeed's batch renderer vs the naive way.

10,000 subscribers over 200 preference combinations, one day of 300 articles.
Baseline (same run, sampled): for each subscriber render the HTML and text
templates with Jinja2, inline the CSS, build an ``EmailMessage`` and call
``as_bytes()`` (``DigestRenderer.render_reference``). Then checks that a
sample of recipients gets byte-identical messages from both paths.

    .venv/bin/python bench/render.py [--subscribers 10000] [--baseline-sample 400]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kabarfeed.config import load_config  # noqa: E402
from kabarfeed.digest.render import DigestRenderer, EditionInput  # noqa: E402
from kabarfeed.digest.selection import edition_since, select_articles  # noqa: E402
from kabarfeed.models import Article, Image, Subscriber, SubscriberStatus, Taxonomy  # noqa: E402

CUTOFF = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)
DAY = date(2025, 11, 17)
WORDS = [
    "pemkot",
    "rapat",
    "koordinasi",
    "warga",
    "pasar",
    "harga",
    "banjir",
    "sekolah",
    "festival",
    "jembatan",
    "jalan",
    "polisi",
    "gubernur",
    "investasi",
    "pelabuhan",
    "nelayan",
    "mangrove",
]


def articles(taxonomy: Taxonomy, n: int, rng: random.Random) -> list[Article]:
    regions = [r.slug for r in taxonomy.regions]
    cats = [c.slug for c in taxonomy.categories]
    out = []
    for i in range(n):
        at = CUTOFF - timedelta(minutes=rng.randrange(1, 24 * 60))
        title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
        out.append(
            Article(
                id=f"a{i:05d}",
                source="bench",
                url=f"https://news.example.id/berita/{i}",
                title=title,
                published=at,
                updated=at,
                first_seen=at,
                content_hash=str(i),
                summary=" ".join(rng.choice(WORDS) for _ in range(70)),
                image=Image(f"https://news.example.id/img/{i}.jpg", title) if i % 3 == 0 else None,
                regions=tuple(rng.sample(regions, rng.choice((1, 1, 2)))),
                categories=tuple(rng.sample(cats, rng.choice((1, 2)))),
                advertorial=i % 25 == 0,
            )
        )
    return out


def combos(taxonomy: Taxonomy, count: int) -> list[tuple[tuple[str, ...], tuple[str, ...], str]]:
    regions = [r.slug for r in taxonomy.regions]
    cats = [c.slug for c in taxonomy.categories]
    region_sets = [(r,) for r in regions] + list(itertools.combinations(regions, 2))
    cat_sets: list[tuple[str, ...]] = [(), *((c,) for c in cats)]
    every = [(r, c, lang) for r in region_sets for c in cat_sets for lang in ("id", "en")]
    return random.Random(7).sample(every, count)


def subscribers(taxonomy: Taxonomy, n: int, combo_count: int) -> list[Subscriber]:
    rng = random.Random(3)
    prefs = combos(taxonomy, combo_count)
    names = ["Budi Santoso", "Siti Aminah", "", "Ni Luh Putu Ayu", "Andi", "Yohanes Wenda"]
    out = []
    for i in range(n):
        regions, cats, lang = prefs[i % combo_count]
        region = taxonomy.region(regions[0])
        out.append(
            Subscriber(
                id=i + 1,
                email=f"pembaca{i}@example.org",
                token=f"{rng.getrandbits(190):032x}"[:32],
                timezone=region.timezone if region else "Asia/Makassar",
                send_at="06:00",
                language=lang,
                status=SubscriberStatus.ACTIVE,
                created_at=CUTOFF,
                name=rng.choice(names) or None,
                regions=regions,
                categories=cats,
            )
        )
    return out


def editions(
    subs: list[Subscriber], arts: list[Article], config_taxonomy: Taxonomy, digest: object
) -> list[EditionInput]:
    cache: dict[tuple[object, ...], tuple[tuple[Article, ...], int]] = {}
    out = []
    for s in subs:
        key = (s.regions, s.categories)
        if key not in cache:
            sel = select_articles(
                s,
                arts,
                since=edition_since(None, CUTOFF, digest),  # type: ignore[arg-type]
                cutoff=CUTOFF,
                taxonomy=config_taxonomy,
                config=digest,
            )  # type: ignore[arg-type]
            cache[key] = (sel.articles, sel.total_matching)
        chosen, total = cache[key]
        out.append(EditionInput(s, DAY, chosen, total))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--combos", type=int, default=200)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--batch", type=int, default=500, help="editions per render_batch call")
    parser.add_argument("--baseline-sample", type=int, default=400)
    parser.add_argument("--verify-sample", type=int, default=100)
    args = parser.parse_args()

    config = load_config(ROOT / "config.toml", environ={})
    taxonomy = config.taxonomy
    arts = articles(taxonomy, args.articles, random.Random(1))
    subs = subscribers(taxonomy, args.subscribers, args.combos)
    eds = editions(subs, arts, taxonomy, config.digest)
    eds = [e for e in eds if e.articles]
    sizes = sorted(len(e.articles) for e in eds)
    print(
        f"{len(eds)} non-empty editions ({args.combos} preference combinations), "
        f"{args.articles} articles; articles per edition: median {sizes[len(sizes) // 2]}, "
        f"max {sizes[-1]}"
    )

    def clock() -> datetime:
        return CUTOFF

    fast = DigestRenderer(config, clock=clock)
    start = time.perf_counter()
    out = []
    for i in range(0, len(eds), args.batch):
        out.extend(fast.render_batch(eds[i : i + args.batch]))
    fast_s = time.perf_counter() - start
    total_bytes = sum(len(m.data) for m in out)

    naive = DigestRenderer(config, clock=clock)
    sample = random.Random(5).sample(eds, min(args.baseline_sample, len(eds)))
    start = time.perf_counter()
    for e in sample:
        naive.render_reference(e)
    naive_s = time.perf_counter() - start

    check = random.Random(9).sample(range(len(eds)), min(args.verify_sample, len(eds)))
    same = sum(out[i].data == naive.render_reference(eds[i]).data for i in check)

    fast_rate, naive_rate = len(out) / fast_s, len(sample) / naive_s
    print(
        f"batch renderer : {fast_rate:9.0f} messages/s  ({len(out)} in {fast_s:.2f} s, "
        f"avg {total_bytes / len(out) / 1024:.1f} KiB)"
    )
    print(
        f"naive baseline : {naive_rate:9.0f} messages/s  ({len(sample)} sampled in {naive_s:.2f} s)"
    )
    print(f"speed-up       : {fast_rate / naive_rate:9.1f}x")
    print(f"byte-identical : {same}/{len(check)} sampled recipients")
    if same != len(check):
        sys.exit(1)


if __name__ == "__main__":
    main()
