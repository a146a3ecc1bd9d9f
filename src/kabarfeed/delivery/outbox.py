"""Pure outbox decisions: what a send result does to a delivery row.

Nothing here touches the database, the network or the real clock; the engine
passes ``now`` and a random source in, so every rule is unit-testable.

State machine (one row per edition)::

    queued ──claim──► sending ──accepted──► sent
                        │  ├──temporary (4xx), attempts left──► deferred ──due──► sending
                        │  ├──temporary, attempts exhausted──► failed
                        │  ├──permanent (5xx)──► failed
                        │  ├──subscriber gone / empty──► skipped
                        │  ├──no reply to the final dot──► unknown ──retry due──► sending
                        │  │                                 (retries used up: stays for an admin)
                        │  └──connection fault / crash──► queued (never the recipient's fault)

An *unknown* outcome is a timeout or a dropped connection after the whole
message, final dot included, was handed to the network: the server may have
accepted it. It is retried ``unknown_retries`` times (default once) after
``unknown_retry_after`` (default 30 minutes), with the same Message-ID so a
receiver that de-duplicates drops the copy; after that the row stays
``unknown`` until an admin runs ``kabarfeed deliveries retry --status unknown``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from kabarfeed.models import DeliveryState

Rand = Callable[[], float]
"""Returns a float in [0, 1) (``random.random``; a constant in tests)."""


class ResultKind(enum.StrEnum):
    """How a transport attempt ended, from the outbox's point of view."""

    ACCEPTED = "accepted"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    CONNECTION = "connection"
    UNKNOWN = "unknown"
    """No reply after the final dot: the server may or may not have the message."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of handing one message to a transport.

    ``hard_bounce`` is true when the recipient address itself was refused
    permanently (5xx to RCPT), which counts towards the subscriber's bounces.
    """

    kind: ResultKind
    code: int | None = None
    reply: str = ""
    hard_bounce: bool = False

    @classmethod
    def accepted(cls, code: int = 250, reply: str = "OK") -> SendResult:
        """A message the server took responsibility for."""
        return cls(ResultKind.ACCEPTED, code, reply)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently temporary failures are retried."""

    max_attempts: int
    retry_base: timedelta
    retry_max: timedelta
    jitter: float = 0.2
    unknown_retries: int = 1
    """How many times an unknown outcome is sent again before an admin must decide."""
    unknown_retry_after: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Decision:
    """The row's next state and bookkeeping after one attempt."""

    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = None
    code: int | None = None
    reply: str = ""
    sent: bool = False
    bounce: bool = False
    unknowns: int = 0
    """Unknown outcomes of this row so far (this attempt included)."""


def backoff(attempts: int, policy: RetryPolicy, rand: Rand) -> timedelta:
    """``retry_base * 2**(attempts-1)`` capped at ``retry_max``, with +/- jitter.

    Jitter spreads retries of many recipients deferred at the same moment
    (one greylisting server) so they do not come back as one burst; the cap
    holds after jitter too.
    """
    exponent = max(attempts - 1, 0)
    base = policy.retry_base.total_seconds() * (2.0 ** min(exponent, 62))
    capped = min(base, policy.retry_max.total_seconds())
    spread = 1.0 + policy.jitter * (2.0 * rand() - 1.0)
    return timedelta(seconds=min(capped * spread, policy.retry_max.total_seconds()))


def decide(
    result: SendResult,
    attempts_before: int,
    now: datetime,
    policy: RetryPolicy,
    rand: Rand,
    *,
    unknowns_before: int = 0,
) -> Decision:
    """The decision for a row that had ``attempts_before`` attempts (``unknowns_before``
    of them unknown outcomes) and got ``result``.

    Connection faults do not count as an attempt: the message goes back to
    ``queued`` untouched, because nothing is known about the recipient.
    """
    if result.kind is ResultKind.CONNECTION:
        return Decision(
            DeliveryState.QUEUED,
            attempts_before,
            None,
            result.code,
            result.reply,
            unknowns=unknowns_before,
        )
    attempts = attempts_before + 1
    if result.kind is ResultKind.UNKNOWN:
        return _unknown(result, attempts, unknowns_before + 1, now, policy)
    if result.kind is ResultKind.ACCEPTED:
        return Decision(
            DeliveryState.SENT,
            attempts,
            None,
            result.code,
            result.reply,
            sent=True,
            unknowns=unknowns_before,
        )
    if result.kind is ResultKind.PERMANENT:
        return Decision(
            DeliveryState.FAILED,
            attempts,
            None,
            result.code,
            result.reply,
            bounce=result.hard_bounce,
            unknowns=unknowns_before,
        )
    if attempts >= policy.max_attempts:
        return Decision(
            DeliveryState.FAILED,
            attempts,
            None,
            result.code,
            result.reply,
            unknowns=unknowns_before,
        )
    retry_at = now + backoff(attempts, policy, rand)
    return Decision(
        DeliveryState.DEFERRED,
        attempts,
        retry_at,
        result.code,
        result.reply,
        unknowns=unknowns_before,
    )


def _unknown(
    result: SendResult, attempts: int, unknowns: int, now: datetime, policy: RetryPolicy
) -> Decision:
    """``unknown``, due again after ``unknown_retry_after`` while retries are left,
    else parked (no next attempt) for an admin."""
    retry = unknowns <= policy.unknown_retries
    when = now + policy.unknown_retry_after if retry else None
    plan = (
        f"sent again after {policy.unknown_retry_after}"
        if retry
        else "left for an admin: kabarfeed deliveries retry --status unknown"
    )
    reply = f"unknown outcome ({result.reply}); {plan}"
    return Decision(DeliveryState.UNKNOWN, attempts, when, result.code, reply, unknowns=unknowns)


def skip(attempts_before: int, reason: str) -> Decision:
    """A row that will not be sent (subscriber left, edition empty)."""
    return Decision(DeliveryState.SKIPPED, attempts_before, None, None, reason)


def lease_expired(lease_until: datetime | None, now: datetime) -> bool:
    """Whether a ``sending`` row's claim has run out (its worker is gone)."""
    return lease_until is None or lease_until <= now
