"""Subscribers: search (everyone), a subscriber's record (everyone), and for
admins unsubscribe, resend the confirmation mail and a streamed CSV export."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from kabarfeed.admin import subscribers as use
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.jobs import Progress
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import NotFoundError
from kabarfeed.models import SubscriberStatus
from kabarfeed.web import signup
from kabarfeed.web.admin.core import PREFIX, Console, Notice, field_of, form_of
from kabarfeed.web.admin.job_pages import launch

log = logging.getLogger(__name__)
BACKGROUND_ROWS = 2000
"""Imports with more valid rows than this run in the background with a progress bar."""


def _query(request: Request, *, limit: int = use.PAGE) -> use.SubscriberQuery:
    q = request.query_params
    status_name = q.get("status", "")
    status = (
        SubscriberStatus(status_name)
        if status_name in {s.value for s in SubscriberStatus}
        else None
    )
    after = q.get("after", "")
    return use.SubscriberQuery(
        address=q.get("address", "").strip()[:320],
        status=status,
        region=q.get("region", "").strip()[:100],
        category=q.get("category", "").strip()[:100],
        after_id=int(after) if after.isdigit() else 0,
        limit=limit,
    )


def _filters(query: use.SubscriberQuery) -> dict[str, str]:
    return {
        "address": query.address,
        "status": query.status.value if query.status else "",
        "region": query.region,
        "category": query.category,
    }


async def list_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/subscribers."""
    query = _query(request)
    found = await run_in_threadpool(use.search, console.db, query)
    filters = {k: v for k, v in _filters(query).items() if v}
    more = ""
    if len(found) == query.limit:
        more = "?" + urlencode({**filters, "after": found[-1].id})
    taxonomy = console.config.taxonomy
    return console.render(
        request,
        "subscribers.html.j2",
        "subscribers_title",
        session=session,
        found=found,
        query=query,
        filters=_filters(query),
        statuses=[s.value for s in SubscriberStatus],
        regions=taxonomy.regions,
        categories=taxonomy.categories,
        more=more,
        export_url=f"{PREFIX}/subscribers/export.csv"
        + ("?" + urlencode(filters) if filters else ""),
    )


async def export_csv(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/subscribers/export.csv: every match, streamed in batches."""
    query = _query(request, limit=use.EXPORT_BATCH)
    rows = await run_in_threadpool(
        use.export_csv,
        console.db,
        query,
        Actor.console(session.account.email),
        now=console.clock(),
    )
    stamp = console.clock().strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


async def subscriber_page(
    console: Console,
    request: Request,
    session: Session,
    *,
    notices: tuple[Notice, ...] = (),
    status: int = 200,
) -> Response:
    """GET /admin/subscribers/{id}: preferences, consent, deliveries, bounces."""
    try:
        found = await run_in_threadpool(use.record, console.db, request.path_params["id"])
    except NotFoundError:
        return console.not_found(request, session)
    done = request.query_params.get("done", "")
    if done in ("unsubscribed_done", "resent_done") and not notices:
        notices = (Notice(console.text(request, done)),)
    sub = found.subscriber
    return console.render(
        request,
        "subscriber.html.j2",
        "subscriber_title",
        title_args={"email": sub.email},
        session=session,
        status=status,
        notices=notices,
        record=found,
        sub=sub,
    )


async def unsubscribe(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/subscribers/{id}/unsubscribe (admins)."""
    sub_id = request.path_params["id"]
    try:
        await run_in_threadpool(
            lambda: use.unsubscribe(
                console.db, sub_id, Actor.console(session.account.email), now=console.clock()
            )
        )
    except NotFoundError:
        return await subscriber_page(console, request, session)
    return RedirectResponse(f"{PREFIX}/subscribers/{sub_id}?done=unsubscribed_done", 303)


async def resend(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/subscribers/{id}/resend: the confirmation mail again, for a
    pending subscriber (the public form's resend interval still applies)."""
    sub_id = request.path_params["id"]
    try:
        found = await run_in_threadpool(use.record, console.db, sub_id)
    except NotFoundError:
        return await subscriber_page(console, request, session)
    now = console.clock()
    result = await run_in_threadpool(
        lambda: signup.resend(
            console.db,
            found.subscriber.token,
            now=now,
            resend_interval=console.config.web.resend_interval,
        )
    )
    if result.mail is None or result.subscriber is None:
        text = console.text(request, "resend_not_pending")
        return await subscriber_page(
            console, request, session, notices=(Notice(text, "error"),), status=409
        )
    mailer = console.mailer()
    prepared = mailer.build(result.subscriber, result.mail, now)
    if not await mailer.send(prepared):
        await run_in_threadpool(
            signup.restore_sent, console.db, result.subscriber.id, result.previous_sent
        )
        text = console.text(request, "resend_failed")
        return await subscriber_page(
            console, request, session, notices=(Notice(text, "error"),), status=502
        )
    await run_in_threadpool(
        lambda: use.note_resend(
            console.db, found.subscriber, Actor.console(session.account.email), now=now
        )
    )
    return RedirectResponse(f"{PREFIX}/subscribers/{sub_id}?done=resent_done", 303)


async def import_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/subscribers/import: the upload form."""
    return console.render(request, "import.html.j2", "import_title", session=session, plan=None)


async def _uploaded_text(request: Request) -> str | None:
    form = form_of(request)
    pasted = form.get("csv")
    if isinstance(pasted, str) and pasted.strip():
        return pasted
    upload = form.get("file")
    if isinstance(upload, UploadFile):
        raw = await upload.read(use.MAX_IMPORT_BYTES + 1)
        if len(raw) > use.MAX_IMPORT_BYTES:
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    return None


async def import_submit(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/subscribers/import: ``step=preview`` shows what each row
    will do (nothing written); ``step=apply`` imports the previewed text."""
    text = await _uploaded_text(request)
    if text is None:
        notice = Notice(console.text(request, "import_unreadable"), "error")
        return console.render(
            request,
            "import.html.j2",
            "import_title",
            session=session,
            plan=None,
            notices=(notice,),
            status=400,
        )
    now = console.clock()
    if field_of(form_of(request), "step") != "apply":
        plan = await run_in_threadpool(use.plan_import, console.db, console.config, text, now=now)
        return console.render(
            request, "import.html.j2", "import_title", session=session, plan=plan, csv_text=text
        )
    actor = Actor.console(session.account.email)
    rows = await run_in_threadpool(lambda: use.count_rows(console.config, text, now=now))
    if rows > BACKGROUND_ROWS:
        config, db = console.config, console.db

        def work(progress: Progress) -> str:
            done = use.run_import(db, config, text, actor, now=now, progress=progress)
            return (
                f"{done.added} added, {done.updated} updated, {done.unchanged} unchanged, "
                f"{len(done.failed)} failed"
            )

        job_id = await run_in_threadpool(launch, console, "subscribers-import", actor.name, work)
        return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)
    report = await run_in_threadpool(
        lambda: use.run_import(console.db, console.config, text, actor, now=now)
    )
    summary = console.text(
        request,
        "import_done",
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        failed=len(report.failed),
    )
    return console.render(
        request,
        "import.html.j2",
        "import_title",
        session=session,
        plan=None,
        notices=(Notice(summary, "error" if report.failed else "ok"),),
        failed=report.failed,
    )
