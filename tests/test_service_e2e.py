"""End to end: ``kabarfeed run`` as a subprocess against a temp folder source and
an in-process SMTP server.

One scenario, in order: a new article file is ingested and appears in the
served feed; an invalid config edit + SIGHUP is refused while the process
keeps serving (``status`` shows the rejection); the fix is applied; at the
subscribers' send time (the same UTC minute for a WIB, a WITA and a WIT
group) editions go out; SIGTERM in the middle of the sends exits 0 in time;
a restart completes the run, and every matching subscriber has exactly one
digest. Every wait polls with a deadline; no fixed sleep is an assertion.
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from conftest import TAXONOMY_TOML
from smtpserver import ScriptedSMTPServer, _Handler

pytestmark = pytest.mark.slow

KABARFEED = [str(Path(sys.executable).with_name("kabarfeed"))]
TITLE = "Pemkot Balikpapan Resmikan Jembatan Baru di Kampung Atas Air"
MATCHING = [f"kaltim{i}@example.id" for i in range(2)] + [f"papua{i}@example.id" for i in range(6)]
NOT_MATCHING = "jatim@example.id"


class SlowSMTPServer(ScriptedSMTPServer):
    """Takes ``delay`` seconds before accepting each message, so a SIGTERM can
    land while a transaction is in flight."""

    delay = 0.4

    def _protocol(self, context: Any) -> SMTP:
        proto = super()._protocol(context)
        proto.event_handler = handler = _SlowHandler(self)
        proto._handle_hooks["DATA"] = handler.handle_DATA
        return proto


class _SlowHandler(_Handler):
    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(SlowSMTPServer.delay)
        return await super().handle_DATA(smtp, session, envelope)


class Proc:
    """A ``kabarfeed run`` subprocess whose stderr is collected line by line."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [*KABARFEED, "--config", str(config), "run", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        found = wait_for(
            lambda: next((m for line in self.lines if (m := re.search(pattern, line))), None),
            timeout,
            f"log line /{pattern}/",
            self,
        )
        assert isinstance(found, re.Match)
        return found

    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def wait_for(check: Callable[[], Any], timeout: float, what: str, proc: Proc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    log = proc.log() if proc else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log}")


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:
        return 0, b""


def config_text(tmp: Path, smtp_port: int, *, db_url: str, interval: str = '"1s"') -> str:
    return f"""
[site]
title = "Nusantara Plus"
base_url = "https://news.example.id"
timezone = "Asia/Makassar"
postal_address = "Jl. Jenderal Sudirman No. 1, Balikpapan"

[storage]
url = "{db_url}"

[[sources]]
name = "redaksi"
kind = "directory"
path = "{tmp / "articles"}"
interval = {interval}

[feeds]
output = "{tmp / "public"}"
build_delay = "200ms"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
pool_size = 1
batch_size = 2
retry_base = "1s"

[scheduler]
digest_check = "1s"
drain_interval = "1s"
heartbeat = "1s"
build_max_wait = "2s"
shutdown_timeout = "20s"

{TAXONOMY_TOML}
"""


def article_text(now: datetime) -> str:
    local = now.astimezone(ZoneInfo("Asia/Makassar"))
    months = ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"]
    stamp = f"{local.day} {months[local.month - 1]} {local.year}, {local:%H:%M} WITA"
    return (
        f"{TITLE}\n\nOleh Redaksi pada {stamp}\nInfrastruktur\n\n"
        "NUSANTARAPLUS, BALIKPAPAN – Wali Kota Balikpapan meresmikan jembatan penghubung "
        "di kawasan Kampung Atas Air Margasari, Senin.\n\n"
        "Jembatan sepanjang 120 meter itu dibangun dengan APBD kota. (Red)\n"
    )


def text_of(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture
def smtp() -> Iterator[SlowSMTPServer]:
    with SlowSMTPServer() as server:
        yield server


def status_json(config: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [*KABARFEED, "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def import_subscribers(tmp: Path, config: Path, env: dict[str, str], send_at: datetime) -> None:
    rows = [(a, "balikpapan", "Asia/Makassar") for a in MATCHING[:2]]
    rows += [(a, "kalimantan-timur", "Asia/Jayapura") for a in MATCHING[2:]]
    rows += [(NOT_MATCHING, "jawa-timur", "Asia/Jakarta")]
    path = tmp / "subscribers.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "regions", "timezone", "send_at", "status"])
        for email, region, zone in rows:
            local = send_at.astimezone(ZoneInfo(zone))
            writer.writerow([email, region, zone, f"{local:%H:%M}", "active"])
    subprocess.run(
        [*KABARFEED, "--config", str(config), "subscribers", "import", str(path)],
        env=env,
        check=True,
        timeout=30,
        capture_output=True,
    )


def test_run_ingests_publishes_reloads_mails_and_stops_cleanly(
    tmp_path: Path, db_url: str, smtp: SlowSMTPServer
) -> None:
    (tmp_path / "articles").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(config_text(tmp_path, smtp.port, db_url=db_url), encoding="utf-8")
    env = {**os.environ, "KABARFEED_CONFIG": "", "PYTHONUNBUFFERED": "1"}
    env.pop("KABARFEED_CONFIG")

    proc = Proc(config, env)
    try:
        port = int(proc.wait_line(r"listening on http://127\.0\.0\.1:(\d+)")[1])
        base = f"http://127.0.0.1:{port}"

        # 1. a new article file is ingested and published
        (tmp_path / "articles" / "jembatan.txt").write_text(
            article_text(datetime.now(UTC)), encoding="utf-8"
        )
        wait_for(
            lambda: TITLE.encode() in http_get(f"{base}/feeds/region/balikpapan.json")[1],
            20,
            "the article in the served feed",
            proc,
        )

        # 2. an invalid edit + SIGHUP is refused; the process keeps serving
        config.write_text(
            config_text(tmp_path, smtp.port, db_url=db_url, interval='"15x"'), encoding="utf-8"
        )
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_line(r"config: .*sources\[0\]\.interval", 15)
        rejected = status_json(config, env)
        assert rejected["last_reload"]["ok"] is False
        assert any("sources[0].interval" in p for p in rejected["last_reload"]["problems"])
        assert rejected["running"] is True
        assert http_get(f"{base}/feeds/all.json")[0] == 200

        # 3. the fix is applied live
        config.write_text(
            config_text(tmp_path, smtp.port, db_url=db_url, interval='"2s"'), encoding="utf-8"
        )
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_line(r"source redaksi rescheduled every 2s", 15)
        assert status_json(config, env)["last_reload"]["ok"] is True

        # 4. subscribers in three zones whose local send times are all this UTC minute
        import_subscribers(tmp_path, config, env, datetime.now(UTC))
        wait_for(lambda: len(smtp.received) >= 3, 90, "the first digests", proc)

        # 5. SIGTERM while messages are in flight: exit 0, well within 30 s
        stopped_at = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(30) == 0, proc.log()
        assert time.monotonic() - stopped_at < 30
        sent_before_restart = len(smtp.received)
        assert sent_before_restart < len(MATCHING), proc.log()
    finally:
        proc.stop()

    # 6. a restart completes the run without duplicates
    again = Proc(config, env)
    try:
        wait_for(lambda: len(smtp.received) >= len(MATCHING), 30, "the remaining digests", again)
        status = status_json(config, env)
        assert status["running"] is True
        again.popen.send_signal(signal.SIGTERM)
        assert again.popen.wait(30) == 0, again.log()
    finally:
        again.stop()

    counts = smtp.recipients()
    assert counts == dict.fromkeys(MATCHING, 1), counts
    for address in MATCHING:
        (message,) = smtp.messages_for(address)
        assert TITLE in text_of(message.data)
    groups = {(g["timezone"], g["send_at"]) for g in status["groups"]}
    assert len(groups) == 3
    assert all(g["done_through"] for g in status["groups"])
