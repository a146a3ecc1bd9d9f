"""The double opt-in mails: a confirmation link (or, for an address that is
already active, a notice with the preferences link).

Built with the digest's header helpers (``From``/``To``/``Subject`` made
safe, ``Date``, a fresh ``Message-ID``), multipart text + HTML, DKIM-signed
when configured, and handed to the configured transport (Maildir or SMTP).
Sending runs in a worker thread with its own event loop, so a slow SMTP
server never blocks the web server's loop. Over SMTP each mail first takes
one slot of the global ``[smtp]`` rate, the bucket digest senders share
(:mod:`kabarfeed.delivery.sharedrate`), so the configured rate holds for
all mail the site sends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_datetime

from kabarfeed.config import Config
from kabarfeed.delivery.dkim import DkimSigner
from kabarfeed.delivery.engine import Transport
from kabarfeed.delivery.factory import envelope_sender, make_transport
from kabarfeed.delivery.outbox import ResultKind
from kabarfeed.delivery.sharedrate import DatabaseSlots, Rates, SlotSource
from kabarfeed.digest import message as mail
from kabarfeed.errors import DeliveryError, RenderError
from kabarfeed.models import Subscriber
from kabarfeed.store import Database
from kabarfeed.templating import make_environment
from kabarfeed.web.i18n import strings
from kabarfeed.web.security import Signer, confirm_token
from kabarfeed.web.signup import MailKind

log = logging.getLogger(__name__)

TransportFactory = Callable[[Config], Transport]
MAX_RATE_WAIT = 60.0
"""Seconds a confirmation mail waits at most for its slot of the global rate
(a digest run reserves slots only ~0.1 s ahead, so this is a safety cap)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A built mail, ready for the transport."""

    recipient: str
    message_id: str
    data: bytes


def confirm_url(config: Config, signer: Signer, token: str, now: datetime) -> str:
    """The signed ``/confirm/...`` link, valid for ``web.confirm_ttl``."""
    signed = confirm_token(signer, token, now + config.web.confirm_ttl)
    return f"{config.site.base_url}/confirm/{quote(signed, safe='')}"


def preferences_url(config: Config, token: str) -> str:
    """The subscriber's preferences page."""
    return f"{config.site.base_url}/preferences/{quote(token, safe='')}"


class ConfirmationMailer:
    """Builds and sends the opt-in mails; one per app (holds template envs)."""

    def __init__(
        self,
        config: Config,
        signer: Signer,
        *,
        db: Database | None = None,
        transport_factory: TransportFactory | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.signer = signer
        self._env = make_environment("web", html=False)
        self._transport_factory = transport_factory or make_transport
        self._dkim = DkimSigner.from_config(config.dkim)
        self._domain = mail.site_domain(config.site.base_url)
        self._slots = _rate_slots(config, db)
        self._clock, self._sleep = clock, sleep

    def _render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self._env.get_template(name).render(context)
        except jinja2.TemplateError as e:
            raise RenderError(f"web template {name}: {e}") from e

    def _context(self, sub: Subscriber, kind: MailKind, now: datetime) -> dict[str, Any]:
        t = strings(sub.language)
        site = self.config.site
        expires = now + self.config.web.confirm_ttl
        when = format_datetime(
            expires, "d MMMM y HH:mm zzz", tzinfo=ZoneInfo(sub.timezone), locale=sub.language
        )
        is_confirm = kind is MailKind.CONFIRM
        return {
            "t": t,
            "lang": sub.language,
            "site": {"title": site.title, "url": site.base_url, "address": site.postal_address},
            "name": sub.name or "",
            "intro": (t["mail_intro"] if is_confirm else t["notice_intro"]).format(site=site.title),
            "action": t["mail_action"] if is_confirm else t["notice_action"],
            "url": confirm_url(self.config, self.signer, sub.token, now)
            if is_confirm
            else preferences_url(self.config, sub.token),
            "expiry": t["mail_expiry"].format(date=when) if is_confirm else "",
        }

    def build(self, sub: Subscriber, kind: MailKind, now: datetime) -> Prepared:
        """The complete message for ``sub`` (signed when DKIM is on)."""
        ctx = self._context(sub, kind, now)
        t = ctx["t"]
        subject_key = "mail_subject" if kind is MailKind.CONFIRM else "notice_subject"
        d = self.config.digest
        mid = mail.deterministic_message_id(
            secrets.token_bytes(16), self._domain, "confirm", str(sub.id)
        )
        env = mail.Envelope(
            from_name=d.from_name or self.config.site.title,
            from_address=d.from_address,
            to_name=sub.name,
            to_address=sub.email,
            subject=t[subject_key].format(site=self.config.site.title),
            date=now,
            message_id=mid,
            reply_to=d.reply_to,
            extra=(("Auto-Submitted", "auto-generated"), ("Content-Language", sub.language)),
        )
        text = self._render("mail/confirm.txt.j2", ctx)
        html = self._render("mail/confirm.html.j2", ctx)
        data = mail.build_message(env, text, html)
        if self._dkim is not None:
            data = self._dkim.sign(data)
        return Prepared(sub.email, mid, data)

    async def send(self, prepared: Prepared) -> bool:
        """Hand ``prepared`` over in a worker thread; ``True`` when accepted."""
        return await asyncio.to_thread(self.send_blocking, prepared)

    def send_blocking(self, prepared: Prepared) -> bool:
        """Send on a private event loop (call from a thread, never from the web loop)."""
        try:
            self._wait_for_slot()
            return asyncio.run(self._send(prepared))
        except (DeliveryError, OSError) as e:
            log.warning("confirmation mail %s not sent: %s", prepared.message_id, e)
            return False

    def _wait_for_slot(self) -> None:
        """Take one slot of the global rate and sleep until it (SMTP with a
        rate configured only)."""
        if self._slots is None:
            return
        [at] = self._slots.take(1, self._clock())
        delay = at - self._clock()
        if delay > 0:
            self._sleep(min(delay, MAX_RATE_WAIT))

    async def _send(self, prepared: Prepared) -> bool:
        transport = self._transport_factory(self.config)
        try:
            result = await transport.send(
                envelope_sender(self.config), prepared.recipient, prepared.data
            )
        finally:
            await transport.close()
        if result.kind is not ResultKind.ACCEPTED:
            log.warning(
                "confirmation mail %s refused: %s %s",
                prepared.message_id,
                result.code or "",
                result.reply,
            )
            return False
        log.info("confirmation mail %s sent via %s", prepared.message_id, transport.name)
        return True


def _rate_slots(config: Config, db: Database | None) -> SlotSource | None:
    """Where a confirmation mail takes its slot of the global ``[smtp]`` rate:
    ``None`` for the Maildir, without a rate, or without a database."""
    rates = Rates(config.smtp.rate_per_second, config.smtp.rate_per_minute)
    if db is None or not config.smtp.host or rates.unlimited:
        return None
    return DatabaseSlots(db, rates)
