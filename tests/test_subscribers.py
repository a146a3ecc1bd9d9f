"""Subscriber rules, store queries and the ``subscribers`` CLI on a real database."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from kabarfeed.cli import main
from kabarfeed.config import Config
from kabarfeed.errors import InputError
from kabarfeed.models import Consent, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as store
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import (
    SubscriberDraft,
    new_token,
    normalize_email,
    parse_csv,
    validate_draft,
    with_defaults,
)

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)


def draft(config: Config, email: str, **kw: object) -> SubscriberDraft:
    return with_defaults(validate_draft(SubscriberDraft(email, **kw), config.taxonomy), config)  # type: ignore[arg-type]


def test_email_normalisation_and_tokens() -> None:
    assert normalize_email("  Budi@EXAMPLE.org ") == "Budi@example.org"
    with pytest.raises(InputError, match="not a valid email"):
        normalize_email("budi@")
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) == 32 for t in tokens)


def test_defaults_zone_from_first_region_else_site(make_config: Callable[..., Config]) -> None:
    config = make_config()
    assert draft(config, "a@b.id", regions=("jayapura", "balikpapan")).timezone == "Asia/Jayapura"
    assert draft(config, "a@b.id", regions=("surabaya",)).timezone == "Asia/Jakarta"
    plain = draft(config, "a@b.id")
    assert (plain.timezone, plain.send_at, plain.language) == ("Asia/Makassar", "06:00", "id")
    with pytest.raises(InputError, match=r'unknown region "atlantis" \(valid: .*balikpapan'):
        draft(config, "a@b.id", regions=("atlantis",))
    with pytest.raises(InputError, match="unknown category"):
        draft(config, "a@b.id", categories=("gosip",))


def test_store_round_trip_and_case_insensitive_uniqueness(
    db: Database,
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    consent = Consent(NOW, "web", ip="203.0.113.9", user_agent="UA", wording_version="2025-11")
    d = draft(
        config,
        "Ani@Example.org",
        name="Ani",
        regions=("samarinda", "balikpapan"),
        categories=("olahraga", "ekonomi"),
        consent=consent,
    )
    with db.begin() as conn:
        sub = store.add(conn, d, now=NOW)
    with db.connect() as conn:
        assert store.get_by_email(conn, "ani@example.ORG") == sub
        assert store.get_by_token(conn, sub.token) == sub
    assert sub.regions == ("samarinda", "balikpapan")  # order kept
    assert sub.categories == ("olahraga", "ekonomi")
    assert sub.consent == consent and sub.confirmed_at == NOW
    with pytest.raises(InputError, match="already"), db.begin() as conn:
        store.add(conn, draft(config, "ANI@example.org"), now=NOW)


def test_status_and_preferences(db: Database, make_config: Callable[..., Config]) -> None:
    config = make_config()
    with db.begin() as conn:
        sub = store.add(conn, draft(config, "a@b.id", regions=("balikpapan",)), now=NOW)
        later = NOW + timedelta(hours=1)
        gone = store.set_status(conn, sub.id, SubscriberStatus.UNSUBSCRIBED, now=later)
        changed = store.update_preferences(
            conn, sub.id, SubscriberDraft("a@b.id", regions=("papua",), send_at="07:15"), now=later
        )
    assert gone.status == SubscriberStatus.UNSUBSCRIBED and gone.unsubscribed_at == later
    assert changed.regions == ("papua",) and changed.send_at == "07:15"
    assert changed.categories == () and changed.token == sub.token


def test_iter_active_streams_in_keyset_batches(
    db: Database, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    with db.begin() as conn:
        for i in range(25):
            s = store.add(conn, draft(config, f"u{i}@b.id"), now=NOW)
            if i % 5 == 0:
                store.set_status(conn, s.id, SubscriberStatus.BOUNCED, now=NOW)
    batches = list(store.iter_active(db, batch_size=7))
    assert [len(b) for b in batches] == [7, 7, 6]
    ids = [s.id for b in batches for s in b]
    assert ids == sorted(ids) and len(set(ids)) == 20


def test_previous_cutoff_reads_recorded_editions(
    db: Database, make_config: Callable[..., Config]
) -> None:
    with db.begin() as conn:
        sub = store.add(conn, draft(make_config(), "a@b.id"), now=NOW)
        assert store.previous_cutoff(conn, sub.id) is None
        for day, cutoff in (
            ("2025-11-15", NOW - timedelta(days=2)),
            ("2025-11-16", NOW - timedelta(days=1)),
        ):
            conn.execute(
                insert(deliveries).values(
                    subscriber_id=sub.id,
                    local_date=day,
                    since_at=cutoff - timedelta(days=1),
                    cutoff_at=cutoff,
                    state="sent",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    with db.connect() as conn:
        assert store.previous_cutoff(conn, sub.id) == NOW - timedelta(days=1)
        assert store.previous_cutoff(
            conn, sub.id, before=NOW - timedelta(days=1)
        ) == NOW - timedelta(days=2)


CSV_TEXT = (
    "email,name,regions,categories,language,send_at\n"
    "ani@example.org,Ani,samarinda balikpapan,ekonomi,en,6:30\n"
    "not-an-address,,,,,\n"
    '"budi@example.org","Budi, S.Pd.",papua,,id,\n'
    "citra@example.org,,atlantis,,,\n"
    "ANI@example.org,Ani again,,,,\n"
    "dodi@example.org,,,,fr,\n"
    "eka@example.org,,,,,25:00\n"
)


def test_csv_parse_reports_each_bad_line(make_config: Callable[..., Config]) -> None:
    parsed = parse_csv(CSV_TEXT, make_config().taxonomy, now=NOW)
    assert [r.line for r in parsed.rows] == [2, 4]
    assert parsed.rows[0].draft.send_at == "06:30"
    assert parsed.rows[0].draft.regions == ("samarinda", "balikpapan")
    problems = {p.line: p.message for p in parsed.problems}
    assert sorted(problems) == [3, 5, 6, 7, 8]
    assert "atlantis" in problems[5] and "line 2" in problems[6] and "fr" in problems[7]
    assert parse_csv("name\nx\n", make_config().taxonomy, now=NOW).problems[0].line == 1


def _cli(config_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config_path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_add_list_remove_import_export(
    tmp_path: Path, db: Database, make_config: Callable[..., Config]
) -> None:
    make_config()
    cfg = tmp_path / "config.toml"
    code, out, _ = _cli(
        cfg,
        "subscribers",
        "add",
        "Budi@Example.org",
        "--name",
        "Budi",
        "--region",
        "jayapura",
        "--category",
        "pendidikan",
        "--lang",
        "en",
    )
    assert code == 0 and "Asia/Jayapura" in out
    code, _, err = _cli(cfg, "subscribers", "add", "x@y.id", "--region", "atlantis")
    assert code == 2 and "valid: " in err and "balikpapan" in err
    code, _, err = _cli(cfg, "subscribers", "add", "budi@example.ORG")
    assert code == 2 and "already" in err

    (tmp_path / "in.csv").write_text(CSV_TEXT, encoding="utf-8")
    code, out, err = _cli(cfg, "subscribers", "import", str(tmp_path / "in.csv"))
    assert code == 1 and "1 added, 1 updated" in out and "5 rejected" in out
    assert "in.csv:3:" in err and "in.csv:5:" in err and "in.csv:8:" in err
    code, out, _ = _cli(cfg, "subscribers", "import", str(tmp_path / "in.csv"))
    assert "0 added, 0 updated, 2 unchanged" in out  # idempotent

    code, _, _ = _cli(cfg, "subscribers", "remove", "ani@example.org")
    assert code == 0
    code, out, _ = _cli(cfg, "subscribers", "list", "--json")
    listed = {s["email"]: s for s in json.loads(out)}
    assert listed["ani@example.org"]["status"] == "unsubscribed"
    assert listed["Budi@example.org"]["consent"]["method"] == "cli"
    assert "token" not in listed["ani@example.org"]
    code, out, _ = _cli(cfg, "subscribers", "list", "--status", "active", "--json")
    assert {s["email"] for s in json.loads(out)} == {"Budi@example.org"}

    # re-importing does not re-activate an unsubscribed address
    _cli(cfg, "subscribers", "import", str(tmp_path / "in.csv"))
    with db.connect() as conn:
        ani = store.get_by_email(conn, "ani@example.org")
    assert ani is not None and ani.status == SubscriberStatus.UNSUBSCRIBED

    code, out, _ = _cli(cfg, "subscribers", "export", str(tmp_path / "out.csv"))
    assert code == 0 and "exported 2" in out
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert {r["email"] for r in rows} == {"Budi@example.org", "ani@example.org"}
    assert (
        next(r for r in rows if r["email"] == "ani@example.org")["regions"]
        == "samarinda balikpapan"
    )
    code, _, _ = _cli(cfg, "subscribers", "remove", "--purge", "ani@example.org")
    code, out, _ = _cli(cfg, "subscribers", "import", str(tmp_path / "out.csv"))
    assert "1 added, 0 updated, 1 unchanged, 0 rejected" in out  # export re-imports
