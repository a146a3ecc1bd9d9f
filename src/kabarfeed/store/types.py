"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out.

    Stored as naive UTC (SQLite has no time zones; on PostgreSQL this is
    ``timestamp without time zone`` holding UTC), so comparisons and ordering
    are identical on both databases. Naive input is refused: every time in
    kabarfeed is aware.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"naive or non-datetime value stored: {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else utc_of(value)


def utc_of(value: str | datetime) -> datetime:
    """A stored time as the driver returns it (SQLite: ISO text; PostgreSQL:
    a naive ``datetime``) -> an aware UTC ``datetime``. For code that reads
    :class:`UTCDateTime` columns straight from the DB-API cursor."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
