"""After a push the feeds are rebuilt and the WebSub hub pinged promptly: the
service's build debounce is bypassed for pushes while a burst still builds
once. The scheduler part runs with an injected clock; the end-to-end part
runs ``kabarfeed run`` with a ten-minute build debounce, so only the push
path can have rebuilt the feed the test reads (no timing is asserted)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from kabarfeed.config import SourceConfig
from kabarfeed.scheduler import GroupPlan, SendGroup, ServiceScheduler, Timing
from tests.api_support import article
from tests.conftest import TAXONOMY_TOML

KABARFEED = [str(Path(sys.executable).with_name("kabarfeed"))]
T0 = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)


class _Cases:
    """Use cases that only count feed builds; the first build can be held."""

    def __init__(self) -> None:
        self.builds = 0
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def sources(self) -> Sequence[SourceConfig]:
        return ()

    def source_next_fetch(self, name: str) -> datetime | None:
        return None

    def ingest(self, source: SourceConfig) -> bool:
        return False

    def build_feeds(self) -> None:
        self.started.set()
        self.hold.wait(30)
        self.builds += 1

    def groups(self) -> Sequence[SendGroup]:
        return ()

    def run_group(self, group: SendGroup, now: datetime) -> GroupPlan:
        return GroupPlan(group)

    async def drain(self, stop: asyncio.Event) -> int:
        return 0

    def heartbeat(self) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _feeds_job(sched: ServiceScheduler) -> datetime:
    found = dict(sched.jobs())
    assert list(found).count("feeds") == 1
    return found["feeds"]


async def test_a_push_bypasses_the_build_debounce_and_a_burst_coalesces() -> None:
    clock = _Clock()
    timing = Timing(
        build_delay=timedelta(seconds=10),
        build_max_wait=timedelta(minutes=2),
        push_delay=timedelta(milliseconds=250),
        push_max_wait=timedelta(seconds=1),
    )
    sched = ServiceScheduler(_Cases(), clock, timing)
    sched._aps.start(paused=True)
    try:
        sched.request_build()  # an ingest: the regular, slow debounce
        assert _feeds_job(sched) == T0 + timedelta(seconds=10)
        sched.request_push_build()
        assert _feeds_job(sched) == T0 + timedelta(milliseconds=250)
        for step in range(1, 12):  # a burst, one push every 100 ms
            clock.now = T0 + timedelta(milliseconds=100 * step)
            sched.request_push_build()
        assert _feeds_job(sched) == T0 + timedelta(seconds=1)  # capped after the first push
        clock.now = T0 + timedelta(seconds=5)
        sched.request_build()  # an ingest meanwhile does not push the build back
        assert _feeds_job(sched) == T0 + timedelta(seconds=1)
    finally:
        sched._aps.shutdown(wait=False)


async def test_a_push_during_a_running_build_is_built_right_after() -> None:
    cases = _Cases()
    cases.hold.clear()
    timing = Timing(push_delay=timedelta(milliseconds=10), push_max_wait=timedelta(seconds=1))
    sched = ServiceScheduler(cases, lambda: datetime.now(UTC), timing)
    sched._aps.start()
    try:
        sched.request_push_build()
        assert await asyncio.to_thread(cases.started.wait, 30)
        sched.request_push_build()  # comes due while the first build still runs
        await asyncio.sleep(0.3)
        cases.hold.set()
        for _ in range(300):
            if cases.builds == 2:
                break
            await asyncio.sleep(0.05)
        assert cases.builds == 2
    finally:
        sched._aps.shutdown(wait=False)


# ------------------------------------------------------------------ end to end


class _Hub(ThreadingHTTPServer):
    """A WebSub hub that records the feed URLs it is told about."""

    def __init__(self) -> None:
        self.pinged: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if form.get("hub.mode") == ["publish"]:
                    hub.pinged.extend(form.get("hub.url", []))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hub"


@pytest.fixture
def hub() -> Iterator[_Hub]:
    server = _Hub()
    yield server
    server.shutdown()


def _status(url: str) -> int:
    """The status of a GET, 0 while the server does not accept connections yet."""
    try:
        return httpx.get(url).status_code
    except httpx.TransportError:
        return 0


def _wait(check: Callable[[], Any], what: str, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{log()}")


def test_a_pushed_article_reaches_the_feed_and_the_hub(
    tmp_path: Path, db_url: str, hub: _Hub
) -> None:
    (tmp_path / "articles").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[site]
title = "Nusantara Plus"
base_url = "https://news.example.id"
timezone = "Asia/Makassar"

[storage]
url = "{db_url}"

[[sources]]
name = "redaksi"
kind = "directory"
path = "{tmp_path / "articles"}"
interval = "1h"

[feeds]
output = "{tmp_path / "public"}"
build_delay = "10m"
websub_hub = "{hub.url}"

[scheduler]
build_max_wait = "10m"
shutdown_timeout = "10s"

{TAXONOMY_TOML}
""",
        encoding="utf-8",
    )
    cli = [*KABARFEED, "--config", str(config)]
    made = subprocess.run(
        [*cli, "api-token", "add", "cms", "--source", "redaksi"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = re.search(r"kf_\S+", made.stdout)
    assert token is not None
    # the (empty) feeds exist before the service starts; its start-up build is
    # debounced ten minutes, so only a build asked for by the push can change them
    subprocess.run([*cli, "build"], capture_output=True, timeout=60, check=True)
    lines: list[str] = []
    proc = subprocess.Popen(
        [*cli, "run", "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()

    def log() -> str:
        return "".join(lines[-40:])

    try:
        found = _wait(
            lambda: next((m for ln in lines if (m := re.search(r"listening on (\S+)", ln))), None),
            "the service to listen",
            log,
        )
        base = found[1]
        feed = f"{base}/feeds/region/balikpapan.atom"
        _wait(lambda: _status(feed) == 200, "the web server", log)
        start = len(hub.pinged)
        headers = {"Authorization": f"Bearer {token[0]}"}
        pushed = httpx.post(f"{base}/api/v1/articles", json=article(42), headers=headers)
        assert pushed.status_code == 201, pushed.text
        _wait(
            lambda: "koordinasi 42" in httpx.get(feed).text, "the pushed article in the feed", log
        )
        _wait(
            lambda: "https://news.example.id/feeds/region/balikpapan.atom" in hub.pinged[start:],
            "the hub ping",
            log,
        )
        gone = httpx.delete(f"{base}/api/v1/articles/cms-42", headers=headers)
        assert gone.status_code == 204
        _wait(lambda: "koordinasi 42" not in httpx.get(feed).text, "the article to leave", log)
    finally:
        proc.terminate()
        proc.wait(30)
