"""The rhythm on the web: the subscribe and preferences forms offer daily or
weekly on a chosen day; the choice is stored, shown back, and a forged value
is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from kabarfeed.store import Database
from tests.conftest import ConfigFactory
from tests.test_web_pages import Web, _make_web, csrf_of, subscribe


@pytest.fixture
def web(make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path) -> Web:
    return _make_web(make_config, db, fixed_now, tmp_path, "subscribe_per_ip_per_hour = 1000")


def test_sign_up_weekly_then_change_to_daily_on_the_preferences_page(web: Web) -> None:
    form = web.client.get("/subscribe").text
    assert '<select id="field-frequency" name="frequency">' in form
    assert '<option value="daily" selected>Setiap hari</option>' in form
    assert '<option value="weekly-4">Sepekan sekali, hari Jumat</option>' in form
    status, _ = subscribe(web, "ani@example.com", frequency="weekly-4")
    assert status == 200
    sub = web.subscriber("ani@example.com")
    assert sub is not None and (sub.frequency, sub.weekly_day) == ("weekly", 4)

    page = web.client.get(f"/preferences/{sub.token}")
    assert '<option value="weekly-4" selected>' in page.text
    data = {
        "csrf": csrf_of(page.text),
        "regions": ["balikpapan"],
        "send_at": "06:00",
        "timezone": "Asia/Makassar",
        "language": "en",
        "frequency": "daily",
    }
    saved = web.client.post(f"/preferences/{sub.token}", data=data, follow_redirects=False)
    assert saved.status_code == 303
    after = web.subscriber("ani@example.com")
    assert after is not None and after.frequency == "daily"
    assert after.frequency_since == web.clock.now
    shown = web.client.get(f"/preferences/{sub.token}").text
    assert '<option value="daily" selected>Every day</option>' in shown

    forged = dict(data, csrf=csrf_of(shown), frequency="weekly-9")
    refused = web.client.post(f"/preferences/{sub.token}", data=forged)
    assert refused.status_code == 400
    kept = web.subscriber("ani@example.com")
    assert kept is not None and kept.frequency == "daily"
