"""The subscription pages: sign up with double opt-in, confirm, preferences,
unsubscribe (with RFC 8058 one-click), and the "view in browser" digest.

Rules every handler keeps:

* a GET never changes state (mail scanners prefetch links);
* every state-changing form carries a CSRF token (:mod:`kabarfeed.web.security`)
  except the RFC 8058 one-click POST, which mail providers send without
  cookies or tokens;
* unknown or malformed tokens get the same 404 page; tokens are compared in
  constant time after the lookup;
* sign-up answers the same way whether or not the address is known;
* database work runs in the thread pool, mail in a background task after the
  response (:mod:`kabarfeed.web.confirmations`).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kabarfeed.config import Config
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.errors import InputError, KabarfeedError, StoreError
from kabarfeed.models import Clock, Consent, Subscriber, SubscriberStatus
from kabarfeed.secrets import site_secret
from kabarfeed.store import Database
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import email_key, normalize_email, with_defaults
from kabarfeed.templating import bundled_templates, make_environment
from kabarfeed.web import forms, signup
from kabarfeed.web.confirmations import ConfirmationMailer, TransportFactory
from kabarfeed.web.i18n import LANGUAGES, choose_language, strings
from kabarfeed.web.security import (
    DIGEST_CSP,
    PAGE_CSP,
    ConfirmLink,
    CsrfTokens,
    Signer,
    SlidingWindowLimiter,
    cross_site,
    looks_like_token,
    origin_of,
    parse_confirm_token,
    same_token,
)

log = logging.getLogger(__name__)

CSS_PATH = "/_kabarfeed/web.css"
CSRF_COOKIE = "kf_csrf"
MAX_FORM_BYTES = 64 * 1024
_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Notice:
    """A status line shown above a form (``ok``, ``error`` or plain)."""

    text: str
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """A link under a message."""

    url: str
    label: str
    intro: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """A one-button form under a message."""

    url: str
    label: str
    csrf: str
    danger: bool = False


@dataclass(frozen=True, slots=True)
class FormView:
    """Everything the subscribe/preferences form templates show."""

    csrf: str
    email: str
    name: str
    regions: tuple[forms.RegionNode, ...]
    categories: tuple[forms.Choice, ...]
    send_times: tuple[forms.Choice, ...]
    zones: tuple[forms.Choice, ...]
    languages: tuple[forms.Choice, ...]
    notices: tuple[Notice, ...] = ()
    email_error: str = ""


@dataclass
class Limits:
    """The in-memory sign-up limiters of one process."""

    per_ip: SlidingWindowLimiter
    per_address: SlidingWindowLimiter

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        """Limiters sized from ``[web]``."""
        hour = timedelta(hours=1)
        return cls(
            SlidingWindowLimiter(config.web.subscribe_per_ip_per_hour, hour),
            SlidingWindowLimiter(config.web.subscribe_per_address_per_hour, hour),
        )


def _fields(form: FormData) -> forms.Fields:
    def one(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def many(name: str) -> tuple[str, ...]:
        return tuple(v for v in form.getlist(name) if isinstance(v, str))

    return forms.Fields(
        many("regions"),
        many("categories"),
        one("send_at"),
        one("timezone"),
        one("language"),
        one("name") or None,
    )


def client_ip(request: Request) -> str:
    """The client address (uvicorn already applied trusted proxy headers)."""
    return request.client.host if request.client else "unknown"


@dataclass
class Pages:
    """The page handlers of one app: config, store, clock, keys, limiters, mailer."""

    config: Config
    db: Database
    clock: Clock
    signer: Signer
    mailer: ConfirmationMailer
    limits: Limits
    csrf: CsrfTokens = field(init=False)
    env: jinja2.Environment = field(init=False)
    _digest: DigestRenderer = field(init=False)
    _digest_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.csrf = CsrfTokens(self.signer, self.config.web.form_ttl)
        self.env = make_environment("web")
        self._digest = DigestRenderer(self.config, clock=self.clock)
        self._origins = (origin_of(self.config.site.base_url),)

    # -- rendering -------------------------------------------------------------------------

    def language(
        self, request: Request, subscriber: Subscriber | None = None, form: FormData | None = None
    ) -> str:
        """The page language (see :mod:`kabarfeed.web.i18n`)."""
        explicit = request.query_params.get("lang")
        if not explicit and form is not None:
            value = form.get("lang")
            explicit = value if isinstance(value, str) else None
        return choose_language(
            explicit,
            subscriber.language if subscriber else None,
            request.headers.get("accept-language", ""),
            self.config.site.language,
        )

    def _base(self, request: Request, lang: str, title: str) -> dict[str, Any]:
        site = self.config.site
        path = quote(request.url.path)
        return {
            "lang": lang,
            "t": strings(lang),
            "title": title,
            "css_url": CSS_PATH,
            "site": {"title": site.title, "url": site.base_url, "address": site.postal_address},
            "lang_links": [
                {
                    "code": code,
                    "name": strings(code)["lang_name"],
                    "url": f"{path}?lang={code}",
                    "current": code == lang,
                }
                for code in LANGUAGES
            ],
        }

    def render(
        self,
        request: Request,
        template: str,
        lang: str,
        title: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page from ``templates/web/`` with the shared layout context."""
        html = self.env.get_template(template).render(**self._base(request, lang, title), **context)
        return HTMLResponse(
            html,
            status_code=status,
            headers={**_PAGE_HEADERS, **(headers or {})},
            background=background,
        )

    def message(
        self,
        request: Request,
        lang: str,
        title_key: str,
        paragraphs: tuple[str, ...] = (),
        *,
        status: int = 200,
        action: Action | None = None,
        links: tuple[Link, ...] = (),
        notices: tuple[Notice, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """A short page: heading, paragraphs, an optional button and links."""
        return self.render(
            request,
            "message.html.j2",
            lang,
            strings(lang)[title_key],
            status=status,
            headers=headers,
            paragraphs=paragraphs,
            action=action,
            links=links,
            page_notices=notices,
        )

    def not_found(self, request: Request, lang: str | None = None) -> HTMLResponse:
        """The 404 page for unknown tokens and dates."""
        lang = lang or self.language(request)
        text = strings(lang)["not_found_text"]
        home = Link("/", strings(lang)["home"])
        return self.message(request, lang, "not_found_title", (text,), status=404, links=(home,))

    def forbidden(
        self, request: Request, lang: str, back: str, *, cookies: bool = False
    ) -> Response:
        """The 403 page for a failed CSRF or origin check."""
        t = strings(lang)
        text = (t["forbidden_text"], t["cookies"]) if cookies else (t["forbidden_text"],)
        links = (Link(back, t["back"]),)
        return self.message(request, lang, "forbidden_title", text, status=403, links=links)

    def too_many(self, request: Request, lang: str, retry_after: int) -> Response:
        """The friendly 429 page with ``Retry-After``."""
        minutes = max(1, (retry_after + 59) // 60)
        text = strings(lang)["too_many_text"].format(minutes=minutes)
        headers = {"Retry-After": str(retry_after)}
        return self.message(request, lang, "too_many_title", (text,), status=429, headers=headers)

    def unavailable(self, request: Request) -> Response:
        """The 503 page when the store fails."""
        lang = self.language(request)
        text = strings(lang)["error_text"]
        return self.message(request, lang, "error_title", (text,), status=503)

    # -- form views ------------------------------------------------------------------------

    def form_view(
        self,
        csrf: str,
        lang: str,
        values: forms.Fields,
        *,
        email: str = "",
        auto_zone: bool,
        notices: tuple[Notice, ...] = (),
        email_error: str = "",
    ) -> FormView:
        """The form model for ``values`` (the current or submitted choices)."""
        t = strings(lang)
        taxonomy = self.config.taxonomy
        send_at = values.send_at or self.config.digest.send_at
        return FormView(
            csrf=csrf,
            email=email,
            name=values.name or "",
            regions=forms.region_tree(taxonomy, values.regions),
            categories=forms.category_choices(taxonomy, values.categories),
            send_times=forms.send_time_choices(send_at),
            zones=forms.zone_choices(
                taxonomy,
                self.config.site.timezone,
                "" if auto_zone and values.timezone in ("", forms.AUTO_ZONE) else values.timezone,
                auto_label=t["timezone_auto"] if auto_zone else None,
            ),
            languages=forms.language_choices(
                {c: strings(c)["lang_name"] for c in LANGUAGES}, values.language or lang
            ),
            notices=notices,
            email_error=email_error,
        )

    # -- helpers ---------------------------------------------------------------------------

    async def read_form(self, request: Request) -> FormData | None:
        """The posted form, or ``None`` when the body is too large or unreadable."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM_BYTES:
            return None
        try:
            return await request.form(max_files=0, max_fields=200)
        except (ValueError, KeyError, AssertionError):
            return None

    def from_elsewhere(self, request: Request) -> bool:
        """Whether the browser says the POST comes from another site."""
        own = (*self._origins, f"{request.url.scheme}://{request.headers.get('host', '')}")
        return cross_site(request.headers, tuple(o.lower() for o in own))

    def token_valid(self, form: FormData, name: str, binding: str) -> bool:
        """The CSRF check of ``form`` for ``name`` bound to ``binding``."""
        token = form.get("csrf")
        if not isinstance(token, str):
            return False
        return self.csrf.valid(token, name, binding, self.clock())

    async def subscriber(self, token: str) -> Subscriber | None:
        """The subscriber for a link token (shape check, lookup, constant-time compare)."""
        if not looks_like_token(token):
            return None
        sub = await run_in_threadpool(signup.find, self.db, token)
        if sub is None or not same_token(token, sub.token):
            return None
        return sub

    def deliver_later(self, result: signup.SignupResult) -> BackgroundTask | None:
        """The background task that mails ``result`` (``None``: nothing to send)."""
        if result.subscriber is None or result.mail is None:
            return None
        return BackgroundTask(self._deliver, result)

    async def _deliver(self, result: signup.SignupResult) -> None:
        sub, kind = result.subscriber, result.mail
        assert sub is not None and kind is not None
        try:
            prepared = await run_in_threadpool(self.mailer.build, sub, kind, self.clock())
            sent = await self.mailer.send(prepared)
        except KabarfeedError as e:
            log.warning("opt-in mail for subscriber %d not built: %s", sub.id, e)
            sent = False
        if not sent:
            await run_in_threadpool(signup.restore_sent, self.db, sub.id, result.previous_sent)

    def check_inbox_redirect(self, lang: str, task: BackgroundTask | None) -> Response:
        """303 to the "check your inbox" page (the same for every sign-up outcome)."""
        return RedirectResponse(
            f"/subscribe/check?{urlencode({'lang': lang})}",
            status_code=303,
            headers={"Cache-Control": "no-store"},
            background=task,
        )

    # -- sign-up ---------------------------------------------------------------------------

    def _csrf_cookie(self, request: Request) -> tuple[str, bool]:
        value = request.cookies.get(CSRF_COOKIE, "")
        if looks_like_token(value):
            return value, False
        return secrets.token_urlsafe(16), True

    def _subscribe_page(
        self,
        request: Request,
        lang: str,
        values: forms.Fields,
        *,
        email: str = "",
        status: int = 200,
        notices: tuple[Notice, ...] = (),
        email_error: str = "",
    ) -> Response:
        cookie, fresh = self._csrf_cookie(request)
        csrf = self.csrf.issue("subscribe", cookie, self.clock())
        view = self.form_view(
            csrf,
            lang,
            values,
            email=email,
            auto_zone=True,
            notices=notices,
            email_error=email_error,
        )
        title = strings(lang)["subscribe_title"]
        response = self.render(request, "subscribe.html.j2", lang, title, status=status, form=view)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                max_age=int(self.config.web.form_ttl.total_seconds()),
                path="/subscribe",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response

    async def subscribe_form(self, request: Request) -> Response:
        """GET /subscribe: the form (``?region=`` preselects regions)."""
        lang = self.language(request)
        known = {r.slug for r in self.config.taxonomy.regions}
        regions = tuple(r for r in request.query_params.getlist("region") if r in known)
        return self._subscribe_page(request, lang, forms.Fields(regions=regions))

    async def subscribe_check(self, request: Request) -> Response:
        """GET /subscribe/check: the "check your inbox" page."""
        lang = self.language(request)
        t = strings(lang)
        days = max(1, round(self.config.web.confirm_ttl / timedelta(days=1)))
        return self.message(
            request, lang, "check_title", (t["check_text"].format(days=days), t["check_spam"])
        )

    async def subscribe_submit(self, request: Request) -> Response:
        """POST /subscribe: the index's first step, or the full sign-up."""
        form = await self.read_form(request)
        lang = self.language(request, form=form)
        if form is None:
            return self.message(request, lang, "bad_request_title", status=400)
        if form.get("step") == "start":
            email = form.get("email")
            email = email.strip()[:320] if isinstance(email, str) else ""
            return self._subscribe_page(request, lang, forms.Fields(), email=email)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if self.from_elsewhere(request) or not self.token_valid(form, "subscribe", cookie):
            return self.forbidden(request, lang, "/subscribe", cookies=not cookie)
        return await self._sign_up(request, form, lang)

    async def _sign_up(self, request: Request, form: FormData, lang: str) -> Response:
        now, ip = self.clock(), client_ip(request)
        if not self.limits.per_ip.hit(ip, now):
            return self.too_many(request, lang, self.limits.per_ip.retry_after(ip, now))
        if form.get("website"):  # the honeypot: a bot; answer as if all went well
            return self.check_inbox_redirect(lang, None)
        values = _fields(form)
        raw_email = form.get("email")
        raw = raw_email.strip()[:320] if isinstance(raw_email, str) else ""
        try:
            email = normalize_email(raw)
        except InputError:
            error = strings(lang)["invalid_email"]
            return self._subscribe_page(
                request, lang, values, email=raw, status=400, email_error=error
            )
        key = self.signer.digest("address", email_key(email))
        if not self.limits.per_address.hit(key, now):
            return self.too_many(request, lang, self.limits.per_address.retry_after(key, now))
        return await self._record(request, email, values, lang, now)

    async def _record(
        self, request: Request, email: str, values: forms.Fields, lang: str, now: datetime
    ) -> Response:
        taxonomy = self.config.taxonomy
        try:
            draft = forms.preferences_draft(email, values, taxonomy, self.config.site.timezone)
        except InputError:
            notice = (Notice(strings(lang)["invalid_choice"], "error"),)
            return self._subscribe_page(
                request, lang, values, email=email, status=400, notices=notice
            )
        consent = Consent(
            now,
            "web",
            client_ip(request),
            request.headers.get("user-agent", "")[:500] or None,
            self.config.web.consent_version,
        )
        draft = with_defaults(
            replace(draft, language=draft.language or lang, consent=consent), self.config
        )
        draft = replace(draft, status=SubscriberStatus.PENDING)
        result = await run_in_threadpool(
            lambda: signup.sign_up(
                self.db, draft, now=now, resend_interval=self.config.web.resend_interval
            )
        )
        return self.check_inbox_redirect(lang, self.deliver_later(result))

    # -- confirm ---------------------------------------------------------------------------

    async def _confirm_target(self, request: Request) -> tuple[ConfirmLink, Subscriber] | None:
        link = parse_confirm_token(self.signer, request.path_params["signed"])
        if link is None:
            return None
        sub = await self.subscriber(link.subscriber_token)
        return (link, sub) if sub is not None else None

    def _confirm_state_page(
        self, request: Request, lang: str, link: ConfirmLink, sub: Subscriber
    ) -> Response | None:
        """The page for a link that cannot confirm (already active, ended, expired)."""
        t = strings(lang)
        prefs = Link(f"/preferences/{quote(sub.token)}", t["preferences_link"])
        if sub.status is SubscriberStatus.ACTIVE:
            return self.message(
                request, lang, "already_title", (t["already_text"],), links=(prefs,)
            )
        if sub.status is not SubscriberStatus.PENDING:
            again = Link("/subscribe", t["subscribe_again"])
            return self.message(
                request, lang, "stale_title", (t["stale_text"],), status=410, links=(again,)
            )
        if link.expired(self.clock()):
            signed = request.path_params["signed"]
            csrf = self.csrf.issue("resend", sub.token, self.clock())
            action = Action(f"/confirm/{quote(signed)}/resend", t["resend_button"], csrf)
            return self.message(
                request, lang, "expired_title", (t["expired_text"],), status=410, action=action
            )
        return None

    async def confirm_page(self, request: Request) -> Response:
        """GET /confirm/<signed>: a button (a GET never confirms)."""
        target = await self._confirm_target(request)
        if target is None:
            return self.not_found(request)
        link, sub = target
        lang = self.language(request, sub)
        other = self._confirm_state_page(request, lang, link, sub)
        if other is not None:
            return other
        t = strings(lang)
        csrf = self.csrf.issue("confirm", sub.token, self.clock())
        action = Action(quote(request.url.path), t["confirm_button"], csrf)
        return self.message(request, lang, "confirm_title", (t["confirm_text"],), action=action)

    async def confirm_submit(self, request: Request) -> Response:
        """POST /confirm/<signed>: activate the pending subscriber."""
        target = await self._confirm_target(request)
        if target is None:
            return self.not_found(request)
        link, sub = target
        form = await self.read_form(request)
        lang = self.language(request, sub, form)
        if form is None or self.from_elsewhere(request):
            return self.forbidden(request, lang, quote(request.url.path))
        if not self.token_valid(form, "confirm", sub.token):
            return self.forbidden(request, lang, quote(request.url.path))
        other = self._confirm_state_page(request, lang, link, sub)
        if other is not None:
            return other
        active, _ = await run_in_threadpool(
            lambda: signup.confirm(self.db, sub.token, now=self.clock())
        )
        t = strings(lang)
        text = t["confirmed_text"].format(time=f"{active.send_at} {active.timezone}")
        prefs = Link(f"/preferences/{quote(active.token)}", t["preferences_link"])
        return self.message(request, lang, "confirmed_title", (text,), links=(prefs,))

    async def confirm_resend(self, request: Request) -> Response:
        """POST /confirm/<signed>/resend: a new link for an expired one."""
        target = await self._confirm_target(request)
        if target is None:
            return self.not_found(request)
        _, sub = target
        form = await self.read_form(request)
        lang = self.language(request, sub, form)
        back = quote(request.url.path.removesuffix("/resend"))
        if form is None or self.from_elsewhere(request):
            return self.forbidden(request, lang, back)
        if not self.token_valid(form, "resend", sub.token):
            return self.forbidden(request, lang, back)
        result = await run_in_threadpool(
            lambda: signup.resend(
                self.db,
                sub.token,
                now=self.clock(),
                resend_interval=self.config.web.resend_interval,
            )
        )
        return self.check_inbox_redirect(lang, self.deliver_later(result))

    # -- preferences -----------------------------------------------------------------------

    def _preferences_page(
        self,
        request: Request,
        sub: Subscriber,
        lang: str,
        values: forms.Fields,
        *,
        status: int = 200,
        notices: tuple[Notice, ...] = (),
    ) -> Response:
        t = strings(lang)
        if sub.status is SubscriberStatus.PENDING:
            notices = (*notices, Notice(t["status_pending"]))
        elif sub.status is not SubscriberStatus.ACTIVE:
            notices = (*notices, Notice(t["status_stopped"]))
        csrf = self.csrf.issue("preferences", sub.token, self.clock())
        view = self.form_view(csrf, lang, values, auto_zone=False, notices=notices)
        token = quote(sub.token)
        return self.render(
            request,
            "preferences.html.j2",
            lang,
            t["preferences_title"],
            status=status,
            form=view,
            email=sub.email,
            action=f"/preferences/{token}",
            unsubscribe_url=f"/u/{token}",
        )

    async def preferences_page(self, request: Request) -> Response:
        """GET /preferences/<token>: the form with the current choices."""
        sub = await self.subscriber(request.path_params["token"])
        if sub is None:
            return self.not_found(request)
        lang = self.language(request, sub)
        saved = request.query_params.get("saved") == "1"
        notices = (Notice(strings(lang)["saved"], "ok"),) if saved else ()
        return self._preferences_page(
            request, sub, lang, forms.current_fields(sub), notices=notices
        )

    async def preferences_submit(self, request: Request) -> Response:
        """POST /preferences/<token>: save, then show the page with "saved"."""
        sub = await self.subscriber(request.path_params["token"])
        if sub is None:
            return self.not_found(request)
        form = await self.read_form(request)
        lang = self.language(request, sub, form)
        back = quote(request.url.path)
        if form is None or self.from_elsewhere(request):
            return self.forbidden(request, lang, back)
        if not self.token_valid(form, "preferences", sub.token):
            return self.forbidden(request, lang, back)
        values = _fields(form)
        try:
            draft = forms.preferences_draft(
                sub.email, values, self.config.taxonomy, self.config.site.timezone
            )
        except InputError:
            notice = (Notice(strings(lang)["invalid_choice"], "error"),)
            return self._preferences_page(request, sub, lang, values, status=400, notices=notice)
        await run_in_threadpool(
            lambda: signup.save_preferences(self.db, sub.token, draft, now=self.clock())
        )
        return RedirectResponse(
            f"/preferences/{quote(sub.token)}?saved=1",
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )

    # -- unsubscribe -----------------------------------------------------------------------

    def _unsubscribed(self, request: Request, sub: Subscriber, lang: str) -> Response:
        t = strings(lang)
        text = t["unsubscribed_text"].format(email=sub.email)
        again = Link("/subscribe", t["subscribe_again"])
        return self.message(request, lang, "unsubscribed_title", (text,), links=(again,))

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET /u/<token>: one button, and the preferences as an alternative."""
        sub = await self.subscriber(request.path_params["token"])
        if sub is None:
            return self.not_found(request)
        lang = self.language(request, sub)
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            return self._unsubscribed(request, sub, lang)
        t = strings(lang)
        token = quote(sub.token)
        csrf = self.csrf.issue("unsubscribe", sub.token, self.clock())
        text = t["unsubscribe_text"].format(email=sub.email, site=self.config.site.title)
        action = Action(f"/u/{token}", t["unsubscribe_button"], csrf, danger=True)
        prefs = Link(f"/preferences/{token}", t["preferences_link"], t["unsubscribe_instead"])
        return self.message(
            request, lang, "unsubscribe_title", (text,), action=action, links=(prefs,)
        )

    async def unsubscribe_submit(self, request: Request) -> Response:
        """POST /u/<token>: RFC 8058 one-click (no cookies, no token) or the form."""
        sub = await self.subscriber(request.path_params["token"])
        if sub is None:
            return self.not_found(request)
        form = await self.read_form(request)
        lang = self.language(request, sub, form)
        one_click = form is not None and form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            back = quote(request.url.path)
            if form is None or self.from_elsewhere(request):
                return self.forbidden(request, lang, back)
            if not self.token_valid(form, "unsubscribe", sub.token):
                return self.forbidden(request, lang, back)
        done = await run_in_threadpool(
            lambda: signup.unsubscribe(self.db, sub.token, now=self.clock())
        )
        if one_click:
            log.info("one-click unsubscribe of subscriber %d", done.id)
        return self._unsubscribed(request, done, lang)

    # -- digest in the browser -------------------------------------------------------------

    def _edition(self, sub: Subscriber, day: date) -> EditionInput | None:
        with self.db.connect() as conn:
            ids_json = conn.execute(
                select(deliveries.c.article_ids).where(
                    deliveries.c.subscriber_id == sub.id,
                    deliveries.c.local_date == day.isoformat(),
                )
            ).scalar_one_or_none()
            if ids_json is None:
                return None
            ids = [str(i) for i in json.loads(ids_json or "[]")]
            found = {a.id: a for a in load_articles(conn, ids=ids)} if ids else {}
        articles = tuple(found[i] for i in ids if i in found)
        return EditionInput(sub, day, articles, len(ids))

    def _digest_html(self, sub: Subscriber, day: date) -> str | None:
        edition = self._edition(sub, day)
        if edition is None:
            return None
        with self._digest_lock:
            return self._digest.render_html(edition)

    async def digest_view(self, request: Request) -> Response:
        """GET /digest/<token>/<YYYY-MM-DD>: that edition as a web page."""
        sub = await self.subscriber(request.path_params["token"])
        day = _parse_day(request.path_params["day"])
        if sub is None or day is None:
            return self.not_found(request, sub.language if sub else None)
        html = await run_in_threadpool(self._digest_html, sub, day)
        if html is None:
            return self.not_found(request, sub.language)
        headers = {**_PAGE_HEADERS, "Content-Security-Policy": DIGEST_CSP}
        return HTMLResponse(html, headers=headers)

    # -- assets ----------------------------------------------------------------------------

    async def stylesheet(self, request: Request) -> Response:
        """The pages' stylesheet (cached for a day; the CSP allows only it)."""
        css = (bundled_templates() / "web" / "web.css").read_bytes()
        return Response(
            css,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=86400"},
        )


def _parse_day(text: str) -> date | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _guarded(pages: Pages, handler: Handler) -> Handler:
    """``handler`` with store failures turned into the friendly 503 page."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreError as e:
            log.error("web request %s failed: %s", request.url.path, e)
            return pages.unavailable(request)

    return run


def page_routes(pages: Pages) -> list[BaseRoute]:
    """Every subscription route, to mount before the static catch-all."""
    table: list[tuple[str, Handler, str]] = [
        ("/subscribe", pages.subscribe_form, "GET"),
        ("/subscribe", pages.subscribe_submit, "POST"),
        ("/subscribe/check", pages.subscribe_check, "GET"),
        ("/confirm/{signed}", pages.confirm_page, "GET"),
        ("/confirm/{signed}", pages.confirm_submit, "POST"),
        ("/confirm/{signed}/resend", pages.confirm_resend, "POST"),
        ("/preferences/{token}", pages.preferences_page, "GET"),
        ("/preferences/{token}", pages.preferences_submit, "POST"),
        ("/u/{token}", pages.unsubscribe_page, "GET"),
        ("/u/{token}", pages.unsubscribe_submit, "POST"),
        ("/digest/{token}/{day}", pages.digest_view, "GET"),
        (CSS_PATH, pages.stylesheet, "GET"),
    ]
    return [Route(path, _guarded(pages, fn), methods=[method]) for path, fn, method in table]


def create_pages(
    config: Config,
    db: Database,
    *,
    clock: Clock,
    transport_factory: TransportFactory | None = None,
) -> Pages:
    """The handlers for ``config``, keyed with the site secret (see :mod:`kabarfeed.secrets`)."""
    signer = Signer(site_secret(config, db, now=clock()))
    mailer = ConfirmationMailer(config, signer, db=db, transport_factory=transport_factory)
    return Pages(config, db, clock, signer, mailer, Limits.from_config(config))
