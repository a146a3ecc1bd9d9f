"""Shared helpers of the console tests: accounts with a known password, the
CSRF token of a page and logging a TestClient in."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
from starlette.testclient import TestClient

from kabarfeed.admin import accounts
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor
from kabarfeed.store import Database

PASSWORD = "kopi-tubruk-pagi"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of a console form in ``html``."""
    found = _CSRF.search(html)
    assert found, html
    return found[1]


def add_account(db: Database, email: str, role: Role, actor: Actor, *, now: datetime) -> None:
    """A console account for ``email`` whose password is :data:`PASSWORD`."""
    invite = accounts.add_account(db, email, role, actor, now=now, ttl=timedelta(days=1))
    assert accounts.set_password(db, invite.token, PASSWORD, now=now)


def log_in(
    client: TestClient, email: str, password: str = PASSWORD, **fields: str
) -> httpx.Response:
    """Post the login form (with its CSRF token and any other ``fields``)."""
    page = client.get("/admin/login")
    assert page.status_code == 200
    return client.post(
        "/admin/login",
        data={"csrf": csrf_of(page.text), "email": email, "password": password, **fields},
    )
