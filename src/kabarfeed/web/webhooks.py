"""``/webhooks/<provider>``: bounces and complaints from ESPs.

* ``/webhooks/ses``: Amazon SES notifications through SNS. The signature is
  checked with the certificate at ``SigningCertURL`` (only
  ``https://sns.<region>.amazonaws.com``); the topic must be one of
  ``[bounces] ses_topic_arns``; a ``SubscriptionConfirmation`` is confirmed by
  visiting its ``SubscribeURL`` (same host rule).
* ``/webhooks/postmark`` with HTTP basic auth (``postmark_user`` /
  ``postmark_password``), or ``/webhooks/postmark/<postmark_path_secret>``.
* ``/webhooks/mailgun``: HMAC-SHA256 over timestamp + token with
  ``mailgun_signing_key``; stale timestamps and reused tokens are refused.
* ``/webhooks/sendgrid``: the Event Webhook's ECDSA signature, checked with
  ``sendgrid_public_key``.

A provider answers 404 until it is configured. A bad or missing signature is
401/403 and records nothing; a database failure is 503, so the provider
retries. The request body limit is the app's own (no second one here).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from kabarfeed.bounces import providers
from kabarfeed.bounces.intake import IntakeSettings, Nonce, intake_settings, record
from kabarfeed.bounces.model import Report
from kabarfeed.bounces.store import seen_nonce
from kabarfeed.config import Config
from kabarfeed.errors import InputError, KabarfeedError, StoreError, WebhookAuthError
from kabarfeed.models import Clock
from kabarfeed.store import Database

log = logging.getLogger(__name__)

CERT_MAX_BYTES = 64 * 1024

Fetch = Callable[[str], bytes]


def fetch_https(url: str) -> bytes:
    """GET an SNS certificate or subscription URL (already host-checked):
    no redirects, a short timeout, a size cap."""
    with (
        httpx.Client(timeout=10.0, follow_redirects=False) as client,
        client.stream("GET", url) as response,
    ):
        response.raise_for_status()
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > CERT_MAX_BYTES:
                raise ValueError(f"{url} sent more than {CERT_MAX_BYTES} bytes")
        return body


class Webhooks:
    """The webhook endpoints of one app."""

    def __init__(self, config: Config, db: Database, clock: Clock) -> None:
        self.config = config
        self.bounces = config.bounces
        self.db = db
        self.clock = clock
        self._settings: IntakeSettings | None = None
        self._certs: dict[str, bytes] = {}
        self._sendgrid_key = (
            providers.load_sendgrid_key(self.bounces.sendgrid_public_key)
            if self.bounces.sendgrid_public_key
            else None
        )

    def routes(self) -> list[BaseRoute]:
        """The routes (every provider; unconfigured ones answer 404)."""
        return [
            Route("/webhooks/ses", self.ses, methods=["POST"]),
            Route("/webhooks/postmark", self.postmark, methods=["POST"]),
            Route("/webhooks/postmark/{secret}", self.postmark, methods=["POST"]),
            Route("/webhooks/mailgun", self.mailgun, methods=["POST"]),
            Route("/webhooks/sendgrid", self.sendgrid, methods=["POST"]),
        ]

    # -- shared ------------------------------------------------------------------------

    def _store(self, reports: list[Report], nonce: Nonce | None) -> tuple[int, int]:
        now = self.clock()
        if self._settings is None:
            self._settings = intake_settings(self.config, self.db, now=now)
        new = dup = 0
        for report in reports:
            for event in record(self.db, report, self._settings, now=now, nonce=nonce):
                dup += event.duplicate
                new += not event.duplicate
        return new, dup

    async def _answer(
        self, provider: str, work: Callable[[], list[Report]], nonce: Nonce | None = None
    ) -> Response:
        try:
            reports = await run_in_threadpool(work)
            new, dup = await run_in_threadpool(self._store, reports, nonce)
        except WebhookAuthError as e:
            log.warning("webhook %s refused: %s", provider, e)
            return PlainTextResponse("forbidden\n", status_code=403)
        except InputError as e:
            return PlainTextResponse(f"bad request: {e}\n", status_code=400)
        except StoreError as e:
            log.error("webhook %s: not recorded: %s", provider, e)
            return PlainTextResponse("try again later\n", status_code=503)
        except KabarfeedError as e:
            log.error("webhook %s: %s", provider, e)
            return PlainTextResponse("try again later\n", status_code=503)
        return JSONResponse({"recorded": new, "duplicates": dup})

    @staticmethod
    def _json_or_none(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            return None

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as e:
            raise InputError("the body is not JSON") from e

    # -- SES through SNS -----------------------------------------------------------------

    def _fetch(self, request: Request) -> Fetch:
        injected = getattr(request.app.state, "sns_fetch", None)
        return injected if callable(injected) else fetch_https

    def _cert(self, fetch: Fetch) -> Fetch:
        def cached(url: str) -> bytes:
            if url not in self._certs:
                self._certs[url] = fetch(url)
            return self._certs[url]

        return cached

    async def ses(self, request: Request) -> Response:
        """An SNS message carrying an SES notification (or a subscription handshake)."""
        if not self.bounces.ses_topic_arns:
            return PlainTextResponse("not found\n", status_code=404)
        body = await request.body()
        fetch = self._fetch(request)

        def work() -> list[Report]:
            message = self._json(body)
            if not isinstance(message, dict):
                raise InputError("an SNS message is a JSON object")
            providers.verify_sns(message, self._cert(fetch))
            if message.get("TopicArn") not in self.bounces.ses_topic_arns:
                raise WebhookAuthError(f"topic {message.get('TopicArn')!r} is not configured")
            kind = message.get("Type")
            if kind == "SubscriptionConfirmation":
                url = str(message.get("SubscribeURL", ""))
                providers.check_sns_url(url)
                try:
                    fetch(url)
                except (httpx.HTTPError, ValueError) as e:
                    raise StoreError(f"cannot confirm the SNS subscription: {e}") from e
                log.info("SNS subscription to %s confirmed", message.get("TopicArn"))
                return []
            if kind != "Notification":
                return []
            inner = self._json(str(message.get("Message", "")).encode())
            if not isinstance(inner, dict):
                raise InputError("the SNS Message is not a JSON object")
            return providers.ses_reports(inner, verified=True)

        return await self._answer("ses", work)

    # -- Postmark --------------------------------------------------------------------------

    def _postmark_allowed(self, request: Request) -> bool | None:
        """True/False, or None when Postmark is not configured."""
        b = self.bounces
        secret = b.postmark_path_secret.get_secret_value()
        user, password = b.postmark_user, b.postmark_password.get_secret_value()
        if "secret" in request.path_params:
            if not secret:
                return None
            return hmac.compare_digest(request.path_params["secret"], secret)
        if not (user and password):
            return None
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        got_user, _, got_password = given.partition(":")
        return hmac.compare_digest(got_user, user) & hmac.compare_digest(got_password, password)

    async def postmark(self, request: Request) -> Response:
        """A Postmark Bounce / SpamComplaint / SubscriptionChange webhook."""
        allowed = self._postmark_allowed(request)
        if allowed is None:
            return PlainTextResponse("not found\n", status_code=404)
        if not allowed:
            return PlainTextResponse(
                "unauthorized\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="kabarfeed webhooks"'},
            )
        body = await request.body()

        def work() -> list[Report]:
            payload = self._json(body)
            if not isinstance(payload, dict):
                raise InputError("a Postmark webhook is a JSON object")
            return providers.postmark_reports(payload)

        return await self._answer("postmark", work)

    # -- Mailgun ----------------------------------------------------------------------------

    async def mailgun(self, request: Request) -> Response:
        """A Mailgun webhook (JSON with ``signature`` and ``event-data``)."""
        key = self.bounces.mailgun_signing_key.get_secret_value()
        if not key:
            return PlainTextResponse("not found\n", status_code=404)
        body = await request.body()
        max_age = self.bounces.webhook_max_age
        payload = self._json_or_none(body)
        signature = payload.get("signature") if isinstance(payload, dict) else None
        token = str(signature.get("token", "")) if isinstance(signature, dict) else ""
        # Remembered in the event's own transaction: a replay stores nothing,
        # and a store failure (503) leaves the token usable for the retry.
        nonce = Nonce("mailgun:" + token, max_age * 2)

        def unseen(value: str) -> bool:
            with self.db.connect() as conn:
                return not seen_nonce(conn, "mailgun:" + value)

        def work() -> list[Report]:
            if not isinstance(payload, dict) or not isinstance(signature, dict):
                raise WebhookAuthError("no Mailgun signature")
            providers.verify_mailgun(
                signature,
                key.encode(),
                now=self.clock(),
                max_age=max_age,
                first_use=unseen,
            )
            return providers.mailgun_reports(payload)

        return await self._answer("mailgun", work, nonce)

    # -- SendGrid ---------------------------------------------------------------------------

    async def sendgrid(self, request: Request) -> Response:
        """A SendGrid Event Webhook batch, ECDSA-signed."""
        if self._sendgrid_key is None:
            return PlainTextResponse("not found\n", status_code=404)
        key = self._sendgrid_key
        body = await request.body()
        signature = request.headers.get("x-twilio-email-event-webhook-signature", "")
        timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp", "")

        def work() -> list[Report]:
            providers.verify_sendgrid(
                key,
                signature,
                timestamp,
                body,
                now=self.clock(),
                max_age=self.bounces.webhook_max_age,
            )
            return providers.sendgrid_reports(self._json(body))

        return await self._answer("sendgrid", work)


def webhook_routes(config: Config, db: Database, *, clock: Clock) -> list[BaseRoute]:
    """The ``/webhooks/…`` routes for ``create_app``."""
    return Webhooks(config, db, clock).routes()
