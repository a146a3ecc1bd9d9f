"""The polled intakes: a Maildir the MTA delivers into, and an IMAP mailbox
(a real client against a small in-process IMAPS/STARTTLS server)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from kabarfeed.bounces import store
from kabarfeed.bounces.imap import ImapTarget, poll_imap, tls_context
from kabarfeed.bounces.maildir import done_name, poll_maildir
from kabarfeed.errors import MailboxError
from kabarfeed.store import Database
from tests.bounces_imapserver import ImapServer, self_signed
from tests.bounces_support import add_sent, fixture, settings, status_of

NOW = datetime.fromisoformat("2026-12-06T01:00:00+00:00")


def _drop(maildir: Path, name: str, data: bytes) -> None:
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "new" / name).write_bytes(data)


def _events(db: Database) -> int:
    with db.connect() as conn:
        return len(store.list_events(conn, limit=None))


# -- Maildir --------------------------------------------------------------------------


def test_maildir_messages_are_recorded_then_moved_to_cur_as_seen(
    db: Database, tmp_path: Path
) -> None:
    sent = add_sent(db, NOW)
    box = tmp_path / "bounces"
    _drop(box, "1.M1.host", fixture("postfix-hard.eml", sent))
    _drop(box, "2.M2.host", b"\x00\x01garbage")
    _drop(box, "3.M3.host", fixture("ooo-indonesian.eml", sent))
    report = poll_maildir(db, box, settings(tmp_path), clock=lambda: NOW)
    assert (report.read, report.events, report.failed, report.error) == (3, 2, 1, None)
    assert list((box / "new").iterdir()) == []
    assert sorted(p.name for p in (box / "cur").iterdir()) == [
        "1.M1.host:2,S",
        "2.M2.host:2,S",
        "3.M3.host:2,S",
    ]
    assert status_of(db, sent.subscriber_id) == "bounced"
    assert len(list((tmp_path / "failed").glob("*.eml"))) == 1


def test_maildir_redelivery_after_a_crash_counts_once(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    box = tmp_path / "bounces"
    _drop(box, "1.M1.host", fixture("exim-soft-full.eml", sent))
    poll_maildir(db, box, settings(tmp_path), clock=lambda: NOW)
    # A crash between commit and rename: the same file is in new/ again.
    shutil.copy(box / "cur" / "1.M1.host:2,S", box / "new" / "1.M1.host")
    again = poll_maildir(db, box, settings(tmp_path), clock=lambda: NOW)
    assert (again.read, again.events, again.duplicates) == (1, 0, 1)
    assert _events(db) == 1


def test_maildir_leaves_messages_in_new_when_the_store_is_down(tmp_path: Path) -> None:
    down = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}")
    box = tmp_path / "bounces"
    _drop(box, "1.M1.host", fixture("postfix-hard.eml"))
    report = poll_maildir(down, box, settings(tmp_path), clock=lambda: NOW)
    assert report.read == 0 and report.error
    assert [p.name for p in (box / "new").iterdir()] == ["1.M1.host"]
    assert list((box / "cur").iterdir()) == []


def test_maildir_never_follows_a_symlink_nor_reads_more_than_max_bytes(
    db: Database, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"Subject: private\r\n\r\nnot for the failed folder\r\n")
    box = tmp_path / "bounces"
    _drop(box, "2.M2.host", b"Subject: huge\r\n\r\n" + b"x" * 300_000)
    (box / "new" / "1.M1.host").symlink_to(secret)
    cfg = settings(tmp_path)
    report = poll_maildir(db, box, cfg, clock=lambda: NOW)
    assert report.read == 1 and report.failed == 1
    assert (box / "new" / "1.M1.host").is_symlink()  # left alone, never read
    (kept,) = (tmp_path / "failed").glob("*.eml")
    assert kept.stat().st_size == cfg.max_bytes + 1
    assert b"not for the failed folder" not in kept.read_bytes()


def test_done_name_adds_the_seen_flag_once() -> None:
    assert done_name("1.M1.h") == "1.M1.h:2,S"
    assert done_name("1.M1.h:2,F") == "1.M1.h:2,FS"
    assert done_name("1.M1.h:2,S") == "1.M1.h:2,S"


# -- IMAP ---------------------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def _poll(db: Database, server: ImapServer, scheme: str, ca: Path, tmp_path: Path) -> object:
    target = ImapTarget.parse(f"{scheme}://bounces@localhost:{server.port}/INBOX")
    return poll_imap(
        db,
        target,
        "rahasia",
        settings(tmp_path),
        clock=lambda: NOW,
        done_folder="kabarfeed-processed",
        context=tls_context(ca),
    )


@pytest.mark.parametrize(
    ("scheme", "implicit", "move"), [("imaps", True, True), ("imap", False, False)]
)
def test_imap_messages_are_recorded_then_moved(
    db: Database, tmp_path: Path, cert: tuple[Path, Path], scheme: str, implicit: bool, move: bool
) -> None:
    sent = add_sent(db, NOW)
    with ImapServer(*cert, implicit_tls=implicit, move=move) as server:
        server.mailbox.add(fixture("postfix-hard.eml", sent))
        server.mailbox.add(fixture("sendmail-delayed.eml", sent))
        report = _poll(db, server, scheme, cert[0], tmp_path)
        again = _poll(db, server, scheme, cert[0], tmp_path)
    assert report.read == 2 and report.events == 2  # type: ignore[attr-defined]
    assert again.read == 0  # type: ignore[attr-defined]
    assert server.mailbox.folders["INBOX"] == []
    assert len(server.mailbox.folders["kabarfeed-processed"]) == 2
    assert status_of(db, sent.subscriber_id) == "bounced"
    assert server.mailbox.logins and all(tls for _, _, tls in server.mailbox.logins)


def test_imap_never_downloads_a_message_over_max_bytes(
    db: Database, tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    huge = b"Subject: huge\r\nFrom: a@example.net\r\n\r\n" + b"x" * 300_000
    with ImapServer(*cert) as server:
        server.mailbox.add(huge)
        report = _poll(db, server, "imaps", cert[0], tmp_path)
    assert report.read == 1 and report.failed == 1  # type: ignore[attr-defined]
    (kept,) = (tmp_path / "failed").glob("*.eml")
    assert kept.read_bytes() == b"Subject: huge\r\nFrom: a@example.net\r\n\r\n"
    assert "too large: 300" in kept.with_suffix(".reason").read_text()
    assert server.mailbox.folders["kabarfeed-processed"][0][1] == huge


def test_imap_without_starttls_is_refused_before_any_password(
    db: Database, tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    with ImapServer(*cert, implicit_tls=False, starttls=False) as server:
        server.mailbox.add(fixture("postfix-hard.eml"))
        with pytest.raises(MailboxError, match="STARTTLS"):
            _poll(db, server, "imap", cert[0], tmp_path)
    assert server.mailbox.logins == []
    assert len(server.mailbox.folders["INBOX"]) == 1


def test_imap_with_an_untrusted_certificate_is_refused(
    db: Database, tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    (tmp_path / "other").mkdir()
    other = self_signed(tmp_path / "other")  # a different CA the client trusts instead
    with ImapServer(*cert) as server, pytest.raises(MailboxError):
        _poll(db, server, "imaps", other[0], tmp_path)
    assert server.mailbox.logins == []


def test_imap_leaves_the_message_when_the_store_is_down(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    down = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}")
    with ImapServer(*cert) as server:
        server.mailbox.add(fixture("postfix-hard.eml"))
        report = _poll(down, server, "imaps", cert[0], tmp_path)
    assert report.read == 0 and report.error  # type: ignore[attr-defined]
    assert len(server.mailbox.folders["INBOX"]) == 1


def test_imap_url_parsing() -> None:
    t = ImapTarget.parse("imaps://bounce%40news.example.id@mail.example.id/Bounces")
    assert (t.user, t.host, t.port, t.folder, t.implicit_tls) == (
        "bounce@news.example.id",
        "mail.example.id",
        993,
        "Bounces",
        True,
    )
    assert ImapTarget.parse("imap://u@h").port == 143


def test_poll_all_reads_the_configured_mailboxes_and_remembers_the_outcome(
    db: Database, tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    from kabarfeed.bounces.poller import last_polls, poll_all
    from kabarfeed.config import parse_config

    sent = add_sent(db, NOW)
    box = tmp_path / "bounces"
    _drop(box, "1.M1.host", fixture("postfix-hard.eml", sent))
    with ImapServer(*cert) as server:
        config = parse_config(
            {
                "storage": {"url": db.url},
                "bounces": {
                    "maildir": str(box),
                    "failed": str(tmp_path / "failed"),
                    "imap_url": f"imaps://bounces@localhost:{server.port}/INBOX",
                    "imap_password": "wrong password",
                    "imap_ca_file": str(cert[0]),
                },
            },
            environ={},
        )
        reports = poll_all(config, db, clock=lambda: NOW)
    assert reports["maildir"].read == 1
    assert reports["imap"].error and "invalid credentials" in reports["imap"].error
    polls = last_polls(db)
    assert polls["maildir"]["read"] == 1 and polls["maildir"]["error"] is None
    assert "invalid credentials" in polls["imap"]["error"]
