"""Digest preview in the console: the edition exactly as a chosen subscriber
would get it next, or as a reader with a chosen region/category mix would,
in HTML and text. Nothing is recorded or sent."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage

from kabarfeed.config import Config
from kabarfeed.digest.preview import build_preview
from kabarfeed.digest.render import DigestRenderer
from kabarfeed.errors import DeliveryError, NotFoundError
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as store
from kabarfeed.subscribers import check_categories, check_regions, default_timezone

PREVIEW_ADDRESS = "pratinjau@example.invalid"


@dataclass(frozen=True, slots=True)
class RenderedPreview:
    """What the preview page shows."""

    subscriber: Subscriber
    subject: str
    html: str
    text: str
    articles: int
    total_matching: int
    local_date: str


def for_subscriber(db: Database, config: Config, subscriber_id: int) -> Subscriber:
    """The stored subscriber; :class:`NotFoundError` when unknown."""
    with db.connect() as conn:
        sub = store.get(conn, subscriber_id)
    if sub is None:
        raise NotFoundError(f"no subscriber #{subscriber_id}")
    return sub


def for_mix(
    config: Config,
    regions: tuple[str, ...],
    categories: tuple[str, ...],
    language: str,
    now: datetime,
) -> Subscriber:
    """A reader who never got an edition, with these choices (validated)."""
    taxonomy = config.taxonomy
    regions = check_regions(regions, taxonomy)
    categories = check_categories(categories, taxonomy)
    return Subscriber(
        id=0,
        email=PREVIEW_ADDRESS,
        token="preview",  # noqa: S106 - not a secret: links in a preview lead nowhere
        timezone=default_timezone(regions, taxonomy, config.site.timezone),
        send_at=config.digest.send_at,
        language=language if language in ("id", "en") else config.site.language,
        status=SubscriberStatus.ACTIVE,
        created_at=now,
        regions=regions,
        categories=categories,
    )


def render(db: Database, config: Config, sub: Subscriber, *, now: datetime) -> RenderedPreview:
    """The next edition of ``sub`` as built at ``now``, rendered."""
    built = build_preview(db, config, sub, now=now)
    renderer = DigestRenderer(config, clock=lambda: now)
    message = email.message_from_bytes(
        renderer.render_one(built.edition).data, policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return RenderedPreview(
        sub,
        str(message["Subject"] or ""),
        renderer.render_html(built.edition),
        text,
        len(built.selection.articles),
        built.selection.total_matching,
        built.edition.local_date.isoformat(),
    )


def test_message(db: Database, config: Config, sub: Subscriber, to: str, *, now: datetime) -> bytes:
    """``sub``'s next edition as a message addressed to ``to`` (the editor)."""
    built = build_preview(db, config, sub, now=now)
    edition = replace(built.edition, subscriber=replace(sub, email=to))
    return DigestRenderer(config, clock=lambda: now).render_one(edition).data


async def send_test(config: Config, to: str, data: bytes) -> str:
    """Hand a test edition to the configured transport (SMTP, or the Maildir);
    nothing is recorded. Returns the reply; :class:`DeliveryError` when refused."""
    from kabarfeed.delivery.factory import envelope_sender, make_transport
    from kabarfeed.delivery.outbox import ResultKind

    transport = make_transport(config)
    try:
        result = await transport.send(envelope_sender(config), to, data)
    finally:
        await transport.close()
    if result.kind is not ResultKind.ACCEPTED:
        raise DeliveryError(f"test edition to {to} refused: {result.code or ''} {result.reply}")
    return str(result.reply or "accepted")
