"""Tests for the plain-text article export parser (kabarfeed.textformat)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kabarfeed.errors import ParseError
from kabarfeed.textformat import (
    MONTHS,
    ParsedText,
    body_html,
    find_dateline,
    parse_text_article,
)
from tests.conftest import SEED_FILE

SEED = SEED_FILE

SEED_TITLE = "Jelang Akhir Tahun 2025, Pemerintah Balikpapan Dorong Realisasi Program Berjalan"

# A small article in the same layout as the seed, used to build variants.
ARTICLE = """\
Pemkot Samarinda Tambah Armada Angkutan Sampah

Oleh Redaksi pada 12 Nov 2025, 09:45 WITA
Kebersihan Kota

Petugas menurunkan truk sampah baru di halaman Balai Kota. (Nusplus)

NUSANTARAPLUS, SAMARINDA – Pemerintah Kota Samarinda menambah sepuluh truk sampah.

Armada baru akan melayani kecamatan yang padat penduduk.

“Kami ingin sampah terangkut setiap hari,” kata kepala dinas. (Rin/ Red)

Tinggalkan Komentar
"""

FIRST = "Pemerintah Kota Samarinda menambah sepuluh truk sampah."
CAPTION = "Petugas menurunkan truk sampah baru di halaman Balai Kota."


def _seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def _replace(old: str, new: str, text: str = ARTICLE) -> str:
    assert old in text, old
    return text.replace(old, new)


def _assert_core(parsed: ParsedText) -> None:
    """The template article's essentials survived a variant."""
    assert parsed.title == "Pemkot Samarinda Tambah Armada Angkutan Sampah"
    assert parsed.paragraphs[0] == FIRST
    assert parsed.paragraphs[-1] == "“Kami ingin sampah terangkut setiap hari,” kata kepala dinas."
    assert len(parsed.paragraphs) == 3
    assert all(CAPTION not in p and "Komentar" not in p for p in parsed.paragraphs)


# --- the real seed file -------------------------------------------------------


def test_seed_file_parses_to_expected_fields() -> None:
    parsed = parse_text_article(_seed_text(), origin=str(SEED))
    assert parsed.title == SEED_TITLE
    assert parsed.author == "Redaktur"
    assert parsed.published == datetime(2025, 11, 16, 13, 7, tzinfo=timezone(timedelta(hours=7)))
    assert parsed.published is not None
    assert parsed.published.isoformat() == "2025-11-16T13:07:00+07:00"
    assert parsed.local_tz == "Asia/Jakarta"
    assert parsed.tags == ("Rakor Akhr tahun",)
    assert parsed.outlet == "NUSANTARAPLUS"
    assert parsed.dateline_city == "BALIKPAPAN"
    assert parsed.signoff == ("Jun", "Red", "ADV")
    assert parsed.advertorial is True
    assert parsed.warnings == ()


def test_seed_body_has_no_caption_boilerplate_or_signoff() -> None:
    parsed = parse_text_article(_seed_text())
    caption = "Wakil Wali Kota Balikpapan, Bagus Susetyo menegaskan pentingnya sinergi percepatan"
    assert parsed.caption == caption + " pembangunan."
    assert parsed.caption_credit == "Nusplus"
    assert parsed.paragraphs[0].startswith("Pemerintah Kota Balikpapan menggelar")
    # The caption sentence is repeated inside a real body paragraph (with more
    # text after it); the caption itself must not appear as a paragraph.
    assert parsed.caption not in parsed.paragraphs
    assert parsed.paragraphs[0] != parsed.caption
    everything = "\n".join(parsed.paragraphs)
    assert "Tinggalkan Komentar" not in everything
    assert "(Nusplus)" not in everything
    assert "NUSANTARAPLUS" not in everything
    assert "(Jun/ Red/ ADV)" not in everything
    assert parsed.paragraphs[-1].endswith("kualitas hidup masyarakat Balikpapan.")
    assert len(parsed.paragraphs) == 19
    assert "\u00a0" not in everything
    assert "para pimpinan Organisasi Perangkat Daerah" in everything


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda t: "\ufeff" + t, id="bom"),
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda t: t.replace("\n", "\r"), id="cr"),
        pytest.param(lambda t: t.replace("\n", "  \t\n"), id="trailing-spaces"),
        pytest.param(lambda t: t.replace("\n\n", "\n\n\n\n"), id="extra-blank-lines"),
        pytest.param(lambda t: t.replace(" ", "\u00a0"), id="nbsp-everywhere"),
        pytest.param(lambda t: "\ufeff" + t.replace("\n", "\r\n") + "\r\n\r\n", id="all"),
    ],
)
def test_seed_variants_parse_identically(transform: object) -> None:
    text = _seed_text()
    expected = parse_text_article(text)
    assert callable(transform)
    assert parse_text_article(transform(text)) == expected


# --- tolerances (variants of the template) --------------------------------------


def test_template_article_parses() -> None:
    parsed = parse_text_article(ARTICLE)
    _assert_core(parsed)
    assert parsed.tags == ("Kebersihan Kota",)
    assert parsed.caption == CAPTION
    assert parsed.caption_credit == "Nusplus"
    assert parsed.dateline_city == "SAMARINDA"
    assert parsed.signoff == ("Rin", "Red")
    assert parsed.advertorial is False
    assert parsed.local_tz == "Asia/Makassar"
    assert parsed.published == datetime(2025, 11, 12, 1, 45, tzinfo=UTC)
    assert parsed.warnings == ()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("\ufeff" + ARTICLE, id="bom"),
        pytest.param(ARTICLE.replace("\n", "\r\n"), id="crlf"),
        pytest.param(ARTICLE.replace("\n", "\r"), id="cr"),
        pytest.param(ARTICLE.replace("\n", "   \n"), id="trailing-spaces"),
        pytest.param(ARTICLE.replace("\n", "\n\n\n"), id="extra-blank-lines"),
        pytest.param("\n\n  \n" + ARTICLE + "\n\n\n", id="blank-lines-around"),
        pytest.param(
            _replace(
                "Oleh Redaksi pada 12 Nov 2025, 09:45 WITA",
                "Oleh\u00a0Redaksi pada\u00a012 Nov\u00a02025, 09:45\u00a0WITA",
            ),
            id="nbsp-in-byline",
        ),
        pytest.param(
            _replace(
                "Tinggalkan Komentar\n", "Tinggalkan Balasan\nBagikan:\nFacebook\nShare this:\n"
            ),
            id="other-trailing-boilerplate",
        ),
        pytest.param(_replace("Tinggalkan Komentar\n", ""), id="no-boilerplate"),
    ],
)
def test_tolerated_variants_keep_everything(text: str) -> None:
    parsed = parse_text_article(text)
    _assert_core(parsed)
    assert parsed.caption == CAPTION
    assert parsed.tags == ("Kebersihan Kota",)
    assert parsed.signoff == ("Rin", "Red")
    assert parsed.dateline_city == "SAMARINDA"
    assert parsed.published == datetime(2025, 11, 12, 9, 45, tzinfo=timezone(timedelta(hours=8)))
    assert parsed.warnings == ()


def test_nbsp_in_body_becomes_regular_space() -> None:
    text = _replace("menambah sepuluh truk", "menambah\u00a0sepuluh \u00a0truk")
    parsed = parse_text_article(text)
    assert parsed.paragraphs[0] == FIRST


def test_missing_tag_line() -> None:
    parsed = parse_text_article(_replace("Kebersihan Kota\n", ""))
    _assert_core(parsed)
    assert parsed.tags == ()
    assert parsed.caption == CAPTION
    assert parsed.warnings == ()


def test_several_tag_lines_even_after_a_blank_line() -> None:
    parsed = parse_text_article(_replace("Kebersihan Kota\n", "Kebersihan Kota\n\nSampah\n"))
    _assert_core(parsed)
    assert parsed.tags == ("Kebersihan Kota", "Sampah")


def test_missing_caption() -> None:
    parsed = parse_text_article(_replace(CAPTION + " (Nusplus)\n\n", ""))
    _assert_core(parsed)
    assert parsed.caption is None
    assert parsed.caption_credit is None
    assert parsed.warnings == ()


def test_caption_without_dateline_is_still_recognised() -> None:
    parsed = parse_text_article(_replace("NUSANTARAPLUS, SAMARINDA – ", ""))
    _assert_core(parsed)
    assert parsed.caption == CAPTION
    assert parsed.dateline_city is None
    assert parsed.outlet is None
    assert any("dateline" in w for w in parsed.warnings)


def test_missing_signoff() -> None:
    parsed = parse_text_article(_replace(" (Rin/ Red)", ""))
    _assert_core(parsed)
    assert parsed.signoff == ()
    assert parsed.advertorial is False


def test_missing_dateline_keeps_first_paragraph_whole() -> None:
    parsed = parse_text_article(_replace("NUSANTARAPLUS, SAMARINDA – ", ""))
    assert parsed.paragraphs[0] == FIRST
    assert parsed.dateline_city is None
    assert [w for w in parsed.warnings if "dateline" in w]


def test_missing_byline_gives_no_date_and_a_warning() -> None:
    parsed = parse_text_article(
        _replace("Oleh Redaksi pada 12 Nov 2025, 09:45 WITA\n", ""), origin="x.txt"
    )
    _assert_core(parsed)
    assert parsed.published is None
    assert parsed.author is None
    assert parsed.local_tz is None
    assert parsed.tags == ("Kebersihan Kota",)
    assert parsed.warnings == ("x.txt: no byline ('Oleh … pada …'); publication date unknown",)


def test_minimal_article_title_and_one_paragraph() -> None:
    parsed = parse_text_article("Judul Saja\n\nSatu paragraf isi berita.\n")
    assert parsed.title == "Judul Saja"
    assert parsed.paragraphs == ("Satu paragraf isi berita.",)
    assert parsed.caption is None
    assert parsed.signoff == ()
    assert len(parsed.warnings) == 2  # no byline, no dateline


def test_lone_credited_paragraph_is_body_not_caption() -> None:
    parsed = parse_text_article("Judul\n\nIsi berita dari lapangan. (Foto: Antara)\n")
    assert parsed.caption is None
    assert parsed.paragraphs == ("Isi berita dari lapangan. (Foto: Antara)",)


def test_baca_juga_lines_are_dropped_anywhere() -> None:
    text = _replace(
        "Armada baru",
        "Baca Juga: Wali Kota Resmikan Pasar Baru\n\nBACA JUGA : Banjir di Sempaja\n\nArmada baru",
    )
    parsed = parse_text_article(text)
    _assert_core(parsed)
    assert not any("Baca" in p or "BACA" in p for p in parsed.paragraphs)


def test_sentence_starting_with_baca_is_kept() -> None:
    text = _replace("Armada baru", "Bacaan doa membuka acara tersebut.\n\nArmada baru")
    parsed = parse_text_article(text)
    assert "Bacaan doa membuka acara tersebut." in parsed.paragraphs


def test_odd_header_line_goes_to_body_with_no_text_lost() -> None:
    odd = "Catatan redaksi: artikel ini diperbarui pada sore hari setelah konferensi pers."
    text = _replace("Kebersihan Kota\n", f"Kebersihan Kota\n{odd}\n")
    parsed = parse_text_article(text)
    assert odd in parsed.paragraphs
    assert FIRST in parsed.paragraphs
    assert parsed.dateline_city == "SAMARINDA"
    assert parsed.caption == CAPTION
    assert any("before the dateline" in w for w in parsed.warnings)


def test_unparseable_byline_keeps_author_and_warns() -> None:
    text = _replace("Oleh Redaksi pada 12 Nov 2025, 09:45 WITA", "Oleh Redaksi pada kemarin sore")
    parsed = parse_text_article(text, origin="a.txt")
    _assert_core(parsed)
    assert parsed.author == "Redaksi"
    assert parsed.published is None
    assert parsed.warnings and parsed.warnings[0].startswith("a.txt: byline date not understood")


@pytest.mark.parametrize(
    ("byline", "fragment"),
    [
        ("Oleh Redaksi pada 12 Brumaire 2025, 09:45 WITA", "unknown month"),
        ("Oleh Redaksi pada 31 Feb 2025, 09:45 WITA", "impossible date"),
        ("Oleh Redaksi pada 12 Nov 2025, 25:45 WITA", "impossible date"),
        ("Oleh Redaksi pada 1 Jan 0001, 00:00 WIT", "impossible date"),
        ("Oleh Redaksi pada 12 Nov 2025, 09:45", "no time zone"),
    ],
)
def test_bad_byline_dates_warn(byline: str, fragment: str) -> None:
    parsed = parse_text_article(_replace("Oleh Redaksi pada 12 Nov 2025, 09:45 WITA", byline))
    _assert_core(parsed)
    assert parsed.author == "Redaksi"
    assert parsed.published is None
    assert any(fragment in w for w in parsed.warnings)


def test_byline_without_zone_uses_default_tz_when_given() -> None:
    text = _replace("09:45 WITA", "09:45")
    parsed = parse_text_article(text, default_tz="Asia/Jayapura")
    assert parsed.published == datetime(2025, 11, 12, 9, 45, tzinfo=timezone(timedelta(hours=9)))
    assert parsed.local_tz == "Asia/Jayapura"
    assert any("assumed Asia/Jayapura" in w for w in parsed.warnings)


@pytest.mark.parametrize("text", ["", "   \n\n\t\n", "\ufeff\r\n"])
def test_empty_text_raises(text: str) -> None:
    with pytest.raises(ParseError, match="no title"):
        parse_text_article(text, origin="kosong.txt")


def test_title_only_raises() -> None:
    with pytest.raises(ParseError, match=r"judul\.txt: no body"):
        parse_text_article(
            "Judul Tanpa Isi\n\nOleh Redaksi pada 1 Nov 2025, 10:00 WIB\n", origin="judul.txt"
        )


def test_byline_as_first_line_means_no_title() -> None:
    with pytest.raises(ParseError, match="no title"):
        parse_text_article("Oleh Redaksi pada 1 Nov 2025, 10:00 WIB\n\nIsi berita.\n")


def test_signoff_only_body_raises() -> None:
    with pytest.raises(ParseError, match="sign-off"):
        parse_text_article("Judul\n\n(Jun/Red)\n")


def test_short_lines_after_header_are_kept_as_body() -> None:
    parsed = parse_text_article("Judul\n\nSatu baris pendek\n")
    assert parsed.paragraphs == ("Satu baris pendek",)
    assert parsed.tags == ()


# --- zones, months, byline forms --------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "tz_name", "hours"),
    [("WIB", "Asia/Jakarta", 7), ("WITA", "Asia/Makassar", 8), ("WIT", "Asia/Jayapura", 9)],
)
def test_all_three_zones(zone: str, tz_name: str, hours: int) -> None:
    parsed = parse_text_article(_replace("09:45 WITA", f"09:45 {zone}"))
    assert parsed.local_tz == tz_name
    assert parsed.published is not None
    assert parsed.published.utcoffset() == timedelta(hours=hours)
    assert parsed.published.tzname() == zone
    assert parsed.published.astimezone(UTC) == datetime(2025, 11, 12, 9 - hours, 45, tzinfo=UTC)


def test_zone_is_case_insensitive() -> None:
    parsed = parse_text_article(_replace("09:45 WITA", "09:45 wit"))
    assert parsed.local_tz == "Asia/Jayapura"


ABBREVIATIONS = ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"]
FULL_NAMES = [
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
]


@pytest.mark.parametrize(
    ("month", "number"),
    [
        *((m, i) for i, m in enumerate(ABBREVIATIONS, 1)),
        *((m, i) for i, m in enumerate(FULL_NAMES, 1)),
        ("Agt", 8),
        ("Ags", 8),
        ("nov", 11),
        ("NOVEMBER", 11),
        ("desember", 12),
    ],
)
def test_month_spellings(month: str, number: int) -> None:
    parsed = parse_text_article(_replace("12 Nov 2025", f"12 {month} 2025"))
    assert parsed.published is not None
    assert (parsed.published.year, parsed.published.month, parsed.published.day) == (
        2025,
        number,
        12,
    )
    assert parsed.warnings == ()


def test_months_table_covers_abbreviations_and_full_names() -> None:
    for name in (*ABBREVIATIONS, *FULL_NAMES):
        assert name.lower() in MONTHS


@pytest.mark.parametrize(
    "byline",
    [
        "Oleh Redaksi pada 12 Nov 2025, 09.45 WITA",
        "Oleh Redaksi pada Rabu, 12 November 2025, 09:45 WITA",
        "Oleh Redaksi pada rabu 12 nov 2025 09.45 wita",
        "Oleh Redaksi pada 12 Nov. 2025, pukul 09:45 WITA",
        "oleh Redaksi pada Rabu, 12 November 2025 | 09:45 WITA",
        "Oleh: Redaksi pada 12 Nov 2025, 09:45 WITA",
    ],
)
def test_byline_variants(byline: str) -> None:
    text = _replace("Oleh Redaksi pada 12 Nov 2025, 09:45 WITA", byline)
    parsed = parse_text_article(text)
    _assert_core(parsed)
    assert parsed.author == "Redaksi"
    assert parsed.published == datetime(2025, 11, 12, 9, 45, tzinfo=timezone(timedelta(hours=8)))


def test_author_with_several_words() -> None:
    parsed = parse_text_article(_replace("Oleh Redaksi", "Oleh Siti Rahmawati, S.Sos"))
    assert parsed.author == "Siti Rahmawati, S.Sos"


# --- dateline ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sep", [" – ", " - ", " — ", "–", "-", "—", " –", "– ", "\u00a0–\u00a0", " -- "]
)
def test_dateline_separators(sep: str) -> None:
    parsed = parse_text_article(
        _replace("NUSANTARAPLUS, SAMARINDA – ", f"NUSANTARAPLUS, SAMARINDA{sep}")
    )
    assert parsed.dateline_city == "SAMARINDA"
    assert parsed.outlet == "NUSANTARAPLUS"
    assert parsed.paragraphs[0] == FIRST


def test_dateline_city_keeps_case_and_multiword() -> None:
    dl = find_dateline("KABARKALTIM.COM, Tanjung REDEB – Warga berkumpul.")
    assert dl is not None
    assert (dl.outlet, dl.city, dl.rest) == ("KABARKALTIM.COM", "Tanjung REDEB", "Warga berkumpul.")


@pytest.mark.parametrize(
    "paragraph",
    [
        "Menurut dia, kegiatan itu – yang digelar tiap tahun – sangat bermanfaat.",
        "Pemerintah Kota Samarinda, Kalimantan Timur - menambah armada.",
        "SAMARINDA – Pemerintah kota menambah armada.",  # no outlet
        "NUSANTARAPLUS SANGAT PANJANG SEKALI NAMANYA, KOTA YANG JAUH DI SANA – Isi.",
        "NUSANTARAPLUS, SAMARINDA – ",  # nothing after the dash
        "NUSANTARAPLUS, 2025 – Isi berita.",
    ],
)
def test_not_a_dateline(paragraph: str) -> None:
    assert find_dateline(paragraph) is None


def test_prose_with_dash_is_not_taken_as_dateline() -> None:
    prose = "Menurut dia, kegiatan itu – yang digelar tiap tahun – sangat bermanfaat."
    parsed = parse_text_article(_replace("NUSANTARAPLUS, SAMARINDA – " + FIRST, prose))
    assert parsed.paragraphs[0] == prose
    assert parsed.dateline_city is None


# --- sign-off -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signoff", "initials", "adv"),
    [
        ("(Jun/ Red/ ADV)", ("Jun", "Red", "ADV"), True),
        ("(jun/red)", ("jun", "red"), False),
        ("( Rin / Red / adv )", ("Rin", "Red", "adv"), True),
        ("(ADV)", ("ADV",), True),
        ("(Adv)", ("Adv",), True),
        ("(red)", ("red",), False),
    ],
)
def test_signoff_forms(signoff: str, initials: tuple[str, ...], adv: bool) -> None:
    parsed = parse_text_article(_replace("(Rin/ Red)", signoff))
    _assert_core(parsed)
    assert parsed.signoff == initials
    assert parsed.advertorial is adv


def test_signoff_on_its_own_line() -> None:
    parsed = parse_text_article(_replace(" (Rin/ Red)", "\n\n(Rin/Red/ADV)"))
    _assert_core(parsed)
    assert parsed.signoff == ("Rin", "Red", "ADV")
    assert parsed.advertorial is True


def test_parenthesis_inside_last_paragraph_is_not_a_signoff() -> None:
    text = _replace(" (Rin/ Red)", " (Rin/ Red) Acara ditutup dengan doa.")
    parsed = parse_text_article(text)
    assert parsed.signoff == ()
    assert parsed.paragraphs[-1].endswith("(Rin/ Red) Acara ditutup dengan doa.")


# --- paragraphs and HTML -------------------------------------------------------------


def test_hard_wrapped_paragraph_is_joined() -> None:
    text = _replace(
        "Armada baru akan melayani kecamatan yang padat penduduk.",
        "Armada baru akan melayani\nkecamatan yang padat\npenduduk.",
    )
    parsed = parse_text_article(text)
    assert "Armada baru akan melayani kecamatan yang padat penduduk." in parsed.paragraphs


def test_single_newline_paragraphs_are_split_on_sentence_end() -> None:
    text = _replace(
        "Armada baru akan melayani kecamatan yang padat penduduk.\n\n",
        "Armada baru.\nJadwal diatur.\n",
    )
    parsed = parse_text_article(text)
    assert parsed.paragraphs[1:3] == ("Armada baru.", "Jadwal diatur.")


def test_body_html_escapes_and_wraps_each_paragraph() -> None:
    text = _replace("Armada baru akan", "Harga <b>turun</b> & stok aman; armada baru akan")
    html = body_html(parse_text_article(text))
    assert html.count("<p>") == 3
    assert html.count("</p>") == 3
    assert "&lt;b&gt;turun&lt;/b&gt; &amp; stok" in html
    assert "<b>" not in html
    assert html.startswith(f"<p>{FIRST}</p>")


def test_parsed_text_is_frozen() -> None:
    parsed = parse_text_article(ARTICLE)
    with pytest.raises(AttributeError):
        parsed.title = "lain"  # type: ignore[misc]


# --- property tests --------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "Judul Berita",
        "Oleh Redaksi pada 12 Nov 2025, 09:45 WITA",
        "Oleh X pada 99 Nov 9999, 99:99 WIB",
        "Oleh pada",
        "Kata Kunci",
        "Keterangan foto. (Nusplus)",
        "NUSANTARAPLUS, SAMARINDA – Isi.",
        "NUSANTARAPLUS, – ",
        "(Jun/ Red/ ADV)",
        "(",
        ")",
        "Tinggalkan Komentar",
        "Baca Juga: x",
        "",
        "\u00a0",
        "\ufeff",
        "–",
        "\r",
    ]
)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_returns_or_raises_parse_error(text: str) -> None:
    try:
        parsed = parse_text_article(text)
    except ParseError:
        return
    assert parsed.title
    assert parsed.paragraphs
    assert all(p.strip() for p in parsed.paragraphs)
    if parsed.published is not None:
        assert parsed.published.astimezone(UTC).tzinfo is UTC


@settings(max_examples=300)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=20)), max_size=15))
def test_seed_like_fragments_return_or_raise_parse_error(parts: list[str]) -> None:
    try:
        parsed = parse_text_article("\n".join(parts))
    except ParseError:
        return
    assert parsed.title
    assert parsed.paragraphs
    assert body_html(parsed).count("<p>") == len(parsed.paragraphs)
    if parsed.published is not None:
        assert parsed.local_tz in {"Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"}
        assert parsed.published.astimezone(UTC).tzinfo is UTC
