"""Choosing the rhythm from the command line and in CSV: ``subscribers add
--frequency weekly --weekday``, ``subscribers frequency``, import and a
re-importable export."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from kabarfeed.cli import main
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from tests.conftest import ConfigFactory


def _cli(tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_add_change_import_and_export(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    make_config()
    _cli(
        tmp_path,
        "subscribers",
        "add",
        "a@example.id",
        "--frequency",
        "weekly",
        "--weekday",
        "kamis",
    )
    _cli(tmp_path, "subscribers", "add", "b@example.id")
    listed = json.loads(_cli(tmp_path, "subscribers", "list", "--json"))
    assert {s["email"]: (s["frequency"], s["weekday"]) for s in listed} == {
        "a@example.id": ("weekly", "thursday"),
        "b@example.id": ("daily", None),
    }
    out = _cli(tmp_path, "subscribers", "frequency", "b@example.id", "weekly", "--weekday", "sat")
    assert "weekly on saturday" in out
    with db.connect() as conn:
        b = sub_store.get_by_email(conn, "b@example.id")
        a = sub_store.get_by_email(conn, "a@example.id")
    assert b is not None and b.frequency == "weekly" and b.weekly_day == 5
    assert b.frequency_since is not None  # a real change is stamped
    assert a is not None and a.frequency_since is None
    _cli(tmp_path, "subscribers", "frequency", "b@example.id", "weekly", "--weekday", "sun")
    with db.connect() as conn:
        again = sub_store.get_by_email(conn, "b@example.id")
    assert again is not None and again.weekly_day == 6
    assert again.frequency_since == b.frequency_since  # same frequency: not a change

    csv_in = tmp_path / "in.csv"
    csv_in.write_text(
        "email,frequency,weekday\n"
        "c@example.id,mingguan,Jumat\n"
        "d@example.id,daily,\n"
        "e@example.id,sometimes,\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "config.toml"), "subscribers", "import", str(csv_in)]
    )
    assert "in.csv:4:" in result.output and "sometimes" in result.output
    with db.connect() as conn:
        c = sub_store.get_by_email(conn, "c@example.id")
    assert c is not None and (c.frequency, c.weekly_day) == ("weekly", 4)

    exported = tmp_path / "out.csv"
    _cli(tmp_path, "subscribers", "export", str(exported))
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",frequency,weekday,breaking")
    assert any(
        line.startswith("c@example.id,") and line.endswith(",weekly,friday,no") for line in lines
    )
