"""A reader's whole journey in a real browser (Debian's chromium driven by
Playwright) against ``kabarfeed serve`` started on port 0:

index → subscribe → confirmation link from the Maildir → confirm →
preferences → unsubscribe, with screenshots at 375 px and 1280 px of every
page in ``test-artifacts/`` and checks that nothing overflows a phone screen.
"""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from browser_support import chromium, require_chromium
from conftest import REPO, SITE_TOML, TAXONOMY_TOML
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from service_support import KABARFEED, clean_env, start, stop, wait_for_url

ARTIFACTS = REPO / "test-artifacts"
WIDTHS = (375, 1280)
_LISTENING = re.compile(r"running on (http://127\.0\.0\.1:\d+)")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass
class Server:
    """``kabarfeed serve`` in a subprocess."""

    url: str
    process: subprocess.Popen[str]
    output: list[str]


def _write_config(folder: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        SITE_TOML + f'[storage]\nurl = "sqlite:///{folder / "kabarfeed.db"}"\n'
        f'[feeds]\noutput = "{folder / "public"}"\n'
        f'[maildir]\npath = "{folder / "maildir"}"\n'
        '[logging]\nlevel = "INFO"\n\n' + TAXONOMY_TOML,
        encoding="utf-8",
    )
    return config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    require_chromium()
    config = _write_config(tmp_path)
    env = clean_env()
    subprocess.run(
        [str(KABARFEED), "--config", str(config), "build"], check=True, env=env, timeout=120
    )
    process = start(config, env, "serve", "--port", "0")
    output: list[str] = []
    try:
        url = wait_for_url(process, output, _LISTENING, timeout=30, what="kabarfeed serve")
        yield Server(url, process, output)
    finally:
        stop(process, 10)


class Journey:
    """The browser page plus the store, screenshots and layout checks."""

    def __init__(self, page: Any, server: Server, folder: Path) -> None:
        self.page = page
        self.server = server
        self.db = Database(f"sqlite:///{folder / 'kabarfeed.db'}")
        self.maildir = folder / "maildir" / "new"
        self.step = 0

    def shoot(self, name: str) -> None:
        """Screenshots at every width; the page must fit a phone without sideways scrolling."""
        self.step += 1
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways at {width}px"
            path = ARTIFACTS / f"{self.step:02d}-{name}-{width}.png"
            self.page.screenshot(path=str(path), full_page=True)
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    def subscriber(self) -> Subscriber:
        with self.db.connect() as conn:
            found = sub_store.get_by_email(conn, "ani@example.com")
        assert found is not None
        return found

    def confirmation_mail(self) -> EmailMessage:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            files = sorted(self.maildir.iterdir()) if self.maildir.is_dir() else []
            if files:
                message = email.message_from_bytes(
                    files[0].read_bytes(), policy=email.policy.default
                )
                assert isinstance(message, EmailMessage)
                return message
            time.sleep(0.1)
        raise AssertionError("no confirmation mail in the Maildir:\n" + "".join(self.server.output))


def _confirm_path(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"https://news\.example\.id(/confirm/\S+)", body.get_content())
    assert found
    return found[1]


def test_subscribe_confirm_preferences_unsubscribe(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(locale="id-ID", viewport={"width": 375, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        failed: list[str] = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        journey = Journey(page, server, tmp_path)
        _walk(journey, expect)
        # the browser asks for /favicon.ico by itself; nothing else may fail
        assert [u for u in failed if not u.endswith("/favicon.ico")] == []
        assert [e for e in errors if "404" not in e] == [], f"console errors (CSP?): {errors}"


def _walk(j: Journey, expect: Any) -> None:
    page, base = j.page, j.server.url
    page.goto(base + "/")
    expect(page.get_by_role("heading", name="Berita harian lewat email")).to_be_visible()
    j.shoot("index")

    page.get_by_label("Alamat email").fill("ani@example.com")
    page.get_by_role("button", name="Berlangganan").click()
    expect(page.get_by_role("heading", name="Berlangganan ringkasan berita harian")).to_be_visible()
    expect(page.get_by_label("Alamat email")).to_have_value("ani@example.com")
    page.keyboard.press("Tab")
    j.shoot("subscribe")

    page.get_by_label("Nama (opsional)").fill("Ani")
    page.get_by_label("Kalimantan Timur").check()
    page.get_by_label("Ekonomi").check()
    page.get_by_label("Jam kirim").select_option("07:00")
    page.get_by_role("button", name="Berlangganan").click()
    expect(page.get_by_role("heading", name="Periksa kotak masuk Anda")).to_be_visible()
    j.shoot("check-inbox")
    sub = j.subscriber()
    assert sub.status is SubscriberStatus.PENDING and sub.regions == ("kalimantan-timur",)

    path = _confirm_path(j.confirmation_mail())
    page.goto(base + path)
    expect(page.get_by_role("heading", name="Konfirmasi langganan")).to_be_visible()
    j.shoot("confirm")
    assert j.subscriber().status is SubscriberStatus.PENDING  # the GET changed nothing
    page.get_by_role("button", name="Ya, saya mau berlangganan").click()
    expect(page.get_by_role("heading", name="Langganan Anda aktif")).to_be_visible()
    j.shoot("confirmed")
    assert j.subscriber().status is SubscriberStatus.ACTIVE

    page.get_by_role("link", name="Atur preferensi").click()
    expect(page.get_by_role("heading", name="Preferensi langganan")).to_be_visible()
    expect(page.get_by_label("Kalimantan Timur")).to_be_checked()
    j.shoot("preferences")
    page.get_by_label("Kalimantan Timur").uncheck()
    page.get_by_label("Jayapura").check()
    page.get_by_label("Olahraga").check()
    page.get_by_label("Zona waktu").select_option("Asia/Jayapura")
    page.get_by_label("Bahasa email").select_option("en")
    page.get_by_role("button", name="Simpan preferensi").click()
    expect(page.get_by_text("Your preferences have been saved.")).to_be_visible()
    j.shoot("preferences-saved")
    changed = j.subscriber()
    assert changed.regions == ("jayapura",) and changed.categories == ("ekonomi", "olahraga")
    assert (changed.timezone, changed.language, changed.send_at) == ("Asia/Jayapura", "en", "07:00")

    page.get_by_role("link", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
    j.shoot("unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You have unsubscribed")).to_be_visible()
    j.shoot("unsubscribed")
    assert j.subscriber().status is SubscriberStatus.UNSUBSCRIBED
