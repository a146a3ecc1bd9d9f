"""The push API's documentation is true: the OpenAPI document served at
/api/v1/openapi.json is valid OpenAPI 3.1 (checked against its JSON schema)
and names every route the app has under /api/v1; the README's curl examples
(marked ``<!-- runnable: api -->``) run against a live server and do what
they say."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from kabarfeed.store import Database
from kabarfeed.store.articles import load_articles
from tests.api_support import SECRET, Clock, api_config, live, token_for
from tests.conftest import REPO, ConfigFactory
from tests.test_readme import marked_blocks

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)
MARKER = "runnable: api"
"""README blocks after ``<!-- runnable: api -->`` (the README test's marker convention;
plain ``runnable`` blocks run without a server, these need one)."""


def readme_blocks() -> list[str]:
    """The shell blocks that follow the marker in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = marked_blocks(text, MARKER)
    assert all(lang == "sh" for lang, _ in blocks)
    return [body.rstrip("\n") for _, body in blocks]


def test_openapi_is_valid_and_covers_every_route(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    config = api_config(make_config, tmp_path)
    with live(config, db, Clock(NOW)) as app, app.client() as client:
        answer = client.get("/api/v1/openapi.json")
        assert answer.status_code == 200
        document = answer.json()
        routes = [
            r for r in app.app.routes if isinstance(r, Route) and r.path.startswith("/api/v1")
        ]
    validate(document)
    assert document["servers"] == [{"url": "https://news.example.id/api/v1"}]
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {
        (r.path.removeprefix("/api/v1").replace(":path", ""), m)
        for r in routes
        for m in (r.methods or ()) - {"HEAD"}
    }
    assert served == documented


def test_readme_curl_examples_run_against_a_live_server(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3, "the README's push API examples are missing their marker"
    config = api_config(make_config, tmp_path)
    token = token_for(config, db, "redaksi")
    with live(config, db, Clock(NOW)) as app:
        env = {
            **os.environ,
            "KABARFEED_URL": app.base,
            "TOKEN": token,
            "PUSH_SECRET": SECRET,
        }
        outputs = []
        for block in blocks:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"{block}\n---\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
    assert '"result":"created"' in outputs[0]
    assert '"result":"updated"' in outputs[1] and '"unpublished":0' in outputs[1]
    assert '"result":"created"' in outputs[2]
    with db.connect() as conn:
        assert [a.guid for a in load_articles(conn)] == ["wp-1235"]


@pytest.mark.parametrize("block", readme_blocks())
def test_readme_examples_use_only_documented_variables(block: str) -> None:
    names = set(re.findall(r"\$\{?([A-Z_]+)", block))
    assert names <= {"KABARFEED_URL", "TOKEN", "PUSH_SECRET", "BODY", "SIG"}
