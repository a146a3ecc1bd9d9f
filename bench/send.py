"""End-to-end send benchmark: select, render, enqueue and send digests to a sink.

    .venv/bin/python bench/send.py                       # 10,000 subscribers + RSS at 100,000
    .venv/bin/python bench/send.py --subscribers 2000 --rss-subscribers 0   # quick

Data: 600 articles of one day over 40 regions and 15 categories, N subscribers
spread over 200 preference combinations (1-2 regions; a category filter only on
wide choices), at most 12 articles an edition: digests of 30-40 KB (average
33 KB). The sink is Postfix's C ``smtp-sink`` when installed (else an
aiosmtpd sink in a separate process). In the same run:

- kabarfeed: ``kabarfeed digest send --force --date D --processes P`` (P = 1, 2)
  end to end on a fresh copy of the database, wall clock including start-up;
- naive baseline (sample of subscribers): per subscriber the selection, a
  Jinja2 render + ``EmailMessage`` (the renderer's reference path) and
  ``smtplib`` ``sendmail`` over one persistent connection;
- loopback limit: Postfix's ``smtp-source`` sending as many same-size messages
  to the same sink, when installed, in its default mode (one session, a
  connection per message: the mode that matches the ~1,600 msg/s the
  delivery issue quotes) and with 4 persistent sessions (``-d -s 4``);
- peak RSS of ``digest send`` for 100,000 subscribers.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sinks import postfix_tool, start_sink
from sqlalchemy import insert
from synthetic import subscriber_row, taxonomy_toml

from kabarfeed.config import load_config
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.digest.selection import select_articles
from kabarfeed.models import Article, Image
from kabarfeed.store import open_database
from kabarfeed.store import subscribers as subscriber_store
from kabarfeed.store.articles import Prepared, load_articles, save_articles
from kabarfeed.store.schema import subscriber_categories, subscriber_regions, subscribers

ARTICLES = 600
DAY = date(2025, 11, 17)
CUTOFF = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)  # 06:00 WITA
SENTENCE = (
    "Pemerintah kota menggelar rapat koordinasi bersama organisasi perangkat daerah "
    "untuk membahas program prioritas, anggaran dan pelayanan publik tahun depan. "
)


def write_config(folder: Path, db_file: Path, port: int) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'[site]\ntitle = "Nusantara Plus"\nbase_url = "https://news.example.id"\n'
        f'timezone = "Asia/Makassar"\npostal_address = "Jl. Sudirman 1, Balikpapan"\n\n'
        f'[storage]\nurl = "sqlite:///{db_file}"\n\n'
        f'[digest]\nfrom_address = "redaksi@news.example.id"\nmax_articles = 12\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\npool_size = 4\n'
        f"max_per_connection = 1000\nbatch_size = 500\n\n"
        f'[logging]\nlevel = "WARNING"\n\n{taxonomy_toml("Asia/Makassar")}\n',
        encoding="utf-8",
    )
    return path


def make_articles(rng: random.Random, count: int) -> list[Article]:
    out = []
    for n in range(count):
        seen = CUTOFF - timedelta(minutes=rng.randrange(1, 20 * 60))
        p = rng.randrange(8)
        regions = (f"kota-{p}-{rng.randrange(4)}",) if rng.random() < 0.8 else (f"provinsi-{p}",)
        cats = tuple(sorted({f"kategori-{rng.randrange(15)}" for _ in range(rng.randint(1, 2))}))
        out.append(
            Article(
                id=f"a{n:05d}",
                source="redaksi",
                url=f"https://news.example.id/berita/{n}",
                title=f"Rapat koordinasi akhir tahun membahas program prioritas daerah nomor {n}",
                published=seen,
                updated=seen,
                first_seen=seen,
                content_hash=f"h{n}",
                summary=(SENTENCE * 4)[:520],
                content_html=f"<p>{SENTENCE * 3}</p>",
                image=Image(f"https://news.example.id/foto/{n}.jpg", "Foto kegiatan"),
                regions=regions,
                categories=cats,
                advertorial=n % 25 == 0,
                author="Redaksi",
                language="id",
                local_tz="Asia/Makassar",
            )
        )
    return out


def combos(rng: random.Random, count: int) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    found: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    while len(found) < count:
        regions = tuple(
            sorted(
                {
                    f"provinsi-{rng.randrange(8)}"
                    if rng.random() < 0.5
                    else f"kota-{rng.randrange(8)}-{rng.randrange(4)}"
                    for _ in range(rng.randint(1, 2))
                }
            )
        )
        wide = any(r.startswith("provinsi-") for r in regions) or len(regions) > 1
        picks = rng.randint(1, 3) if wide and rng.random() < 0.4 else 0
        cats = tuple(sorted({f"kategori-{rng.randrange(15)}" for _ in range(picks)}))
        found.add((regions, cats))
    return sorted(found)


def build_db(folder: Path, subscriber_count: int, seed: int = 7) -> Path:
    """A migrated SQLite file with the articles and subscribers."""
    rng = random.Random(seed)
    db_file = folder / "template.db"
    config = load_config(write_config(folder, db_file, 25), environ={})
    db = open_database(config.storage.url)
    with db.begin() as conn:
        batch = [
            Prepared(a, None, f"u{a.id}", a.content_hash) for a in make_articles(rng, ARTICLES)
        ]
        save_articles(conn, batch, now=CUTOFF)
    prefs = combos(rng, 200)
    created = CUTOFF - timedelta(days=30)
    for start in range(0, subscriber_count, 5000):
        ids = range(start + 1, min(start + 5000, subscriber_count) + 1)
        subs, regs, cats = [], [], []
        for i in ids:
            regions, categories = prefs[i % len(prefs)]
            subs.append(subscriber_row(i, created))
            regs += [
                {"subscriber_id": i, "region": r, "position": k} for k, r in enumerate(regions)
            ]
            cats += [
                {"subscriber_id": i, "category": c, "position": k} for k, c in enumerate(categories)
            ]
        with db.begin() as conn:
            conn.execute(insert(subscribers), subs)
            conn.execute(insert(subscriber_regions), regs)
            if cats:
                conn.execute(insert(subscriber_categories), cats)
    db.dispose()
    return db_file


# -- measured runs -------------------------------------------------------------------


def kabarfeed_send(
    folder: Path, template: Path, port: int, processes: int
) -> tuple[float, int, int]:
    """Wall seconds, messages sent and peak RSS (KB) of ``digest send`` on a fresh copy."""
    run_dir = folder / f"run-{processes}-{time.monotonic_ns()}"
    run_dir.mkdir()
    db_file = run_dir / "kabarfeed.db"
    shutil.copy(template, db_file)
    config = write_config(run_dir, db_file, port)
    cmd = [
        sys.executable,
        "-m",
        "kabarfeed",
        "--config",
        str(config),
        "digest",
        "send",
        "--date",
        DAY.isoformat(),
        "--force",
        "--processes",
        str(processes),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    output = proc.stdout.read().decode() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"digest send failed:\n{output}")
    sent = _sent_count(output)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, sent, max(usage.ru_maxrss, children if processes > 1 else 0)


def _sent_count(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("delivery: sent "):
            return int(line.split()[2].rstrip(","))
    raise SystemExit(f"no summary in output:\n{output}")


def baseline(template: Path, folder: Path, port: int, sample: int) -> tuple[float, int]:
    """Naive path on ``sample`` subscribers: msg/s and average message size."""
    db_file = folder / "baseline.db"
    shutil.copy(template, db_file)
    config = load_config(write_config(folder, db_file, port), environ={})
    db = open_database(config.storage.url)
    renderer = DigestRenderer(config, clock=lambda: CUTOFF)
    taxonomy = config.taxonomy
    start = time.perf_counter()
    with db.connect() as conn:
        people = subscriber_store.list_subscribers(conn, limit=sample)
    smtp = smtplib.SMTP("127.0.0.1", port)
    size = 0
    for sub in people:
        since = CUTOFF - config.digest.first_window
        with db.connect() as conn:
            candidates = load_articles(conn, first_seen_after=since, first_seen_until=CUTOFF)
        sel = select_articles(
            sub, candidates, since=since, cutoff=CUTOFF, taxonomy=taxonomy, config=config.digest
        )
        message = renderer.render_reference(
            EditionInput(sub, DAY, sel.articles, sel.total_matching)
        )
        smtp.sendmail("bounces@news.example.id", [sub.email], message.data)
        size += len(message.data)
    smtp.quit()
    elapsed = time.perf_counter() - start
    db.dispose()
    return len(people) / elapsed, size // max(len(people), 1)


SOURCE_MODES = {
    "default": (),
    "persistent": ("-d", "-s", "4"),
}
"""How ``smtp-source`` is run for the loopback limit: its defaults (one
session, a new connection per message; on this machine this is the mode
that gives the ~1,600 msg/s the delivery issue quotes as the C limit), and
four persistent sessions (``-d -s 4``, the shape of kabarfeed's pool)."""


def smtp_source(port: int, count: int, size: int, mode: str) -> float | None:
    """Messages per second of Postfix's ``smtp-source`` in ``mode``."""
    source = postfix_tool("smtp-source")
    if not source:
        return None
    cmd = [
        source,
        *SOURCE_MODES[mode],
        "-m",
        str(count),
        "-l",
        str(size),
        "-f",
        "bounces@news.example.id",
        "-t",
        "sink@example.org",
        f"127.0.0.1:{port}",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--baseline-sample", type=int, default=1_000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--rss-subscribers", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kabarfeed-send-bench-"))
    sink, port, kind = start_sink()
    try:
        _run(args, folder, port, kind)
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace, folder: Path, port: int, kind: str) -> None:
    print(f"sink: {kind} on 127.0.0.1:{port}")
    template = build_db(folder, args.subscribers)
    base_rate, avg_size = baseline(template, folder, port, args.baseline_sample)
    print(
        f"naive baseline (jinja2 + EmailMessage + smtplib, {args.baseline_sample} "
        f"subscribers): {base_rate:,.0f} msg/s, average message {avg_size / 1024:.1f} KB"
    )
    limits = {m: smtp_source(port, args.subscribers, avg_size, m) for m in SOURCE_MODES}
    for mode, limit in limits.items():
        if limit:
            shape = " ".join(SOURCE_MODES[mode]) or "no options"
            print(f"loopback limit (postfix smtp-source, {mode}: {shape}): {limit:,.0f} msg/s")
    for processes in [int(p) for p in args.processes.split(",")]:
        elapsed, sent, _rss = kabarfeed_send(folder, template, port, processes)
        rate = sent / elapsed
        line = (
            f"kabarfeed digest send, {processes} process(es): {sent:,} messages in "
            f"{elapsed:.1f}s = {rate:,.0f} msg/s; x{rate / base_rate:.1f} baseline"
        )
        shares = [
            f"{rate / limit:.0%} of the {mode} limit" for mode, limit in limits.items() if limit
        ]
        print(", ".join([line, *shares]))
    if args.rss_subscribers:
        big = folder / "big"
        big.mkdir()
        big_template = build_db(big, args.rss_subscribers)
        elapsed, sent, rss = kabarfeed_send(big, big_template, port, 1)
        print(
            f"{args.rss_subscribers:,} subscribers, 1 process: {sent:,} sent in {elapsed:.0f}s "
            f"({sent / elapsed:,.0f} msg/s), peak RSS {rss / 1024:.0f} MB"
        )


if __name__ == "__main__":
    main()
