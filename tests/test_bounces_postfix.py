"""End to end with a real MTA: kabarfeed sends a digest through Postfix to an
address that does not exist; Postfix accepts it, fails the local delivery,
and sends its own RFC 3464 DSN to the digest's VERP envelope sender, which is
delivered into the bounce Maildir; ``kabarfeed run --once`` reads it and the
subscriber ends ``bounced``, the event tied to the exact delivery."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bounces_postfix import LOCAL_DOMAIN, Postfix, unavailable
from deliveryhelpers import rows
from digest_support import CUTOFF, article, save
from kabarfeed.bounces import store, verp
from kabarfeed.bounces.model import Attribution, EventKind, EventSource
from kabarfeed.cli import main
from kabarfeed.store import Database
from tests.bounces_support import add_reader, status_of
from tests.conftest import ConfigFactory

SECRET = "postfix-e2e-secret"


@pytest.fixture
def mta() -> Iterator[Postfix]:
    reason = unavailable()
    if reason:
        if os.environ.get("CI") and "not installed" in reason:
            pytest.fail(reason)
        pytest.skip(reason)
    with Postfix() as running:
        yield running


def _add(db: Database, address: str) -> int:
    return add_reader(db, address, now=CUTOFF - timedelta(days=3))


def test_postfix_dsn_to_the_verp_address_bounces_the_subscriber(
    mta: Postfix, db: Database, make_config: ConfigFactory, tmp_path: Path
) -> None:
    save(db, [article(n) for n in (1, 2)])
    gone = _add(db, f"nobody-here@{LOCAL_DOMAIN}")
    make_config(
        f'[smtp]\nhost = "127.0.0.1"\nport = {mta.port}\nsecurity = "none"\ntimeout = "20s"\n\n'
        f'[bounces]\naddress = "bounces@news.example.id"\nmaildir = "{mta.maildir}"\n'
        f'failed = "{tmp_path / "failed"}"\n',
        site=f'secret = "{SECRET}"\n',
    )
    runner = CliRunner()
    base = ["--config", str(tmp_path / "config.toml")]
    sent = runner.invoke(main, [*base, "digest", "send", "--date", "2025-11-17"])
    assert sent.exit_code == 0, sent.output
    (delivery,) = rows(db)
    assert delivery.state.value == "sent"  # Postfix took it: the failure comes later
    (dsn,) = mta.wait_for_bounce()
    expected = verp.encode("bounces@news.example.id", delivery.id, SECRET.encode())
    assert f"Delivered-To: {expected}".encode() in dsn.read_bytes()

    once = runner.invoke(main, [*base, "run", "--once"])
    assert once.exit_code == 0, once.output
    assert status_of(db, gone) == "bounced"
    with db.connect() as conn:
        (event,) = store.list_events(conn)
    assert (event.source, event.kind, event.attribution) == (
        EventSource.DSN,
        EventKind.HARD,
        Attribution.VERP,
    )
    assert event.delivery_id == delivery.id and event.status_code == "5.1.1"
    assert "unknown user" in (event.diagnostic or "")
    assert not dsn.exists() and list((mta.maildir / "cur").iterdir())
