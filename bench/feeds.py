"""Feed build benchmark: a full build against raw feedgen, and how soon new
articles reach their feeds.

    .venv/bin/python bench/feeds.py                  # 100,000 articles, 3 full builds, 20 rounds
    .venv/bin/python bench/feeds.py --articles 20000 --full 1 --rounds 10
    .venv/bin/python bench/feeds.py --keep /tmp/out  # keep the first full build's files (to diff)
    .venv/bin/python bench/feeds.py --dir /mnt/x     # store and feeds on another file system

A synthetic store of N articles over 40 regions (8 provinces x 4 cities) and
15 categories is written with the store's bulk ``save_articles``. Then, in
the same run:

- baseline: the same feeds (every feed, same items, RSS + Atom via feedgen,
  JSON via json.dumps) built from in-memory entries: no store, no files;
- full build: ``FeedBuilder.build(full=True)`` into an empty folder, in a
  fresh ``python`` process, which reports its time and peak RSS;
- latency: rounds of "10 new articles committed" (one transaction, stamped a
  minute after the previous round) followed by an incremental build, timed
  from the commit to the build's return (its feeds written).

Targets (issue 20): full build <= 1.5x baseline; latency median < 1 s and
p99 < 2 s on the 2-core machine; peak RSS reported.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedgen.feed import FeedGenerator
from synthetic import taxonomy_toml

from kabarfeed.config import Config, parse_config
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.feeds.selection import Matcher, Selection, base_selections, sort_key
from kabarfeed.models import Article, Image
from kabarfeed.normalize import stable_key
from kabarfeed.store import Database, open_database
from kabarfeed.store.articles import Prepared, save_articles

START = datetime(2024, 1, 1, tzinfo=UTC)
PARAGRAPH = (
    "Pemerintah kota menggelar rapat koordinasi bersama organisasi perangkat daerah "
    "untuk membahas program prioritas, anggaran dan pelayanan publik tahun depan. "
)


def make_config(folder: Path, output: str = "public") -> Config:
    text = _config_text(folder, output)
    return parse_config(tomllib.loads(text), path=folder / "config.toml", environ={})


def make_article(n: int, rng: random.Random, when: datetime) -> Article:
    regions = tuple(
        sorted(
            {
                f"kota-{rng.randrange(8)}-{rng.randrange(4)}"
                for _ in range(1 + (rng.random() < 0.15))
            }
        )
    )
    categories = tuple(
        sorted({f"kategori-{rng.randrange(15)}" for _ in range(1 + (rng.random() < 0.3))})
    )
    body = "".join(f"<p>{PARAGRAPH * 2}</p>" for _ in range(4))
    return Article(
        id=f"b{n:08d}",
        source="bench",
        url=f"https://bench.example.id/artikel/{n}",
        title=f"Berita sintetis nomor {n}: rapat koordinasi dan program daerah",
        published=when,
        updated=when,
        first_seen=when,
        content_hash=stable_key("b", str(n)),
        author=f"Wartawan {n % 37}",
        summary=PARAGRAPH[:200],
        content_html=body,
        image=Image(f"https://bench.example.id/img/{n}.jpg", f"Foto {n} (Bench)", "image/jpeg"),
        regions=regions,
        categories=categories,
        advertorial=n % 50 == 0,
        local_tz="Asia/Makassar",
    )


def prepared(a: Article) -> Prepared:
    return Prepared(a, None, stable_key(a.url), stable_key(a.id, a.title))


def fill(db: Database, articles: list[Article], *, now: datetime) -> None:
    for i in range(0, len(articles), 5000):
        with db.begin() as conn:
            save_articles(conn, [prepared(a) for a in articles[i : i + 5000]], now=now)


# ---------------------------------------------------------------- baseline


def baseline(config: Config, articles: list[Article]) -> tuple[float, int]:
    """feedgen (+ json.dumps) on in-memory entries for the same feeds and items."""
    newest_first = sorted(articles, key=lambda a: (a.published, a.id), reverse=True)
    matcher, cap = Matcher(config.taxonomy), config.feeds.items
    found: dict[Selection, list[Article]] = {s: [] for s in base_selections(config.taxonomy)}
    for a in newest_first:
        for selection in matcher.selections(a.regions, a.categories):
            shown = found.setdefault(selection, [])
            if len(shown) < cap:
                shown.append(a)
    started = time.perf_counter()
    for selection, items in sorted(found.items(), key=lambda kv: sort_key(kv[0])):
        fg = FeedGenerator()
        fg.id(f"https://bench.example.id/{selection.stem}")
        fg.title(selection.stem)
        fg.subtitle(selection.stem)
        fg.link(href="https://bench.example.id/", rel="alternate")
        fg.language("id")
        fg.updated(max((a.updated for a in items), default=START))
        for a in items:
            fe = fg.add_entry(order="append")
            fe.guid(a.url, permalink=True)
            fe.title(a.title)
            fe.link(href=a.url)
            fe.published(a.published)
            fe.updated(a.updated)
            fe.author(name=a.author)
            fe.summary(a.summary)
            fe.content(a.content_html, type="html")
            for slug in (*a.regions, *a.categories):
                fe.category(term=slug, label=slug)
            fe.enclosure(a.image.url if a.image else a.url, 0, "image/jpeg")
        fg.rss_str(pretty=True)
        fg.atom_str(pretty=True)
        json.dumps(_json_doc(selection.stem, items), ensure_ascii=False, separators=(",", ":"))
    return time.perf_counter() - started, len(found)


def _json_doc(title: str, items: list[Article]) -> dict[str, Any]:
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "items": [
            {
                "id": a.url,
                "url": a.url,
                "title": a.title,
                "content_html": a.content_html,
                "summary": a.summary,
                "date_published": a.published.isoformat(),
                "date_modified": a.updated.isoformat(),
                "tags": [*a.regions, *a.categories],
            }
            for a in items
        ],
    }


# ---------------------------------------------------------------- full build

_CHILD = """
import json, resource, sys, time, tomllib
from datetime import datetime
from pathlib import Path
from kabarfeed.config import parse_config
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.store import open_database
path, now = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
config = parse_config(tomllib.loads(path.read_text()), path=path, environ={})
db = open_database(config.storage.url)
started = time.perf_counter()
report = FeedBuilder(config, db, lambda: now).build(full=True)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "written": report.written, "peak_kib": peak}))
"""


def full_build(config: Config, now: datetime) -> dict[str, Any]:
    """A full build into an empty folder, in a fresh interpreter: its own
    time and peak RSS (``ru_maxrss``, KiB), without this script's articles."""
    path = config.feeds.output.parent / f"{config.feeds.output.name}.toml"
    path.write_text(_config_text(config.feeds.output.parent, config.feeds.output.name))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), now.isoformat()],
        check=True,
        capture_output=True,
        text=True,
    )
    found: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


# ---------------------------------------------------------------- latency


def latency_round(
    config: Config, db: Database, articles: list[Article], rng: random.Random, when: datetime
) -> tuple[float, int]:
    """Commit 10 new articles, then build: seconds from the commit to the
    build's return, and how many documents it wrote."""
    n = len(articles)
    fresh = [make_article(n + i, rng, when) for i in range(10)]
    with db.begin() as conn:
        save_articles(conn, [prepared(a) for a in fresh], now=when)
    committed = time.perf_counter()
    report = FeedBuilder(config, db, lambda: when).build()
    articles.extend(fresh)
    return time.perf_counter() - committed, report.written


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank): the maximum below 100 values."""
    ordered = sorted(values)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


def _config_text(folder: Path, output: str) -> str:
    return (
        f'[site]\ntitle = "Bench"\nbase_url = "https://bench.example.id"\n'
        f'[storage]\nurl = "sqlite:///{folder / "bench.db"}"\n'
        f'[feeds]\noutput = "{folder / output}"\n\n{taxonomy_toml()}'
    )


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="kf-bench-", dir=args.dir))
    try:
        db = open_database(make_config(folder).storage.url)
        n = args.articles
        articles = [make_article(i, rng, START + timedelta(minutes=i)) for i in range(n)]
        t0 = time.perf_counter()
        fill(db, articles, now=START + timedelta(minutes=n))
        print(f"store: {n:,} articles, bulk insert {time.perf_counter() - t0:.1f}s", flush=True)
        ratios, peaks = [], []
        for number in range(args.full):
            config = make_config(folder, f"public-{number}")
            base, feeds = baseline(config, articles)
            full = full_build(config, START + timedelta(minutes=n + 1))
            ratios.append(full["seconds"] / base)
            peaks.append(full["peak_kib"] / 1024)
            print(
                f"full {number + 1}: baseline {base:.2f}s, full build {full['seconds']:.2f}s"
                f" = {ratios[-1]:.2f}x, {full['written']} documents of {feeds} feeds,"
                f" peak RSS {peaks[-1]:.0f} MiB",
                flush=True,
            )
            if number == 0 and args.keep is not None:
                shutil.rmtree(args.keep, ignore_errors=True)
                shutil.copytree(config.feeds.output, args.keep)
        config = make_config(folder, "public-0")
        FeedBuilder(config, db, lambda: START + timedelta(minutes=n + 1)).build()
        seconds, written = [], []
        for r in range(args.rounds):
            when = START + timedelta(minutes=n + 10 + r)
            took, wrote = latency_round(config, db, articles, rng, when)
            seconds.append(took)
            written.append(wrote)
        print(
            f"10 new articles -> their feeds written, {args.rounds} rounds:"
            f" median {statistics.median(seconds):.3f}s, p99 {p99(seconds):.3f}s"
            f" (min {min(seconds):.3f}s), documents written median {statistics.median(written):.0f}"
        )
        print(
            f"median full build {statistics.median(ratios):.2f}x baseline,"
            f" peak RSS {max(peaks):.0f} MiB; bench process peak"
            f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )
        print("targets: full <= 1.5x baseline; latency median < 1 s, p99 < 2 s")
        db.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--full", type=int, default=3, help="full builds (medians reported)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 10 new articles")
    parser.add_argument("--keep", type=Path, default=None, help="copy the first full build here")
    parser.add_argument("--dir", type=Path, default=None, help="file system for store and feeds")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
