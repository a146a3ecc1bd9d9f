"""Ingest benchmark: kabarfeed's full ingest vs plain feedparser on the same files.

    .venv/bin/python bench/ingest.py [--articles 10000] [--feeds 100]

Writes N synthetic RSS items spread over F feed files, then measures in the
same run (a) the baseline: ``feedparser.parse`` of every file, no storage, and
(b) kabarfeed: fetch (file://) + parse + normalise + classify + dedupe + store
into a fresh SQLite database. Prints articles/s for both and the time ratio
(target: kabarfeed <= 2x the baseline's time).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from kabarfeed.config import load_config, parse_config  # noqa: E402
from kabarfeed.ingest import Ingestor  # noqa: E402
from kabarfeed.store import open_database  # noqa: E402

WORDS = [
    "pemerintah",
    "kota",
    "rapat",
    "koordinasi",
    "warga",
    "pasar",
    "harga",
    "sekolah",
    "banjir",
    "jalan",
    "jembatan",
    "festival",
    "budaya",
    "polisi",
    "pengadilan",
    "kesehatan",
    "puskesmas",
    "olahraga",
    "liga",
    "ekonomi",
    "umkm",
    "sungai",
    "mangrove",
    "investasi",
    "gubernur",
    "bupati",
    "wali",
]
CITIES = (
    "Balikpapan",
    "Samarinda",
    "Bontang",
    "Banjarmasin",
    "Banjarbaru",
    "Surabaya",
    "Malang",
    "Jayapura",
)


def paragraph(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def item(rng: random.Random, feed: int, i: int, when: datetime) -> str:
    city = rng.choice(CITIES)
    title = f"{city}: {paragraph(rng, 8)[:-1]} #{feed}-{i}"
    body = "".join(f"<p>{paragraph(rng, 40)}</p>" for _ in range(5))
    return (
        f"<item><title>{title}</title><link>https://bench.example.id/{feed}/{i}</link>"
        f"<guid>https://bench.example.id/{feed}/{i}</guid>"
        f"<pubDate>{format_datetime(when)}</pubDate><dc:creator>Redaksi</dc:creator>"
        f"<category>{rng.choice(('Ekonomi', 'Pemerintahan', 'Budaya'))}</category>"
        f"<description><![CDATA[{paragraph(rng, 30)}]]></description>"
        f"<content:encoded><![CDATA[<p>NUSANTARAPLUS, {city.upper()} – </p>{body}"
        f'<img src="/img/{feed}-{i}.jpg" alt="foto">]]></content:encoded>'
        f'<enclosure url="https://bench.example.id/img/{feed}-{i}.jpg" type="image/jpeg" '
        f'length="40000"/></item>'
    )


def write_feeds(folder: Path, articles: int, feeds: int) -> list[Path]:
    rng = random.Random(7)
    start = datetime(2025, 11, 16, tzinfo=UTC)
    paths = []
    per_feed = articles // feeds
    for f in range(feeds):
        items = "".join(
            item(rng, f, i, start - timedelta(minutes=f * per_feed + i)) for i in range(per_feed)
        )
        doc = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Bench {f}</title><link>https://bench.example.id/</link>{items}"
            "</channel></rss>"
        )
        path = folder / f"feed-{f:03d}.xml"
        path.write_text(doc, encoding="utf-8")
        paths.append(path)
    return paths


def baseline(paths: list[Path]) -> tuple[float, int]:
    started = time.perf_counter()
    count = sum(len(feedparser.parse(p.read_bytes()).entries) for p in paths)
    return time.perf_counter() - started, count


def kabarfeed(paths: list[Path], folder: Path) -> tuple[float, int]:
    taxonomy = load_config(REPO / "config.toml", environ={})
    data = {
        "storage": {"url": f"sqlite:///{folder / 'bench.db'}"},
        "sources": [
            {"name": f"feed-{i:03d}", "kind": "feed", "url": p.as_uri()}
            for i, p in enumerate(paths)
        ],
        "regions": [r.model_dump() for r in taxonomy.regions],
        "categories": [c.model_dump() for c in taxonomy.categories],
    }
    config = parse_config(data, path=folder / "config.toml", environ={})
    db = open_database(config.storage.url)
    started = time.perf_counter()
    report = Ingestor(config, db, lambda: datetime(2025, 11, 17, tzinfo=UTC)).run()
    elapsed = time.perf_counter() - started
    assert report.failed == 0, report.summary()
    db.dispose()
    return elapsed, report.total("new")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--feeds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_feeds(folder, args.articles, args.feeds)
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{args.articles} articles in {args.feeds} feed files ({size:.1f} MB)")
        base_s, base_n = baseline(paths)
        kf_s, kf_n = kabarfeed(paths, folder)
    print(f"baseline feedparser.parse only : {base_s:6.2f} s  {base_n / base_s:8.0f} articles/s")
    print(f"kabarfeed full ingest          : {kf_s:6.2f} s  {kf_n / kf_s:8.0f} articles/s")
    print(f"kabarfeed time / baseline time : {kf_s / base_s:.2f}x (target <= 2.00x)")


if __name__ == "__main__":
    main()
