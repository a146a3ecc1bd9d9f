"""The console's configuration editor: the same validator and messages as
``kabarfeed config check`` with problems on their line, the diff, atomic
apply (never an invalid file), history and rollback, tomlkit edits that keep
comments, and the pages around them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from admin_support import PASSWORD, add_account, csrf_of, log_in
from conftest import ConfigFactory
from kabarfeed.admin import accounts, audit, configedit
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor, AuditFilter
from kabarfeed.cli import main
from kabarfeed.config import Config
from kabarfeed.errors import ConfigError
from kabarfeed.store import Database
from kabarfeed.web import create_app

ACTOR = Actor.console("pemred@example.id")


@pytest.fixture
def config(make_config: ConfigFactory, tmp_path: Path) -> Config:
    return make_config(
        f'[feeds]\noutput = "{tmp_path / "public"}"\n# how many items per feed\nitems = 40\n'
        f'[maildir]\npath = "{tmp_path / "mail"}"\n'
    )


def _path(config: Config) -> Path:
    assert config.path is not None
    return config.path


def test_problems_match_config_check_and_name_their_line(config: Config, tmp_path: Path) -> None:
    path = _path(config)
    text = path.read_text(encoding="utf-8")
    broken = text.replace("items = 40", 'items = "many"').replace(
        'language = "id"', 'language = "fr"', 1
    )
    checked = configedit.check_text(broken, path, environ={})
    assert not checked.valid
    by_key = {p.key: p for p in checked.problems}
    lines = broken.splitlines()
    assert lines[by_key["feeds.items"].line - 1].strip() == 'items = "many"'  # type: ignore[operator]
    assert lines[by_key["site.language"].line - 1].strip() == 'language = "fr"'  # type: ignore[operator]
    # The very messages `kabarfeed config check` prints for the same file.
    path.write_text(broken, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    for problem in checked.problems:
        assert f"{path.name}: {problem.text}" in result.stderr


def test_syntax_errors_and_table_level_problems_have_lines(config: Config) -> None:
    path = _path(config)
    text = path.read_text(encoding="utf-8")
    syntax = configedit.check_text(text + "\n[broken\n", path, environ={})
    assert syntax.problems[0].line == len(text.splitlines()) + 2
    assert "TOML syntax error" in syntax.problems[0].message
    cross = (
        text
        + '\n[[sources]]\nname = "x"\nkind = "feed"\n'
        + 'url = "https://a.example/rss"\nregion = "atlantis"\n'
    )
    checked = configedit.check_text(cross, path, environ={})
    problem = next(p for p in checked.problems if p.key.endswith(".region"))
    assert "atlantis" in problem.message
    assert cross.splitlines()[problem.line - 1] == 'region = "atlantis"'  # type: ignore[operator]


def test_key_lines_and_locate() -> None:
    text = (
        '# c\n[site]\ntitle = "x"\n\n[[sources]]\nname = "a"\n[[sources]]\nname = "b"\n'
        'interval = "1x"\n[digest]\nsend_at = "25:00"\n'
    )
    lines = configedit.key_lines(text)
    assert (
        lines["site.title"] == 3 and lines["sources[1]"] == 7 and lines["sources[1].interval"] == 9
    )
    assert configedit.locate("sources[1].interval", lines) == 9
    assert configedit.locate("sources[1].region", lines) == 7
    assert configedit.locate("digest.send_at", lines) == 11
    assert configedit.locate("smtp.port", lines) is None


def test_apply_writes_atomically_records_history_and_audits(
    db: Database, config: Config, fixed_now: datetime
) -> None:
    path = _path(config)
    original = path.read_text(encoding="utf-8")
    edited = original.replace("items = 40", "items = 25")
    version, checked = configedit.apply_text(
        db, path, edited, ACTOR, base_sha=configedit.sha256(original), now=fixed_now
    )
    assert checked.config is not None and checked.config.feeds.items == 25
    assert path.read_text(encoding="utf-8") == edited
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    versions = configedit.history(db)
    assert [v.author for v in versions] == ["pemred@example.id", "file"]
    assert versions[1].text == original and versions[0].id == version.id
    entry = audit.search(db, AuditFilter(action="config.apply"))[0]
    assert entry.actor == "pemred@example.id" and entry.after["version"] == version.id
    assert entry.before == {"sha256": configedit.sha256(original)[:12]}


def test_invalid_or_conflicting_edits_are_never_written(
    db: Database, config: Config, fixed_now: datetime
) -> None:
    path = _path(config)
    original = path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"feeds\.items"):
        configedit.apply_text(
            db,
            path,
            original.replace("items = 40", "items = 0"),
            ACTOR,
            base_sha=configedit.sha256(original),
            now=fixed_now,
        )
    with pytest.raises(ConfigError, match="syntax"):
        configedit.apply_text(db, path, original + "[x", ACTOR, base_sha=None, now=fixed_now)
    with pytest.raises(configedit.ConfigConflict):
        configedit.apply_text(
            db,
            path,
            original.replace("items = 40", "items = 30"),
            ACTOR,
            base_sha=configedit.sha256("something else"),
            now=fixed_now,
        )
    assert path.read_text(encoding="utf-8") == original
    assert configedit.history(db) == []


def test_rollback_applies_an_earlier_version_as_a_new_one(
    db: Database, config: Config, fixed_now: datetime
) -> None:
    path = _path(config)
    original = path.read_text(encoding="utf-8")
    configedit.apply_text(
        db, path, original.replace("items = 40", "items = 25"), ACTOR, base_sha=None, now=fixed_now
    )
    first = configedit.history(db)[-1]
    version, _ = configedit.rollback(
        db, path, first.id, ACTOR, now=fixed_now + timedelta(minutes=1)
    )
    assert path.read_text(encoding="utf-8") == original
    assert version.note == f"rollback to #{first.id}"
    assert [v.id for v in configedit.history(db)] == [version.id, 2, 1]


def test_form_edits_keep_comments_and_layout(config: Config) -> None:
    text = _path(config).read_text(encoding="utf-8")
    values = configedit.field_values(text)
    assert values["feeds.items"] == "40" and values["site.title"] == "Nusantara Plus"
    edited = configedit.apply_fields(
        text, {**values, "feeds.items": "12", "digest.max_articles": "9", "site.description": ""}
    )
    assert "# how many items per feed\nitems = 12\n" in edited
    assert "[digest]\nmax_articles = 9" in edited
    # Every other line is kept, in order (comments included).
    kept = iter(edited.splitlines())
    assert all(line in kept for line in text.splitlines() if line != "items = 40")
    unchanged = configedit.apply_fields(text, values)
    assert unchanged == text
    bad = configedit.apply_fields(text, {**values, "feeds.items": "dua belas"})
    assert 'items = "dua belas"' in bad


# -- the pages -------------------------------------------------------------------------------


class Reloads:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, trigger: str) -> bool:
        self.calls.append(trigger)
        return True


def _client(config: Config, db: Database, now: datetime, reloads: Reloads | None) -> TestClient:
    app = create_app(config, db, clock=lambda: now)
    if reloads is not None:
        app.state.reload = reloads
    client = TestClient(app, follow_redirects=False)
    for email, role in (("pemred@example.id", Role.ADMIN), ("editor@example.id", Role.EDITOR)):
        add_account(db, email, role, ACTOR, now=now)
    log_in(client, "pemred@example.id")
    return client


def test_config_pages_check_apply_and_rollback(
    db: Database, config: Config, fixed_now: datetime
) -> None:
    reloads = Reloads()
    client = _client(config, db, fixed_now, reloads)
    path = _path(config)
    original = path.read_text(encoding="utf-8")
    page = client.get("/admin/config")
    assert page.status_code == 200 and "items = 40" in page.text
    csrf = csrf_of(page.text)
    base = re.search(r'name="base" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    broken = original.replace("items = 40", "items = -1")
    checked = client.post(
        "/admin/config/check", data={"csrf": csrf, "base": base, "mode": "raw", "text": broken}
    )
    line = broken.splitlines().index("items = -1") + 1
    assert checked.status_code == 400 and "feeds.items" in checked.text
    assert f'data-line="{line}"' in checked.text
    refused = client.post(
        "/admin/config/apply", data={"csrf": csrf, "base": base, "mode": "raw", "text": broken}
    )
    assert refused.status_code == 400 and path.read_text(encoding="utf-8") == original
    assert reloads.calls == []
    good = original.replace("items = 40", "items = 21")
    preview = client.post(
        "/admin/config/check", data={"csrf": csrf, "base": base, "mode": "raw", "text": good}
    )
    assert preview.status_code == 200 and "feeds.items: 40 -&gt; 21" in preview.text
    assert '<span class="add">+items = 21</span>' in preview.text
    applied = client.post(
        "/admin/config/apply", data={"csrf": csrf, "base": base, "mode": "raw", "text": good}
    )
    assert applied.status_code == 303 and "done=applied" in applied.headers["location"]
    assert path.read_text(encoding="utf-8") == good and reloads.calls == ["console"]
    stale = client.post(
        "/admin/config/apply",
        data={
            "csrf": csrf,
            "base": base,
            "mode": "raw",
            "text": original.replace("items = 40", "items = 22"),
        },
    )
    assert stale.status_code == 409 and path.read_text(encoding="utf-8") == good
    first = configedit.history(db)[-1]
    back = client.post(f"/admin/config/rollback/{first.id}", data={"csrf": csrf})
    assert back.status_code == 303 and "done=rolled_back" in back.headers["location"]
    assert path.read_text(encoding="utf-8") == original
    assert client.post("/admin/config/rollback/999", data={"csrf": csrf}).status_code == 404
    history = client.get(back.headers["location"]).text
    assert "rollback to #1" in history and "pemred@example.id" in history


def test_config_form_mode_and_without_a_reloader(
    db: Database, config: Config, fixed_now: datetime
) -> None:
    client = _client(config, db, fixed_now, None)
    path = _path(config)
    page = client.get("/admin/config?mode=form")
    csrf = csrf_of(page.text)
    fields = {
        f.name: v
        for f, v in (
            (f, configedit.field_values(path.read_text())[f.name]) for f in configedit.FIELDS
        )
    }
    applied = client.post(
        "/admin/config/apply", data={"csrf": csrf, "mode": "form", **fields, "feeds.items": "33"}
    )
    assert applied.status_code == 303 and "done=applied_pending" in applied.headers["location"]
    assert "# how many items per feed\nitems = 33\n" in path.read_text(encoding="utf-8")


def test_config_editor_is_for_admins_only(
    db: Database, config: Config, fixed_now: datetime
) -> None:
    app = create_app(config, db, clock=lambda: fixed_now)
    client = TestClient(app, follow_redirects=False)
    invite = accounts.add_account(
        db, "editor@example.id", Role.EDITOR, ACTOR, now=fixed_now, ttl=timedelta(days=1)
    )
    accounts.set_password(db, invite.token, PASSWORD, now=fixed_now)
    page = client.get("/admin/login")
    client.post(
        "/admin/login",
        data={"csrf": csrf_of(page.text), "email": "editor@example.id", "password": PASSWORD},
    )
    dash = client.get("/admin/")
    assert dash.status_code == 200
    assert client.get("/admin/config").status_code == 403
    original = _path(config).read_text(encoding="utf-8")
    post = client.post(
        "/admin/config/apply", data={"csrf": csrf_of(dash.text), "mode": "raw", "text": "x"}
    )
    assert post.status_code == 403 and _path(config).read_text(encoding="utf-8") == original


def test_live_validation_endpoint(db: Database, config: Config, fixed_now: datetime) -> None:
    client = _client(config, db, fixed_now, None)
    page = client.get("/admin/config")
    csrf = csrf_of(page.text)
    text = _path(config).read_text(encoding="utf-8")
    ok = client.post("/admin/config/validate", data={"csrf": csrf, "text": text})
    assert ok.status_code == 200 and ok.json()["valid"] is True and ok.json()["problems"] == []
    broken = text.replace("items = 40", "items = 0")
    bad = client.post("/admin/config/validate", data={"csrf": csrf, "text": broken}).json()
    [problem] = bad["problems"]
    assert bad["valid"] is False and problem["key"] == "feeds.items"
    assert problem["line"] == broken.splitlines().index("items = 0") + 1
    assert problem["message"].startswith("config.toml: feeds.items: ")
    assert client.post("/admin/config/validate", data={"text": text}).status_code == 403
