"""Config loading: validation messages name file and key path, all at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kabarfeed.config import load_config, parse_config, parse_duration
from kabarfeed.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_bundled_config_is_valid_and_resolves_paths_against_its_folder() -> None:
    config = load_config(REPO / "config.toml", environ={})
    assert config.storage.url == f"sqlite:///{REPO / 'var' / 'kabarfeed.db'}"
    assert config.sources[0].path == REPO / "examples" / "articles"
    assert config.sources[1].url == (REPO / "examples" / "feeds" / "kaltim.xml").as_uri()
    assert config.feeds.output == REPO / "public"
    assert config.taxonomy.region("balikpapan").timezone == "Asia/Makassar"  # type: ignore[union-attr]
    assert config.taxonomy.region("jayapura").timezone == "Asia/Jayapura"  # type: ignore[union-attr]


def test_every_problem_is_listed_with_file_and_key_path(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[site]\ntimezone = "Mars/Base"\n'
        '[[sources]]\nname = "a"\nkind = "feed"\nurl = "https://x/rss"\n'
        '[[sources]]\nname = "b"\nkind = "feed"\nurl = "https://x/rss"\ninterval = "15x"\n'
        '[[sources]]\nname = "c"\nkind = "feed"\nurl = "https://x/rss"\ninterval = "1h"\n'
        'colour = "red"\n'
        '[smtp]\nsecurity = "ssl"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    problems = info.value.problems
    assert 'config.toml: sources[1].interval: "15x" is not a duration like "15m"' in problems[1]
    assert any(p.startswith("config.toml: site.timezone:") for p in problems)
    assert any(p.startswith("config.toml: sources[2].colour: unknown key") for p in problems)
    assert any(p.startswith('config.toml: smtp.security: "ssl" is not allowed') for p in problems)
    assert len(problems) == 4


def test_cross_references_are_checked(tmp_path: Path) -> None:
    data = {
        "sources": [{"name": "a", "kind": "feed", "url": "https://x", "region": "atlantis"}],
        "regions": [
            {"slug": "kota", "name": "Kota", "parent": "nowhere"},
            {"slug": "kota", "name": "Kota lagi"},
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, path=tmp_path / "kabar.toml", environ={})
    text = str(info.value)
    assert 'kabar.toml: regions[0].parent: unknown region "nowhere"' in text
    assert 'kabar.toml: regions[1]: "kota" is defined twice' in text
    assert 'kabar.toml: sources[0].region: unknown region "atlantis" (valid: kota)' in text


def test_region_parent_cycle_is_an_error(tmp_path: Path) -> None:
    data = {
        "regions": [
            {"slug": "a", "name": "A", "parent": "b"},
            {"slug": "b", "name": "B", "parent": "a"},
        ]
    }
    with pytest.raises(ConfigError, match="makes a cycle"):
        parse_config(data, path=tmp_path / "c.toml", environ={})


def test_secrets_and_scalars_come_from_environment(tmp_path: Path) -> None:
    env = {
        "KABARFEED_SMTP_PASSWORD": "s3cret",
        "KABARFEED_SMTP_HOST": "mail.example.id",
        "KABARFEED_SMTP_PORT": "2525",
        "KABARFEED_CONFIG": "/elsewhere.toml",
    }
    config = parse_config({}, path=tmp_path / "c.toml", environ=env)
    assert config.smtp.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config.smtp)
    assert config.smtp.host == "mail.example.id"
    assert config.smtp.port == 2525


def test_bad_env_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.port"):
        parse_config({}, path=tmp_path / "c.toml", environ={"KABARFEED_SMTP_PORT": "many"})


def test_missing_file_and_syntax_error_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as info:
        load_config(tmp_path / "nope.toml", environ={})
    assert info.value.hint and "--config" in info.value.hint
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: TOML syntax error"):
        load_config(bad, environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("2h", 7200), ("7d", 604800), ("500ms", 0.5), ("1.5h", 5400), (30, 30)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["15x", "", "m", "-5m", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_reference_problems_are_reported_with_schema_problems(tmp_path: Path) -> None:
    data = {
        "feeds": {"websub_hub": "hub.example"},
        "sources": [
            {
                "name": "a",
                "kind": "feed",
                "url": "https://x",
                "interval": "soon",
                "category": "sport",
            }
        ],
        "categories": [{"slug": "ekonomi", "name": "Ekonomi"}],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, path=tmp_path / "c.toml", environ={})
    assert sorted(p.split(":")[1].strip() for p in info.value.problems) == [
        "feeds.websub_hub",
        "sources[0].category",
        "sources[0].interval",
    ]
