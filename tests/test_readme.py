"""The README cannot rot: its runnable shell blocks run, its quick start shows
the two commands, and the block it says `make run` prints is what it prints.

Mark a ```sh block runnable by putting ``<!-- runnable -->`` on the line
before it. Runnable blocks run with bash (``-euo pipefail``) in a fresh copy
of the repository whose ``.venv`` is this one; they must finish on their own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kabarfeed.banner import Startup, banner_lines
from kabarfeed.clock import system_clock
from kabarfeed.config import load_config
from kabarfeed.integrations import create_app
from kabarfeed.seed import SeedReport
from kabarfeed.store import open_database
from tests.conftest import PG_URL, REPO

README = REPO / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def marked_blocks(text: str, marker: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block right after ``<!-- marker -->``."""
    out = []
    for match in re.finditer(rf"^<!-- {marker} -->\n", text, re.M):
        fence = _FENCE.match(text, match.end())
        assert fence, f"<!-- {marker} --> at offset {match.start()} is not followed by a block"
        out.append((fence.group(1), fence.group(2)))
    return out


def quick_start(text: str) -> str:
    return text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]


def fresh_copy(target: Path) -> Path:
    """The repository as a clone has it (no var/, public/, caches), with this .venv."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", "var", "public", "test-artifacts", "*cache*", "__pycache__"
    )
    shutil.copytree(REPO, target, ignore=skip)
    (target / ".venv").symlink_to(Path(sys.prefix))
    return target


RUNNABLE = marked_blocks(README.read_text(encoding="utf-8"), "runnable")


def test_readme_has_runnable_blocks() -> None:
    assert RUNNABLE and all(lang == "sh" for lang, _ in RUNNABLE)


@pytest.mark.skipif(bool(PG_URL), reason="the bundled config runs on SQLite; once is enough")
@pytest.mark.parametrize("block", [b for _, b in RUNNABLE], ids=lambda b: b.split("\n")[0][:40])
def test_runnable_block_runs_on_a_fresh_copy(block: str, tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path / "kabarfeed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KABARFEED_")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def test_quick_start_is_the_two_commands() -> None:
    section = quick_start(README.read_text(encoding="utf-8"))
    first = _FENCE.search(section)
    assert first and first.group(1) == "sh"
    commands = [line.split("#")[0].strip() for line in first.group(2).splitlines()]
    assert commands == ["make run", "make test"]
    recipe = (REPO / "Makefile").read_text(encoding="utf-8").split("\nrun:", 1)[1]
    assert "kabarfeed --config config.toml run\n" in recipe
    assert "--config config.toml run" in section


def test_quick_start_screenshot_is_in_the_repository() -> None:
    section = quick_start(README.read_text(encoding="utf-8"))
    images = re.findall(r'<img src="([^"]+)"', section) + re.findall(
        r"!\[[^]]*\]\(([^)]+)\)", section
    )
    assert images, "the quick start shows the digest"
    for image in images:
        assert (REPO / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image


def test_printed_block_is_what_run_prints(tmp_path: Path) -> None:
    config = load_config(REPO / "config.toml", environ={})
    db = open_database(f"sqlite:///{tmp_path / 'kabarfeed.db'}")
    try:
        app = create_app(config, db, system_clock)
        paths = tuple(str(getattr(r, "path", "")) for r in app.routes)
    finally:
        db.dispose()
    assert config.seed.subscribers is not None
    readers = config.seed.subscribers.read_text(encoding="utf-8").splitlines()[1:]
    seed = SeedReport(
        config.seed.subscribers,
        "examples/subscribers.csv",
        tuple(line.split(",")[0] for line in readers if line.strip()),
        len(readers),
        datetime.now(UTC),
    )
    startup = Startup(config.web.host, config.web.port, paths, {}, seed)
    printed = [line for line in banner_lines(config, startup, cwd=REPO) if line]
    [(_, shown)] = marked_blocks(README.read_text(encoding="utf-8"), "banner")
    assert shown.splitlines() == printed
