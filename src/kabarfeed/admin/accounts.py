"""Console accounts: invite (one-time set-password link), list, remove, reset,
set a password. Every change is written to the audit log in its transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from kabarfeed.admin import audit
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.passwords import check_policy, hash_password
from kabarfeed.admin.tables import admin_accounts, admin_sessions
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.store import Database
from kabarfeed.subscribers import email_key, normalize_email

SET_PASSWORD_PATH = "/admin/set-password/"  # noqa: S105 - a URL path


class Role(StrEnum):
    """*editor*: articles, digest preview, subscribers read-only; *admin*: everything."""

    ADMIN = "admin"
    EDITOR = "editor"

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role named ``value``; :class:`InputError` otherwise."""
        try:
            return cls(value.strip().lower())
        except ValueError as e:
            raise InputError(f'"{value}" is not a role (admin or editor)') from e


@dataclass(frozen=True, slots=True)
class Account:
    """One console account (never its hash or tokens)."""

    id: int
    email: str
    role: Role
    has_password: bool
    invite_expires_at: datetime | None
    generation: int
    created_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        """Whether the account may change configuration, subscribers and accounts."""
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Invite:
    """A one-time set-password link for ``account``, valid until ``expires``."""

    account: Account
    token: str
    expires: datetime

    def url(self, base_url: str) -> str:
        """The link to print or send: ``<base>/admin/set-password/<token>``."""
        return f"{base_url.rstrip('/')}{SET_PASSWORD_PATH}{self.token}"


def token_hash(token: str) -> str:
    """How a token (invite or session) is stored: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _account(row: Any) -> Account:
    return Account(
        id=row["id"],
        email=row["email"],
        role=Role(row["role"]),
        has_password=row["password_hash"] is not None,
        invite_expires_at=row["invite_expires_at"],
        generation=row["generation"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


def _summary(account: Account) -> dict[str, Any]:
    return {"email": account.email, "role": account.role.value}


def find_row(conn: Connection, email: str) -> Any:
    """The account row (with its hash) for an address, or ``None``. Never raises
    on a malformed address: login must answer the same for every input."""
    try:
        key = email_key(normalize_email(email))
    except InputError:
        return None
    return (
        conn.execute(select(admin_accounts).where(admin_accounts.c.email_key == key))
        .mappings()
        .first()
    )


def get_account(db: Database, account_id: int) -> Account | None:
    """The account with ``account_id``, or ``None``."""
    with db.connect() as conn:
        row = (
            conn.execute(select(admin_accounts).where(admin_accounts.c.id == account_id))
            .mappings()
            .first()
        )
    return _account(row) if row else None


def list_accounts(db: Database) -> list[Account]:
    """Every account, by email."""
    with db.connect() as conn:
        rows = conn.execute(select(admin_accounts).order_by(admin_accounts.c.email_key)).mappings()
        return [_account(r) for r in rows]


def _new_invite(now: datetime, ttl: timedelta) -> tuple[str, dict[str, Any]]:
    token = secrets.token_urlsafe(32)
    return token, {"invite_hash": token_hash(token), "invite_expires_at": now + ttl}


def add_account(
    db: Database, email: str, role: Role, actor: Actor, *, now: datetime, ttl: timedelta
) -> Invite:
    """Create an account without a password and return its set-password link."""
    address = normalize_email(email)
    token, invite = _new_invite(now, ttl)
    with db.begin() as conn:
        if find_row(conn, address) is not None:
            raise InputError(f"an account for {address} already exists", hint="use `admin reset`")
        inserted = conn.execute(
            insert(admin_accounts).values(
                email=address,
                email_key=email_key(address),
                role=role.value,
                generation=1,
                created_at=now,
                **invite,
            )
        ).inserted_primary_key
        new_id = inserted[0] if inserted else None
        row = (
            conn.execute(select(admin_accounts).where(admin_accounts.c.id == new_id))
            .mappings()
            .one()
        )
        account = _account(row)
        audit.record(conn, actor, "account.add", address, after=_summary(account), now=now)
    return Invite(account, token, invite["invite_expires_at"])


def _existing(conn: Connection, email: str) -> Any:
    row = find_row(conn, email)
    if row is None:
        raise NotFoundError(f"no console account for {email.strip()}")
    return row


def remove_account(db: Database, email: str, actor: Actor, *, now: datetime) -> Account:
    """Delete an account (its sessions end with it)."""
    with db.begin() as conn:
        row = _existing(conn, email)
        account = _account(row)
        conn.execute(delete(admin_sessions).where(admin_sessions.c.account_id == account.id))
        conn.execute(delete(admin_accounts).where(admin_accounts.c.id == account.id))
        audit.record(
            conn, actor, "account.remove", account.email, before=_summary(account), now=now
        )
    return account


def reset_account(
    db: Database, email: str, actor: Actor, *, now: datetime, ttl: timedelta
) -> Invite:
    """Clear the password, end every session and return a fresh set-password link."""
    token, invite = _new_invite(now, ttl)
    with db.begin() as conn:
        row = _existing(conn, email)
        conn.execute(
            update(admin_accounts)
            .where(admin_accounts.c.id == row["id"])
            .values(password_hash=None, generation=row["generation"] + 1, **invite)
        )
        conn.execute(delete(admin_sessions).where(admin_sessions.c.account_id == row["id"]))
        account = _account({**row, "password_hash": None, "generation": row["generation"] + 1})
        audit.record(
            conn,
            actor,
            "account.reset",
            account.email,
            before={"password": "set" if row["password_hash"] else "unset"},
            after={"password": "unset", "sessions": "ended"},
            now=now,
        )
    return Invite(account, token, invite["invite_expires_at"])


def set_role(db: Database, email: str, role: Role, actor: Actor, *, now: datetime) -> Account:
    """Change an account's role (its sessions continue with the new rights)."""
    with db.begin() as conn:
        row = _existing(conn, email)
        conn.execute(
            update(admin_accounts).where(admin_accounts.c.id == row["id"]).values(role=role.value)
        )
        audit.record(
            conn, actor, "account.role", row["email"], before=row["role"], after=role.value, now=now
        )
    return _account({**row, "role": role.value})


def invite_account(db: Database, token: str, now: datetime) -> Account | None:
    """The account a valid, unexpired set-password token belongs to, else ``None``."""
    if not token or len(token) > 100:
        return None
    with db.connect() as conn:
        row = _live_invite(conn, token, now)
    return None if row is None else _account(row)


def _live_invite(conn: Connection, token: str, now: datetime) -> Any:
    """The account row whose set-password token is ``token`` and not expired, else ``None``."""
    row = (
        conn.execute(
            select(admin_accounts).where(admin_accounts.c.invite_hash == token_hash(token))
        )
        .mappings()
        .first()
    )
    if row is None or row["invite_expires_at"] is None or now >= row["invite_expires_at"]:
        return None
    return row


def set_password(db: Database, token: str, password: str, *, now: datetime) -> Account | None:
    """Use a set-password token once: store the argon2 hash, end other
    sessions. ``None`` when the token is unknown, used or expired (one answer
    for all three); :class:`InputError` when the password breaks the policy."""
    check_policy(password)
    hashed = hash_password(password)
    with db.begin() as conn:
        row = _live_invite(conn, token, now)
        if row is None:
            return None
        generation = row["generation"] + 1
        conn.execute(
            update(admin_accounts)
            .where(
                admin_accounts.c.id == row["id"], admin_accounts.c.invite_hash == row["invite_hash"]
            )
            .values(
                password_hash=hashed,
                password_set_at=now,
                invite_hash=None,
                invite_expires_at=None,
                generation=generation,
            )
        )
        conn.execute(delete(admin_sessions).where(admin_sessions.c.account_id == row["id"]))
        audit.record(
            conn,
            Actor.console(row["email"]),
            "account.password",
            row["email"],
            after={"password": "set"},
            now=now,
        )
    return _account({**row, "password_hash": hashed, "generation": generation})
