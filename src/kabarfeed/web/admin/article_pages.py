"""Articles: the filterable list, an article's page (its feeds, editions and
correction), corrections of the classification, unpublish and republish.
Editors and admins alike; every change is audited and asks for a prompt
feed build when the service runs."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kabarfeed.admin import articles as use
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.web.admin.core import PREFIX, Console, Notice, field_of, form_of


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _query(request: Request) -> use.ArticleQuery:
    q = request.query_params
    flag = q.get("advertorial", "")
    page = q.get("page", "")
    return use.ArticleQuery(
        text=q.get("q", "").strip()[:200],
        source=q.get("source", "").strip()[:100],
        region=q.get("region", "").strip()[:100],
        category=q.get("category", "").strip()[:100],
        advertorial={"yes": True, "no": False}.get(flag),
        since=_day(q.get("since", "")),
        until=_day(q.get("until", "")),
        page=int(page) if page.isdigit() else 0,
    )


async def list_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/articles."""
    query = _query(request)
    found = await run_in_threadpool(use.search, console.db, query)
    names = await run_in_threadpool(use.sources, console.db)
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "lang") and v}
    more = ""
    if len(found) == use.PAGE:
        more = "?" + urlencode({**params, "page": query.page + 1})
    taxonomy = console.config.taxonomy
    return console.render(
        request,
        "articles.html.j2",
        "articles_title",
        session=session,
        found=found,
        query=query,
        params=params,
        sources=names,
        regions=taxonomy.regions,
        categories=taxonomy.categories,
        more=more,
    )


async def article_page(
    console: Console,
    request: Request,
    session: Session,
    *,
    notices: tuple[Notice, ...] = (),
    status: int = 200,
) -> Response:
    """GET /admin/articles/{id}."""
    article_id = request.path_params["id"]
    try:
        found = await run_in_threadpool(use.record, console.db, article_id)
    except NotFoundError:
        return console.not_found(request, session, "article_gone")
    done = request.query_params.get("done", "")
    if done in ("corrected", "correction_cleared") and not notices:
        notices = (Notice(console.text(request, done)),)
    queued = request.query_params.get("n", "")
    if done == "breaking" and queued.isdigit() and not notices:
        notices = (Notice(console.text(request, "breaking_queued", n=int(queued))),)
    taxonomy = console.config.taxonomy
    return console.render(
        request,
        "article.html.j2",
        "article_title",
        session=session,
        status=status,
        notices=notices,
        record=found,
        article=found.article,
        regions=taxonomy.regions,
        categories=taxonomy.categories,
    )


def _prompt_build(request: Request) -> None:
    """Ask the running service for a prompt feed build (as a push does)."""
    on_push = getattr(request.app.state, "on_push", None)
    if on_push is not None:
        on_push()


async def correct(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/articles/{id}/correct (or /clear): set or drop a correction."""
    article_id = request.path_params["id"]
    actor = Actor.console(session.account.email)
    now = console.clock()
    if request.url.path.endswith("/clear"):
        await run_in_threadpool(
            lambda: use.clear_correction(console.db, article_id, actor, now=now)
        )
        _prompt_build(request)
        return RedirectResponse(
            f"{PREFIX}/articles/{article_id}?done=correction_cleared", status_code=303
        )
    form = form_of(request)
    flag = field_of(form, "advertorial")
    try:
        await run_in_threadpool(
            lambda: use.correct(
                console.db,
                console.config,
                article_id,
                actor,
                regions=tuple(v for v in form.getlist("regions") if isinstance(v, str)),
                categories=tuple(v for v in form.getlist("categories") if isinstance(v, str)),
                advertorial={"yes": True, "no": False}.get(flag),
                now=now,
            )
        )
    except InputError as e:
        return await article_page(
            console, request, session, notices=(Notice(e.message, "error"),), status=400
        )
    except NotFoundError:
        return await article_page(console, request, session)
    _prompt_build(request)
    return RedirectResponse(f"{PREFIX}/articles/{article_id}?done=corrected", status_code=303)


async def unpublish(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/articles/{id}/unpublish."""
    article_id = request.path_params["id"]
    actor = Actor.console(session.account.email)
    done = await run_in_threadpool(
        lambda: use.unpublish(console.db, article_id, actor, now=console.clock())
    )
    if not done:
        return await article_page(console, request, session)
    _prompt_build(request)
    return RedirectResponse(f"{PREFIX}/articles/unpublished?done=unpublished", status_code=303)


async def breaking(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/articles/{id}/breaking: send the article's breaking alerts."""
    article_id = request.path_params["id"]
    actor = Actor.console(session.account.email)
    queued = await run_in_threadpool(
        lambda: use.send_breaking(
            console.config, console.db, article_id, actor, now=console.clock()
        )
    )
    if queued is None:
        return await article_page(console, request, session)
    return RedirectResponse(
        f"{PREFIX}/articles/{article_id}?done=breaking&n={queued}", status_code=303
    )


async def unpublished_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/articles/unpublished: what was taken down, with republish."""
    gone = await run_in_threadpool(use.unpublished, console.db)
    done = request.query_params.get("done", "")
    notices = (
        (Notice(console.text(request, done)),) if done in ("unpublished", "republished") else ()
    )
    return console.render(
        request,
        "unpublished.html.j2",
        "unpublished_title",
        session=session,
        notices=notices,
        gone=gone,
    )


async def republish(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/articles/{id}/republish: back at the source's next fetch."""
    article_id = request.path_params["id"]
    actor = Actor.console(session.account.email)
    await run_in_threadpool(
        lambda: use.republish(console.db, article_id, actor, now=console.clock())
    )
    return RedirectResponse(f"{PREFIX}/articles/unpublished?done=republished", status_code=303)
