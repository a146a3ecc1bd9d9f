"""The README's quick start: the bundled config.toml, run once, end to end.

Outputs are redirected through environment overrides so the checkout stays
clean; everything else (sources, taxonomy, defaults) is the shipped config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import feedparser

from tests.conftest import REPO


def kabarfeed(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kabarfeed", "--config", str(REPO / "config.toml"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_bundled_config_runs_once_end_to_end(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KABARFEED_STORAGE_URL": f"sqlite:///{tmp_path / 'kabarfeed.db'}",
        "KABARFEED_FEEDS_OUTPUT": str(tmp_path / "public"),
        "KABARFEED_MAILDIR_PATH": str(tmp_path / "maildir"),
    }
    first = kabarfeed(env, "run", "--once")
    assert first.returncode == 0, first.stderr
    all_rss = (tmp_path / "public" / "feeds" / "all.rss").read_bytes()
    feed = feedparser.parse(all_rss)
    assert not feed.bozo and len(feed.entries) >= 12
    assert (tmp_path / "public" / "index.html").exists()
    assert (tmp_path / "public" / "feeds" / "region" / "balikpapan.atom").exists()
    assert (tmp_path / "public" / "feeds" / "index.opml").exists()
    sources = json.loads(kabarfeed(env, "sources", "--json").stdout)
    assert [s["status"] for s in sources] == ["ok", "ok"]
    status = kabarfeed(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    shutil.rmtree(tmp_path / "public")
    again = kabarfeed(env, "run", "--once")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "public" / "feeds" / "all.rss").read_bytes() == all_rss, "restored as is"
