"""Subscription use cases behind the pages: sign up (double opt-in), confirm,
change preferences, unsubscribe. Deciders are pure; each use case is one
transaction; the caller sends any mail after the commit.

Sign-up never reveals whether an address exists: every branch ends on the
same page. What differs is only what happens behind it:

========================  =============================================  ===========
existing subscriber       change                                         mail
========================  =============================================  ===========
none                      create ``pending`` with consent                confirmation
``pending``               new preferences and consent                    confirmation
``unsubscribed``/bounced  back to ``pending``, new preferences, consent  confirmation
``active``                nothing (a stranger must not change them)      notice
========================  =============================================  ===========

and a mail goes out at most once per ``resend_interval`` per address.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from kabarfeed.bounces.store import lift_suppression
from kabarfeed.errors import InputError, StoreError
from kabarfeed.models import Consent, Subscriber, SubscriberStatus
from kabarfeed.store import Database, welcomes
from kabarfeed.store import subscribers as store
from kabarfeed.store.schema import subscribers as table
from kabarfeed.subscribers import SubscriberDraft


class MailKind(enum.StrEnum):
    """Which mail a sign-up sends."""

    CONFIRM = "confirm"
    NOTICE = "notice"


class Change(enum.StrEnum):
    """What a sign-up does to the stored subscriber."""

    CREATE = "create"
    REFRESH = "refresh"
    REOPEN = "reopen"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Decision:
    """The pure outcome of :func:`decide`."""

    change: Change
    mail: MailKind | None


@dataclass(frozen=True, slots=True)
class SignupResult:
    """What :func:`sign_up` did; ``mail`` is to be sent to ``subscriber``."""

    subscriber: Subscriber | None
    mail: MailKind | None
    previous_sent: datetime | None = None


def may_send(last_sent: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether another mail may go to this address now."""
    return last_sent is None or now - last_sent >= interval


def decide(
    existing: Subscriber | None, last_sent: datetime | None, now: datetime, interval: timedelta
) -> Decision:
    """What a sign-up does for an address in this state (see the module table)."""
    allowed = may_send(last_sent, now, interval)
    if existing is None:
        return Decision(Change.CREATE, MailKind.CONFIRM)
    if existing.status is SubscriberStatus.ACTIVE:
        return Decision(Change.NONE, MailKind.NOTICE if allowed else None)
    change = Change.REFRESH if existing.status is SubscriberStatus.PENDING else Change.REOPEN
    return Decision(change, MailKind.CONFIRM if allowed else None)


# -- small queries on columns the subscriber store does not manage ------------------


def confirm_sent_at(conn: Connection, subscriber_id: int) -> datetime | None:
    """When the last confirmation (or notice) mail went to this subscriber."""
    query = select(table.c.confirm_sent_at).where(table.c.id == subscriber_id)
    value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


def mark_sent(conn: Connection, subscriber_id: int, when: datetime | None) -> None:
    """Record (or, after a failed send, restore) the last mail time."""
    conn.execute(update(table).where(table.c.id == subscriber_id).values(confirm_sent_at=when))


def record_consent(conn: Connection, subscriber_id: int, consent: Consent) -> None:
    """Replace the stored proof of consent (a new sign-up is a new consent)."""
    conn.execute(
        update(table)
        .where(table.c.id == subscriber_id)
        .values(
            consent_at=consent.at,
            consent_method=consent.method,
            consent_ip=consent.ip,
            consent_user_agent=(consent.user_agent or "")[:500] or None,
            consent_version=consent.wording_version,
        )
    )


# -- use cases -------------------------------------------------------------------------


def _apply(
    conn: Connection,
    existing: Subscriber | None,
    decision: Decision,
    draft: SubscriberDraft,
    now: datetime,
) -> Subscriber | None:
    if decision.change is Change.CREATE:
        return store.add(conn, replace(draft, status=SubscriberStatus.PENDING), now=now)
    if existing is None or decision.change is Change.NONE:
        return existing
    if decision.change is Change.REOPEN:
        store.set_status(conn, existing.id, SubscriberStatus.PENDING, now=now)
    assert draft.consent is not None
    record_consent(conn, existing.id, draft.consent)
    return store.update_preferences(
        conn, existing.id, replace(draft, email=existing.email), now=now
    )


def sign_up(
    db: Database, draft: SubscriberDraft, *, now: datetime, resend_interval: timedelta
) -> SignupResult:
    """Record a sign-up (``draft`` validated, defaulted, with consent); decide the mail.

    A concurrent sign-up of the same new address makes the insert fail; that
    request then does nothing (the other one sends the mail).
    """
    try:
        with db.begin() as conn:
            existing = store.get_by_email(conn, draft.email)
            last = confirm_sent_at(conn, existing.id) if existing else None
            decision = decide(existing, last, now, resend_interval)
            sub = _apply(conn, existing, decision, draft, now)
            if sub is not None and decision.mail is not None:
                mark_sent(conn, sub.id, now)
            return SignupResult(sub, decision.mail, last)
    except (StoreError, InputError):
        with db.connect() as conn:
            if store.get_by_email(conn, draft.email) is None:
                raise
        return SignupResult(None, None)


def resend(
    db: Database, subscriber_token: str, *, now: datetime, resend_interval: timedelta
) -> SignupResult:
    """A new confirmation mail for a pending subscriber (rate-limited)."""
    with db.begin() as conn:
        sub = store.get_by_token(conn, subscriber_token)
        if sub is None or sub.status is not SubscriberStatus.PENDING:
            return SignupResult(sub, None)
        last = confirm_sent_at(conn, sub.id)
        if not may_send(last, now, resend_interval):
            return SignupResult(sub, None, last)
        mark_sent(conn, sub.id, now)
        return SignupResult(sub, MailKind.CONFIRM, last)


def restore_sent(db: Database, subscriber_id: int, previous: datetime | None) -> None:
    """Undo :func:`mark_sent` after the mail could not be handed over."""
    with db.begin() as conn:
        mark_sent(conn, subscriber_id, previous)


def confirm(db: Database, subscriber_token: str, *, now: datetime) -> tuple[Subscriber, bool]:
    """Activate a pending subscriber; return them and whether this call activated them.
    Activation promises a welcome edition (built by the service, ``[digest] welcome``).

    :class:`LookupError` when the token is unknown.
    """
    with db.begin() as conn:
        sub = store.get_by_token(conn, subscriber_token)
        if sub is None:
            raise LookupError(subscriber_token)
        if sub.status is not SubscriberStatus.PENDING:
            return sub, False
        lift_suppression(conn, sub.email)  # a fresh double opt-in is the only way back
        welcomes.promise(conn, sub.id, now)
        return store.set_status(conn, sub.id, SubscriberStatus.ACTIVE, now=now), True


def unsubscribe(db: Database, subscriber_token: str, *, now: datetime) -> Subscriber:
    """Stop every future edition at once; idempotent (a second call changes nothing).

    :class:`LookupError` when the token is unknown.
    """
    with db.begin() as conn:
        sub = store.get_by_token(conn, subscriber_token)
        if sub is None:
            raise LookupError(subscriber_token)
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            return sub
        return store.set_status(conn, sub.id, SubscriberStatus.UNSUBSCRIBED, now=now)


def save_preferences(
    db: Database, subscriber_token: str, draft: SubscriberDraft, *, now: datetime
) -> Subscriber:
    """Store new preferences (validated ``draft``); :class:`LookupError` if unknown."""
    with db.begin() as conn:
        sub = store.get_by_token(conn, subscriber_token)
        if sub is None:
            raise LookupError(subscriber_token)
        return store.update_preferences(conn, sub.id, replace(draft, email=sub.email), now=now)


def find(db: Database, subscriber_token: str) -> Subscriber | None:
    """The subscriber of a link token, or ``None``."""
    with db.connect() as conn:
        return store.get_by_token(conn, subscriber_token)
