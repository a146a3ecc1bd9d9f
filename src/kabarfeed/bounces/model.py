"""The frozen values the bounce pipeline hands from stage to stage."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventKind(enum.StrEnum):
    """What a report says about one recipient."""

    HARD = "hard"
    SOFT = "soft"
    DELAYED = "delayed"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTOREPLY = "autoreply"
    UNKNOWN = "unknown"


class EventSource(enum.StrEnum):
    """Where a report came from."""

    DSN = "dsn"
    ARF = "arf"
    MAIL = "mail"
    WEBHOOK = "webhook"
    SMTP = "smtp"


class Attribution(enum.StrEnum):
    """How an event was tied to a delivery or subscriber.

    Only ``VERP``, ``MESSAGE_ID``, ``LIST_TOKEN`` and ``SMTP`` are proof that
    the report concerns our message (each carries a secret or comes from our own
    SMTP dialogue); ``PROVIDER`` is a recipient address named by a webhook whose
    signature proves it comes from our own provider account; ``FORGED`` and
    ``NONE`` are never acted on.
    """

    VERP = "verp"
    MESSAGE_ID = "message-id"
    LIST_TOKEN = "list-token"  # noqa: S105 (a label, not a secret)
    SMTP = "smtp"
    PROVIDER = "provider"
    FORGED = "forged"
    NONE = "none"

    @property
    def trusted(self) -> bool:
        """Whether the policy may act on an event attributed this way."""
        return self in (
            Attribution.VERP,
            Attribution.MESSAGE_ID,
            Attribution.LIST_TOKEN,
            Attribution.SMTP,
            Attribution.PROVIDER,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One recipient's fate according to a report."""

    kind: EventKind
    recipient: str | None = None
    status: str | None = None
    diagnostic: str | None = None
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """A parsed report: its findings and every clue to whose mail it concerns.

    ``dedup_key`` is stable for the same report (its Message-ID, a provider
    event id, or a hash of its bytes); ``return_paths`` are the addresses the
    report was sent to (VERP candidates); ``original_message_id`` and
    ``list_tokens`` come from the quoted original message.
    """

    source: EventSource
    dedup_key: str
    findings: tuple[Finding, ...]
    raw_ref: str = ""
    return_paths: tuple[str, ...] = ()
    original_message_id: str | None = None
    list_tokens: tuple[str, ...] = ()
    provider: str | None = None
    provider_verified: bool = False
    """The report came from our own provider account (a verified webhook): its
    recipient address alone may attribute it, when nothing better does."""


@dataclass(frozen=True, slots=True)
class Target:
    """Who an event concerns, and how we know."""

    attribution: Attribution
    delivery_id: int | None = None
    subscriber_id: int | None = None
    local_date: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as recorded (``duplicate``: it was already there, nothing changed)."""

    id: int
    kind: EventKind
    target: Target
    recipient: str | None
    action: str | None
    duplicate: bool = False
