"""``kabarfeed status`` counts subscribers per frequency and lists the next
weekly editions per zone, send time and weekday."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from kabarfeed.cli import main
from kabarfeed.status import gather_status
from kabarfeed.store import Database
from tests.conftest import ConfigFactory


def test_status_counts_frequencies_and_lists_the_next_weekly_editions(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    config = make_config()
    cli = ["--config", str(tmp_path / "config.toml")]
    runner = CliRunner()
    for args in (
        ["a@example.id", "--tz", "Asia/Jakarta"],
        ["b@example.id", "--tz", "Asia/Jayapura", "--frequency", "weekly", "--weekday", "senin"],
        ["c@example.id", "--tz", "Asia/Jayapura", "--frequency", "weekly", "--weekday", "monday"],
        ["d@example.id", "--tz", "Asia/Jakarta", "--frequency", "weekly", "--weekday", "sunday"],
    ):
        done = runner.invoke(main, [*cli, "subscribers", "add", *args])
        assert done.exit_code == 0, done.output
    # Sunday 16 Nov 2025, 22:00 UTC: Monday 07:00 in Jayapura (its 06:00 has passed, so
    # next Monday), Monday 05:00 in Jakarta (Sunday's 06:00 WIB passed yesterday)
    now = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)
    report = gather_status(config, db, now, config_path=tmp_path / "config.toml")
    assert report.frequencies == {"daily": 1, "weekly": 3}
    assert [
        (w["timezone"], w["weekday"], w["subscribers"], w["local_date"]) for w in report.weekly
    ] == [
        ("Asia/Jakarta", "sunday", 1, "2025-11-23"),
        ("Asia/Jayapura", "monday", 2, "2025-11-24"),
    ]
    assert report.weekly[0]["at"] == datetime(2025, 11, 22, 23, 0, tzinfo=UTC)
    as_json = json.loads(runner.invoke(main, [*cli, "status", "--json"]).output)
    assert as_json["frequencies"] == {"daily": 1, "weekly": 3}
    text = runner.invoke(main, [*cli, "status"]).output
    assert "1 daily, 3 weekly" in text and "next weekly editions" in text
