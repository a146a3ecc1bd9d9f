"""What every console page shares: config, store, clock, keys and limiters;
the session cookie; CSRF and role checks; rendering in the reader's language.

Handlers take ``(console, request, session)`` and are wrapped by
:meth:`Console.page`, which refuses anything without a live session (a GET
is sent to the login page), a POST without this session's CSRF token or from
another site, and an admin page to an editor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from kabarfeed.admin.auth import LoginLimits, account_key
from kabarfeed.admin.sessions import Session, Timeouts, load_session
from kabarfeed.admin.throttle import FailureWindow
from kabarfeed.config import Config
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.templating import make_environment
from kabarfeed.web.admin.texts import strings
from kabarfeed.web.i18n import LANGUAGES, choose_language
from kabarfeed.web.security import CsrfTokens, Signer, cross_site, origin_of, same_token

PREFIX = "/admin"
COOKIE = "kf_admin"
PRE_COOKIE = "kf_admin_pre"
LANG_COOKIE = "kf_admin_lang"
CSS_URL = f"{PREFIX}/assets/admin.css"
JS_URL = f"{PREFIX}/assets/admin.js"
MAX_FORM_BYTES = 1024 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}

Handler = Callable[["Console", Request, Session], Awaitable[Response]]
PublicHandler = Callable[["Console", Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Notice:
    """A status line at the top of a page (``ok`` or ``error``)."""

    text: str
    kind: str = "ok"


@dataclass
class Console:
    """The console of one app: config in force, store, clock and keys."""

    config: Config
    db: Database
    clock: Clock
    signer: Signer
    reload: Callable[[str], Awaitable[bool]] | None = None
    env: jinja2.Environment = field(init=False)
    ip_window: FailureWindow = field(init=False)
    account_window: FailureWindow = field(init=False)
    timeouts: Timeouts = field(init=False)
    form_csrf: CsrfTokens = field(init=False)

    def __post_init__(self) -> None:
        self.env = make_environment("admin")
        self.env.tests["alive_at"] = lambda beat, now: bool(beat.alive(now))
        admin, window = self.config.admin, self.config.admin.login_window
        self.ip_window = FailureWindow(self.db, "ip", admin.login_per_ip, window)
        self.account_window = FailureWindow(self.db, "account", admin.login_per_account, window)
        self.timeouts = Timeouts(self.config.admin.session_idle, self.config.admin.session_max)
        self.form_csrf = CsrfTokens(self.signer, timedelta(hours=2))
        self._origins = (origin_of(self.config.site.base_url),)
        self._mailer: Any = None

    def mailer(self) -> Any:
        """The confirmation mailer of the public pages (made on first use)."""
        if self._mailer is None:
            from kabarfeed.web.confirmations import ConfirmationMailer

            self._mailer = ConfirmationMailer(self.config, self.signer, db=self.db)
        return self._mailer

    # -- language and rendering -----------------------------------------------------------

    def language(self, request: Request) -> str:
        """``?lang=``, else the console's language cookie, browser, site default."""
        explicit = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        return choose_language(
            explicit, None, request.headers.get("accept-language", ""), self.config.site.language
        )

    def render(
        self,
        request: Request,
        template: str,
        title_key: str,
        *,
        session: Session | None = None,
        status: int = 200,
        notices: tuple[Notice, ...] = (),
        title_args: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page from ``templates/admin/`` with the layout's context."""
        lang = self.language(request)
        t = strings(lang)
        title = t[title_key].format(**(title_args or {}))
        path = quote(request.url.path)
        html = self.env.get_template(template).render(
            lang=lang,
            t=t,
            title=title,
            css_url=CSS_URL,
            js_url=JS_URL,
            site_title=self.config.site.title,
            session=session,
            csrf=session.csrf if session else "",
            notices=notices,
            path=request.url.path,
            lang_links=[
                {"code": c, "url": f"{path}?lang={c}", "current": c == lang} for c in LANGUAGES
            ],
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        explicit = request.query_params.get("lang")
        if explicit in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, explicit, max_age=365 * 86400, path=PREFIX, samesite="lax"
            )
        return response

    def text(self, request: Request, key: str, **args: Any) -> str:
        """One string in the request's language."""
        return strings(self.language(request))[key].format(**args)

    def not_found(
        self, request: Request, session: Session, message: str = "not_found"
    ) -> HTMLResponse:
        """The console's 404 page; ``message`` is the key of the text it shows."""
        return self.render(
            request,
            "message.html.j2",
            "not_found",
            session=session,
            status=404,
            message=self.text(request, message),
        )

    # -- session cookie ---------------------------------------------------------------------

    def cookie_value(self, token: str) -> str:
        """``<token>.<signature>``: the signed value stored in the browser."""
        return f"{token}.{self.signer.sign('admin-session', token)}"

    def token_of(self, request: Request) -> str | None:
        """The session token of a correctly signed cookie, else ``None``."""
        value = request.cookies.get(COOKIE, "")
        token, _, signature = value.rpartition(".")
        if not token or not self.signer.verify(signature, "admin-session", token):
            return None
        return token

    def set_session_cookie(self, response: Response, request: Request, token: str) -> None:
        """HttpOnly, SameSite=Lax, Secure over https; lives until the absolute timeout."""
        response.set_cookie(
            COOKIE,
            self.cookie_value(token),
            max_age=int(self.timeouts.absolute.total_seconds()),
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def clear_session_cookie(self, response: Response, request: Request) -> None:
        """Remove the session cookie from the browser."""
        response.delete_cookie(
            COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=request.url.scheme == "https"
        )

    async def session(self, request: Request) -> Session | None:
        """The live session of this request (refreshed), or ``None``."""
        token = self.token_of(request)
        if token is None:
            return None
        return await run_in_threadpool(
            load_session, self.db, token, now=self.clock(), limits=self.timeouts
        )

    def login_limits(self, request: Request, email: str) -> LoginLimits:
        """The failure windows for this client and this typed address (keys
        are HMAC digests: neither addresses nor IPs are stored in clear)."""
        return LoginLimits(
            self.ip_window,
            self.account_window,
            self.signer.digest("admin-login-ip", client_ip(request)),
            self.signer.digest("admin-login-account", account_key(email)),
        )

    def ip_hash(self, request: Request) -> str:
        """A keyed hash of the client address (never stored in clear)."""
        return self.signer.digest("admin-ip", client_ip(request))

    # -- checks -----------------------------------------------------------------------------

    def host_allowed(self, request: Request) -> bool:
        """With ``[admin] listen`` set, the console answers only on connections
        to its own listener (the port the service bound, ``app.state.admin_port``;
        nowhere when no such listener runs); with ``[admin] host``, only to
        requests for that host name."""
        if self.config.admin.listen:
            port = getattr(request.app.state, "admin_port", None)
            server = request.scope.get("server") or (None, None)
            if port is None or server[1] != port:
                return False
        wanted = self.config.admin.host.lower()
        if not wanted:
            return True
        host = request.headers.get("host", "").lower()
        return host == wanted or host.split(":")[0] == wanted

    def cross_site(self, request: Request) -> bool:
        """Whether the browser says this request comes from another site."""
        own = (*self._origins, origin_of(str(request.base_url)))
        return cross_site(request.headers, own)

    def forbidden(self, request: Request, session: Session | None, key: str) -> HTMLResponse:
        """The 403 page with one explanation."""
        return self.render(
            request,
            "message.html.j2",
            "forbidden_title",
            session=session,
            status=403,
            message=self.text(request, key),
        )

    def page(self, handler: Handler, *, admin: bool = False) -> Callable[[Request], Any]:
        """``handler`` behind the session, CSRF and role checks."""

        async def endpoint(request: Request) -> Response:
            if not self.host_allowed(request):
                return PlainTextResponse("Not Found", status_code=404)
            session = await self.session(request)
            if session is None:
                if request.method in ("GET", "HEAD"):
                    target = quote(
                        request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    )
                    return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
                return self.forbidden(request, None, "login_expired")
            if admin and not session.account.is_admin:
                return self.forbidden(request, session, "role_text")
            if request.method == "POST":
                form = await read_form(request)
                given = form.get("csrf")
                token_ok = isinstance(given, str) and same_token(given, session.csrf)
                if not token_ok or self.cross_site(request):
                    return self.forbidden(request, session, "forbidden_text")
                request.state.form = form
            return await handler(self, request, session)

        return endpoint

    def public(self, handler: PublicHandler) -> Callable[[Request], Any]:
        """A page reachable without a session (login, set password)."""

        async def endpoint(request: Request) -> Response:
            if not self.host_allowed(request):
                return PlainTextResponse("Not Found", status_code=404)
            return await handler(self, request)

        return endpoint


async def read_form(request: Request) -> FormData:
    """The posted form (bounded in size and field count; one file at most)."""
    return await request.form(max_files=1, max_fields=2000, max_part_size=MAX_FORM_BYTES * 6)


def form_of(request: Request) -> FormData:
    """The form :meth:`Console.page` already read and checked."""
    form: FormData = request.state.form
    return form


def field_of(form: FormData, name: str) -> str:
    """One text field, stripped ("" when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def client_ip(request: Request) -> str:
    """The client address (uvicorn applied the trusted proxy headers)."""
    return request.client.host if request.client else "unknown"


def safe_next(value: str | None) -> str:
    """A redirect target inside the console only (no open redirect)."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return PREFIX + "/"
