"""The newsroom console in a real browser (Debian's chromium driven by
Playwright) against ``kabarfeed run`` on port 0: set a password from the CLI's
one-time link, log in, export subscribers, apply a config change and see the
running service use it, try a broken config and see the error at its key
path and line, roll back. Screenshots at 1280 px go to ``test-artifacts/``."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import chromium, require_chromium
from conftest import REPO, SEED_FILE, SITE_TOML, TAXONOMY_TOML
from service_support import KABARFEED, clean_env, start, stop, wait_for_url

ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "kopi-tubruk-pagi"
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass
class Service:
    url: str
    config: Path
    process: subprocess.Popen[str]
    output: list[str]


def _cli(config: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(KABARFEED), "--config", str(config), *args],
        check=True,
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return done.stdout


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    require_chromium()
    config = tmp_path / "config.toml"
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    config.write_text(
        SITE_TOML + "# the console edits this file; comments stay\n"
        f'[[sources]]\nname = "redaksi"\nkind = "directory"\npath = "{folder}"\n'
        'interval = "1h"\n'
        f'[storage]\nurl = "sqlite:///{tmp_path / "kabarfeed.db"}"\n'
        f'[feeds]\noutput = "{tmp_path / "public"}"\n# items per feed\nitems = 50\n'
        f'[maildir]\npath = "{tmp_path / "maildir"}"\n'
        '[logging]\nlevel = "INFO"\n\n' + TAXONOMY_TOML,
        encoding="utf-8",
    )
    env = clean_env()
    out = _cli(config, env, "admin", "add", "pemred@example.id", "--role", "admin")
    link = re.search(r"https://news\.example\.id(/admin/set-password/\S+)", out)
    assert link, out
    _cli(config, env, "ingest")
    for address, region in (("ani@example.com", "balikpapan"), ("budi@example.com", "jayapura")):
        _cli(config, env, "subscribers", "add", address, "--region", region)
    process = start(config, env, "run", "--port", "0")
    output: list[str] = []
    try:
        url = wait_for_url(process, output, _LISTENING, timeout=60, what="kabarfeed run")
        yield Service(url, config, process, output), link[1]
    finally:
        stop(process, 20)


def _shoot(page: Any, name: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} scrolls sideways at 1280px"
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}-1280.png"), full_page=True)


def _subscribe_title(url: str) -> str:
    found = re.search(r"<title>([^<]*)</title>", httpx.get(url + "/subscribe", timeout=10).text)
    assert found
    return found[1]


def _get(url: str, path: str) -> str:
    response = httpx.get(url + path, timeout=10)
    return response.text if response.status_code == 200 else ""


def _wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_console_login_export_config_apply_break_and_rollback(
    service: tuple[Service, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    svc, set_password = service
    ARTIFACTS.mkdir(exist_ok=True)
    original = svc.config.read_text(encoding="utf-8")
    with chromium() as browser:
        context = browser.new_context(
            locale="id-ID", viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", lambda d: d.accept())

        # Nothing without a session.
        page.goto(svc.url + "/admin/config")
        expect(page.get_by_role("heading", name="Masuk ke konsol")).to_be_visible()

        page.goto(svc.url + set_password)
        page.get_by_label("Kata sandi baru").fill(PASSWORD)
        page.get_by_label("Ulangi kata sandi").fill(PASSWORD)
        page.get_by_role("button", name="Simpan kata sandi").click()
        expect(page.get_by_text("Kata sandi tersimpan. Silakan masuk.")).to_be_visible()
        _shoot(page, "login")
        page.get_by_label("Alamat email").fill("pemred@example.id")
        page.get_by_label("Kata sandi").fill(PASSWORD)
        page.get_by_role("button", name="Masuk").click()
        expect(page.get_by_role("heading", name="Dasbor")).to_be_visible()
        expect(page.get_by_text("berjalan", exact=False).first).to_be_visible()
        _shoot(page, "dashboard")

        # Subscribers and the CSV export.
        page.get_by_role("link", name="Pelanggan").click()
        expect(page.get_by_role("link", name="ani@example.com")).to_be_visible()
        _shoot(page, "subscribers")
        with page.expect_download() as download:
            page.get_by_role("link", name="Ekspor CSV").click()
        saved = tmp_path / "export.csv"
        download.value.save_as(saved)
        rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert sorted(r[0] for r in rows[1:]) == ["ani@example.com", "budi@example.com"]
        page.get_by_role("link", name="ani@example.com").click()
        expect(page.get_by_role("heading", name="Pelanggan ani@example.com")).to_be_visible()
        _shoot(page, "subscriber")

        # A valid change: check (diff), apply, and the running service uses it.
        assert _subscribe_title(svc.url).endswith("· Nusantara Plus")
        page.get_by_role("link", name="Konfigurasi").click()
        editor = page.locator("#config-text")
        edited = editor.input_value().replace(
            'title = "Nusantara Plus"', 'title = "Nusantara Plus Pagi"'
        )
        editor.fill(edited)
        page.get_by_role("button", name="Periksa dan lihat perbedaan").click()
        expect(page.get_by_text("Konfigurasi valid.")).to_be_visible()
        expect(page.locator("#changes")).to_contain_text("site.title")
        expect(page.locator("#diff")).to_contain_text('+title = "Nusantara Plus Pagi"')
        _shoot(page, "config-check")
        page.get_by_role("button", name="Terapkan").click()
        expect(page.get_by_text("Diterapkan dan dimuat ulang.")).to_be_visible()
        assert _subscribe_title(svc.url).endswith("· Nusantara Plus Pagi")
        on_disk = svc.config.read_text(encoding="utf-8")
        assert "# the console edits this file; comments stay" in on_disk
        _shoot(page, "config-applied")

        # A broken change is refused with its key path and line; nothing is written.
        editor = page.locator("#config-text")
        broken = editor.input_value().replace("items = 50", 'items = "banyak"')
        line = broken.splitlines().index('items = "banyak"') + 1
        editor.fill(broken)
        expect(page.locator("#live")).to_contain_text("feeds.items")  # while typing
        expect(page.locator("#live")).to_contain_text(f"baris {line}")
        page.get_by_role("button", name="Terapkan").click()
        problems = page.locator("#problems")
        expect(problems).to_contain_text("feeds.items")
        expect(problems).to_contain_text(f"baris {line}")
        _shoot(page, "config-broken")
        problems.get_by_role("link").first.click()  # puts the cursor on the line
        assert svc.config.read_text(encoding="utf-8") == on_disk
        assert _subscribe_title(svc.url).endswith("· Nusantara Plus Pagi")

        # Roll back to the file as it was first found.
        page.goto(svc.url + "/admin/config")
        page.locator('[data-rollback="1"]').click()
        expect(page.get_by_text("Dikembalikan ke versi #1.")).to_be_visible()
        _shoot(page, "config-history")
        assert svc.config.read_text(encoding="utf-8") == original
        deadline = time.monotonic() + 10
        while not _subscribe_title(svc.url).endswith("· Nusantara Plus"):
            assert time.monotonic() < deadline, "the rollback was not applied"
            time.sleep(0.1)

        # Correct the article's region; the region feeds follow.
        title = "Jelang Akhir Tahun 2025"
        _wait_for(lambda: title in _get(svc.url, "/feeds/region/balikpapan.rss"), "ingest")
        page.get_by_role("link", name="Artikel", exact=True).click()
        page.get_by_role("link", name=re.compile(title)).click()
        expect(page.locator("#article-regions")).to_contain_text("balikpapan")
        form = page.locator("#correct-form")
        checked = form.locator('input[name="regions"]:checked')
        while checked.count():
            checked.first.uncheck()
        form.get_by_label("Jayapura").check()
        form.get_by_role("button", name="Simpan koreksi").click()
        expect(page.locator("#article-regions")).to_have_text("jayapura")
        _shoot(page, "article-corrected")
        _wait_for(lambda: title in _get(svc.url, "/feeds/region/jayapura.rss"), "the feed")
        assert title not in _get(svc.url, "/feeds/region/balikpapan.rss")

        # Preview a digest as a reader of Jayapura.
        page.goto(svc.url + "/admin/preview?mix=1&regions=jayapura&language=id")
        expect(page.locator("#preview-stats")).to_contain_text("pratinjau@example.invalid")
        expect(page.locator("#preview-subject")).not_to_be_empty()
        _shoot(page, "preview")

        # Unpublish it: gone from every feed.
        page.goto(svc.url + "/admin/articles")
        page.get_by_role("link", name=re.compile(title)).click()
        page.get_by_role("button", name="Tarik artikel").click()
        expect(page.get_by_text("Artikel ditarik.")).to_be_visible()
        _wait_for(lambda: title not in _get(svc.url, "/feeds/all.rss"), "unpublish")

        page.get_by_role("link", name="Log audit").click()
        expect(page.locator("table.audit")).to_contain_text("config.apply")
        expect(page.locator("table.audit")).to_contain_text("subscribers.export")
        expect(page.locator("table.audit")).to_contain_text("article.correct")
        _shoot(page, "audit")
        # Failed loads are expected (the favicon; the refused config's 400);
        # anything else (a CSP refusal, a script error) is not.
        unexpected = [e for e in errors if "Failed to load resource" not in e]
        assert unexpected == [], f"console errors (CSP?): {errors}"
