"""Logging in: failure limits per client address and per account, argon2
verification, one answer for every failure (no user enumeration)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import update

from kabarfeed.admin.accounts import Account, _account, find_row
from kabarfeed.admin.passwords import hash_password, needs_rehash, verify_password
from kabarfeed.admin.tables import admin_accounts
from kabarfeed.store import Database
from kabarfeed.subscribers import email_key


class Window(Protocol):
    """A failure window (see :class:`kabarfeed.admin.throttle.FailureWindow`)."""

    def wait(self, key: str, now: datetime) -> int:
        """0 when allowed, else the seconds to wait."""

    def fail(self, key: str, now: datetime) -> None:
        """Record a failure."""

    def clear(self, key: str) -> None:
        """Forget the failures."""


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """The two windows and how keys are made (keyed digests, never clear text)."""

    per_ip: Window
    per_account: Window
    ip_key: str
    account_key: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``account`` on success; ``retry_after`` > 0 when refused by a limit."""

    account: Account | None
    retry_after: int = 0


def account_key(email: str) -> str:
    """The per-account limit's key for whatever address was typed."""
    return email_key(email.strip())


def login(
    db: Database, limits: LoginLimits, email: str, password: str, *, now: datetime
) -> LoginResult:
    """Check ``email``/``password``. Failures count against both windows
    whether or not the account exists, and an unknown address costs the same
    argon2 verification as a wrong password, so neither the answer, the
    limit nor the time says which addresses have accounts."""
    wait = max(
        limits.per_ip.wait(limits.ip_key, now), limits.per_account.wait(limits.account_key, now)
    )
    if wait:
        return LoginResult(None, wait)
    with db.connect() as conn:
        row = find_row(conn, email)
    stored = row["password_hash"] if row is not None else None
    if not verify_password(stored, password) or row is None:
        limits.per_ip.fail(limits.ip_key, now)
        limits.per_account.fail(limits.account_key, now)
        return LoginResult(None)
    limits.per_account.clear(limits.account_key)
    if stored and needs_rehash(stored):
        with db.begin() as conn:
            conn.execute(
                update(admin_accounts)
                .where(admin_accounts.c.id == row["id"])
                .values(password_hash=hash_password(password))
            )
    return LoginResult(_account(row))
