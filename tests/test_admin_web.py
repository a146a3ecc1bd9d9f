"""The console over real HTTP semantics (Starlette's TestClient) on a real
database: nothing without a session, login and its limits, cookie flags,
CSRF, timeouts, logout everywhere, roles, the dashboard and the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

import admin_support
from admin_support import PASSWORD, add_account, csrf_of
from conftest import ConfigFactory
from kabarfeed.admin import accounts
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor
from kabarfeed.config import Config
from kabarfeed.store import Database
from kabarfeed.web import create_app

CLI = Actor("cli:test", "cli")


class MutableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Console:
    config: Config
    db: Database
    clock: MutableClock
    base: str

    def client(self) -> TestClient:
        app = create_app(self.config, self.db, clock=self.clock)
        return TestClient(app, base_url=self.base, follow_redirects=False)

    def account(self, email: str, role: Role = Role.ADMIN) -> None:
        add_account(self.db, email, role, CLI, now=self.clock())


def _console(
    make_config: ConfigFactory,
    db: Database,
    now: datetime,
    tmp_path: Path,
    admin: str = "",
    base: str = "http://testserver",
) -> Console:
    config = make_config(
        f'[feeds]\noutput = "{tmp_path / "public"}"\n[maildir]\npath = "{tmp_path / "mail"}"\n'
        f"[admin]\n{admin}\n"
    )
    return Console(config, db, MutableClock(now), base)


@pytest.fixture
def console(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> Console:
    c = _console(make_config, db, fixed_now, tmp_path, "login_per_account = 3\nlogin_per_ip = 9")
    c.account("pemred@example.id")
    return c


def log_in(
    client: TestClient, email: str = "pemred@example.id", password: str = PASSWORD
) -> httpx.Response:
    return admin_support.log_in(client, email, password, next="/admin/audit")


def test_nothing_under_admin_without_a_session(console: Console) -> None:
    client = console.client()
    for path in ("/admin", "/admin/", "/admin/audit", "/admin/config", "/admin/no-such-page"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")
    for path in ("/admin/logout", "/admin/logout-all", "/admin/config/apply"):
        assert client.post(path, data={"csrf": "x"}).status_code == 403
    # The public pages are unaffected.
    assert client.get("/subscribe").status_code == 200


def test_login_sets_a_signed_httponly_lax_cookie_and_lands_on_next(console: Console) -> None:
    client = console.client()
    response = log_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/admin/audit"
    cookie = response.headers["set-cookie"]
    assert "kf_admin=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/admin" in cookie and "Secure" not in cookie
    page = client.get("/admin/")
    assert page.status_code == 200 and "pemred@example.id" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    # A tampered signature is no session at all.
    value = client.cookies["kf_admin"]
    client.cookies.set(
        "kf_admin", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/admin"
    )
    assert client.get("/admin/").status_code == 303


def test_cookie_is_secure_over_https(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> None:
    c = _console(make_config, db, fixed_now, tmp_path, base="https://testserver")
    c.account("pemred@example.id")
    response = log_in(c.client())
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_failures_say_the_same_for_unknown_and_wrong_and_are_rate_limited(console: Console) -> None:
    client = console.client()
    wrong = log_in(client, password="not the password")
    unknown = log_in(client, email="siapa@example.id")
    assert wrong.status_code == unknown.status_code == 401
    assert "Email atau kata sandi salah." in wrong.text
    assert wrong.text.replace("pemred@example.id", "X") == unknown.text.replace(
        "siapa@example.id", "X"
    ).replace(csrf_of(unknown.text), csrf_of(wrong.text))
    log_in(client, password="again wrong")
    log_in(client, password="third wrong")
    limited = log_in(client)  # the right password, but the account's window is full
    assert limited.status_code == 429 and "Terlalu banyak percobaan masuk" in limited.text
    assert int(limited.headers["retry-after"]) > 0
    # The same for an address without an account: no enumeration through the limit.
    for _ in range(2):
        log_in(client, email="siapa@example.id")
    assert log_in(client, email="siapa@example.id").status_code == 429
    # Six failures from this client so far; three more fill its window (9),
    # then even an account with fewer than three failures is refused here.
    console.account("editor@example.id", Role.EDITOR)
    for address in ("editor@example.id", "editor@example.id", "lain@example.id"):
        assert log_in(client, email=address, password="wrong").status_code == 401
    assert log_in(client, email="editor@example.id").status_code == 429
    console.clock.now += timedelta(minutes=16)
    assert log_in(client).status_code == 303


def test_login_form_needs_its_csrf_token(console: Console) -> None:
    client = console.client()
    client.get("/admin/login")
    response = client.post(
        "/admin/login", data={"csrf": "0.AAAA", "email": "pemred@example.id", "password": PASSWORD}
    )
    assert response.status_code == 403 and "kf_admin=" not in response.headers.get("set-cookie", "")
    fresh = console.client()  # a token from another browser (another pre-login cookie)
    token = csrf_of(client.get("/admin/login").text)
    fresh.get("/admin/login")
    stolen = fresh.post(
        "/admin/login", data={"csrf": token, "email": "pemred@example.id", "password": PASSWORD}
    )
    assert stolen.status_code == 403


def test_state_changing_posts_need_the_session_csrf_and_same_site(console: Console) -> None:
    client = console.client()
    log_in(client)
    page = client.get("/admin/")
    assert client.post("/admin/logout-all", data={"csrf": "forged"}).status_code == 403
    assert client.post("/admin/logout-all", data={}).status_code == 403
    cross = client.post(
        "/admin/logout-all",
        data={"csrf": csrf_of(page.text)},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    assert client.get("/admin/").status_code == 200  # still logged in


def test_idle_and_absolute_timeouts(console: Console) -> None:
    client = console.client()
    log_in(client)
    console.clock.now += timedelta(minutes=29)
    assert client.get("/admin/").status_code == 200
    console.clock.now += timedelta(minutes=31)
    assert client.get("/admin/").status_code == 303
    log_in(client)
    started = console.clock.now
    while client.get("/admin/").status_code == 200:  # busy every 20 minutes
        console.clock.now += timedelta(minutes=20)
        assert console.clock.now - started <= timedelta(hours=13)
    assert timedelta(hours=12) <= console.clock.now - started < timedelta(hours=12, minutes=20)


def test_logout_and_logout_everywhere(console: Console) -> None:
    phone, laptop = console.client(), console.client()
    log_in(phone)
    log_in(laptop)
    page = phone.get("/admin/")
    out = phone.post("/admin/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/admin/login?done=logout"
    assert phone.get("/admin/").status_code == 303
    assert laptop.get("/admin/").status_code == 200
    log_in(phone)
    page = phone.get("/admin/")
    assert phone.post("/admin/logout-all", data={"csrf": csrf_of(page.text)}).status_code == 303
    assert laptop.get("/admin/").status_code == 303
    assert phone.get("/admin/").status_code == 303
    audit = console.client()
    log_in(audit)
    text = audit.get("/admin/audit?action=account.logout_all").text
    assert "account.logout_all" in text and "sessions_ended: 2" in text


def test_set_password_page_and_invalid_links(console: Console) -> None:
    invite = accounts.add_account(
        console.db, "baru@example.id", Role.EDITOR, CLI, now=console.clock(), ttl=timedelta(days=1)
    )
    client = console.client()
    path = f"/admin/set-password/{invite.token}"
    page = client.get(path)
    assert page.status_code == 200 and "baru@example.id" in page.text
    csrf = csrf_of(page.text)
    differ = client.post(path, data={"csrf": csrf, "password": PASSWORD, "repeat": PASSWORD + "x"})
    assert differ.status_code == 400
    short = client.post(path, data={"csrf": csrf, "password": "pendek", "repeat": "pendek"})
    assert short.status_code == 400
    done = client.post(path, data={"csrf": csrf, "password": PASSWORD, "repeat": PASSWORD})
    assert done.status_code == 303
    again = client.get(path)
    bogus = client.get("/admin/set-password/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert again.status_code == bogus.status_code == 404
    assert again.text.replace(invite.token, "T") == bogus.text.replace("A" * 32, "T")
    assert log_in(client, email="baru@example.id").status_code == 303


def test_editor_cannot_open_admin_pages(console: Console) -> None:
    console.account("editor@example.id", Role.EDITOR)
    client = console.client()
    log_in(client, email="editor@example.id")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/config").status_code == 403
    assert 'href="/admin/config"' not in client.get("/admin/").text


def test_console_switched_off(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> None:
    c = _console(make_config, db, fixed_now, tmp_path, "enabled = false")
    client = c.client()
    assert client.get("/admin/login").status_code == 404
    assert client.get("/admin/").status_code == 404


def test_console_on_its_own_host_only(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> None:
    c = _console(make_config, db, fixed_now, tmp_path, 'host = "admin.example.id"')
    assert c.client().get("/admin/login").status_code == 404
    other = TestClient(create_app(c.config, db, clock=c.clock), base_url="http://admin.example.id")
    assert other.get("/admin/login").status_code == 200


def test_dashboard_and_language(console: Console) -> None:
    client = console.client()
    log_in(client)
    page = client.get("/admin/?lang=en")
    assert page.status_code == 200 and "Editions per zone and send time" in page.text
    assert client.get("/admin/").text.count("Source health") == 1  # remembered
    assert "Edisi per zona" in client.get("/admin/?lang=id").text


def test_accounts_page_invite_role_reset_remove(console: Console) -> None:
    client = console.client()
    log_in(client)
    page = client.get("/admin/accounts")
    assert page.status_code == 200 and "pemred@example.id" in page.text
    csrf = csrf_of(page.text)
    made = client.post(
        "/admin/accounts", data={"csrf": csrf, "email": "baru@example.id", "role": "editor"}
    )
    link = re.search(
        r'<code id="invite-link">https://news\.example\.id(/admin/set-password/[^<]+)</code>',
        made.text,
    )
    assert made.status_code == 200 and link
    dup = client.post(
        "/admin/accounts", data={"csrf": csrf, "email": "baru@example.id", "role": "editor"}
    )
    assert dup.status_code == 400 and "already exists" in dup.text
    other = console.client()
    form = other.get(link[1])
    done = other.post(
        link[1], data={"csrf": csrf_of(form.text), "password": PASSWORD, "repeat": PASSWORD}
    )
    assert done.status_code == 303
    assert log_in(other, email="baru@example.id").status_code == 303
    assert other.get("/admin/accounts").status_code == 403  # an editor
    ids = dict(
        re.findall(
            r'action="/admin/accounts/(\d+)/role".*?aria-label="[^"]* ([^"]+)"',
            client.get("/admin/accounts").text,
            re.S,
        )
    )
    new_id = next(i for i, email in ids.items() if email == "baru@example.id")
    promoted = client.post(f"/admin/accounts/{new_id}/role", data={"csrf": csrf, "role": "admin"})
    assert promoted.status_code == 303
    assert other.get("/admin/accounts").status_code == 200  # the session has the new rights
    reset = client.post(f"/admin/accounts/{new_id}/reset", data={"csrf": csrf})
    assert reset.status_code == 200 and "invite-link" in reset.text
    assert other.get("/admin/").status_code == 303  # its sessions ended
    own_id = re.search(r'action="/admin/accounts/(\d+)/reset"', page.text)[1]  # type: ignore[index]
    assert client.post(f"/admin/accounts/{own_id}/remove", data={"csrf": csrf}).status_code == 409
    assert client.post(f"/admin/accounts/{new_id}/remove", data={"csrf": csrf}).status_code == 303
    assert "baru@example.id" not in client.get("/admin/accounts").text
    actions = [e.action for e in audit_entries(console)]
    assert actions[:4] == ["account.remove", "account.reset", "account.role", "account.password"]


def audit_entries(console: Console) -> list[Any]:
    from kabarfeed.admin.audit import AuditFilter, search

    return search(console.db, AuditFilter())


def test_dashboard_counts_live_workers_only(console: Console) -> None:
    from kabarfeed.store.state import WORKER_HEARTBEAT_PREFIX, write_state

    now = console.clock()
    with console.db.begin() as conn:
        for name, beat in (("a", now), ("b", now - timedelta(hours=2))):
            row = {
                "pid": 1,
                "host": name,
                "started": (now - timedelta(hours=3)).isoformat(),
                "beat": beat.isoformat(),
                "interval": 15,
            }
            write_state(conn, WORKER_HEARTBEAT_PREFIX + name, row, now)
    client = console.client()
    log_in(client)
    assert "Worker: 1</p>" in client.get("/admin/").text


def test_a_login_sweeps_sessions_past_their_timeouts(console: Console) -> None:
    from sqlalchemy import func, select

    from kabarfeed.admin.tables import admin_sessions

    old = console.client()
    log_in(old)
    console.clock.now += timedelta(hours=1)  # past the idle timeout, never used again
    log_in(console.client())
    with console.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(admin_sessions)).scalar() == 1
