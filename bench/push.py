"""Push API benchmark: how soon a pushed article is in its feed, how many
pushes per second the service takes, and the polling path for comparison,
all against one real ``kabarfeed run`` in the same run.

    .venv/bin/python bench/push.py                        # 200 pushes, 2,000 stored articles
    .venv/bin/python bench/push.py --pushes 50 --burst 200 --polls 5
    .venv/bin/python bench/push.py --articles 20000 --clients 8

Set-up: a SQLite store in a temp folder with ``--articles`` articles over the
40-region / 15-category synthetic taxonomy (one JSON file in an archive
source read daily, ingested by ``kabarfeed ingest``, then ``kabarfeed build``),
then ``kabarfeed run`` with the shipped defaults ([feeds] build_delay 10 s,
[api] build_delay 250 ms, build_max_wait 1 s); pushes go to the ``redaksi``
source, whose folder is also polled every ``--poll-interval``.

- push latency: ``--pushes`` pushes one after the other; each is timed from
  just before its ``POST /api/v1/articles`` until ``GET /feeds/all.json``
  (a conditional GET every 20 ms) lists it. Median and p99.
- sustained pushes: ``--burst`` pushes from ``--clients`` concurrent clients;
  pushes per second accepted (201), and the time until the last is in the feed.
- polling path: ``--polls`` articles written into the source folder, each
  timed from the file's rename into place until the feed lists it (the next
  poll, then the ingest debounce); median and max.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from synthetic import taxonomy_toml

KABARFEED = str(Path(sys.executable).with_name("kabarfeed"))
START = datetime(2025, 1, 1, tzinfo=UTC)


def config_text(folder: Path, poll_interval: str) -> str:
    return f"""
[site]
title = "Bench"
base_url = "https://news.example.id"
timezone = "Asia/Makassar"

[storage]
url = "sqlite:///{folder / "kabarfeed.db"}"

[[sources]]
name = "arsip"
kind = "directory"
path = "{folder / "archive"}"
interval = "24h"

[[sources]]
name = "redaksi"
kind = "directory"
path = "{folder / "articles"}"
interval = "{poll_interval}"

[feeds]
output = "{folder / "public"}"

[api]
requests_per_minute = 100000

[scheduler]
watch = false

{taxonomy_toml()}
"""


def item(n: int, published: datetime, tag: str) -> dict[str, Any]:
    """One article in the JSON import's shape."""
    return {
        "guid": f"{tag}-{n}",
        "url": f"https://news.example.id/{tag}/{n}",
        "title": f"Berita {tag} nomor {n}",
        "body": f"KOTA – Isi berita {tag} nomor {n}. " * 20,
        "published": published.isoformat(),
        "regions": [f"kota-{n % 8}-{n % 4}"],
        "categories": [f"kategori-{n % 15}"],
    }


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    return done.stdout


class Service:
    """``kabarfeed run`` in a subprocess; its base URL once listening."""

    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [KABARFEED, "--config", str(config), "run", "--port", "0"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.base = ""
        deadline = time.monotonic() + 120
        while not self.base:
            found = [m for line in self.lines if (m := re.search(r"listening on (\S+)", line))]
            if found:
                self.base = found[0][1]
            elif time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("service did not start:\n" + "".join(self.lines[-30:]))
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def wait_visible(client: httpx.Client, url: str, timeout: float = 600) -> float:
    """Poll the all-articles feed (conditional GETs, as a feed reader or CDN
    would: a 304 costs the server little) until ``url`` is listed; the
    monotonic time then."""
    deadline = time.monotonic() + timeout
    etag = ""
    while time.monotonic() < deadline:
        response = client.get("/feeds/all.json", headers={"If-None-Match": etag} if etag else {})
        if response.status_code == 200:
            etag = response.headers.get("etag", "")
            if url in response.text:
                return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"{url} never reached the feed")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def push_latency(
    client: httpx.Client, token: str, pushes: int, now: Callable[[], datetime]
) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    for n in range(pushes):
        body = item(n, now(), "push")
        started = time.monotonic()
        answer = client.post("/api/v1/articles", json=body, headers=headers)
        if answer.status_code != 201:
            raise SystemExit(f"push {n}: {answer.status_code} {answer.text}")
        latencies.append(wait_visible(client, body["url"]) - started)
    return latencies


def sustained(base: str, token: str, burst: int, clients: int) -> tuple[float, float]:
    """Pushes per second accepted, and seconds from the first push until the last is visible."""
    headers = {"Authorization": f"Bearer {token}"}
    stamp = datetime.now(UTC)
    bodies = [item(n, stamp + timedelta(microseconds=n), "burst") for n in range(burst)]
    local = threading.local()

    def send(body: dict[str, Any]) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=60)
        return local.client.post("/api/v1/articles", json=body, headers=headers).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        codes = list(pool.map(send, bodies))
    accepted_in = time.monotonic() - started
    if codes.count(201) != burst:
        raise SystemExit(f"burst: {codes.count(201)} of {burst} accepted")
    with httpx.Client(base_url=base, timeout=60) as client:
        visible = wait_visible(client, bodies[-1]["url"])
    return burst / accepted_in, visible - started


def polling(client: httpx.Client, folder: Path, polls: int) -> list[float]:
    latencies = []
    for n in range(polls):
        body = item(n, datetime.now(UTC), "poll")
        scratch = folder / f".poll-{n}.tmp"
        scratch.write_text(json.dumps(body), encoding="utf-8")
        started = time.monotonic()
        os.replace(scratch, folder / f"poll-{n}.json")
        latencies.append(wait_visible(client, body["url"]) - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--polls", type=int, default=10)
    parser.add_argument("--poll-interval", default="30s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-bench-push-") as tmp:
        folder = Path(tmp)
        (folder / "articles").mkdir()
        (folder / "archive").mkdir()
        config = folder / "config.toml"
        config.write_text(config_text(folder, args.poll_interval), encoding="utf-8")
        seed = [item(n, START + timedelta(minutes=n), "seed") for n in range(args.articles)]
        (folder / "archive" / "seed.json").write_text(json.dumps(seed), encoding="utf-8")
        cli = [KABARFEED, "--config", str(config)]
        run([*cli, "ingest"])
        run([*cli, "build"])
        token = re.search(
            r"kf_\S+", run([*cli, "api-token", "add", "bench", "--source", "redaksi"])
        )
        assert token is not None
        service = Service(config)
        try:
            with httpx.Client(base_url=service.base, timeout=60) as client:
                pushed = push_latency(client, token[0], args.pushes, lambda: datetime.now(UTC))
                rate, drained = sustained(service.base, token[0], args.burst, args.clients)
                polled = polling(client, folder / "articles", args.polls)
        finally:
            service.stop()
    ms = 1000.0
    print(f"store: {args.articles} articles at start; machine: {os.cpu_count()} cores")
    print("| path | samples | median | p99 / max |")
    print("|---|---|---|---|")
    print(
        f"| push → feed | {len(pushed)} | {statistics.median(pushed) * ms:.0f} ms "
        f"| {percentile(pushed, 99) * ms:.0f} ms (p99) |"
    )
    print(
        f"| polling ({args.poll_interval} interval) → feed | {len(polled)} "
        f"| {statistics.median(polled):.1f} s | {max(polled):.1f} s (max) |"
    )
    print(
        f"\nsustained: {rate:.0f} pushes/s accepted ({args.burst} pushes, {args.clients} clients); "
        f"last one in the feed {drained:.1f} s after the first was sent"
    )


if __name__ == "__main__":
    main()
