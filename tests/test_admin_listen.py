"""``[admin] listen``: the console on its own listener only. In process (the
port check) and against a real ``kabarfeed run`` with two sockets."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from conftest import SITE_TOML, TAXONOMY_TOML, ConfigFactory
from kabarfeed.store import Database
from kabarfeed.web import create_app
from service_support import clean_env, follow_log, start, stop


def test_console_answers_only_on_its_own_port(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> None:
    config = make_config(
        f'[feeds]\noutput = "{tmp_path / "public"}"\n[admin]\nlisten = "127.0.0.1:0"\n'
    )
    app = create_app(config, db, clock=lambda: fixed_now)
    client = TestClient(app, follow_redirects=False)  # requests arrive on port 80
    assert client.get("/admin/login").status_code == 404  # no console listener at all
    app.state.admin_port = 8081
    assert client.get("/admin/login").status_code == 404
    assert client.get("/admin/").status_code == 404
    app.state.admin_port = 80
    assert client.get("/admin/login").status_code == 200
    assert client.get("/subscribe").status_code == 200


def test_run_binds_a_second_listener_for_the_console(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        SITE_TOML + f'[storage]\nurl = "sqlite:///{tmp_path / "k.db"}"\n'
        f'[feeds]\noutput = "{tmp_path / "public"}"\n'
        f'[maildir]\npath = "{tmp_path / "maildir"}"\n'
        '[admin]\nlisten = "127.0.0.1:0"\n[logging]\nlevel = "INFO"\n\n' + TAXONOMY_TOML,
        encoding="utf-8",
    )
    process = start(config, clean_env(), "run", "--port", "0")
    lines: list[str] = []
    follow_log(process, lines)
    try:
        deadline = time.monotonic() + 60
        main = console = None
        while time.monotonic() < deadline and not (main and console):
            text = "".join(lines)
            main = re.search(r"(?<!console )listening on (http://127\.0\.0\.1:\d+)", text)
            console = re.search(r"console listening on (http://127\.0\.0\.1:\d+)/admin", text)
            time.sleep(0.1)
        assert main and console, "".join(lines)
        assert main[1] != console[1]
        assert httpx.get(main[1] + "/admin/login", timeout=10).status_code == 404
        assert httpx.get(main[1] + "/subscribe", timeout=10).status_code == 200
        assert httpx.get(console[1] + "/admin/login", timeout=10).status_code == 200
    finally:
        stop(process, 20)
