"""The audit log: who changed what, when, through which door, before → after."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from kabarfeed.admin.tables import admin_audit
from kabarfeed.store import Database


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: an account's email (console) or ``cli:<user>``."""

    name: str
    via: str

    @classmethod
    def console(cls, email: str) -> Actor:
        """A logged-in console account."""
        return cls(email, "console")

    @classmethod
    def cli(cls) -> Actor:
        """The operating-system user running ``kabarfeed``."""
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
        return cls(f"cli:{user}", "cli")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: datetime
    actor: str
    via: str
    action: str
    target: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the audit log view asks for; empty fields do not filter."""

    actor: str = ""
    action: str = ""
    target: str = ""
    since: date | None = None
    until: date | None = None
    before_id: int | None = None
    limit: int = 50


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    target: str,
    *,
    before: Any = None,
    after: Any = None,
    now: datetime,
) -> None:
    """Append one entry, inside the caller's transaction (so the change and
    its record commit or fail together)."""
    conn.execute(
        insert(admin_audit).values(
            at=now,
            actor=actor.name,
            via=actor.via,
            action=action,
            target=target,
            before=_dump(before),
            after=_dump(after),
        )
    )


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _load(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def search(db: Database, wanted: AuditFilter) -> list[AuditEntry]:
    """Entries matching ``wanted``, newest first (``before_id`` pages on)."""
    a = admin_audit.c
    query = select(admin_audit).order_by(a.id.desc()).limit(max(1, min(wanted.limit, 500)))
    if wanted.actor:
        query = query.where(a.actor.contains(wanted.actor, autoescape=True))
    if wanted.action:
        query = query.where(a.action == wanted.action)
    if wanted.target:
        query = query.where(a.target.contains(wanted.target, autoescape=True))
    if wanted.since:
        query = query.where(a.at >= datetime.combine(wanted.since, time(), UTC))
    if wanted.until:
        query = query.where(a.at < datetime.combine(wanted.until + timedelta(days=1), time(), UTC))
    if wanted.before_id:
        query = query.where(a.id < wanted.before_id)
    with db.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        AuditEntry(
            r["id"],
            r["at"],
            r["actor"],
            r["via"],
            r["action"],
            r["target"],
            _load(r["before"]),
            _load(r["after"]),
        )
        for r in rows
    ]


def known_actions(db: Database) -> list[str]:
    """Every action name in the log (for the filter's choices)."""
    with db.connect() as conn:
        return sorted(conn.execute(select(admin_audit.c.action).distinct()).scalars())
