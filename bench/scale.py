"""Scale-out benchmark: one PostgreSQL outbox drained by 1, 2 and 4 workers.

    .venv/bin/python bench/scale.py                          # 50,000 editions
    .venv/bin/python bench/scale.py --editions 5000          # quick
    .venv/bin/python bench/scale.py --database-url postgresql+psycopg://u@host/db

For each worker count W the same 50,000 queued editions (a fresh copy of one
seeded template database: 12 articles, digests of ~20 KB) are sent by
``kabarfeed worker --processes W --once`` to Postfix's C ``smtp-sink``
(falls back to an aiosmtpd sink process, with a hint, when Postfix is
missing). Printed per W: wall time from process start to exit (imports and
start-up included), messages/s over that wall time, the steady rate between
the first and the last ``sent_at`` of the run, and both speed-ups against the
1-worker run measured in the same invocation.

Without ``--database-url`` a throwaway PostgreSQL cluster is started under a
temp folder (Debian's ``postgresql`` server binaries; as the ``postgres`` user
when run as root) and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sinks import free_port, start_sink
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from synthetic import subscriber_row

from kabarfeed.models import Article
from kabarfeed.store import deliveries as outbox
from kabarfeed.store import open_database
from kabarfeed.store.articles import Prepared, save_articles
from kabarfeed.store.schema import deliveries, subscribers

CUTOFF = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)
DAY = "2025-11-17"
SENTENCE = (
    "Pemerintah kota menggelar rapat koordinasi bersama organisasi perangkat daerah "
    "untuk membahas program prioritas, anggaran dan pelayanan publik tahun depan. "
)
ARTICLE_IDS = tuple(f"a{n:03d}" for n in range(12))
# -- PostgreSQL ----------------------------------------------------------------------


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """initdb + pg_ctl in a temp folder on a free port; yields a SQLAlchemy URL."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise SystemExit(
            "no PostgreSQL server: `apt-get install -y postgresql` or pass --database-url"
        )
    bindir = bins[-1]
    folder = Path(tempfile.mkdtemp(prefix="kabarfeed-scale-pg-"))
    user = "postgres" if os.getuid() == 0 else ""
    if user:
        shutil.chown(folder, user)
    port = free_port()

    def run(*cmd: str) -> None:
        line = " ".join(cmd)
        args = ["su", "-s", "/bin/sh", user, "-c", line] if user else ["sh", "-c", line]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

    data = folder / "data"
    run(f"{bindir}/initdb", "-D", str(data), "-U", "kabarfeed", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
    run(
        f"{bindir}/pg_ctl",
        "-D",
        str(data),
        "-o",
        f"'{opts}'",
        "-l",
        str(folder / "log"),
        "-w",
        "start",
    )
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "kabarfeed", "kf")
        yield f"postgresql+psycopg://kabarfeed@127.0.0.1:{port}/kf"
    finally:
        run(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def admin(url: str, sql: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def seed_template(url: str, editions: int) -> str:
    """A migrated database with the articles, subscribers and queued editions."""
    name = f"kfscale_tmpl_{uuid.uuid4().hex[:6]}"
    admin(url, f'CREATE DATABASE "{name}"')
    db = open_database(with_database(url, name))
    articles = [
        Article(
            id=aid,
            source="redaksi",
            url=f"https://news.example.id/berita/{n}",
            title=f"Rapat koordinasi akhir tahun membahas program prioritas daerah nomor {n}",
            published=CUTOFF - timedelta(hours=n + 1),
            updated=CUTOFF - timedelta(hours=n + 1),
            first_seen=CUTOFF - timedelta(hours=n + 1),
            content_hash=f"h{n}",
            summary=(SENTENCE * 4)[:520],
            regions=("balikpapan",),
            categories=("ekonomi",),
            language="id",
        )
        for n, aid in enumerate(ARTICLE_IDS)
    ]
    with db.begin() as conn:
        save_articles(
            conn, [Prepared(a, None, f"u{a.id}", a.content_hash) for a in articles], now=CUTOFF
        )
    for start in range(0, editions, 5000):
        ids = range(start + 1, min(start + 5000, editions) + 1)
        rows = [subscriber_row(i, CUTOFF) for i in ids]
        items = [outbox.NewDelivery(i, DAY, CUTOFF, CUTOFF, ARTICLE_IDS) for i in ids]
        with db.begin() as conn:
            conn.execute(insert(subscribers), rows)
            outbox.insert_editions(conn, items, CUTOFF)
    with db.begin() as conn:
        conn.execute(text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))"))
        conn.execute(text("ANALYZE"))
    db.dispose()
    return name


# -- sink ------------------------------------------------------------------------------


# -- measured runs -------------------------------------------------------------------------


def write_config(folder: Path, url: str, port: int) -> Path:
    path = folder / "config.toml"
    path.write_text(
        '[site]\ntitle = "Nusantara Plus"\nbase_url = "https://news.example.id"\n'
        'timezone = "Asia/Makassar"\npostal_address = "Jl. Sudirman 1, Balikpapan"\n\n'
        f'[storage]\nurl = "{url}"\n\n'
        '[digest]\nfrom_address = "redaksi@news.example.id"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\npool_size = 4\n'
        'max_per_connection = 1000\nbatch_size = 500\n\n[logging]\nlevel = "WARNING"\n\n'
        '[[regions]]\nslug = "kaltim"\nname = "Kalimantan Timur"\ntimezone = "Asia/Makassar"\n\n'
        '[[regions]]\nslug = "balikpapan"\nname = "Balikpapan"\nparent = "kaltim"\n\n'
        '[[categories]]\nslug = "ekonomi"\nname = "Ekonomi"\n',
        encoding="utf-8",
    )
    return path


def cpu_seconds(comm: str, pids: tuple[int, ...] = ()) -> float:
    """CPU of every process named ``comm`` (or with one of ``pids``), including
    children it reaped (PostgreSQL backends that exited)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        if name == comm or int(stat.parent.name) in pids:
            fields = raw[raw.rindex(")") + 2 :].split()
            total += sum(int(f) for f in fields[11:15])  # + reaped children (backends)
    return total / tick


def measure(
    url: str, template: str, folder: Path, port: int, sink_pid: int, workers: int
) -> tuple[float, float, int, dict[str, float]]:
    """Wall seconds, steady seconds (first to last sent_at), messages sent and
    CPU seconds of the workers, PostgreSQL and the sink during the run."""
    name = f"kfscale_run{workers}_{uuid.uuid4().hex[:6]}"
    admin(url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    run_url = with_database(url, name)
    config = write_config(folder, run_url, port)
    cmd = [sys.executable, "-m", "kabarfeed", "--config", str(config), "worker", "--once"]
    cmd += ["--processes", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg_before, sink_before = cpu_seconds("postgres"), cpu_seconds("", (sink_pid,))
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {
        "workers": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "postgres": cpu_seconds("postgres") - pg_before,
        "sink": cpu_seconds("", (sink_pid,)) - sink_before,
    }
    if done.returncode != 0:
        raise SystemExit(f"worker failed:\n{done.stdout}\n{done.stderr}")
    engine = create_engine(run_url)
    with engine.connect() as conn:
        sent, first, last = conn.execute(
            select(
                func.count(), func.min(deliveries.c.sent_at), func.max(deliveries.c.sent_at)
            ).where(deliveries.c.state == "sent")
        ).one()
    engine.dispose()
    admin(url, f'DROP DATABASE "{name}" WITH (FORCE)')
    steady = (last - first).total_seconds() if first and last else wall
    return wall, steady, int(sent), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--editions", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--database-url", default=os.environ.get("KABARFEED_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; editions per run: {args.editions:,}")
    if args.database_url:
        run(args, args.database_url)
        return
    with throwaway_cluster() as url:
        run(args, url)


def run(args: argparse.Namespace, url: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="kabarfeed-scale-"))
    sink, port, kind = start_sink()
    print(f"sink: {kind} on 127.0.0.1:{port}")
    template = seed_template(url, args.editions)
    try:
        base: tuple[float, float] | None = None
        for workers in (int(w) for w in args.workers.split(",")):
            wall, steady, sent, cpu = measure(url, template, folder, port, sink.pid, workers)
            rate, steady_rate = sent / wall, sent / steady
            base = base or (rate, steady_rate)
            print(
                f"{workers} worker(s): {sent:,} sent in {wall:.1f} s = {rate:,.0f} msg/s "
                f"(x{rate / base[0]:.2f}); steady {steady_rate:,.0f} msg/s "
                f"(x{steady_rate / base[1]:.2f})"
            )
            per = {k: 1000 * v / max(sent, 1) for k, v in cpu.items()}
            print(
                "   CPU per message: "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in per.items())
                + f"; total {sum(cpu.values()) / wall:.2f} cores busy"
            )
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait()
        admin(url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
