"""Feed build benchmark: full and incremental builds against a feedgen baseline.

    .venv/bin/python bench/feeds.py                 # 100,000 articles, 3 rounds (~40 s)
    .venv/bin/python bench/feeds.py --rounds 5
    .venv/bin/python bench/feeds.py --articles 20000
    .venv/bin/python bench/feeds.py --processes 0   # entries rendered in-process
    .venv/bin/python bench/feeds.py --keep /tmp/out # keep the first full build's files (to diff)
    .venv/bin/python bench/feeds.py --dir /mnt/x    # store and feeds on another file system

A synthetic store of N articles over 40 regions (8 provinces x 4 cities) and
15 categories is written with the store's bulk ``save_articles``. Then each
round measures, in the same run:

- baseline: the same feeds (every selection, same items, RSS + Atom via
  feedgen, JSON via json.dumps) built from in-memory entries, no store, no files;
- full build: ``FeedBuilder.build(full=True)`` into an empty folder;
- incremental build after 10 new articles: ``FeedBuilder.build()``.

Each round's figures are printed, then the medians (the host's load moves
single runs by +-20%). Targets: full <= 1.5x baseline; incremental < 5% of
full, touching only the affected feeds.

On ext4 without a journal, every file creation skips the inodes freed in the
last minutes: start a run some five minutes after deleting hundreds of
thousands of files; see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedgen.feed import FeedGenerator
from synthetic import taxonomy_toml

from kabarfeed.config import Config, parse_config
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.feeds.selection import IndexRow, Matcher, plan
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
    import tomllib

    text = (
        f'[site]\ntitle = "Bench"\nbase_url = "https://bench.example.id"\n'
        f'[storage]\nurl = "sqlite:///{folder / "bench.db"}"\n'
        f'[feeds]\noutput = "{folder / output}"\n\n{taxonomy_toml()}'
    )
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
    """feedgen (+ json.dumps) on in-memory entries for the same selections."""
    newest_first = sorted(articles, key=lambda a: (a.published, a.id), reverse=True)
    by_id = {a.id: a for a in articles}
    rows = [IndexRow(a.id, a.regions, a.categories) for a in newest_first]
    the_plan = plan(config.taxonomy, rows, items=config.feeds.items)
    started = time.perf_counter()
    for selection in the_plan.selections:
        items = [by_id[i] for i in the_plan.ids(selection)]
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
    return time.perf_counter() - started, len(the_plan.selections)


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


@dataclass(frozen=True)
class Round:
    """One round: the baseline, a full build into an empty folder, and an
    incremental build after 10 new articles."""

    baseline: float
    full: float
    full_written: int
    incremental: float
    inc_rendered: int
    inc_written: int
    touched: int

    @property
    def ratio(self) -> float:
        return self.full / self.baseline

    @property
    def share(self) -> float:
        return self.incremental / self.full


@dataclass(frozen=True)
class Figures:
    articles: int
    setup: float
    selections: int
    rounds: list[Round]


def settle(*, frozen: bool = False) -> None:
    """Start a timed phase with no garbage pending; ``frozen``: move what is
    alive now (the 100,000 synthetic articles this script holds) out of the
    cyclic GC's reach, so no phase pays for scanning the fixture (a full
    collection landing in a 0.2 s incremental build added 0.15 s to it)."""
    gc.collect()
    if frozen:
        gc.freeze()


def one_round(
    folder: Path,
    db: Database,
    articles: list[Article],
    rng: random.Random,
    processes: int | None,
    number: int,
    keep: Path | None = None,
) -> tuple[Round, int]:
    """A round into ``folder``/public-``number`` (a new, empty output folder:
    a real full build; earlier rounds' folders stay until the end, so that no
    round creates files among the inodes another just freed)."""
    config = make_config(folder, f"public-{number}")
    base, selections = baseline(config, articles)
    n = len(articles)
    now = START + timedelta(minutes=n + 1)
    settle()
    t0 = time.perf_counter()
    full = FeedBuilder(config, db, lambda: now, processes=processes).build(full=True)
    full_time = time.perf_counter() - t0
    if keep is not None:  # the full build's output, to diff
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(config.feeds.output, keep)
    later = START + timedelta(minutes=n + 10)
    fresh = [make_article(n + i, rng, later) for i in range(10)]
    fill(db, fresh, now=later)
    articles.extend(fresh)
    matcher = Matcher(config.taxonomy)
    touched = {s for a in fresh for s in matcher.selections(a.regions, a.categories)}
    settle()
    t0 = time.perf_counter()
    inc = FeedBuilder(config, db, lambda: later).build()
    inc_time = time.perf_counter() - t0
    figures = Round(
        base, full_time, full.written, inc_time, inc.rendered, inc.written, len(touched)
    )
    return figures, selections


def run(
    n: int,
    seed: int,
    rounds: int = 3,
    processes: int | None = None,
    keep: Path | None = None,
    where: Path | None = None,
) -> Figures:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="kf-bench-", dir=where))
    try:
        db = open_database(make_config(folder).storage.url)
        articles = [make_article(i, rng, START + timedelta(minutes=i)) for i in range(n)]
        t0 = time.perf_counter()
        fill(db, articles, now=START + timedelta(minutes=n))
        setup = time.perf_counter() - t0
        settle(frozen=True)
        done = []
        for number in range(rounds):
            figures, selections = one_round(
                folder, db, articles, rng, processes, number, keep if number == 0 else None
            )
            done.append(figures)
            print(_line(number + 1, figures), flush=True)
        db.dispose()
        return Figures(n, setup, selections, done)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _line(label: object, r: Round) -> str:
    return (
        f"{label!s:>6}  {r.baseline:8.2f}s  {r.full:8.2f}s  {r.ratio:5.2f}x"
        f"  {r.incremental:7.3f}s  {100 * r.share:5.1f}%"
        f"  {r.inc_rendered:>3} of {r.touched:>3} / {r.inc_written} files"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument(
        "--processes", type=int, default=None, help="render workers (default: one per CPU)"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy the first full build's output here"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="file system to put the store and the feeds on (default: the temp folder)",
    )
    args = parser.parse_args()
    print(f"store: {args.articles:,} articles, 40 regions, 15 categories; per round:")
    print(" round  baseline      full  ratio  incremental  share  rendered of touched / written")
    f = run(args.articles, args.seed, args.rounds, args.processes, args.keep, args.dir)
    print(f"median  {_medians(f.rounds)}")
    print(f"bulk insert {f.setup:.1f}s; {f.selections} selections x 3 formats")
    print("targets: full build <= 1.5x baseline; incremental < 5% of full, only the touched feeds")


def _medians(rounds: list[Round]) -> str:
    return (
        f"baseline {statistics.median(r.baseline for r in rounds):.2f}s, "
        f"full {statistics.median(r.full for r in rounds):.2f}s, "
        f"ratio {statistics.median(r.ratio for r in rounds):.2f}x, "
        f"incremental {statistics.median(r.incremental for r in rounds):.3f}s = "
        f"{100 * statistics.median(r.share for r in rounds):.1f}% of full"
    )


if __name__ == "__main__":
    main()
