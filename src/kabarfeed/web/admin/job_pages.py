"""Background jobs: start one in a worker thread, and its page (a progress
bar that refreshes itself while the job runs, then the summary)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kabarfeed.admin import jobs
from kabarfeed.admin.audit import Actor, record
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import KabarfeedError
from kabarfeed.web.admin.core import PREFIX, Console

log = logging.getLogger(__name__)

Work = Callable[[jobs.Progress], str]
"""A job's body: reports progress, returns its one-line summary."""


def launch(console: Console, kind: str, actor: str, work: Work) -> str:
    """Start ``work`` in a daemon thread; returns the job id to show."""
    job_id = jobs.start(console.db, kind, actor, now=console.clock())
    report = jobs.progress(console.db, job_id, console.clock)

    def run() -> None:
        try:
            summary = work(report)
        except (KabarfeedError, OSError) as e:
            log.error("console job %s (%s) failed: %s", job_id, kind, e)
            jobs.finish(console.db, job_id, ok=False, summary=str(e), now=console.clock())
            return
        jobs.finish(console.db, job_id, ok=True, summary=summary, now=console.clock())

    threading.Thread(target=run, name=f"admin-job-{kind}", daemon=True).start()
    return job_id


async def job_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/jobs/{id}: progress, refreshing itself every second while running."""
    job = await run_in_threadpool(jobs.get, console.db, request.path_params["id"])
    if job is None:
        return console.not_found(request, session)
    return console.render(
        request,
        "job.html.j2",
        "job_title",
        session=session,
        job=job,
        state=job.state(console.clock()),
    )


async def rebuild_feeds(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/jobs/rebuild-feeds (admins): every feed rendered again."""
    from kabarfeed.feeds import cluster

    config, db, clock = console.config, console.db, console.clock
    actor = Actor.console(session.account.email)

    def work(progress: jobs.Progress) -> str:
        progress(0, 0)
        summary = str(cluster.build(config, db, clock, full=True).summary())
        with db.begin() as conn:
            record(conn, actor, "feeds.rebuild", "all feeds", after=summary, now=clock())
        return summary

    job_id = await run_in_threadpool(launch, console, "rebuild-feeds", actor.name, work)
    return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)
