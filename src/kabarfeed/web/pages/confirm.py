"""The double opt-in confirmation: GET shows a button, POST activates, and an
expired link offers a new one (POST .../resend)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.web import signup
from kabarfeed.web.i18n import strings
from kabarfeed.web.pages.core import Action, Link, Pages
from kabarfeed.web.security import ConfirmLink, parse_confirm_token


@dataclass(frozen=True, slots=True)
class ConfirmPages:
    """The confirmation routes of one app."""

    pages: Pages

    async def _confirm_target(self, request: Request) -> tuple[ConfirmLink, Subscriber] | None:
        link = parse_confirm_token(self.pages.signer, request.path_params["signed"])
        if link is None:
            return None
        sub = await self.pages.subscriber(link.subscriber_token)
        return (link, sub) if sub is not None else None

    def _confirm_state_page(
        self, request: Request, lang: str, link: ConfirmLink, sub: Subscriber
    ) -> Response | None:
        """The page for a link that cannot confirm (already active, ended, expired)."""
        t = strings(lang)
        prefs = Link(f"/preferences/{quote(sub.token)}", t["preferences_link"])
        if sub.status is SubscriberStatus.ACTIVE:
            return self.pages.message(
                request, lang, "already_title", (t["already_text"],), links=(prefs,)
            )
        if sub.status is not SubscriberStatus.PENDING:
            again = Link("/subscribe", t["subscribe_again"])
            return self.pages.message(
                request, lang, "stale_title", (t["stale_text"],), status=410, links=(again,)
            )
        if link.expired(self.pages.clock()):
            signed = request.path_params["signed"]
            csrf = self.pages.csrf.issue("resend", sub.token, self.pages.clock())
            action = Action(f"/confirm/{quote(signed)}/resend", t["resend_button"], csrf)
            return self.pages.message(
                request, lang, "expired_title", (t["expired_text"],), status=410, action=action
            )
        return None

    async def confirm_page(self, request: Request) -> Response:
        """GET /confirm/<signed>: a button (a GET never confirms)."""
        target = await self._confirm_target(request)
        if target is None:
            return self.pages.not_found(request)
        link, sub = target
        lang = self.pages.language(request, sub)
        other = self._confirm_state_page(request, lang, link, sub)
        if other is not None:
            return other
        t = strings(lang)
        csrf = self.pages.csrf.issue("confirm", sub.token, self.pages.clock())
        action = Action(quote(request.url.path), t["confirm_button"], csrf)
        return self.pages.message(
            request, lang, "confirm_title", (t["confirm_text"],), action=action
        )

    async def confirm_submit(self, request: Request) -> Response:
        """POST /confirm/<signed>: activate the pending subscriber."""
        target = await self._confirm_target(request)
        if target is None:
            return self.pages.not_found(request)
        link, sub = target
        form = await self.pages.read_form(request)
        lang = self.pages.language(request, sub, form)
        checked = self.pages.accepted(
            request, form, lang, ("confirm", sub.token), quote(request.url.path)
        )
        if isinstance(checked, Response):
            return checked
        other = self._confirm_state_page(request, lang, link, sub)
        if other is not None:
            return other
        active, _ = await run_in_threadpool(
            lambda: signup.confirm(self.pages.db, sub.token, now=self.pages.clock())
        )
        t = strings(lang)
        text = t["confirmed_text"].format(time=f"{active.send_at} {active.timezone}")
        prefs = Link(f"/preferences/{quote(active.token)}", t["preferences_link"])
        return self.pages.message(request, lang, "confirmed_title", (text,), links=(prefs,))

    async def confirm_resend(self, request: Request) -> Response:
        """POST /confirm/<signed>/resend: a new link for an expired one."""
        target = await self._confirm_target(request)
        if target is None:
            return self.pages.not_found(request)
        _, sub = target
        form = await self.pages.read_form(request)
        lang = self.pages.language(request, sub, form)
        back = quote(request.url.path.removesuffix("/resend"))
        checked = self.pages.accepted(request, form, lang, ("resend", sub.token), back)
        if isinstance(checked, Response):
            return checked
        result = await run_in_threadpool(
            lambda: signup.resend(
                self.pages.db,
                sub.token,
                now=self.pages.clock(),
                resend_interval=self.pages.config.web.resend_interval,
            )
        )
        return self.pages.check_inbox_redirect(lang, self.pages.deliver_later(result))
