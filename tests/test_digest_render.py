"""The batch renderer: golden messages, byte-identity with the plain path,
header injection, size limit, links and headers."""

from __future__ import annotations

import email
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest_support import CUTOFF, article, sample_articles, subscriber
from kabarfeed.config import Config
from kabarfeed.digest.message import MAIL_POLICY
from kabarfeed.digest.render import HTML_LIMIT, DigestRenderer, EditionInput

GOLDEN = Path(__file__).parent / "golden" / "email"
DAY = date(2025, 11, 17)
SENT = datetime(2025, 11, 16, 22, 0, 5, tzinfo=UTC)


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(
        '[digest]\nfrom_address = "redaksi@news.example.id"\n'
        'from_name = "Redaksi Nusantara Plus"\n',
        site='secret = "test-secret"',
    )


@pytest.fixture
def renderer(config: Config) -> DigestRenderer:
    return DigestRenderer(config, clock=lambda: SENT)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def edition(sid: int = 1, **kw: object) -> EditionInput:
    arts = sample_articles()
    return EditionInput(subscriber(sid, **kw), DAY, arts, len(arts) + 3)


def normalise(data: bytes) -> bytes:
    text = data.decode("ascii")
    text = re.sub(r"=_kf_[0-9a-f]+", "=_kf_BOUNDARY", text)
    text = re.sub(r"Message-ID: <[^>]+>", "Message-ID: <MESSAGE-ID@news.example.id>", text)
    return re.sub(r"Date: [^\r]+", "Date: Sun, 16 Nov 2025 22:00:05 +0000", text).encode()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_golden_edition(renderer: DigestRenderer, lang: str) -> None:
    ed = edition(7, name="Budi Santoso", language=lang)
    data = renderer.render_one(ed).data
    path = GOLDEN / f"digest-{lang}.eml"
    if os.environ.get("KABARFEED_REGEN_GOLDEN"):
        path.write_bytes(normalise(data))
    assert normalise(data) == path.read_bytes()
    msg = parse(data)
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = (p.get_content_type() for p in msg.iter_parts())
    assert (plain, html) == ("text/plain", "text/html")
    assert all(len(line) < 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_parsed_message_has_links_labels_and_headers(renderer: DigestRenderer) -> None:
    ed = edition(7, name="Budi Santoso")
    msg = parse(renderer.render_one(ed).data)
    token = ed.subscriber.token
    base = "https://news.example.id"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert f"{base}/u/{token}" in body
        assert f"{base}/preferences/{token}" in body
        assert f"{base}/digest/{token}/2025-11-17" in body
        assert "https://news.example.id/berita/1" in body
        assert f"{base}/feeds/region/balikpapan.rss" in body  # more on the web (3 more)
        assert "Jl. Jenderal Sudirman No. 1, Balikpapan" in body
    assert "[ADVERTORIAL] Promo akhir tahun Pameran UMKM" in text
    assert re.search(r'<span class="adlabel"[^>]*>Advertorial</span>', html)
    assert 'alt="Suasana rakor"' in html and "style=" in html and "<style>" in html
    assert str(msg["Subject"]) == "Kabar Balikpapan — Senin, 17 November 2025 (4 berita)"
    assert str(msg["From"]) == "Redaksi Nusantara Plus <redaksi@news.example.id>"
    assert str(msg["To"]) == "Budi Santoso <pembaca7@example.org>"
    assert str(msg["List-Unsubscribe"]) == (
        f"<{base}/u/{token}>, <mailto:unsubscribe@news.example.id?subject=unsubscribe-{token}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Nusantara Plus <digest.news.example.id>"
    assert msg["Content-Language"] == "id"
    assert re.fullmatch(r"<[0-9a-f]{32}@news\.example\.id>", msg["Message-ID"])
    assert "Senin, 05.00 WITA" in text  # published 21:00 UTC = 05:00 WITA


def test_english_edition_strings(renderer: DigestRenderer) -> None:
    msg = parse(renderer.render_one(edition(language="en")).data)
    assert str(msg["Subject"]) == "Balikpapan News — Monday, November 17, 2025 (4 stories)"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "See 3 more stories on the web" in text and "Unsubscribe:" in text


def test_message_id_is_deterministic_per_subscriber_and_date(
    renderer: DigestRenderer, config: Config
) -> None:
    a = renderer.render_one(edition(1)).message_id
    assert (
        a
        == DigestRenderer(config, clock=lambda: SENT + timedelta(hours=3))
        .render_one(edition(1))
        .message_id
    )
    assert a != renderer.render_one(edition(2)).message_id
    other_day = EditionInput(subscriber(1), DAY + timedelta(days=1), sample_articles(), 4)
    assert a != renderer.render_one(other_day).message_id


NAMES = [
    "",
    " ",
    "\t",
    "Budi",
    'Siti "Ani" & <Co>',
    "Ñoño Ümlaut",
    "Budi, S.Pd.",
    "a\xa0b",
    "Dewi\r\nBcc: victim@example.org",
    "x" * 120,
    "O'Brien",
    "=?utf-8?q?x?=",
]


def test_batch_is_byte_identical_to_the_plain_path(renderer: DigestRenderer) -> None:
    editions = [
        edition(i + 1, name=n or None, language=("id", "en")[i % 2]) for i, n in enumerate(NAMES)
    ]
    batch = renderer.render_batch(editions)
    for ed, out in zip(editions, batch, strict=True):
        assert out.data == renderer.render_reference(ed).data, ed.subscriber.name
        assert out.recipient == ed.subscriber.email
        assert out.local_date == "2025-11-17" and out.subscriber_id == ed.subscriber.id


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Local parts are RFC 5322 dot-atoms (no leading, trailing or doubled dots):
# anything else is refused by subscriber validation before it reaches the renderer.
@given(
    name=st.text(max_size=40),
    local=st.from_regex(r"[a-z0-9&'+]{1,8}(\.[a-z0-9&'+]{1,8}){0,2}", fullmatch=True),
)
def test_splicing_any_name_matches_the_plain_path(config: Config, name: str, local: str) -> None:
    renderer = DigestRenderer(config, clock=lambda: SENT)
    ed = edition(3, name=name or None, email=f"{local.strip('.') or 'x'}@example.org")
    assert renderer.render_one(ed).data == renderer.render_reference(ed).data


def test_header_injection_from_article_data_is_impossible(renderer: DigestRenderer) -> None:
    evil = article(1, title="Breaking\r\nBcc: victim@example.org", regions=("balikpapan",))
    ed = EditionInput(subscriber(name="Eve\nBcc: a@b.c"), DAY, (evil,), 1)
    data = renderer.render_one(ed).data
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"^Bcc:", head, re.M)
    msg = parse(data)
    assert msg["Bcc"] is None
    assert "\n" not in str(msg["To"]) and "\n" not in str(msg["Subject"])


def test_header_injection_through_the_subject_template(
    tmp_path: Path,
    make_config: Callable[..., Config],
) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "subject.txt.j2").write_text(
        "{{ sections[0].articles[0].title }}\n", encoding="utf-8"
    )
    config = make_config('[digest]\ntemplates = "tpl"\n')
    evil = article(1, title="Breaking\r\nBcc: victim@example.org")
    data = (
        DigestRenderer(config, clock=lambda: SENT)
        .render_one(EditionInput(subscriber(), DAY, (evil,), 1))
        .data
    )
    msg = parse(data)
    assert msg["Bcc"] is None
    assert str(msg["Subject"]) == "Breaking Bcc: victim@example.org"


def test_html_stays_under_gmail_clipping_limit(renderer: DigestRenderer) -> None:
    long_summary = "Kalimat panjang tentang berita daerah. " * 200
    arts = tuple(article(i, summary=long_summary, title="Judul " * 30) for i in range(1, 201))
    ed = EditionInput(subscriber(), DAY, arts, 200)
    html = renderer.render_html(ed)
    assert len(html.encode()) <= HTML_LIMIT
    msg = parse(renderer.render_one(ed).data)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "berita lainnya di web" in text  # what was cut is reachable on the web
    assert renderer.render_one(ed).data == renderer.render_reference(ed).data


def test_render_html_has_the_recipients_own_links(renderer: DigestRenderer) -> None:
    ed = edition(5, name="Ani & Budi")
    html = renderer.render_html(ed)
    assert f"/u/{ed.subscriber.token}" in html and "Ani &amp; Budi" in html
    assert "kfhole" not in html


def test_empty_edition_renders_a_note(renderer: DigestRenderer) -> None:
    msg = parse(renderer.render_one(EditionInput(subscriber(), DAY, (), 0)).data)
    assert "Belum ada berita baru" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_publisher_template_override(tmp_path: Path, make_config: Callable[..., Config]) -> None:
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "subject.txt.j2").write_text(
        "Pagi! {{ edition.count }} kabar\n", encoding="utf-8"
    )
    config = make_config('[digest]\ntemplates = "brand"\n')
    out = DigestRenderer(config, clock=lambda: SENT).render_one(edition())
    assert parse(out.data)["Subject"] == "Pagi! 4 kabar"


def test_policy_folds_list_unsubscribe_between_uris() -> None:
    token = "t" * 32
    folded = MAIL_POLICY.fold(
        "List-Unsubscribe",
        f"<https://news.example.id/u/{token}>, "
        f"<mailto:u@news.example.id?subject=unsubscribe-{token}>",
    )
    assert "=?" not in folded
    assert folded.split("\r\n")[1].startswith(" <mailto:")


def test_time_and_cutoff_helpers_are_aware() -> None:
    assert CUTOFF.tzinfo is UTC


def test_region_labels_put_the_city_before_its_province(renderer: DigestRenderer) -> None:
    tagged = article(1, regions=("kalimantan-timur", "samarinda"), categories=("ekonomi",))
    edition = EditionInput(subscriber(1, regions=()), DAY, (tagged,), 1)
    html = renderer.render_html(edition)
    assert "Samarinda" in html
    assert html.index("Samarinda") < html.index("Kalimantan Timur", html.index("Samarinda") - 200)
    message = email.message_from_bytes(renderer.render_one(edition).data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    assert text is not None
    assert "Samarinda · Kalimantan Timur · Ekonomi" in text.get_content()
