"""A subscriber's own pages, reached by the token in every digest: preferences
(GET/POST /preferences/<token>) and unsubscribing (GET/POST /u/<token>, with
RFC 8058 one-click)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kabarfeed.errors import InputError
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.web import forms, signup
from kabarfeed.web.i18n import strings
from kabarfeed.web.pages.core import Action, Link, Notice, Pages, form_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ManagePages:
    """The preferences and unsubscribe routes of one app."""

    pages: Pages

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
        csrf = self.pages.csrf.issue("preferences", sub.token, self.pages.clock())
        view = self.pages.form_view(csrf, lang, values, auto_zone=False, notices=notices)
        token = quote(sub.token)
        return self.pages.render(
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
        sub = await self.pages.subscriber(request.path_params["token"])
        if sub is None:
            return self.pages.not_found(request)
        lang = self.pages.language(request, sub)
        saved = request.query_params.get("saved") == "1"
        notices = (Notice(strings(lang)["saved"], "ok"),) if saved else ()
        return self._preferences_page(
            request, sub, lang, forms.current_fields(sub), notices=notices
        )

    async def preferences_submit(self, request: Request) -> Response:
        """POST /preferences/<token>: save, then show the page with "saved"."""
        sub = await self.pages.subscriber(request.path_params["token"])
        if sub is None:
            return self.pages.not_found(request)
        form = await self.pages.read_form(request)
        lang = self.pages.language(request, sub, form)
        back = quote(request.url.path)
        checked = self.pages.accepted(request, form, lang, ("preferences", sub.token), back)
        if isinstance(checked, Response):
            return checked
        values = form_fields(checked)
        try:
            draft = forms.preferences_draft(
                sub.email, values, self.pages.config.taxonomy, self.pages.config.site.timezone
            )
        except InputError:
            notice = (Notice(strings(lang)["invalid_choice"], "error"),)
            return self._preferences_page(request, sub, lang, values, status=400, notices=notice)
        await run_in_threadpool(
            lambda: signup.save_preferences(self.pages.db, sub.token, draft, now=self.pages.clock())
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
        return self.pages.message(request, lang, "unsubscribed_title", (text,), links=(again,))

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET /u/<token>: one button, and the preferences as an alternative."""
        sub = await self.pages.subscriber(request.path_params["token"])
        if sub is None:
            return self.pages.not_found(request)
        lang = self.pages.language(request, sub)
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            return self._unsubscribed(request, sub, lang)
        t = strings(lang)
        token = quote(sub.token)
        csrf = self.pages.csrf.issue("unsubscribe", sub.token, self.pages.clock())
        text = t["unsubscribe_text"].format(email=sub.email, site=self.pages.config.site.title)
        action = Action(f"/u/{token}", t["unsubscribe_button"], csrf, danger=True)
        prefs = Link(f"/preferences/{token}", t["preferences_link"], t["unsubscribe_instead"])
        return self.pages.message(
            request, lang, "unsubscribe_title", (text,), action=action, links=(prefs,)
        )

    async def unsubscribe_submit(self, request: Request) -> Response:
        """POST /u/<token>: RFC 8058 one-click (no cookies, no token) or the form."""
        sub = await self.pages.subscriber(request.path_params["token"])
        if sub is None:
            return self.pages.not_found(request)
        form = await self.pages.read_form(request)
        lang = self.pages.language(request, sub, form)
        one_click = form is not None and form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            back = quote(request.url.path)
            checked = self.pages.accepted(request, form, lang, ("unsubscribe", sub.token), back)
            if isinstance(checked, Response):
                return checked
        done = await run_in_threadpool(
            lambda: signup.unsubscribe(self.pages.db, sub.token, now=self.pages.clock())
        )
        if one_click:
            log.info("one-click unsubscribe of subscriber %d", done.id)
        return self._unsubscribed(request, done, lang)
