"""Editions (counts by state, failures with their SMTP reply, retry) and the
digest preview (a subscriber's next edition, or a region/category mix)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kabarfeed.admin import editions, preview
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import DeliveryError, InputError, NotFoundError
from kabarfeed.models import DeliveryState, Subscriber
from kabarfeed.store import deliveries as delivery_store
from kabarfeed.web.admin.core import PREFIX, Console, Notice, field_of, form_of
from kabarfeed.web.security import DIGEST_CSP

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FRAME_CSP = DIGEST_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")


def _date(value: str) -> str | None:
    return value if _DATE.match(value) else None


async def editions_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/editions[?date=YYYY-MM-DD]."""
    local_date = _date(request.query_params.get("date", ""))
    view = await run_in_threadpool(editions.editions_view, console.db, local_date)
    notices: tuple[Notice, ...] = ()
    retried = request.query_params.get("retried", "")
    if retried.isdigit():
        notices = (Notice(console.text(request, "retried", count=retried)),)
    elif request.query_params.get("done") in ("paused", "resumed"):
        notices = (Notice(console.text(request, "sending_" + request.query_params["done"])),)
    return console.render(
        request,
        "editions.html.j2",
        "editions_title",
        session=session,
        notices=notices,
        view=view,
        states=[s.value for s in DeliveryState],
        retryable=[s.value for s in delivery_store.RETRYABLE],
    )


async def editions_retry(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/editions/retry (admins): re-queue failed/deferred/unknown rows."""
    form = form_of(request)
    state_name = field_of(form, "state") or "failed"
    if state_name not in {s.value for s in delivery_store.RETRYABLE}:
        return console.forbidden(request, session, "forbidden_text")
    local_date = _date(field_of(form, "date"))
    count = await run_in_threadpool(
        lambda: editions.retry(
            console.db,
            Actor.console(session.account.email),
            state=DeliveryState(state_name),
            local_date=local_date,
            now=console.clock(),
        )
    )
    query = {"retried": str(count), **({"date": local_date} if local_date else {})}
    return RedirectResponse(f"{PREFIX}/editions?{urlencode(query)}", status_code=303)


async def editions_pause(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/editions/pause or /resume (admins): hold or release every sender."""
    actor = Actor.console(session.account.email)
    now = console.clock()
    if request.url.path.endswith("/resume"):
        await run_in_threadpool(lambda: editions.resume_sending(console.db, actor, now=now))
        done = "resumed"
    else:
        reason = field_of(form_of(request), "reason")[:200]
        await run_in_threadpool(
            lambda: editions.pause_sending(console.db, actor, reason=reason, now=now)
        )
        done = "paused"
    return RedirectResponse(f"{PREFIX}/editions?done={done}", status_code=303)


async def _reader(console: Console, q: QueryParams) -> Subscriber | None:
    """The preview's reader: ``?subscriber=<id>``, else the region/category mix."""
    sub_id = q.get("subscriber", "")
    if sub_id.isdigit():
        return await run_in_threadpool(
            preview.for_subscriber, console.db, console.config, int(sub_id)
        )
    if "mix" not in q:
        return None
    return preview.for_mix(
        console.config,
        tuple(q.getlist("regions")),
        tuple(q.getlist("categories")),
        q.get("language", ""),
        console.clock(),
    )


async def preview_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/preview: choose a reader; see subject, HTML (framed) and text."""
    rendered = None
    notices: tuple[Notice, ...] = ()
    status = 200
    try:
        reader = await _reader(console, request.query_params)
        if reader is not None:
            now = console.clock()
            rendered = await run_in_threadpool(
                lambda: preview.render(console.db, console.config, reader, now=now)
            )
    except (NotFoundError, InputError) as e:
        notices, status = (
            (Notice(e.message, "error"),),
            404 if isinstance(e, NotFoundError) else 400,
        )
    q = request.query_params
    frame_query = urlencode([(k, v) for k, v in q.multi_items() if k not in ("lang", "done")])
    done = q.get("done", "")
    if done in ("test_sent", "test_failed") and not notices:
        text = console.text(request, done, email=session.account.email)
        notices = (Notice(text, "ok" if done == "test_sent" else "error"),)
    return console.render(
        request,
        "preview.html.j2",
        "preview_title",
        session=session,
        status=status,
        notices=notices,
        rendered=rendered,
        frame_url=f"{PREFIX}/preview/frame?{frame_query}",
        reader_query=frame_query,
        regions=console.config.taxonomy.regions,
        categories=console.config.taxonomy.categories,
        chosen_regions=q.getlist("regions"),
        chosen_categories=q.getlist("categories"),
        subscriber_id=q.get("subscriber", ""),
        language=q.get("language", ""),
    )


async def preview_frame(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/preview/frame: the edition's HTML alone, for the page's iframe
    (the email's own policy: inline CSS, remote images, no script)."""
    try:
        reader = await _reader(console, request.query_params)
    except (NotFoundError, InputError):
        reader = None
    if reader is None:
        return HTMLResponse("", status_code=404)
    now = console.clock()
    rendered = await run_in_threadpool(
        lambda: preview.render(console.db, console.config, reader, now=now)
    )
    return HTMLResponse(
        rendered.html,
        headers={
            "Content-Security-Policy": FRAME_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


async def preview_send(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/preview/send: the previewed edition to the logged-in account."""
    form = form_of(request)
    query = field_of(form, "query")
    try:
        reader = await _reader(console, QueryParams(query))
    except (NotFoundError, InputError):
        reader = None
    if reader is None:
        return RedirectResponse(f"{PREFIX}/preview", status_code=303)
    try:
        to, now = session.account.email, console.clock()
        data = await run_in_threadpool(
            lambda: preview.test_message(console.db, console.config, reader, to, now=now)
        )
        await preview.send_test(console.config, to, data)
        done = "test_sent"
    except (DeliveryError, OSError):
        done = "test_failed"
    await run_in_threadpool(lambda: audit_test(console, session, reader.email, done == "test_sent"))
    return RedirectResponse(f"{PREFIX}/preview?{query}&done={done}", status_code=303)


def audit_test(console: Console, session: Session, reader: str, sent: bool) -> None:
    """Record a test send (who asked, as which reader, whether it left)."""
    from kabarfeed.admin.audit import record

    with console.db.begin() as conn:
        record(
            conn,
            Actor.console(session.account.email),
            "digest.send_test",
            reader,
            after={"to": session.account.email, "sent": sent},
            now=console.clock(),
        )
