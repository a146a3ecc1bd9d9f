"""Send moments and due-ness across Indonesian time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from digest_support import subscriber
from kabarfeed.digest.schedule import (
    current_edition_date,
    is_due,
    is_too_late,
    local_date_for,
    send_moment,
)


def test_wit_six_am_is_2100_utc_the_previous_day() -> None:
    moment = send_moment("Asia/Jayapura", "06:00", date(2025, 11, 17))
    assert moment == datetime(2025, 11, 16, 21, 0, tzinfo=UTC)
    assert moment.tzinfo is UTC


def test_wib_and_wita_six_am() -> None:
    assert send_moment("Asia/Jakarta", "06:00", date(2025, 11, 17)) == datetime(
        2025, 11, 16, 23, 0, tzinfo=UTC
    )
    assert send_moment("Asia/Makassar", "06:30", date(2025, 11, 17)) == datetime(
        2025, 11, 16, 22, 30, tzinfo=UTC
    )


def test_local_date_crosses_midnight_by_zone() -> None:
    now = datetime(2025, 11, 16, 21, 30, tzinfo=UTC)
    assert local_date_for("Asia/Jayapura", now) == date(2025, 11, 17)
    assert local_date_for("Asia/Jakarta", now) == date(2025, 11, 17)
    assert local_date_for("UTC", now) == date(2025, 11, 16)


def test_is_due_exactly_at_send_time_and_not_before() -> None:
    wit = subscriber(timezone="Asia/Jayapura")
    day = date(2025, 11, 17)
    at = datetime(2025, 11, 16, 21, 0, tzinfo=UTC)
    assert is_due(wit, day, at)
    assert not is_due(wit, day, at - timedelta(seconds=1))
    wib = subscriber(timezone="Asia/Jakarta")
    assert not is_due(wib, day, at)  # WIB 06:00 is 23:00 UTC
    assert is_due(wib, day, datetime(2025, 11, 16, 23, 0, tzinfo=UTC))


def test_lateness_and_current_edition() -> None:
    sub = subscriber(timezone="Asia/Makassar")
    day = date(2025, 11, 17)
    send = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)
    assert not is_too_late(sub, day, send + timedelta(hours=6), timedelta(hours=6))
    assert is_too_late(sub, day, send + timedelta(hours=6, seconds=1), timedelta(hours=6))
    assert current_edition_date(sub, send - timedelta(minutes=1)) == date(2025, 11, 16)
    assert current_edition_date(sub, send) == day
