"""Login, logout (here or everywhere) and the one-time set-password page."""

from __future__ import annotations

import logging
import math
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kabarfeed.admin import accounts, sessions
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.auth import login
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import InputError
from kabarfeed.web.admin.core import (
    PRE_COOKIE,
    PREFIX,
    Console,
    Notice,
    field_of,
    read_form,
    safe_next,
)

log = logging.getLogger(__name__)
LOGIN_FORM = "admin-login"


def _pre_binding(request: Request) -> str:
    return request.cookies.get(PRE_COOKIE, "")


def _login_page(
    console: Console,
    request: Request,
    *,
    status: int = 200,
    notices: tuple[Notice, ...] = (),
    email: str = "",
    next_url: str = "",
) -> Response:
    binding = _pre_binding(request) or secrets.token_urlsafe(24)
    response = console.render(
        request,
        "login.html.j2",
        "login_title",
        status=status,
        notices=notices,
        email=email,
        next_url=safe_next(next_url or request.query_params.get("next")),
        login_csrf=console.form_csrf.issue(LOGIN_FORM, binding, console.clock()),
    )
    if binding != _pre_binding(request):
        response.set_cookie(
            PRE_COOKIE,
            binding,
            max_age=7200,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


async def login_form(console: Console, request: Request) -> Response:
    """GET /admin/login (a live session goes straight to the dashboard)."""
    if await console.session(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    notices: tuple[Notice, ...] = ()
    if request.query_params.get("done") in ("logout", "logout_all", "password"):
        key = {"logout": "logged_out", "logout_all": "logged_out_all", "password": "password_set"}
        notices = (Notice(console.text(request, key[request.query_params["done"]])),)
    return _login_page(console, request, notices=notices)


async def login_submit(console: Console, request: Request) -> Response:
    """POST /admin/login: limits, verification, then a new session."""
    form = await read_form(request)
    email, password = field_of(form, "email"), str(form.get("password") or "")
    next_url = field_of(form, "next")
    now = console.clock()
    token_ok = console.form_csrf.valid(
        field_of(form, "csrf"), LOGIN_FORM, _pre_binding(request), now
    )
    if not token_ok or console.cross_site(request):
        return console.forbidden(request, None, "forbidden_text")
    result = await run_in_threadpool(
        login, console.db, console.login_limits(request, email), email, password, now=now
    )
    if result.retry_after:
        minutes = max(1, math.ceil(result.retry_after / 60))
        text = console.text(request, "login_limited", minutes=minutes)
        page = _login_page(
            console,
            request,
            status=429,
            notices=(Notice(text, "error"),),
            email=email,
            next_url=next_url,
        )
        page.headers["Retry-After"] = str(result.retry_after)
        return page
    if result.account is None:
        log.info("console login failed from %s", console.ip_hash(request)[:8])
        text = console.text(request, "login_failed")
        return _login_page(
            console,
            request,
            status=401,
            notices=(Notice(text, "error"),),
            email=email,
            next_url=next_url,
        )
    token, _ = await run_in_threadpool(
        sessions.start_session,
        console.db,
        result.account,
        now=now,
        ip_hash=console.ip_hash(request),
    )
    await run_in_threadpool(
        sessions.purge_expired, console.db, now=now, limits=console.timeouts
    )  # housekeeping: sessions nobody will bring back
    log.info("console login: %s", result.account.email)
    response = RedirectResponse(safe_next(next_url), status_code=303)
    console.set_session_cookie(response, request, token)
    response.delete_cookie(PRE_COOKIE, path=PREFIX)
    return response


async def logout(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/logout: end this browser's session."""
    token = console.token_of(request)
    if token:
        await run_in_threadpool(sessions.end_session, console.db, token)
    response = RedirectResponse(f"{PREFIX}/login?done=logout", status_code=303)
    console.clear_session_cookie(response, request)
    return response


async def logout_all(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/logout-all: end every session of this account."""
    await run_in_threadpool(
        sessions.end_all_sessions,
        console.db,
        session.account,
        Actor.console(session.account.email),
        now=console.clock(),
    )
    response = RedirectResponse(f"{PREFIX}/login?done=logout_all", status_code=303)
    console.clear_session_cookie(response, request)
    return response


def _password_page(
    console: Console,
    request: Request,
    token: str,
    email: str,
    *,
    status: int = 200,
    notices: tuple[Notice, ...] = (),
) -> Response:
    return console.render(
        request,
        "set_password.html.j2",
        "set_password_title",
        status=status,
        notices=notices,
        intro=console.text(request, "set_password_intro", email=email),
        form_csrf=console.form_csrf.issue("admin-password", token, console.clock()),
    )


def _invalid_link(console: Console, request: Request) -> Response:
    return console.render(
        request,
        "message.html.j2",
        "set_password_title",
        status=404,
        message=console.text(request, "link_invalid"),
    )


async def set_password_form(console: Console, request: Request) -> Response:
    """GET /admin/set-password/{token}."""
    token = request.path_params["token"]
    account = await run_in_threadpool(accounts.invite_account, console.db, token, console.clock())
    if account is None:
        return _invalid_link(console, request)
    return _password_page(console, request, token, account.email)


async def set_password_submit(console: Console, request: Request) -> Response:
    """POST /admin/set-password/{token}: store the hash; the link is spent."""
    token = request.path_params["token"]
    form = await read_form(request)
    now = console.clock()
    if not console.form_csrf.valid(field_of(form, "csrf"), "admin-password", token, now):
        return console.forbidden(request, None, "forbidden_text")
    account = await run_in_threadpool(accounts.invite_account, console.db, token, now)
    if account is None:
        return _invalid_link(console, request)
    password, repeat = str(form.get("password") or ""), str(form.get("repeat") or "")
    if password != repeat:
        text = console.text(request, "passwords_differ")
        return _password_page(
            console, request, token, account.email, status=400, notices=(Notice(text, "error"),)
        )
    try:
        done = await run_in_threadpool(accounts.set_password, console.db, token, password, now=now)
    except InputError:
        text = console.text(request, "password_short")
        return _password_page(
            console, request, token, account.email, status=400, notices=(Notice(text, "error"),)
        )
    if done is None:
        return _invalid_link(console, request)
    return RedirectResponse(f"{PREFIX}/login?done=password", status_code=303)
