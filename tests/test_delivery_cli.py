"""``kabarfeed digest send`` and ``kabarfeed deliveries`` end to end: real
subscribers and articles in the database, the digest renderer, and a real
SMTP server (or a Maildir) receiving the messages."""

from __future__ import annotations

import email
import json
import mailbox
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from deliveryhelpers import rows, states
from digest_support import CUTOFF, article, save
from kabarfeed.cli import main
from kabarfeed.models import DeliveryState, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as subscriber_store
from kabarfeed.subscribers import SubscriberDraft
from smtpserver import Act, Faults, ScriptedSMTPServer

DATE = "2025-11-17"  # CUTOFF is 06:00 WITA on this date


def add(
    db: Database,
    address: str,
    *,
    regions: tuple[str, ...] = ("balikpapan",),
    tz: str = "Asia/Makassar",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
) -> int:
    draft = SubscriberDraft(
        address,
        name="Pembaca",
        regions=regions,
        categories=(),
        timezone=tz,
        send_at="06:00",
        language="id",
        status=status,
    )
    with db.begin() as conn:
        return subscriber_store.add(conn, draft, now=CUTOFF - timedelta(days=3)).id


@pytest.fixture
def newsroom(db: Database) -> dict[str, int]:
    """Three Balikpapan articles; readers in Balikpapan, one in Jayapura (nothing
    new there: empty edition) and one who unsubscribed."""
    save(db, [article(n) for n in (1, 2, 3)])
    return {
        "ana": add(db, "ana@example.org"),
        "budi": add(db, "budi@example.org"),
        "yohanes": add(db, "yohanes@example.org", regions=("jayapura",), tz="Asia/Jayapura"),
        "citra": add(db, "citra@example.org", status=SubscriberStatus.UNSUBSCRIBED),
    }


def smtp_toml(port: int, extra: str = "") -> str:
    return (
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        f'timeout = "5s"\nreconnect_base = "0s"\nreconnect_max = "0s"\n'
        f'pause_after_failures = 3\nenvelope_from = "bounces@news.example.id"\n{extra}\n'
    )


def cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args])


def test_send_delivers_each_edition_once(db, newsroom, make_config, tmp_path) -> None:
    with ScriptedSMTPServer() as server:
        make_config(smtp_toml(server.port))
        first = cli(tmp_path, "digest", "send", "--date", DATE)
        again = cli(tmp_path, "digest", "send", "--date", DATE)
    assert first.exit_code == 0, first.output
    assert "editions: 2 queued, 1 empty (skipped)" in first.output
    assert "sent 2, deferred 0, failed 0" in first.output
    assert again.exit_code == 0 and "3 already built" in again.output
    assert "sent 0" in again.output
    assert sorted(server.recipients().items()) == [("ana@example.org", 1), ("budi@example.org", 1)]
    by_email = {r.email: r for r in rows(db)}
    assert by_email["yohanes@example.org"].state is DeliveryState.SKIPPED
    assert "citra@example.org" not in by_email
    message = email.message_from_bytes(
        server.messages_for("ana@example.org")[0].data, policy=default_policy
    )
    ana = by_email["ana@example.org"]
    assert ana.state is DeliveryState.SENT and ana.article_count == 3
    assert message["Message-ID"] == ana.message_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Berita nomor 1" in message.get_body(("plain",)).get_content()
    assert {m.mail_from for m in server.received} == {"bounces@news.example.id"}


def test_permanent_failure_exit_code_list_and_retry(db, newsroom, make_config, tmp_path) -> None:
    """A policy refusal (5.7.x) fails the row but does not bounce the address
    (a 5.1.x would: see the bounce policy), so a retry sends it."""
    policy = "550 5.7.1 <{address}>: Recipient address rejected: User unknown in relay policy"
    with ScriptedSMTPServer(Faults(reject={"budi@example.org"}, reject_reply=policy)) as server:
        make_config(smtp_toml(server.port))
        failed = cli(tmp_path, "digest", "send", "--date", DATE)
        listed = cli(tmp_path, "deliveries", "--status", "failed", "--json")
        server.faults.reject = set()
        retried = cli(tmp_path, "deliveries", "retry", "--date", DATE)
        resent = cli(tmp_path, "digest", "send", "--date", DATE)
    assert failed.exit_code == 1 and "failed 1" in failed.output
    [row] = json.loads(listed.output)
    assert row["email"] == "budi@example.org" and row["last_code"] == 550
    assert row["status"] == "failed" and "User unknown" in row["last_reply"]
    assert retried.exit_code == 0 and "re-queued 1 failed deliveries" in retried.output
    assert resent.exit_code == 0 and "sent 1," in resent.output
    assert server.recipients() == {"ana@example.org": 1, "budi@example.org": 1}
    assert states(db) == {"sent": 2, "skipped": 1}


def test_unreachable_server_exits_nonzero_and_keeps_queue(
    db, newsroom, make_config, tmp_path
) -> None:
    with ScriptedSMTPServer() as server:
        port = server.port
    make_config(smtp_toml(port))
    result = cli(tmp_path, "digest", "send", "--date", DATE)
    assert result.exit_code == 1
    assert "paused:" in result.output and "put back in the queue" in result.output
    assert states(db) == {"queued": 2, "skipped": 1}


def test_dry_run_records_and_sends_nothing(db, newsroom, make_config, tmp_path) -> None:
    with ScriptedSMTPServer() as server:
        make_config(smtp_toml(server.port))
        result = cli(tmp_path, "digest", "send", "--date", DATE, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 2 messages would be sent" in result.output
    assert server.received == [] and rows(db) == []


def test_maildir_is_the_default_transport(db, newsroom, make_config, tmp_path) -> None:
    make_config('[maildir]\npath = "mail"\n')
    result = cli(tmp_path, "digest", "send", "--date", DATE, "--limit", "1")
    assert result.exit_code == 0, result.output
    assert "editions: 1 queued" in result.output
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    assert [m["To"] for m in box] == ["Pembaca <ana@example.org>"]
    listed = json.loads(cli(tmp_path, "deliveries", "--json").output)
    assert [(r["email"], r["status"]) for r in listed] == [("ana@example.org", "sent")]


def test_deliveries_table_and_bad_input(db, newsroom, make_config, tmp_path) -> None:
    make_config('[maildir]\npath = "mail"\n')
    cli(tmp_path, "digest", "send", "--date", DATE)
    table = cli(tmp_path, "deliveries", "--date", DATE)
    assert table.exit_code == 0
    assert "ana@example.org" in table.output and "sent: 2" in table.output
    bad = cli(tmp_path, "deliveries", "--date", "17/11/2025")
    assert bad.exit_code == 2 and "is not a date" in bad.output
    zone = cli(tmp_path, "digest", "send", "--zone", "Mars/Olympus")
    assert zone.exit_code == 2 and "IANA time zone" in zone.output


def test_unknown_outcome_is_listed_shown_in_status_and_retried_by_an_admin(
    db, newsroom, make_config, tmp_path
) -> None:
    """No reply after the final dot: ``unknown``, parked for an admin once its
    automatic retries are used up (none here), visible in ``deliveries`` and
    ``status``; ``deliveries retry --status unknown`` sends it with the same
    Message-ID."""
    faults = Faults(script={"budi@example.org": [Act.DROP_AFTER_DOT]})
    with ScriptedSMTPServer(faults) as server:
        make_config(smtp_toml(server.port, "unknown_retries = 0\n"))
        first = cli(tmp_path, "digest", "send", "--date", DATE)
        listed = cli(tmp_path, "deliveries", "--status", "unknown", "--json")
        status = cli(tmp_path, "status", "--json")
        shown = cli(tmp_path, "status")
        again = cli(tmp_path, "digest", "send", "--date", DATE)
        retried = cli(tmp_path, "deliveries", "retry", "--status", "unknown")
        resent = cli(tmp_path, "digest", "send", "--date", DATE)
    assert first.exit_code == 0, first.output
    assert "unknown outcome 1" in first.output and "--status unknown" in first.output
    [row] = json.loads(listed.output)
    assert row["email"] == "budi@example.org" and row["status"] == "unknown"
    assert row["next_attempt_at"] is None and row["unknown_outcomes"] == 1
    assert "left for an admin" in row["last_reply"]
    assert json.loads(status.output)["unknown"] == {"retrying": 0, "for_admin": 1}
    assert "1 waiting for an admin" in " ".join(shown.output.split())
    assert "sent 0," in again.output  # never sent again on its own
    assert "re-queued 1 unknown deliveries" in retried.output
    assert "sent 1," in resent.output
    copies = server.messages_for("budi@example.org")
    assert len(copies) == 2  # the server had kept the first: the documented duplicate
    assert len({m.data.split(b"Message-ID: ")[1][:60] for m in copies}) == 1
    assert states(db) == {"sent": 2, "skipped": 1}
