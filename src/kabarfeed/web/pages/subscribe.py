"""Sign-up: the form (GET /subscribe), its first step and the full sign-up
(POST /subscribe), and the "check your inbox" page."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from kabarfeed.errors import InputError
from kabarfeed.models import Consent, SubscriberStatus
from kabarfeed.subscribers import email_key, normalize_email, with_defaults
from kabarfeed.web import forms, signup
from kabarfeed.web.i18n import strings
from kabarfeed.web.pages.core import CSRF_COOKIE, Notice, Pages, client_ip, form_fields
from kabarfeed.web.security import looks_like_token


@dataclass(frozen=True, slots=True)
class SignUpPages:
    """The sign-up routes of one app."""

    pages: Pages

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
        csrf = self.pages.csrf.issue("subscribe", cookie, self.pages.clock())
        view = self.pages.form_view(
            csrf,
            lang,
            values,
            email=email,
            auto_zone=True,
            notices=notices,
            email_error=email_error,
        )
        title = strings(lang)["subscribe_title"]
        response = self.pages.render(
            request, "subscribe.html.j2", lang, title, status=status, form=view
        )
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                max_age=int(self.pages.config.web.form_ttl.total_seconds()),
                path="/subscribe",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response

    async def subscribe_form(self, request: Request) -> Response:
        """GET /subscribe: the form (``?region=`` preselects regions)."""
        lang = self.pages.language(request)
        known = {r.slug for r in self.pages.config.taxonomy.regions}
        regions = tuple(r for r in request.query_params.getlist("region") if r in known)
        return self._subscribe_page(request, lang, forms.Fields(regions=regions))

    async def subscribe_check(self, request: Request) -> Response:
        """GET /subscribe/check: the "check your inbox" page."""
        lang = self.pages.language(request)
        t = strings(lang)
        days = max(1, round(self.pages.config.web.confirm_ttl / timedelta(days=1)))
        return self.pages.message(
            request, lang, "check_title", (t["check_text"].format(days=days), t["check_spam"])
        )

    async def subscribe_submit(self, request: Request) -> Response:
        """POST /subscribe: the index's first step, or the full sign-up."""
        form = await self.pages.read_form(request)
        lang = self.pages.language(request, form=form)
        if form is None:
            return self.pages.message(request, lang, "bad_request_title", status=400)
        if form.get("step") == "start":
            email = form.get("email")
            email = email.strip()[:320] if isinstance(email, str) else ""
            return self._subscribe_page(request, lang, forms.Fields(), email=email)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if self.pages.from_elsewhere(request) or not self.pages.token_valid(
            form, "subscribe", cookie
        ):
            return self.pages.forbidden(request, lang, "/subscribe", cookies=not cookie)
        return await self._sign_up(request, form, lang)

    async def _sign_up(self, request: Request, form: FormData, lang: str) -> Response:
        now, limits = self.pages.clock(), self.pages.limits
        ip_key = self.pages.signer.digest("ip", client_ip(request))
        wait = await run_in_threadpool(limits.per_ip.hit, ip_key, now)
        if wait:
            return self.pages.too_many(request, lang, wait)
        if form.get("website"):  # the honeypot: a bot; answer as if all went well
            return self.pages.check_inbox_redirect(lang, None)
        values = form_fields(form)
        raw_email = form.get("email")
        raw = raw_email.strip()[:320] if isinstance(raw_email, str) else ""
        try:
            email = normalize_email(raw)
        except InputError:
            error = strings(lang)["invalid_email"]
            return self._subscribe_page(
                request, lang, values, email=raw, status=400, email_error=error
            )
        key = self.pages.signer.digest("address", email_key(email))
        wait = await run_in_threadpool(limits.per_address.hit, key, now)
        if wait:
            return self.pages.too_many(request, lang, wait)
        return await self._record(request, email, values, lang, now)

    async def _record(
        self, request: Request, email: str, values: forms.Fields, lang: str, now: datetime
    ) -> Response:
        taxonomy = self.pages.config.taxonomy
        try:
            draft = forms.preferences_draft(
                email, values, taxonomy, self.pages.config.site.timezone
            )
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
            self.pages.config.web.consent_version,
        )
        draft = with_defaults(
            replace(draft, language=draft.language or lang, consent=consent), self.pages.config
        )
        draft = replace(draft, status=SubscriberStatus.PENDING)
        result = await run_in_threadpool(
            lambda: signup.sign_up(
                self.pages.db, draft, now=now, resend_interval=self.pages.config.web.resend_interval
            )
        )
        return self.pages.check_inbox_redirect(lang, self.pages.deliver_later(result))
