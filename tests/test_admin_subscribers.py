"""Subscribers in the console: search, the subscriber page, unsubscribe and
resend (admins, audited), the streamed CSV export, editors read-only."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from admin_support import add_account, csrf_of, log_in
from conftest import ConfigFactory
from kabarfeed.admin import audit
from kabarfeed.admin import subscribers as use
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor, AuditFilter
from kabarfeed.config import Config
from kabarfeed.models import Consent, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as store
from kabarfeed.subscribers import CSV_COLUMNS, SubscriberDraft, with_defaults
from kabarfeed.web import create_app

ACTOR = Actor.console("pemred@example.id")


@pytest.fixture
def config(make_config: ConfigFactory, tmp_path: Path) -> Config:
    return make_config(
        f'[feeds]\noutput = "{tmp_path / "public"}"\n[maildir]\npath = "{tmp_path / "mail"}"\n'
    )


def _add(db: Database, config: Config, address: str, now: datetime, **fields: object) -> int:
    draft = with_defaults(SubscriberDraft(address, **fields), config)  # type: ignore[arg-type]
    with db.begin() as conn:
        return store.add(conn, draft, now=now).id


@pytest.fixture
def people(db: Database, config: Config, fixed_now: datetime) -> dict[str, int]:
    consent = Consent(fixed_now, "web", "ipHash123", "Firefox", "2025-11")
    return {
        "ani": _add(
            db,
            config,
            "ani@example.com",
            fixed_now,
            regions=("balikpapan",),
            categories=("ekonomi",),
            consent=consent,
        ),
        "budi": _add(
            db,
            config,
            "budi@example.com",
            fixed_now,
            regions=("jayapura",),
            status=SubscriberStatus.PENDING,
        ),
        "cici": _add(db, config, "cici@contoh.id", fixed_now, categories=("olahraga",)),
    }


def _emails(subs: list) -> list[str]:  # type: ignore[type-arg]
    return [s.email for s in subs]


def test_search_filters(db: Database, people: dict[str, int]) -> None:
    assert _emails(use.search(db, use.SubscriberQuery())) == [
        "ani@example.com",
        "budi@example.com",
        "cici@contoh.id",
    ]
    assert _emails(use.search(db, use.SubscriberQuery(address="EXAMPLE.com"))) == [
        "ani@example.com",
        "budi@example.com",
    ]
    pending = use.SubscriberQuery(status=SubscriberStatus.PENDING)
    assert _emails(use.search(db, pending)) == ["budi@example.com"]
    assert _emails(use.search(db, use.SubscriberQuery(region="jayapura"))) == ["budi@example.com"]
    assert _emails(use.search(db, use.SubscriberQuery(category="olahraga"))) == ["cici@contoh.id"]
    assert _emails(use.search(db, use.SubscriberQuery(address="%"))) == []
    page = use.search(db, use.SubscriberQuery(limit=2))
    rest = use.search(db, use.SubscriberQuery(after_id=page[-1].id, limit=2))
    assert _emails(rest) == ["cici@contoh.id"]


def test_export_streams_every_match_in_batches(
    db: Database,
    config: Config,
    fixed_now: datetime,
    people: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(use, "EXPORT_BATCH", 2)
    chunks = list(use.export_csv(db, use.SubscriberQuery(), ACTOR, now=fixed_now))
    assert len(chunks) == 2  # two batches of at most two subscribers
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == ["ani@example.com", "budi@example.com", "cici@contoh.id"]
    only = "".join(use.export_csv(db, use.SubscriberQuery(address="contoh"), ACTOR, now=fixed_now))
    assert [r[0] for r in list(csv.reader(io.StringIO(only)))[1:]] == ["cici@contoh.id"]
    entries = audit.search(db, AuditFilter(action="subscribers.export"))
    assert entries[0].after == {"address": "contoh"} and entries[1].after == {}


def test_unsubscribe_is_audited_and_idempotent(
    db: Database, fixed_now: datetime, people: dict[str, int]
) -> None:
    done = use.unsubscribe(db, people["ani"], ACTOR, now=fixed_now)
    assert done.status is SubscriberStatus.UNSUBSCRIBED
    use.unsubscribe(db, people["ani"], ACTOR, now=fixed_now)
    [entry] = audit.search(db, AuditFilter(action="subscriber.unsubscribe"))
    assert entry.before == {"status": "active"} and entry.after == {"status": "unsubscribed"}
    assert entry.target == "ani@example.com" and entry.actor == "pemred@example.id"


# -- pages ------------------------------------------------------------------------------------


def _client(config: Config, db: Database, now: datetime, who: str, role: Role) -> TestClient:
    client = TestClient(create_app(config, db, clock=lambda: now), follow_redirects=False)
    add_account(db, who, role, ACTOR, now=now)
    log_in(client, who)
    return client


def test_pages_for_an_admin(
    db: Database, config: Config, fixed_now: datetime, people: dict[str, int], tmp_path: Path
) -> None:
    client = _client(config, db, fixed_now, "pemred@example.id", Role.ADMIN)
    listing = client.get("/admin/subscribers?region=balikpapan")
    assert listing.status_code == 200 and "ani@example.com" in listing.text
    assert "budi@example.com" not in listing.text
    assert 'href="/admin/subscribers/export.csv?region=balikpapan"' in listing.text
    page = client.get(f"/admin/subscribers/{people['ani']}")
    assert page.status_code == 200 and "ipHash123" in page.text and "2025-11" in page.text
    assert '<dd id="sub-frequency">harian</dd>' in page.text
    exported = client.get("/admin/subscribers/export.csv?status=pending")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    assert [r[0] for r in csv.reader(io.StringIO(exported.text))][1:] == ["budi@example.com"]
    # resend: the mail lands in the Maildir; an active subscriber gets none
    pending = client.get(f"/admin/subscribers/{people['budi']}")
    sent = client.post(
        f"/admin/subscribers/{people['budi']}/resend", data={"csrf": csrf_of(pending.text)}
    )
    assert sent.status_code == 303
    mails = list((tmp_path / "mail" / "new").iterdir())
    assert len(mails) == 1
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "budi@example.com"
    again = client.post(
        f"/admin/subscribers/{people['budi']}/resend", data={"csrf": csrf_of(pending.text)}
    )
    assert again.status_code == 409  # within the resend interval
    active = client.post(
        f"/admin/subscribers/{people['ani']}/resend", data={"csrf": csrf_of(page.text)}
    )
    assert active.status_code == 409
    out = client.post(
        f"/admin/subscribers/{people['ani']}/unsubscribe", data={"csrf": csrf_of(page.text)}
    )
    assert out.status_code == 303
    assert "unsubscribed" in client.get(out.headers["location"]).text
    actions = [e.action for e in audit.search(db, AuditFilter())]
    assert actions[:4] == [
        "subscriber.unsubscribe",
        "subscriber.resend_confirmation",
        "subscribers.export",
        "account.password",
    ]
    assert client.get("/admin/subscribers/99999").status_code == 404


def test_editors_read_but_do_not_change_or_export(
    db: Database, config: Config, fixed_now: datetime, people: dict[str, int]
) -> None:
    client = _client(config, db, fixed_now, "editor@example.id", Role.EDITOR)
    listing = client.get("/admin/subscribers")
    assert listing.status_code == 200 and "Ekspor CSV" not in listing.text
    page = client.get(f"/admin/subscribers/{people['ani']}")
    assert page.status_code == 200 and "/unsubscribe" not in page.text
    assert client.get("/admin/subscribers/export.csv").status_code == 403
    post = client.post(
        f"/admin/subscribers/{people['ani']}/unsubscribe", data={"csrf": csrf_of(page.text)}
    )
    assert post.status_code == 403
    with db.connect() as conn:
        assert store.get(conn, people["ani"]).status is SubscriberStatus.ACTIVE  # type: ignore[union-attr]


IMPORT_CSV = (
    "email,regions,categories,status\n"
    "dewi@example.com,samarinda,,\n"  # new
    "ani@example.com,balikpapan,ekonomi olahraga,\n"  # one more category
    "budi@example.com,jayapura,,unsubscribed\n"  # stopped
    "cici@contoh.id,,olahraga,\n"  # as stored
    "not-an-address,,,\n"  # rejected
)


def test_import_preview_says_what_changes_and_writes_nothing(
    db: Database, config: Config, fixed_now: datetime, people: dict[str, int]
) -> None:
    plan = use.plan_import(db, config, IMPORT_CSV, now=fixed_now)
    outcomes = {r.email: r.outcome for r in plan.rows}
    assert outcomes == {
        "dewi@example.com": "add",
        "ani@example.com": "update",
        "budi@example.com": "stop",
        "cici@contoh.id": "unchanged",
    }
    ani = next(r for r in plan.rows if r.email == "ani@example.com")
    assert ani.changes == ("categories: ekonomi → ekonomi olahraga",)
    assert [line for line, _ in plan.problems] == [6]
    with db.connect() as conn:
        assert store.get_by_email(conn, "dewi@example.com") is None
    report = use.run_import(db, config, IMPORT_CSV, ACTOR, now=fixed_now)
    assert (report.added, report.updated, report.unchanged) == (1, 2, 1)
    with db.connect() as conn:
        assert store.get_by_email(conn, "budi@example.com").status is SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    [entry] = audit.search(db, AuditFilter(action="subscribers.import"))
    assert entry.after == {"added": 1, "updated": 2, "unchanged": 1, "rejected": 1}
    again = use.plan_import(db, config, IMPORT_CSV, now=fixed_now)
    assert {r.outcome for r in again.rows} == {"unchanged"}
    weekly = use.plan_import(
        db, config, "email,frequency,weekday\ncici@contoh.id,weekly,monday\n", now=fixed_now
    )
    [row] = weekly.rows
    assert row.outcome == "update" and any(c.startswith("frequency: ") for c in row.changes)


def test_import_pages_upload_preview_then_apply(
    db: Database, config: Config, fixed_now: datetime, people: dict[str, int]
) -> None:
    client = _client(config, db, fixed_now, "pemred@example.id", Role.ADMIN)
    page = client.get("/admin/subscribers/import")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    preview = client.post(
        "/admin/subscribers/import",
        data={"csrf": csrf, "step": "preview"},
        files={"file": ("people.csv", IMPORT_CSV.encode(), "text/csv")},
    )
    assert preview.status_code == 200 and "1 baru, 1 diubah, 1 dihentikan" in preview.text
    with db.connect() as conn:
        assert store.get_by_email(conn, "dewi@example.com") is None
    text = re.search(r'<textarea name="csv" hidden>(.*?)</textarea>', preview.text, re.S)
    assert text
    applied = client.post(
        "/admin/subscribers/import",
        data={"csrf": csrf, "step": "apply", "csv": html_unescape(text[1])},
    )
    assert applied.status_code == 200 and "1 ditambah, 2 diubah, 1 tetap" in applied.text
    with db.connect() as conn:
        assert store.get_by_email(conn, "dewi@example.com") is not None
    bad = client.post(
        "/admin/subscribers/import",
        data={"csrf": csrf, "step": "preview"},
        files={"file": ("x.csv", b"\xff\xfe\x00bad", "text/csv")},
    )
    assert bad.status_code == 400


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def _wait_done(client: TestClient, location: str) -> str:
    import time

    deadline = time.monotonic() + 30
    while True:
        page = client.get(location)
        assert page.status_code == 200
        if 'data-state="running"' not in page.text:
            return page.text
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)


def test_large_imports_and_feed_rebuilds_run_in_the_background(
    db: Database,
    config: Config,
    fixed_now: datetime,
    people: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kabarfeed.web.admin import subscriber_pages

    monkeypatch.setattr(subscriber_pages, "BACKGROUND_ROWS", 1)
    monkeypatch.setattr(use, "IMPORT_SLICE", 1)
    client = _client(config, db, fixed_now, "pemred@example.id", Role.ADMIN)
    csrf = csrf_of(client.get("/admin/subscribers/import").text)
    started = client.post(
        "/admin/subscribers/import", data={"csrf": csrf, "step": "apply", "csv": IMPORT_CSV}
    )
    assert started.status_code == 303 and started.headers["location"].startswith("/admin/jobs/")
    page = _wait_done(client, started.headers["location"])
    assert 'data-state="done"' in page and "1 added, 2 updated, 1 unchanged, 0 failed" in page
    assert 'max="4" value="4"' in page  # four valid rows, one slice each
    with db.connect() as conn:
        assert store.get_by_email(conn, "dewi@example.com") is not None
    rebuilt = client.post("/admin/jobs/rebuild-feeds", data={"csrf": csrf})
    assert rebuilt.status_code == 303
    page = _wait_done(client, rebuilt.headers["location"])
    assert 'data-state="done"' in page and "feeds" in page
    assert (config.feeds.output / "feeds" / "all.rss").exists()
    actions = [e.action for e in audit.search(db, AuditFilter())][:2]
    assert actions == ["feeds.rebuild", "subscribers.import"]
    assert client.get("/admin/jobs/nosuchjob").status_code == 404


def test_a_job_whose_row_stops_moving_is_interrupted(db: Database, fixed_now: datetime) -> None:
    from kabarfeed.admin import jobs

    job_id = jobs.start(db, "subscribers-import", "x@example.id", now=fixed_now)
    jobs.progress(db, job_id, lambda: fixed_now)(3, 10)
    job = jobs.get(db, job_id)
    assert job is not None and (job.done, job.total, job.percent) == (3, 10, 30)
    assert job.state(fixed_now + timedelta(minutes=4)) == "running"
    assert job.state(fixed_now + timedelta(minutes=6)) == "interrupted"
    jobs.finish(db, job_id, ok=True, summary="ok", now=fixed_now)
    assert jobs.get(db, job_id).state(fixed_now + timedelta(days=1)) == "done"  # type: ignore[union-attr]
