"""The CLI as an admin uses it: real config files, real database, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from kabarfeed.cli import main
from tests.conftest import REPO, ConfigFactory

EXAMPLES = REPO / "examples" / "articles"


def sources_toml() -> str:
    return (
        f'[[sources]]\nname = "redaksi"\nkind = "directory"\npath = "{EXAMPLES}"\n'
        f'[[sources]]\nname = "kaltim"\nkind = "feed"\n'
        f'url = "{(REPO / "examples/feeds/kaltim.xml").as_uri()}"\nregion = "kalimantan-timur"\n'
    )


def invoke(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(tmp_path / "config.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_ingest_then_articles_json(tmp_path: Path, make_config: ConfigFactory) -> None:
    make_config(sources_toml())
    code, out, _ = invoke(tmp_path, "ingest")
    assert code == 0
    assert out.strip().startswith("sources ok 2, failed 0; articles new ")
    code, out, _ = invoke(tmp_path, "articles", "--json", "--region", "kalimantan-timur")
    assert code == 0
    items = json.loads(out)
    assert items, "Kaltim has sample articles"
    keys = {
        "id",
        "title",
        "url",
        "author",
        "published",
        "updated",
        "regions",
        "categories",
        "advertorial",
        "source",
        "image",
    }
    assert all(keys <= set(item) for item in items)
    assert all("kalimantan-timur" in item["regions"] for item in items)
    for item in items:
        assert datetime.fromisoformat(item["published"]).tzinfo is not None
    stamps = [datetime.fromisoformat(i["published"]) for i in items]
    assert stamps == sorted(stamps, reverse=True)


def test_articles_filters(tmp_path: Path, make_config: ConfigFactory) -> None:
    make_config(sources_toml())
    invoke(tmp_path, "ingest")
    code, out, _ = invoke(tmp_path, "articles", "--json", "--category", "budaya", "--limit", "1")
    assert code == 0 and len(json.loads(out)) == 1
    code, out, _ = invoke(tmp_path, "articles", "--json", "--since", "2030-01-01")
    assert code == 0 and json.loads(out) == []
    code, _, err = invoke(tmp_path, "articles", "--region", "atlantis")
    assert code == 2 and 'unknown region "atlantis"' in err and "balikpapan" in err


def test_sources_json_shows_health(tmp_path: Path, make_config: ConfigFactory) -> None:
    make_config(
        sources_toml() + '[[sources]]\nname = "mati"\nkind = "feed"\n'
        'url = "http://127.0.0.1:9/rss"\n'
    )
    code, out, err = invoke(tmp_path, "ingest")
    assert code == 0, "one failing source does not fail the run"
    assert "source mati failed" in err
    code, out, _ = invoke(tmp_path, "sources", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["redaksi"]["status"] == "ok" and rows["mati"]["status"] == "failing"
    assert rows["mati"]["error_count"] == 1 and rows["mati"]["next_fetch"]


def test_all_sources_failing_exits_non_zero(tmp_path: Path, make_config: ConfigFactory) -> None:
    make_config('[[sources]]\nname = "mati"\nkind = "feed"\nurl = "http://127.0.0.1:9/rss"\n')
    code, _, _ = invoke(tmp_path, "ingest")
    assert code == 1


def test_config_errors_are_one_clear_block(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[site]\ntimezone = "Asia/Balikpapan"\n[[sources]]\nname = "x"\nkind = "feed"\n'
        'url = "https://e.x/rss"\ninterval = "15x"\n',
        encoding="utf-8",
    )
    code, _, err = invoke(tmp_path, "config", "check")
    assert code == 2
    assert "2 problems in config" in err
    assert 'config.toml: sources[0].interval: "15x" is not a duration like "15m"' in err
    assert "Traceback" not in err


def test_config_check_prints_tree(tmp_path: Path, make_config: ConfigFactory) -> None:
    make_config(sources_toml())
    code, out, _ = invoke(tmp_path, "config", "check")
    assert code == 0
    assert "Kalimantan Timur" in out and "Balikpapan" in out and "redaksi" in out


def test_unknown_source_name(tmp_path: Path, make_config: ConfigFactory) -> None:
    make_config(sources_toml())
    code, _, err = invoke(tmp_path, "ingest", "--source", "nope")
    assert code == 3 and 'no source named "nope"' in err and "redaksi" in err


def test_real_process_version_help_and_verbose_traceback(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "kabarfeed"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert "kabarfeed, version" in version.stdout
    helptext = subprocess.run(
        [*exe, "ingest", "--help"], capture_output=True, text=True, check=True
    )
    assert "--source" in helptext.stdout
    missing = subprocess.run(
        [*exe, "--config", str(tmp_path / "none.toml"), "-v", "sources"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "file not found" in missing.stderr and "Traceback" in missing.stderr


def test_a_rejected_item_shows_in_sources_and_status(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    folder = tmp_path / "artikel"
    folder.mkdir()
    (folder / "baik.json").write_text('{"title": "Pasar Murah", "body": "Isi."}', encoding="utf-8")
    (folder / "rusak.json").write_text(
        '{"title": "Banjir", "body": "Isi.", "summary": "\\udfff"}', encoding="utf-8"
    )
    make_config(f'[[sources]]\nname = "redaksi"\nkind = "directory"\npath = "{folder}"\n')
    code, out, err = invoke(tmp_path, "ingest")
    assert code == 0 and "articles new 1" in out
    assert "rusak.json" in err  # the run's own report names the rejected item
    code, out, _ = invoke(tmp_path, "sources", "--json")
    [row] = json.loads(out)
    assert row["status"] == "warning" and row["error_count"] == 0
    assert "1 item(s) rejected" in row["last_error"]
    assert "rusak.json: 'summary' contains a lone surrogate U+DFFF" in row["last_error"]
    code, out, _ = invoke(tmp_path, "status", "--json")
    [shown] = json.loads(out)["sources"]
    assert shown["health"] == "warning" and "rusak.json" in shown["last_error"]
