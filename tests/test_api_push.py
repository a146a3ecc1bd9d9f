"""The push API over real HTTP: tokens and their scope, idempotent pushes,
problem details (422, 413, 429), the signed webhook with a real HMAC and a
flipped byte, nh3 sanitising, unpublishing, the listing and the status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kabarfeed.cli import main
from kabarfeed.errors import StoreError
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.ingest import Ingestor
from kabarfeed.store import Database
from kabarfeed.store.articles import Prepared, SaveCounts, load_articles
from kabarfeed.store.pushapi import api_tokens
from kabarfeed.store.schema import articles
from tests.api_support import Clock, api_config, article, live, signed, token_for
from tests.conftest import ConfigFactory

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def _changed_at(db: Database, guid: str) -> datetime:
    with db.connect() as conn:
        found = conn.execute(select(articles.c.changed_at).where(articles.c.guid == guid))
        value: datetime = found.scalar_one()
        return value


def test_cli_token_is_shown_once_and_stored_hashed(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    api_config(make_config, tmp_path)
    runner = CliRunner()
    cfg = ["--config", str(tmp_path / "config.toml")]
    made = runner.invoke(main, [*cfg, "api-token", "add", "wordpress", "--source", "redaksi"])
    assert made.exit_code == 0, made.output
    secret = next(w for w in made.output.split() if w.startswith("kf_"))
    with db.connect() as conn:
        stored = conn.execute(select(api_tokens)).one()
    assert secret not in json.dumps([str(v) for v in stored])
    assert stored.source == "redaksi"
    listed = runner.invoke(main, [*cfg, "api-token", "list"])
    assert "wordpress" in listed.output and "redaksi" in listed.output
    assert secret not in listed.output
    unknown = runner.invoke(main, [*cfg, "api-token", "add", "x", "--source", "nope"])
    assert unknown.exit_code != 0 and "unknown source" in unknown.output
    again = runner.invoke(main, [*cfg, "api-token", "add", "wordpress", "--source", "redaksi"])
    assert again.exit_code != 0 and "already exists" in again.output

    config = api_config(make_config, tmp_path)
    with live(config, db, clock) as app, app.client(secret) as client:
        assert client.get("/api/v1/status").status_code == 200
        removed = runner.invoke(main, [*cfg, "api-token", "remove", "wordpress"])
        assert removed.exit_code == 0, removed.output
        refused = client.get("/api/v1/status")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == PROBLEM
        assert refused.headers["www-authenticate"].startswith("Bearer")


def test_same_push_twice_changes_nothing(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "redaksi")
    with live(config, db, clock) as app, app.client(token) as client:
        first = client.post("/api/v1/articles", json=article(1))
        assert first.status_code == 201, first.text
        assert first.headers["location"] == "/api/v1/articles/cms-1"
        stored = first.json()["article"]
        assert "balikpapan" in stored["regions"] and stored["source"] == "redaksi"
        changed = _changed_at(db, "cms-1")
        clock.advance(minutes=5)
        second = client.post("/api/v1/articles", json=article(1))
        assert second.status_code == 200
        assert second.json()["result"] == "unchanged"
        assert second.json()["article"] == stored
        assert _changed_at(db, "cms-1") == changed
        edited = client.put(
            "/api/v1/articles/cms-1", json=article(1, title="Judul baru", breaking=True)
        )
        assert edited.status_code == 200 and edited.json()["result"] == "updated"
        assert "breaking: 0 alert(s) queued" in edited.json()["notes"]
        assert client.get("/api/v1/articles/cms-1").json()["title"] == "Judul baru"
        contradicting = client.put("/api/v1/articles/cms-1", json=article(2))
        assert contradicting.status_code == 422
    with db.connect() as conn:
        assert len(load_articles(conn)) == 1


def test_a_token_writes_and_reads_only_its_source(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    ours, theirs = token_for(config, db, "redaksi"), token_for(config, db, "mitra")
    with live(config, db, clock) as app, app.client(ours) as a, app.client(theirs) as b:
        assert a.post("/api/v1/articles", json=article(1)).status_code == 201
        assert b.get("/api/v1/articles/cms-1").status_code == 404
        assert b.delete("/api/v1/articles/cms-1").status_code == 404
        assert b.get("/api/v1/articles").json()["articles"] == []
        assert b.get("/api/v1/status").json()["articles"] == 0
        # the same item (same URL) from another source is a conflict, not a takeover
        taken = b.post("/api/v1/articles", json=article(1, title="Versi mitra"))
        assert taken.status_code == 409
        assert a.get("/api/v1/articles/cms-1").json()["title"].startswith("Pemkot")
        assert a.get("/api/v1/status").json()["articles"] == 1


def test_a_token_of_a_source_no_longer_configured_is_refused(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "mitra")
    smaller = config.model_copy(update={"sources": config.sources[:1]})
    with live(smaller, db, clock) as app, app.client(token) as client:
        refused = client.post("/api/v1/articles", json=article(1))
        assert refused.status_code == 403
        assert refused.headers["content-type"] == PROBLEM


def test_validation_lists_every_field_as_problem_details(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "redaksi")
    bad = {
        "body": "teks",
        "published": "kemarin",
        "regions": "balikpapan",
        "tags": [1, 2],
        "advertorial": "mungkin",
        "url": "berita/1",
        "image": {"caption": "tanpa url"},
    }
    with live(config, db, clock) as app, app.client(token) as client:
        answer = client.post("/api/v1/articles", json=bad)
        assert answer.status_code == 422
        assert answer.headers["content-type"] == PROBLEM
        problem = answer.json()
        assert problem["status"] == 422 and problem["type"].endswith(":validation")
        pointers = {e["pointer"] for e in problem["errors"]}
        assert pointers == {
            "#/title",
            "#/published",
            "#/tags",
            "#/advertorial",
            "#/url",
            "#/image",
        }
        assert client.post("/api/v1/articles", json=[article(1)]).status_code == 422
        not_json = client.post(
            "/api/v1/articles", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400 and not_json.headers["content-type"] == PROBLEM
        form = client.post(
            "/api/v1/articles",
            content=b"title=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
    with db.connect() as conn:
        assert load_articles(conn) == []


def test_oversized_body_is_413_problem_details(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path, "[web]\nmax_body = 4096\n")
    token = token_for(config, db, "redaksi")
    big = article(1, body="x" * 10_000)
    with live(config, db, clock) as app, app.client(token) as client:
        answer = client.post("/api/v1/articles", json=big)
        assert answer.status_code == 413
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["status"] == 413

        def chunks() -> object:
            payload = json.dumps(big).encode()
            for i in range(0, len(payload), 1000):
                yield payload[i : i + 1000]

        streamed = client.post(
            "/api/v1/articles", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
    with db.connect() as conn:
        assert load_articles(conn) == []


def test_rate_limit_per_token_is_shared_by_processes(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path, "[api]\nrequests_per_minute = 3\n")
    token, other = token_for(config, db, "redaksi"), token_for(config, db, "mitra")
    with (
        live(config, db, clock) as one,
        live(config, db, clock) as two,
        one.client(token) as a,
        two.client(token) as b,
        two.client(other) as c,
    ):
        assert a.get("/api/v1/status").status_code == 200
        assert b.get("/api/v1/status").status_code == 200
        assert a.post("/api/v1/articles", json=article(1)).status_code == 201
        limited = b.post("/api/v1/articles", json=article(2))
        assert limited.status_code == 429
        assert limited.headers["content-type"] == PROBLEM
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert c.get("/api/v1/status").status_code == 200  # another token is not limited
        clock.advance(seconds=61)
        assert b.post("/api/v1/articles", json=article(2)).status_code == 201


def test_signed_webhook_real_signature_and_a_flipped_byte(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    body = json.dumps(article(7)).encode()
    flipped = bytearray(body)
    flipped[20] ^= 0x01
    with live(config, db, clock) as app, app.client() as client:
        refused = client.post(
            "/api/v1/webhooks/redaksi", content=bytes(flipped), headers=signed(body)
        )
        assert refused.status_code == 401
        wrong_key = client.post(
            "/api/v1/webhooks/redaksi", content=body, headers=signed(body, "other")
        )
        assert wrong_key.status_code == 401
        unsigned = client.post("/api/v1/webhooks/redaksi", content=body)
        assert unsigned.status_code == 401
        with db.connect() as conn:
            assert load_articles(conn) == []
        no_secret = client.post("/api/v1/webhooks/mitra", content=body, headers=signed(body))
        assert no_secret.status_code == 404
        accepted = client.post("/api/v1/webhooks/redaksi", content=body, headers=signed(body))
        assert accepted.status_code == 201, accepted.text
        again = client.post("/api/v1/webhooks/redaksi", content=body, headers=signed(body))
        assert again.status_code == 200 and again.json()["result"] == "unchanged"
        gone = json.dumps({"action": "unpublish", "guid": "cms-7"}).encode()
        deleted = client.post("/api/v1/webhooks/redaksi", content=gone, headers=signed(gone))
        assert deleted.status_code == 204
    with db.connect() as conn:
        assert load_articles(conn) == []


def test_the_webhook_secret_may_come_from_the_environment(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    from kabarfeed.web.api import push_secrets

    config = api_config(make_config, tmp_path)
    found = push_secrets(config, {"KABARFEED_SOURCE_MITRA_PUSH_SECRET": "from-env"})
    assert found == {"redaksi": "webhook-shared-secret-for-tests", "mitra": "from-env"}


def test_pushed_html_is_sanitised_like_ingest(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "redaksi")
    hostile = article(
        3,
        body=None,
        content_html=(
            '<p onclick="steal()">BALIKPAPAN – Isi <script>alert(1)</script>'
            '<a href="javascript:alert(2)">tautan</a><img src=x onerror="alert(3)"></p>'
        ),
        title="<b>Judul</b> <script>x()</script>",
    )
    with live(config, db, clock) as app, app.client(token) as client:
        stored = client.post("/api/v1/articles", json=hostile).json()["article"]
    html = stored["content_html"]
    for bad in ("<script", "onclick", "javascript:", "onerror"):
        assert bad not in html and bad not in stored["title"]
    FeedBuilder(config, db, clock).build()
    feed = (tmp_path / "public" / "feeds" / "all.rss").read_text(encoding="utf-8")
    assert "Isi" in feed and "<script" not in feed and "javascript:" not in feed


def test_unpublish_takes_the_article_out_and_a_reingest_does_not_bring_it_back(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "redaksi")
    # the same item also sits in the source's folder (a CMS that exports and pushes)
    item = {k: v for k, v in article(4).items() if k != "published"}
    item["date"] = "2025-11-16T09:00:00+08:00"
    (tmp_path / "redaksi" / "a.json").write_text(json.dumps(item), encoding="utf-8")
    with live(config, db, clock) as app, app.client(token) as client:
        assert client.post("/api/v1/articles", json=article(4)).status_code == 201
        assert client.post("/api/v1/articles", json=article(5)).status_code == 201
        FeedBuilder(config, db, clock).build()
        feed = tmp_path / "public" / "feeds" / "region" / "balikpapan.rss"
        assert "koordinasi 4" in feed.read_text(encoding="utf-8")
        clock.advance(minutes=1)
        assert client.delete("/api/v1/articles/cms-4").status_code == 204
        assert client.delete("/api/v1/articles/cms-4").status_code == 204  # idempotent
        assert client.delete("/api/v1/articles/cms-404").status_code == 404
        gone = client.get("/api/v1/articles/cms-4")
        assert gone.status_code == 410 and gone.headers["content-type"] == PROBLEM
        FeedBuilder(config, db, clock).build()
        text = feed.read_text(encoding="utf-8")
        assert "koordinasi 4" not in text and "koordinasi 5" in text
        with db.connect() as conn:  # what digest editions select from
            assert [a.guid for a in load_articles(conn)] == ["cms-5"]
        clock.advance(minutes=15)
        Ingestor(config, db, clock).run()
        with db.connect() as conn:
            assert [a.guid for a in load_articles(conn)] == ["cms-5"]
        assert client.get("/api/v1/status").json()["unpublished"] == 1
        back = client.put("/api/v1/articles/cms-4", json=article(4))
        assert back.status_code == 201
        assert client.get("/api/v1/status").json()["unpublished"] == 0
        FeedBuilder(config, db, clock).build()
        assert "koordinasi 4" in feed.read_text(encoding="utf-8")


def test_listing_since_and_status(
    make_config: ConfigFactory, db: Database, tmp_path: Path, clock: Clock
) -> None:
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "redaksi")
    with live(config, db, clock) as app, app.client(token) as client:
        client.post("/api/v1/articles", json=article(1))
        clock.advance(minutes=1)
        mark = clock.now
        clock.advance(minutes=1)
        client.post("/api/v1/articles", json=article(2))
        everything = client.get("/api/v1/articles").json()["articles"]
        assert [a["guid"] for a in everything] == ["cms-1", "cms-2"]
        since = client.get("/api/v1/articles", params={"since": mark.isoformat()})
        assert [a["guid"] for a in since.json()["articles"]] == ["cms-2"]
        assert len(client.get("/api/v1/articles", params={"limit": "1"}).json()["articles"]) == 1
        bad = client.get("/api/v1/articles", params={"since": "kemarin", "limit": "0"})
        assert bad.status_code == 422
        assert {e["pointer"] for e in bad.json()["errors"]} == {"#/since", "#/limit"}
        status = client.get("/api/v1/status").json()
        assert status["source"] == "redaksi" and status["articles"] == 2
        assert status["newest_change"] == clock.now.isoformat()


def test_the_same_push_racing_itself_is_stored_once(
    make_config: ConfigFactory,
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another request stores the same item first and this push's insert then
    fails on the unique key (forced here, as PostgreSQL reports it): the push
    is a no-op answered with the stored article, not a 503."""
    from kabarfeed import push

    config = api_config(make_config, tmp_path)
    real = push._save
    raced: list[bool] = []

    def racing(db: Database, prepared: Prepared, now: datetime) -> tuple[SaveCounts, object]:
        if not raced:
            raced.append(True)
            real(db, prepared, now)  # the concurrent request commits first
            unique = IntegrityError("INSERT INTO articles", {}, Exception("duplicate key"))
            raise StoreError("database error: IntegrityError") from unique
        return real(db, prepared, now)

    monkeypatch.setattr(push, "_save", racing)
    payload = push.parse_payload(article(9), source="redaksi", default_tz="Asia/Makassar")
    source = config.source("redaksi")
    assert source is not None
    outcome = push.push_article(config, db, source, payload, now=NOW)
    assert raced and outcome.status == "unchanged" and outcome.article.guid == "cms-9"
    with db.connect() as conn:
        assert [a.guid for a in load_articles(conn)] == ["cms-9"]
