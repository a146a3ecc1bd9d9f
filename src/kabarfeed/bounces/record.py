"""Attribute a report's findings, store them once, and apply the policy, all in
the caller's transaction (so an event and its status change land together)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from kabarfeed.bounces import store, verp
from kabarfeed.bounces.model import (
    Attribution,
    EventKind,
    EventSource,
    Finding,
    Report,
    StoredEvent,
    Target,
)
from kabarfeed.bounces.parse import classify_code
from kabarfeed.bounces.policy import PolicySettings, Verdict, decide
from kabarfeed.models import SubscriberStatus
from kabarfeed.store import subscribers as subscriber_store

_ENHANCED_RE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class Keys:
    """What attribution needs: the bounce address VERP is built on and the HMAC key."""

    verp_base: str
    secret: bytes


_BOUNCES = (EventKind.HARD, EventKind.SOFT)


def attribute(conn: Connection, report: Report, keys: Keys) -> Target:
    """Whose mail ``report`` is about. A VERP address decides alone (a bad
    token makes the report ``forged``); without one, the original Message-ID,
    then a subscriber link token from the quoted ``List-Unsubscribe``."""
    candidates = list(report.return_paths)
    if keys.verp_base:
        for address in candidates:
            decoded = verp.decode(keys.verp_base, address, keys.secret)
            if decoded.state is verp.TokenState.FORGED:
                return Target(Attribution.FORGED)
            if decoded.state is verp.TokenState.VALID and decoded.delivery_id is not None:
                found = store.delivery_target(conn, decoded.delivery_id)
                if found is not None:
                    return Target(Attribution.VERP, decoded.delivery_id, *found)
    if report.original_message_id:
        hit = store.delivery_by_message_id(conn, report.original_message_id)
        if hit is not None:
            return Target(Attribution.MESSAGE_ID, *hit)
    for token in report.list_tokens:
        subscriber_id = store.subscriber_by_token(conn, token)
        if subscriber_id is not None:
            return Target(Attribution.LIST_TOKEN, None, subscriber_id)
    recipients = {f.recipient for f in report.findings if f.recipient}
    if report.provider_verified and len(recipients) == 1:
        subscriber = subscriber_store.get_by_email(conn, recipients.pop())
        if subscriber is not None:
            return Target(Attribution.PROVIDER, None, subscriber.id)
    return Target(Attribution.NONE)


def event_key(report: Report, finding: Finding, index: int) -> str:
    """The dedup key of one finding: the same report ingested twice, same key."""
    if len(report.findings) == 1:
        return report.dedup_key[:200]
    part = f"{report.dedup_key}\x1f{index}\x1f{finding.recipient or ''}\x1f{finding.kind.value}"
    return "f:" + hashlib.sha256(part.encode()).hexdigest()[:48]


def record_report(
    conn: Connection,
    report: Report,
    keys: Keys,
    settings: PolicySettings,
    *,
    now: datetime,
    target: Target | None = None,
) -> list[StoredEvent]:
    """Store every finding of ``report`` (a duplicate is returned with
    ``duplicate=True`` and changes nothing) and act on the trusted ones."""
    where = target or attribute(conn, report, keys)
    out: list[StoredEvent] = []
    for index, finding in enumerate(report.findings):
        key = event_key(report, finding, index)
        existing = store.event_id_for(conn, key)
        if existing is not None:
            out.append(StoredEvent(existing, finding.kind, where, finding.recipient, None, True))
            continue
        out.append(_record_one(conn, report, finding, where, key, settings, now))
    return out


def _record_one(
    conn: Connection,
    report: Report,
    finding: Finding,
    target: Target,
    key: str,
    settings: PolicySettings,
    now: datetime,
) -> StoredEvent:
    subscriber = subscriber_store.get(conn, target.subscriber_id) if target.subscriber_id else None
    action = finding.action
    event_id = store.insert_event(
        conn,
        dedup_key=key,
        now=now,
        source=report.source,
        kind=finding.kind,
        target=target,
        provider=report.provider,
        recipient=finding.recipient,
        status_code=finding.status,
        diagnostic=finding.diagnostic,
        raw_ref=report.raw_ref,
        action=action,
    )
    soft = 0
    if subscriber is not None and finding.kind is EventKind.SOFT:
        soft = store.soft_in_window(conn, subscriber.id, now - settings.soft_window)
    decision = decide(
        finding.kind,
        subscriber.status if subscriber else None,
        trusted=target.attribution.trusted,
        soft_in_window=soft,
        settings=settings,
    )
    if subscriber is not None and target.attribution.trusted and finding.kind in _BOUNCES:
        store.count_bounce(conn, subscriber.id, now)
    if subscriber is not None and decision.verdict is Verdict.BOUNCE:
        subscriber_store.set_status(conn, subscriber.id, SubscriberStatus.BOUNCED, now=now)
    elif subscriber is not None and decision.verdict is Verdict.UNSUBSCRIBE:
        subscriber_store.set_status(conn, subscriber.id, SubscriberStatus.UNSUBSCRIBED, now=now)
    if subscriber is not None and decision.suppress:
        store.suppress(conn, subscriber.email, finding.kind.value, event_id=event_id, now=now)
    note = f"{action}; {decision.note}" if action else decision.note
    store.set_action(conn, event_id, note)
    return StoredEvent(event_id, finding.kind, target, finding.recipient, note)


def record_smtp_refusal(
    conn: Connection,
    *,
    delivery_id: int,
    subscriber_id: int,
    code: int | None,
    reply: str | None,
    attempt: int,
    settings: PolicySettings,
    now: datetime,
) -> StoredEvent:
    """A recipient refused during our own SMTP dialogue (5xx at RCPT), under the
    same policy as a DSN: an addressing failure (5.1.x) bounces at once, any
    other refusal counts as a soft bounce in the window."""
    text = " ".join((reply or "").split())[:1000] or None
    status = _enhanced(text) or (str(code) if code else None)
    kind = classify_code(status, text) if status else EventKind.HARD
    finding = Finding(kind, None, status, text, "refused at RCPT")
    report = Report(
        EventSource.SMTP,
        f"smtp:{delivery_id}:{attempt}",
        (finding,),
        raw_ref=f"delivery {delivery_id}, attempt {attempt}",
    )
    local_date = store.delivery_target(conn, delivery_id)
    target = Target(
        Attribution.SMTP, delivery_id, subscriber_id, local_date[1] if local_date else None
    )
    return record_report(conn, report, Keys("", b""), settings, now=now, target=target)[0]


def _enhanced(text: str | None) -> str | None:
    match = _ENHANCED_RE.search(text or "")
    return match[0] if match else None
