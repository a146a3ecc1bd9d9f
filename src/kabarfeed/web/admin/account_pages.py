"""Console accounts (admins): list, invite (the one-time link is shown once),
reset, change role, remove. The same use cases as ``kabarfeed admin``,
audited as the console account that acted. Nobody removes or demotes
themselves here (so the console always keeps an admin who can act)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kabarfeed.admin import accounts
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.web.admin.core import PREFIX, Console, Notice, field_of, form_of


async def accounts_page(
    console: Console,
    request: Request,
    session: Session,
    *,
    notices: tuple[Notice, ...] = (),
    link: str = "",
    status: int = 200,
) -> Response:
    """GET /admin/accounts."""
    found = await run_in_threadpool(accounts.list_accounts, console.db)
    done = request.query_params.get("done", "")
    if done in ("account_removed", "role_changed") and not notices:
        notices = (Notice(console.text(request, done)),)
    return console.render(
        request,
        "accounts.html.j2",
        "accounts_title",
        session=session,
        notices=notices,
        status=status,
        accounts=found,
        roles=[r.value for r in accounts.Role],
        link=link,
        now=console.clock(),
    )


async def add(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/accounts: invite; the link is shown on this response only."""
    form = form_of(request)
    try:
        role = accounts.Role.parse(field_of(form, "role"))
        invite = await run_in_threadpool(
            lambda: accounts.add_account(
                console.db,
                field_of(form, "email"),
                role,
                Actor.console(session.account.email),
                now=console.clock(),
                ttl=console.config.admin.invite_ttl,
            )
        )
    except InputError as e:
        return await accounts_page(
            console, request, session, notices=(Notice(e.message, "error"),), status=400
        )
    return await _invite_made(console, request, session, invite)


async def _invite_made(
    console: Console, request: Request, session: Session, invite: accounts.Invite
) -> Response:
    """The accounts page with the new one-time link (shown on this response only)."""
    text = console.text(request, "invite_made", email=invite.account.email)
    return await accounts_page(
        console,
        request,
        session,
        notices=(Notice(text),),
        link=invite.url(console.config.site.base_url),
    )


async def _target(console: Console, request: Request) -> accounts.Account | None:
    return await run_in_threadpool(accounts.get_account, console.db, request.path_params["id"])


async def reset(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/accounts/{id}/reset: clear the password, end its sessions, new link."""
    target = await _target(console, request)
    if target is None:
        return await accounts_page(console, request, session, status=404)
    invite = await run_in_threadpool(
        lambda: accounts.reset_account(
            console.db,
            target.email,
            Actor.console(session.account.email),
            now=console.clock(),
            ttl=console.config.admin.invite_ttl,
        )
    )
    if target.id == session.account.id:  # resetting oneself ends this session too
        return RedirectResponse(f"{PREFIX}/login", status_code=303)
    return await _invite_made(console, request, session, invite)


async def change(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/accounts/{id}/role or /remove (never on oneself)."""
    target = await _target(console, request)
    if target is None:
        return await accounts_page(console, request, session, status=404)
    if target.id == session.account.id:
        text = console.text(request, "not_yourself")
        return await accounts_page(
            console, request, session, notices=(Notice(text, "error"),), status=409
        )
    actor = Actor.console(session.account.email)
    now = console.clock()
    try:
        if request.url.path.endswith("/remove"):
            await run_in_threadpool(
                lambda: accounts.remove_account(console.db, target.email, actor, now=now)
            )
            done = "account_removed"
        else:
            role = accounts.Role.parse(field_of(form_of(request), "role"))
            await run_in_threadpool(
                lambda: accounts.set_role(console.db, target.email, role, actor, now=now)
            )
            done = "role_changed"
    except (InputError, NotFoundError) as e:
        return await accounts_page(
            console, request, session, notices=(Notice(e.message, "error"),), status=400
        )
    return RedirectResponse(f"{PREFIX}/accounts?done={done}", status_code=303)
