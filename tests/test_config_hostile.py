"""``kabarfeed config check`` under hostile input: one clear line per problem
and exit 2, never a traceback; header-bound values are addresses or phrases;
a storage URL that cannot be opened is reported by the check; and header
injection is refused again where headers are built."""

from __future__ import annotations

import json
import os
import string
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest_support import sample_articles, subscriber
from kabarfeed.cli import main
from kabarfeed.config import Config, load_config
from kabarfeed.digest import message as mail
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.errors import ConfigError, InputError
from kabarfeed.web.confirmations import ConfirmationMailer
from kabarfeed.web.security import Signer
from kabarfeed.web.signup import MailKind

INJECTION = "evil@example.org\r\nBcc: x@evil.example"
NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)


def check(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> Result:
    """``kabarfeed config check`` on ``body`` (storage: a SQLite file in tmp)."""
    path = tmp_path / "config.toml"
    if "[storage]" not in body:
        body = f'[storage]\nurl = "sqlite:///{tmp_path / "kf.db"}"\n{body}'
    path.write_text(body, encoding="utf-8", errors="surrogatepass")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KABARFEED_")}
    return CliRunner().invoke(
        main, ["--config", str(path), "config", "check"], env={**clean, **(env or {})}
    )


def assert_clear_failure(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    for line in result.output.splitlines():
        assert len(line) < 400


def test_from_address_with_a_header_injection_fails_check(tmp_path: Path) -> None:
    result = check(tmp_path, "", {"KABARFEED_DIGEST_FROM_ADDRESS": INJECTION})
    assert_clear_failure(result, "digest.from_address", "line break")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[digest]\nreply_to = "a@example.org\\nBcc: b@evil.example"\n', "digest.reply_to"),
        ('[digest]\nfrom_name = "Redaksi\\r\\nBcc: b@evil.example"\n', "digest.from_name"),
        ('[digest]\nunsubscribe_mailto = "not an address"\n', "digest.unsubscribe_mailto"),
        ('[digest]\nfrom_address = ""\n', "digest.from_address"),
        ('[site]\ntitle = "Kabar\\rBcc: x"\n', "site.title"),
        ('[site]\nbase_url = "https://a.example\\r\\nX: y"\n', "site"),
        ('[smtp]\nenvelope_from = "bounce@example.org\\r\\nRCPT TO:<x@y>"\n', "smtp.envelope"),
        ('[smtp]\nhelo = "mail.example\\r\\nMAIL FROM:<x@y>"\n', "smtp.helo"),
        ('[dkim]\nselector = "s1\\r\\nBcc: x"\n', "dkim.selector"),
        ('[digest]\nadvertorial_label = "Iklan\\u2028Bcc: x"\n', "digest.advertorial_label"),
    ],
)
def test_header_bound_values_are_addresses_or_phrases(
    tmp_path: Path, body: str, needle: str
) -> None:
    assert_clear_failure(check(tmp_path, body), needle)


DEEP = "[site]\ntitle = " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (DEEP, "nested too deeply"),
        ('[scheduler]\nheartbeat = "99999999999999999w"\n', "scheduler.heartbeat"),
        (f"[web]\nport = {'9' * 5000}\n", "cannot be read"),
        (f"[web]\nport = {'9' * 4000}\n", "web.port"),
        (f"[web]\nheader_timeout = {'9' * 400}\n", "web.header_timeout"),
        ("[web]\nheader_timeout = inf\n", "web.header_timeout"),
        ("[web]\nheader_timeout = nan\n", "web.header_timeout"),
        ("[web]\nkeep_alive = 1e308\n", "web.keep_alive"),
        ('[feeds]\noutput = "a\\u0000b"\n', "path"),
        ("sources = [" + "[" * 300 + "]" * 300 + "]\n", "sources"),
        ('[storage]\nurl = "not a url"\n', "storage.url"),
        ('[storage]\nurl = "postgresql+nodriver://x/y"\n', "storage.url"),
        ('[storage]\nurl = "sqlite:////etc/hostname"\n', "storage.url"),
        ('[storage]\nurl = "sqlite:////dev/null/x/kf.db"\n', "storage.url"),
    ],
)
def test_hostile_values_give_one_line_and_exit_2(tmp_path: Path, body: str, needle: str) -> None:
    assert_clear_failure(check(tmp_path, body), needle)


def test_hostile_env_values(tmp_path: Path) -> None:
    result = check(tmp_path, "", {"KABARFEED_WEB_PORT": "9" * 5000})
    assert_clear_failure(result, "web.port")
    result = check(tmp_path, "", {"KABARFEED_SCHEDULER_HEARTBEAT": "9" * 400 + "w"})
    assert_clear_failure(result, "scheduler.heartbeat")


def test_deep_region_chain_is_refused_not_a_recursion(tmp_path: Path) -> None:
    regions = "".join(
        f'[[regions]]\nslug = "r{i}"\nname = "R{i}"\n' + (f'parent = "r{i - 1}"\n' if i else "")
        for i in range(1200)
    )
    assert_clear_failure(check(tmp_path, regions), "nest deeper")


def test_markup_in_titles_is_printed_literally(tmp_path: Path) -> None:
    result = check(tmp_path, '[site]\ntitle = "[/red] Kabar [bold]"\n')
    assert result.exit_code == 0, result.output
    assert "[/red] Kabar [bold]" in result.output


# -- random documents --------------------------------------------------------------------

SECTIONS = {
    name: tuple(field.annotation.model_fields)  # type: ignore[union-attr]
    for name, field in Config.model_fields.items()
    if hasattr(field.annotation, "model_fields")
}
HOSTILE: list[Any] = [
    "99999999999999999w",
    "9" * 5000,
    10**4000,
    10**30,
    -1,
    float("inf"),
    float("nan"),
    1e308,
    "[/x]",
    "[bold]Kabar",
    "a@example.org\r\nBcc: x@evil.example",
    "Redaksi\nBcc: x",
    "\x00",
    "",
]
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.text(alphabet=string.digits, min_size=1, max_size=30).map(lambda d: d + "w"),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["15m", "0s", "sqlite:///x", "a@b.c", "06:00"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=4,
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    lines: list[str] = []
    # Few keys per document, so that most documents are valid but for the
    # hostile value (the summary of a valid one is printed too).
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=3, unique=True)):
        if section == "storage":
            continue
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=2, unique=True)):
            lines.append(f"{key} = {toml_value(draw(VALUES))}")
    env = {}
    for section, key in draw(
        st.lists(
            st.sampled_from(
                [(s, k) for s in sorted(SECTIONS) if s != "storage" for k in SECTIONS[s]]
            ),
            max_size=3,
        )
    ):
        env[f"KABARFEED_{section.upper()}_{key.upper()}"] = draw(
            st.one_of(
                st.sampled_from([h for h in HOSTILE if isinstance(h, str) and "\x00" not in h]),
                st.text(
                    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
                ),
            )
        )
    return "\n".join(lines) + "\n", env


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=documents())
def test_random_documents_never_give_a_traceback(
    tmp_path: Path, doc: tuple[str, dict[str, str]]
) -> None:
    body, env = doc
    result = check(tmp_path, body, env)
    assert result.exit_code in (0, 2), (body, env, result.output, result.exception)
    assert result.exit_code == 0 or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda depth, tail: "a = " + "[" * depth + tail,
            st.integers(min_value=0, max_value=5000),
            st.text(alphabet='[]{}=,1a"', max_size=20),
        ),
    )
)
def test_random_text_never_gives_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, environ={})
    except ConfigError as e:
        assert all("\n" not in p for p in e.problems)


# -- the second line of defence: where headers are built -----------------------------------


def test_fold_refuses_addresses_with_line_breaks() -> None:
    with pytest.raises(InputError):
        mail.fold_address("From", "Redaksi", INJECTION)
    with pytest.raises(InputError):
        mail.address("Redaksi", INJECTION)
    with pytest.raises(InputError):
        mail.checked_header(b"Reply-To: a@example.org\r\nBcc: x@evil.example\r\n")
    assert mail.checked_header(b"Subject: a\r\n b\r\n") == b"Subject: a\r\n b\r\n"
    # Text values are flattened to one line, never passed through.
    assert b"\r\nBcc" not in mail.fold("Reply-To", INJECTION)


def _unvalidated(config: Config, **digest: str) -> Config:
    """``config`` with digest values set *without* validation (another path in)."""
    return config.model_copy(update={"digest": config.digest.model_copy(update=digest)})


def test_digest_and_confirmation_mail_refuse_an_injected_from(
    make_config: Any, tmp_path: Path
) -> None:
    config = _unvalidated(make_config(), from_address=INJECTION)
    renderer = DigestRenderer(config, clock=lambda: NOW)
    edition = EditionInput(subscriber(), date(2025, 11, 17), sample_articles(), 5)
    with pytest.raises(InputError):
        renderer.render_one(edition)
    with pytest.raises(InputError):
        renderer.render_batch([edition])
    mailer = ConfirmationMailer(config, Signer(b"k" * 32))
    with pytest.raises(InputError):
        mailer.build(subscriber(), MailKind.CONFIRM, NOW)
