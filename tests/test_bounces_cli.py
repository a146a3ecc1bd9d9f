"""``kabarfeed bounces ingest|list|show`` as an MTA pipe runs it: a real process,
the report on stdin, sysexits codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from kabarfeed.bounces import verp
from kabarfeed.cli import main
from kabarfeed.store import Database
from tests.bounces_support import add_sent, fixture, status_of
from tests.conftest import ConfigFactory

SECRET = "pipe-test-secret"
BOUNCES = '[bounces]\naddress = "bounces@news.example.id"\nmax_bytes = 65536\n'


def _pipe(
    tmp_path: Path, data: bytes, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kabarfeed",
            "--config",
            str(tmp_path / "config.toml"),
            "bounces",
            "ingest",
            *args,
        ],
        input=data,
        capture_output=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def _setup(make_config: ConfigFactory, db: Database, tmp_path: Path) -> tuple[object, str]:
    make_config(BOUNCES + f'failed = "{tmp_path / "failed"}"\n', site=f'secret = "{SECRET}"\n')
    sent = add_sent(db, datetime.now(UTC))
    return sent, verp.encode("bounces@news.example.id", sent.delivery_id, SECRET.encode())


def test_pipe_ingest_records_and_bounces_then_lists_and_shows(
    tmp_path: Path, make_config: ConfigFactory, db: Database
) -> None:
    sent, address = _setup(make_config, db, tmp_path)
    raw = fixture("postfix-hard.eml", sent, verp_to=address, crlf=False)  # type: ignore[arg-type]
    # Postfix's local(8) hands the envelope recipient in $ORIGINAL_RECIPIENT.
    done = _pipe(tmp_path, raw, env={"ORIGINAL_RECIPIENT": address})
    assert done.returncode == 0, done.stderr
    assert b"hard" in done.stdout and b"[verp]" in done.stdout
    assert status_of(db, sent.subscriber_id) == "bounced"  # type: ignore[attr-defined]
    again = _pipe(tmp_path, raw)
    assert again.returncode == 0 and b"already recorded" in again.stdout

    runner = CliRunner()
    base = ["--config", str(tmp_path / "config.toml"), "bounces"]
    listed = runner.invoke(main, [*base, "list", "--since", "1d", "--json"])
    assert listed.exit_code == 0, listed.output
    (event,) = json.loads(listed.output)
    assert event["kind"] == "hard" and event["status"] == "5.1.1"
    assert event["subscriber_email"] == "budi@example.net" and event["attribution"] == "verp"
    shown = runner.invoke(main, [*base, "show", str(event["id"])])
    assert shown.exit_code == 0 and "User unknown" in shown.output
    assert "subscriber history" in shown.output
    table = runner.invoke(main, [*base, "list", "--subscriber", "BUDI@example.net"])
    assert table.exit_code == 0 and "5.1.1" in table.output
    missing = runner.invoke(main, [*base, "show", "999999"])
    assert missing.exit_code == 3


def test_pipe_ingest_keeps_garbage_and_huge_input_and_exits_0(
    tmp_path: Path, make_config: ConfigFactory, db: Database
) -> None:
    _setup(make_config, db, tmp_path)
    garbage = _pipe(tmp_path, b"\x00\x01 nothing like mail \xff")
    assert garbage.returncode == 0 and b"kept in" in garbage.stdout
    huge = _pipe(tmp_path, b"Subject: big\n\n" + b"x" * 200_000)
    assert huge.returncode == 0 and b"too large" in huge.stdout
    kept = sorted((tmp_path / "failed").glob("*.eml"))
    assert len(kept) == 2
    sizes = sorted(p.stat().st_size for p in kept)
    assert sizes[0] < 100 and sizes[1] == 65537  # the head of the huge one is kept


def test_pipe_ingest_exits_75_when_the_store_is_unavailable(
    tmp_path: Path, make_config: ConfigFactory, db: Database
) -> None:
    sent, address = _setup(make_config, db, tmp_path)
    config = tmp_path / "config.toml"
    text = config.read_text()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the database folder should be")
    start = text.index("[storage]")
    end = text.index("\n", text.index("url", start))
    config.write_text(
        text[:start] + f'[storage]\nurl = "sqlite:///{blocked}/db.sqlite"' + text[end:]
    )
    raw = fixture("postfix-hard.eml", sent, verp_to=address)  # type: ignore[arg-type]
    done = _pipe(tmp_path, raw)
    assert done.returncode == 75
    assert b"try again later" in done.stderr
    assert status_of(db, sent.subscriber_id) == "active"  # type: ignore[attr-defined]


def test_pipe_ingest_exits_75_when_garbage_cannot_be_kept(
    tmp_path: Path, make_config: ConfigFactory, db: Database
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the failed folder should be")
    make_config(BOUNCES + f'failed = "{blocked}/failed"\n', site=f'secret = "{SECRET}"\n')
    done = _pipe(tmp_path, b"\x00garbage")
    assert done.returncode == 75


def test_ingest_files_and_list_the_suppression_list(
    tmp_path: Path, make_config: ConfigFactory, db: Database
) -> None:
    sent, address = _setup(make_config, db, tmp_path)
    report = tmp_path / "arf.eml"
    report.write_bytes(fixture("arf-abuse.eml", sent, verp_to=address))  # type: ignore[arg-type]
    runner = CliRunner()
    base = ["--config", str(tmp_path / "config.toml"), "bounces"]
    done = runner.invoke(main, [*base, "ingest", str(report)])
    assert done.exit_code == 0, done.output
    assert "complaint" in done.output and "[verp]" in done.output
    listed = runner.invoke(main, [*base, "suppressed", "--json"])
    (row,) = json.loads(listed.output)
    assert row["email"] == "budi@example.net" and row["reason"] == "complaint"
    missing = runner.invoke(main, [*base, "ingest", str(tmp_path / "nope.eml")])
    assert missing.exit_code == 75
