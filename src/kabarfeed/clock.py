"""The real clock. Everything else takes a :data:`kabarfeed.models.Clock`."""

from __future__ import annotations

from datetime import UTC, datetime


def system_clock() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)
