"""``kabarfeed digest preview`` against a real database: exact message, nothing recorded."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, insert, select

from digest_support import CUTOFF, article, save
from kabarfeed.cli import main
from kabarfeed.config import Config
from kabarfeed.store import Database
from kabarfeed.store import subscribers as store
from kabarfeed.store.schema import deliveries


def _run(cfg: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(cfg), *args])
    return result.exit_code, result.stdout, result.stderr


def test_preview_writes_the_next_edition_and_records_nothing(
    tmp_path: Path, db: Database, make_config: Callable[..., Config]
) -> None:
    make_config()
    cfg = tmp_path / "config.toml"
    now = datetime.now(UTC)  # the CLI uses the real clock
    save(
        db,
        [
            article(1, title="Rakor akhir tahun", at=now - timedelta(hours=1)),
            article(2, regions=("surabaya",), at=now - timedelta(hours=2)),
            article(30, title="Sudah terlalu lama", at=now - timedelta(hours=30)),
        ],
    )
    code, _, err = (
        CliRunner()
        .invoke(
            main,
            [
                "--config",
                str(cfg),
                "subscribers",
                "add",
                "ani@example.org",
                "--region",
                "balikpapan",
            ],
        )
        .exit_code,
        "",
        "",
    )
    assert code == 0
    code, _, err = _run(
        cfg,
        "digest",
        "preview",
        "--email",
        "ani@example.org",
        "--output",
        str(tmp_path / "next.eml"),
    )
    assert code == 0, err
    msg = email.message_from_bytes((tmp_path / "next.eml").read_bytes(), policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Rakor akhir tahun" in text and "Sudah terlalu lama" not in text
    assert "(1 berita)" in str(msg["Subject"])
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 0


def test_preview_for_a_date_starts_after_the_previous_cutoff(
    tmp_path: Path, db: Database, make_config: Callable[..., Config]
) -> None:
    make_config()
    cfg = tmp_path / "config.toml"
    save(db, [article(1, title="Baru"), article(5, title="Sudah terkirim")])
    CliRunner().invoke(main, ["--config", str(cfg), "subscribers", "add", "ani@example.org"])
    with db.begin() as conn:
        sub = store.get_by_email(conn, "ani@example.org")
        assert sub is not None
        conn.execute(
            insert(deliveries).values(
                subscriber_id=sub.id,
                local_date="2025-11-16",
                since_at=CUTOFF - timedelta(days=2),
                cutoff_at=CUTOFF - timedelta(hours=3),
                state="sent",
                created_at=CUTOFF,
                updated_at=CUTOFF,
            )
        )
    code, _, err = _run(
        cfg,
        "digest",
        "preview",
        "--email",
        "ani@example.org",
        "--date",
        "2025-11-17",
        "--html",
        str(tmp_path / "p.html"),
    )
    assert code == 0, err
    html = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "Baru" in html and "Sudah terkirim" not in html
    code, _out, _ = _run(cfg, "digest", "preview", "--email", "nobody@example.org")
    assert code == 3
