"""What every subscription page shares: the app's config, store, clock, keys,
limiters and mailer; the layout, message and error pages; the form model;
CSRF, origin and token checks; mailing after the response.

The handlers live by route in the sibling modules; :mod:`.routes` mounts them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kabarfeed.config import Config
from kabarfeed.errors import KabarfeedError
from kabarfeed.models import Clock, Subscriber
from kabarfeed.store import Database
from kabarfeed.templating import make_environment
from kabarfeed.web import forms, signup
from kabarfeed.web.confirmations import ConfirmationMailer
from kabarfeed.web.i18n import LANGUAGES, choose_language, strings
from kabarfeed.web.limits import SharedWindowLimiter
from kabarfeed.web.security import (
    PAGE_CSP,
    CsrfTokens,
    Signer,
    cross_site,
    looks_like_token,
    origin_of,
    same_token,
)

log = logging.getLogger(__name__)

CSS_PATH = "/_kabarfeed/web.css"
CSRF_COOKIE = "kf_csrf"
MAX_FORM_BYTES = 64 * 1024
PAGE_HEADERS = {
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
    frequencies: tuple[forms.Choice, ...] = ()
    breaking: bool = False
    """Whether the breaking-alerts opt-in box is ticked."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The sign-up limiters, shared by every process through the database."""

    per_ip: SharedWindowLimiter
    per_address: SharedWindowLimiter

    @classmethod
    def from_config(cls, config: Config, db: Database) -> Limits:
        """Limiters sized from ``[web]``."""
        hour = timedelta(hours=1)
        return cls(
            SharedWindowLimiter(db, "ip", config.web.subscribe_per_ip_per_hour, hour),
            SharedWindowLimiter(db, "address", config.web.subscribe_per_address_per_hour, hour),
        )


def form_fields(form: FormData) -> forms.Fields:
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
        one("frequency"),
        one("breaking") == "yes",
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

    def __post_init__(self) -> None:
        self.csrf = CsrfTokens(self.signer, self.config.web.form_ttl)
        self.env = make_environment("web")
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
            headers={**PAGE_HEADERS, **(headers or {})},
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
            frequencies=forms.frequency_choices(
                [t[f"weekly_{day}"] for day in range(7)],
                t["daily"],
                values.frequency,
                t["breaking_only"],
            ),
            breaking=values.breaking,
        )

    # -- helpers ---------------------------------------------------------------------------

    async def read_form(self, request: Request) -> FormData | None:
        """The posted form, or ``None`` when the body is too large or unreadable.

        The app's :class:`~kabarfeed.web.bodylimit.BodyLimit` bounds what is
        read (``[web] max_body``, on the stream); a form is smaller still."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM_BYTES:
            return None
        if len(await request.body()) > MAX_FORM_BYTES:  # chunked: no Content-Length
            return None
        try:
            return await request.form(max_files=0, max_fields=200)
        except (ValueError, KeyError, AssertionError):
            return None

    def from_elsewhere(self, request: Request) -> bool:
        """Whether the browser says the POST comes from another site."""
        own = (*self._origins, f"{request.url.scheme}://{request.headers.get('host', '')}")
        return cross_site(request.headers, tuple(o.lower() for o in own))

    def accepted(
        self,
        request: Request,
        form: FormData | None,
        lang: str,
        check: tuple[str, str],
        back: str,
    ) -> FormData | Response:
        """``form`` when the POST is readable, comes from this site and passes
        the CSRF ``check`` (form name, binding); else the 403 page."""
        if form is None or self.from_elsewhere(request) or not self.token_valid(form, *check):
            return self.forbidden(request, lang, back)
        return form

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
