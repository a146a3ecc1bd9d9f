"""The bundled sample readers (``[seed] subscribers``) and the start-up banner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kabarfeed.banner import Startup, banner_lines, local_url
from kabarfeed.errors import ConfigError
from kabarfeed.models import SubscriberStatus
from kabarfeed.seed import import_seed
from kabarfeed.store import Database, welcomes
from kabarfeed.store import subscribers as store
from tests.conftest import REPO, ConfigFactory

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
CSV = (
    "email,name,regions,categories,timezone,send_at,language\n"
    "satu@example.com,Satu,balikpapan,,Asia/Makassar,06:00,id\n"
    "dua@example.com,Dua,,ekonomi,Asia/Jakarta,07:00,en\n"
)


def _seeded(make_config: ConfigFactory, tmp_path: Path, text: str = CSV) -> tuple[Path, object]:
    folder = tmp_path / "examples"
    folder.mkdir(exist_ok=True)
    (folder / "readers.csv").write_text(text, encoding="utf-8")
    return folder / "readers.csv", make_config('[seed]\nsubscribers = "examples/readers.csv"\n')


def test_seed_imports_once_with_a_consent_record(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    path, config = _seeded(make_config, tmp_path)
    first = import_seed(config, db, now=NOW)  # type: ignore[arg-type]
    assert first is not None
    assert first.added == ("satu@example.com", "dua@example.com")
    assert first.label == "examples/readers.csv"
    with db.connect() as conn:
        subs = {s.email: s for s in store.list_subscribers(conn)}
        promised = welcomes.pending(conn)
    assert subs["dua@example.com"].categories == ("ekonomi",)
    for sub in subs.values():
        assert sub.status is SubscriberStatus.ACTIVE
        assert sub.consent is not None
        assert (sub.consent.method, sub.consent.wording_version) == (
            "seed",
            "examples/readers.csv",
        )
    assert set(promised) == {s.id for s in subs.values()}
    # Second start: nothing new, and a deleted reader does not come back.
    with db.begin() as conn:
        store.delete_subscriber(conn, subs["satu@example.com"].id)
    again = import_seed(config, db, now=NOW + timedelta(days=1))  # type: ignore[arg-type]
    assert again is not None and again.added == ()
    assert again.first_import == NOW
    with db.connect() as conn:
        assert [s.email for s in store.list_subscribers(conn)] == ["dua@example.com"]
    # A reader added to the file later is imported on the next start.
    path.write_text(CSV + "tiga@example.com,Tiga,,,,,\n", encoding="utf-8")
    later = import_seed(config, db, now=NOW + timedelta(days=2))  # type: ignore[arg-type]
    assert later is not None and later.added == ("tiga@example.com",)


def test_existing_address_is_left_alone(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    _, config = _seeded(make_config, tmp_path)
    from kabarfeed.subscribers import SubscriberDraft, with_defaults

    with db.begin() as conn:
        store.add(
            conn,
            with_defaults(SubscriberDraft("Satu@Example.com", name="Asli"), config),  # type: ignore[arg-type]
            now=NOW,
        )
    report = import_seed(config, db, now=NOW)  # type: ignore[arg-type]
    assert report is not None and report.added == ("dua@example.com",)
    with db.connect() as conn:
        assert store.get_by_email(conn, "satu@example.com").name == "Asli"  # type: ignore[union-attr]


def test_bad_seed_file_names_every_line(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    bad = CSV + "bukan-alamat,X,,,,,\nempat@example.com,Empat,atlantis,,,,\n"
    _, config = _seeded(make_config, tmp_path, bad)
    with pytest.raises(ConfigError) as caught:
        import_seed(config, db, now=NOW)  # type: ignore[arg-type]
    assert [p.split(" line ")[1][:1] for p in caught.value.problems] == ["4", "5"]
    with db.connect() as conn:
        assert store.list_subscribers(conn) == []


def test_no_seed_setting_does_nothing(make_config: ConfigFactory, db: Database) -> None:
    assert import_seed(make_config(), db, now=NOW) is None


def test_bundled_seed_file_is_valid(make_config: ConfigFactory, db: Database) -> None:
    config = make_config(f'[seed]\nsubscribers = "{REPO / "examples" / "subscribers.csv"}"\n')
    report = import_seed(config, db, now=NOW)
    assert report is not None and len(report.added) >= 1


# -- banner ----------------------------------------------------------------------------


def test_banner_lists_what_to_open_and_how_to_stop(make_config: ConfigFactory) -> None:
    config = make_config()
    lines = banner_lines(
        config,
        Startup("127.0.0.1", 8080, ("/subscribe", "/{path:path}"), {}),
        cwd=config.maildir.path.parent.parent,
    )
    text = "\n".join(lines)
    assert "http://127.0.0.1:8080/\n" in text
    assert "http://127.0.0.1:8080/feeds/all.atom" in text
    assert "http://127.0.0.1:8080/subscribe" in text
    assert "/admin" not in text
    assert "var/maildir/new/" in text and "Ctrl-C" in text
    with_console = banner_lines(
        config, Startup("0.0.0.0", 9000, ("/admin", "/subscribe"), {"sent": 2}), cwd=Path("/")
    )
    joined = "\n".join(with_console)
    assert "http://127.0.0.1:9000/admin" in joined
    assert "2 digest(s) already sent earlier" in joined


def test_local_url_for_wildcards_and_ipv6() -> None:
    assert local_url("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert local_url("::", 8080) == "http://[::1]:8080"
    assert local_url("::1", 8080) == "http://[::1]:8080"
    assert local_url("news.example.id", 8080) == "http://news.example.id:8080"


def test_busy_port_says_what_to_do() -> None:
    import socket

    from kabarfeed.errors import KabarfeedError
    from kabarfeed.service import bind_socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(KabarfeedError) as caught:
            bind_socket("127.0.0.1", port).close()
    assert "Address already in use" in caught.value.message
    assert caught.value.hint and "KABARFEED_WEB_PORT" in caught.value.hint
