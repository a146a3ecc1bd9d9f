"""The service polls the bounce mailboxes (``run --once`` here)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from kabarfeed.store import Database
from tests.bounces_support import add_sent, fixture, status_of
from tests.conftest import ConfigFactory

NOW = datetime.fromisoformat("2026-12-06T01:00:00+00:00")


def _drop(maildir: Path, name: str, data: bytes) -> None:
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "new" / name).write_bytes(data)


# -- the service ------------------------------------------------------------------------


def test_run_once_polls_the_configured_maildir(
    db: Database, tmp_path: Path, make_config: ConfigFactory
) -> None:
    from click.testing import CliRunner

    from kabarfeed.bounces.poller import last_polls
    from kabarfeed.bounces.verp import encode
    from kabarfeed.cli import main

    box = tmp_path / "var" / "bounces"
    make_config(
        f'[bounces]\naddress = "bounces@news.example.id"\nmaildir = "{box}"\n'
        f'failed = "{tmp_path / "failed"}"\n',
        site='secret = "service-secret"\n',
    )
    sent = add_sent(db, NOW)
    address = encode("bounces@news.example.id", sent.delivery_id, b"service-secret")
    _drop(box, "1.M1.host", fixture("postfix-hard.eml", sent, verp_to=address))
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), "run", "--once"])
    assert result.exit_code == 0, result.output
    assert status_of(db, sent.subscriber_id) == "bounced"
    assert [p.name for p in (box / "cur").iterdir()] == ["1.M1.host:2,S"]
    poll = last_polls(db)["maildir"]
    assert poll["read"] == 1 and poll["events"] == 1 and poll["error"] is None
