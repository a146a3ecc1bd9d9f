"""The sending side: each digest goes out with its own signed VERP envelope
sender, a bounce to that address comes back to the exact delivery, and the
suppression list keeps complainers out of the outbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from deliveryhelpers import rows
from digest_support import CUTOFF, article, save
from kabarfeed.bounces import store, verp
from kabarfeed.bounces.intake import ingest_bytes, intake_settings
from kabarfeed.bounces.model import Attribution
from kabarfeed.cli import main
from kabarfeed.config import load_config
from kabarfeed.models import DeliveryState, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as subscriber_store
from smtpserver import ScriptedSMTPServer
from tests.bounces_support import add_reader, fixture, reader, status_of
from tests.conftest import ConfigFactory

DATE = "2025-11-17"
SECRET = "sending-test-secret"


def _add(db: Database, address: str) -> int:
    return add_reader(db, address, now=CUTOFF - timedelta(days=3), name="Pembaca")


def _config(make_config: ConfigFactory, port: int, tmp_path: Path) -> None:
    make_config(
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = "5s"\n'
        'envelope_from = "plain@news.example.id"\n\n'
        f'[bounces]\naddress = "bounces@news.example.id"\nfailed = "{tmp_path / "failed"}"\n',
        site=f'secret = "{SECRET}"\n',
    )


def _cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args])


def test_each_delivery_has_its_own_verp_sender_and_its_bounce_finds_it(
    db: Database, make_config: ConfigFactory, tmp_path: Path
) -> None:
    save(db, [article(n) for n in (1, 2)])
    ana, budi = _add(db, "ana@example.org"), _add(db, "budi@example.org")
    with ScriptedSMTPServer() as server:
        _config(make_config, server.port, tmp_path)
        sent = _cli(tmp_path, "digest", "send", "--date", DATE)
    assert sent.exit_code == 0, sent.output
    by_email = {r.email: r for r in rows(db)}
    senders = {m.rcpt_tos[0]: m.mail_from for m in server.received}
    for address in ("ana@example.org", "budi@example.org"):
        decoded = verp.decode("bounces@news.example.id", senders[address], SECRET.encode())
        assert decoded.state is verp.TokenState.VALID
        assert decoded.delivery_id == by_email[address].id
    assert senders["ana@example.org"] != senders["budi@example.org"]

    # The recipient's server bounces budi's digest later, to its envelope sender.
    cfg = load_config(tmp_path / "config.toml", environ={})
    message = next(m for m in server.received if m.rcpt_tos == ("budi@example.org",))
    budi_row = by_email["budi@example.org"]
    raw = (
        fixture("postfix-hard.eml")
        .replace(b"bounces@news.example.id", message.mail_from.encode())
        .replace(b"someone@example.net", b"budi@example.org")
        .replace(b"<none@example.net>", (budi_row.message_id or "").encode())
    )
    settings = intake_settings(cfg, db, now=CUTOFF)
    (event,) = ingest_bytes(db, raw, settings, now=CUTOFF + timedelta(hours=1)).events
    assert event.target.attribution is Attribution.VERP
    assert event.target.delivery_id == budi_row.id
    assert status_of(db, budi) == "bounced" and status_of(db, ana) == "active"


def test_a_suppressed_address_is_skipped_even_if_reactivated_without_opt_in(
    db: Database, make_config: ConfigFactory, tmp_path: Path
) -> None:
    save(db, [article(n) for n in (1, 2)])
    ana, budi = _add(db, "ana@example.org"), _add(db, "budi@example.org")
    with db.begin() as conn:
        store.suppress(conn, "Budi@Example.org", "complaint", event_id=None, now=CUTOFF)
    with ScriptedSMTPServer() as server:
        _config(make_config, server.port, tmp_path)
        sent = _cli(tmp_path, "digest", "send", "--date", DATE)
    assert sent.exit_code == 0, sent.output
    assert {m.rcpt_tos[0] for m in server.received} == {"ana@example.org"}
    by_email = {r.email: r for r in rows(db)}
    assert by_email["budi@example.org"].state is DeliveryState.SKIPPED
    assert "suppression" in (by_email["budi@example.org"].last_reply or "")
    assert status_of(db, ana) == "active" and status_of(db, budi) == "active"


def test_only_a_fresh_double_opt_in_lifts_the_suppression(db: Database) -> None:
    from kabarfeed.web.signup import confirm

    pending = reader("Budi@Example.org", SubscriberStatus.PENDING)
    with db.begin() as conn:
        sub = subscriber_store.add(conn, pending, now=CUTOFF)
        store.suppress(conn, "budi@example.org", "complaint", event_id=None, now=CUTOFF)
    with db.begin() as conn:  # an admin re-activating does not lift it
        subscriber_store.set_status(conn, sub.id, SubscriberStatus.ACTIVE, now=CUTOFF)
        assert store.is_suppressed(conn, "budi@example.org")
        subscriber_store.set_status(conn, sub.id, SubscriberStatus.PENDING, now=CUTOFF)
    confirmed, activated = confirm(db, sub.token, now=CUTOFF + timedelta(minutes=5))
    assert activated and confirmed.status is SubscriberStatus.ACTIVE
    with db.connect() as conn:
        assert not store.is_suppressed(conn, "budi@example.org")
