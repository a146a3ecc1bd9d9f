"""The dashboard and the audit log view."""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kabarfeed.admin import audit
from kabarfeed.admin.dashboard import dashboard
from kabarfeed.admin.sessions import Session
from kabarfeed.scheduler import human_duration
from kabarfeed.web.admin.core import Console


async def dashboard_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/: editions, sources, subscribers, feeds, processes."""
    now = console.clock()
    board = await run_in_threadpool(dashboard, console.config, console.db, now)
    built = board.status.feeds_built_at
    return console.render(
        request,
        "dashboard.html.j2",
        "dashboard_title",
        session=session,
        board=board,
        report=board.status,
        now=now,
        feeds_age=human_duration(now - built) if built else "",
        max_per_day=max((max(s.counts) for s in board.source_days), default=0),
        max_growth=max(
            (max(g.signed_up, g.confirmed, g.unsubscribed) for g in board.growth), default=0
        ),
    )


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


async def audit_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/audit: newest first, filtered by actor, action, target and dates."""
    q = request.query_params
    wanted = audit.AuditFilter(
        actor=q.get("actor", "").strip(),
        action=q.get("action", "").strip(),
        target=q.get("target", "").strip(),
        since=_day(q.get("since", "")),
        until=_day(q.get("until", "")),
        before_id=_int(q.get("before", "")),
        limit=50,
    )
    entries = await run_in_threadpool(audit.search, console.db, wanted)
    actions = await run_in_threadpool(audit.known_actions, console.db)
    more = ""
    if len(entries) == wanted.limit:
        params = {k: v for k, v in q.items() if k not in ("before", "lang")}
        more = "?" + urlencode({**params, "before": entries[-1].id})
    return console.render(
        request,
        "audit.html.j2",
        "audit_title",
        session=session,
        entries=entries,
        actions=actions,
        wanted=wanted,
        more=more,
        show=_show,
    )


def _show(value: object) -> str:
    """A before/after value as short text."""
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_show(v) for v in value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)
