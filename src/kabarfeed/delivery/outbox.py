"""Pure outbox decisions: what a send result does to a delivery row.

Nothing here touches the database, the network or the real clock; the engine
passes ``now`` and a random source in, so every rule is unit-testable.

State machine (one row per edition)::

    queued ──claim──► sending ──accepted──► sent
                        │  ├──temporary (4xx), attempts left──► deferred ──due──► sending
                        │  ├──temporary, attempts exhausted──► failed
                        │  ├──permanent (5xx)──► failed
                        │  ├──subscriber gone / empty──► skipped
                        │  └──connection fault / crash──► queued (never the recipient's fault)
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
    result: SendResult, attempts_before: int, now: datetime, policy: RetryPolicy, rand: Rand
) -> Decision:
    """The decision for a row that had ``attempts_before`` attempts and got ``result``.

    Connection faults do not count as an attempt: the message goes back to
    ``queued`` untouched, because nothing is known about the recipient.
    """
    if result.kind is ResultKind.CONNECTION:
        return Decision(DeliveryState.QUEUED, attempts_before, None, result.code, result.reply)
    attempts = attempts_before + 1
    if result.kind is ResultKind.ACCEPTED:
        return Decision(DeliveryState.SENT, attempts, None, result.code, result.reply, sent=True)
    if result.kind is ResultKind.PERMANENT:
        return Decision(
            DeliveryState.FAILED,
            attempts,
            None,
            result.code,
            result.reply,
            bounce=result.hard_bounce,
        )
    if attempts >= policy.max_attempts:
        return Decision(DeliveryState.FAILED, attempts, None, result.code, result.reply)
    retry_at = now + backoff(attempts, policy, rand)
    return Decision(DeliveryState.DEFERRED, attempts, retry_at, result.code, result.reply)


def skip(attempts_before: int, reason: str) -> Decision:
    """A row that will not be sent (subscriber left, edition empty)."""
    return Decision(DeliveryState.SKIPPED, attempts_before, None, None, reason)


def lease_expired(lease_until: datetime | None, now: datetime) -> bool:
    """Whether a ``sending`` row's claim has run out (its worker is gone)."""
    return lease_until is None or lease_until <= now
