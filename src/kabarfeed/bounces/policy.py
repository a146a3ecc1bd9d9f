"""What to do with a subscriber after an event. Pure; the caller stores it.

Hard bounce: ``bounced`` at once. Soft bounce: counted per subscriber over
``soft_window``; the ``soft_threshold``-th in the window makes them
``bounced``. Complaint: ``unsubscribed`` (reason ``complaint``) and the address
suppressed. Provider unsubscribe: ``unsubscribed``. Delays, auto-replies and
unknown reports change nothing. Untrusted attributions are never acted on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from kabarfeed.bounces.model import EventKind
from kabarfeed.models import SubscriberStatus


class Verdict(enum.StrEnum):
    """The status change an event calls for."""

    NONE = "none"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """``[bounces] soft_threshold`` / ``soft_window``."""

    soft_threshold: int = 5
    soft_window: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict, whether to suppress the address, and a line for the event row."""

    verdict: Verdict
    suppress: bool
    note: str


_MAILED = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


def decide(
    kind: EventKind,
    status: SubscriberStatus | None,
    *,
    trusted: bool,
    soft_in_window: int,
    settings: PolicySettings,
) -> Decision:
    """The decision for one event. ``soft_in_window`` counts this subscriber's
    soft bounces inside the window, this one included."""
    if not trusted or status is None:
        return Decision(Verdict.NONE, False, "not acted on: unattributed")
    if kind is EventKind.HARD:
        if status in _MAILED:
            return Decision(Verdict.BOUNCE, False, "bounced: hard bounce")
        return Decision(Verdict.NONE, False, f"already {status.value}")
    if kind is EventKind.SOFT:
        counted = f"soft bounce {soft_in_window}/{settings.soft_threshold}"
        if soft_in_window >= settings.soft_threshold and status in _MAILED:
            return Decision(Verdict.BOUNCE, False, f"bounced: {counted}")
        return Decision(Verdict.NONE, False, counted)
    if kind is EventKind.COMPLAINT:
        if status not in _MAILED:
            return Decision(Verdict.NONE, True, f"suppressed: complaint (already {status.value})")
        return Decision(Verdict.UNSUBSCRIBE, True, "unsubscribed: complaint")
    if kind is EventKind.UNSUBSCRIBE:
        if status is SubscriberStatus.UNSUBSCRIBED:
            return Decision(Verdict.NONE, False, "already unsubscribed")
        return Decision(Verdict.UNSUBSCRIBE, False, "unsubscribed: provider")
    return Decision(Verdict.NONE, False, f"ignored: {kind.value}")
