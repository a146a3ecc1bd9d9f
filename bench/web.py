"""Throughput of the subscription pages, in-process (Starlette test client,
no network), against the static index page as the baseline in the same run.

    .venv/bin/python bench/web.py [--requests 400] [--subscribers 2000]

Prints requests per second for each route and its cost relative to a static
GET of ``/index.html`` (the cheapest thing the app serves).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from kabarfeed.config import load_config
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.store import open_database
from kabarfeed.store import subscribers as store
from kabarfeed.subscribers import SubscriberDraft, with_defaults
from kabarfeed.web import create_app

REPO = Path(__file__).resolve().parents[1]


def _config(folder: Path) -> Path:
    taxonomy = (REPO / "config.toml").read_text(encoding="utf-8").split("# Regions: a tree")[1]
    taxonomy = "# Regions: a tree" + taxonomy.split("\n[feeds]")[0]
    path = folder / "config.toml"
    path.write_text(
        '[site]\ntitle = "Bench"\nbase_url = "https://news.example.id"\n'
        f'[storage]\nurl = "sqlite:///{folder / "db.sqlite"}"\n'
        f'[feeds]\noutput = "{folder / "public"}"\n[maildir]\npath = "{folder / "maildir"}"\n'
        "[web]\nsubscribe_per_ip_per_hour = 1000000\nsubscribe_per_address_per_hour = 1000000\n"
        '[logging]\nlevel = "WARNING"\n\n' + taxonomy,
        encoding="utf-8",
    )
    return path


def _rate(label: str, n: int, call: Callable[[int], int], base: float | None) -> float:
    call(0)  # warm up
    start = time.perf_counter()
    for i in range(n):
        status = call(i)
        assert status < 400, (label, status)
    per_second = n / (time.perf_counter() - start)
    ratio = f"{base / per_second:5.1f}x the baseline cost" if base else "baseline"
    print(f"{label:<34} {per_second:8.0f} req/s   {ratio}")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--subscribers", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = load_config(_config(folder), environ={})
        db = open_database(config.storage.url)
        now = datetime.now(UTC)
        FeedBuilder(config, db, lambda: now).build(full=True)
        with db.begin() as conn:
            subs = [
                store.add(
                    conn, with_defaults(SubscriberDraft(email=f"s{i}@example.com"), config), now=now
                )
                for i in range(args.subscribers)
            ]
        client = TestClient(
            create_app(config, db, clock=lambda: now), base_url=config.site.base_url
        )
        n = args.requests
        print(f"{n} requests per route, {args.subscribers} subscribers, SQLite, in-process")
        base = _rate("GET /index.html (static)", n, lambda i: client.get("/").status_code, None)
        _rate("GET /subscribe", n, lambda i: client.get("/subscribe").status_code, base)
        token = lambda i: subs[i % len(subs)].token  # noqa: E731
        _rate(
            "GET /preferences/<token>",
            n,
            lambda i: client.get(f"/preferences/{token(i)}").status_code,
            base,
        )
        _rate(
            "POST /u/<token> one-click",
            n,
            lambda i: (
                client.post(f"/u/{token(i)}", data={"List-Unsubscribe": "One-Click"}).status_code
            ),
            base,
        )
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/subscribe").text)
        assert csrf
        _rate(
            "POST /subscribe (new + maildir)",
            n,
            lambda i: (
                client.post(
                    "/subscribe", data={"csrf": csrf[1], "email": f"new{i}@example.com"}
                ).status_code
            ),
            base,
        )
        _rate("GET /metrics", n, lambda i: client.get("/metrics").status_code, base)
        db.dispose()


if __name__ == "__main__":
    main()
