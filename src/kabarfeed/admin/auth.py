"""Logging in: rate limits per client address and per account, argon2
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


class LoginLimits(Protocol):
    """Attempt counters shared by every process (see :mod:`kabarfeed.web.limits`)."""

    def per_ip(self, ip: str, now: datetime) -> int:
        """Count an attempt from ``ip``; 0 when allowed, else seconds to wait."""

    def per_account(self, key: str, now: datetime) -> int:
        """Count an attempt on the account key ``key``; 0 or seconds to wait."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``account`` on success; ``retry_after`` > 0 when refused by a rate limit."""

    account: Account | None
    retry_after: int = 0


def login(
    db: Database, limits: LoginLimits, email: str, password: str, *, ip: str, now: datetime
) -> LoginResult:
    """Check ``email``/``password``. Attempts count against both limits whether
    or not the account exists, and an unknown address costs the same argon2
    verification as a wrong password, so neither the message nor the time
    says which addresses have accounts."""
    wait = limits.per_ip(ip, now)
    if wait:
        return LoginResult(None, wait)
    wait = limits.per_account(email_key(email.strip()), now)
    if wait:
        return LoginResult(None, wait)
    with db.connect() as conn:
        row = find_row(conn, email)
    stored = row["password_hash"] if row is not None else None
    if not verify_password(stored, password) or row is None:
        return LoginResult(None)
    if stored and needs_rehash(stored):
        with db.begin() as conn:
            conn.execute(
                update(admin_accounts)
                .where(admin_accounts.c.id == row["id"])
                .values(password_hash=hash_password(password))
            )
    return LoginResult(_account(row))
