"""Tests for the directory source (kabarfeed.sources.directory)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from kabarfeed.errors import SourceError
from kabarfeed.models import Image, RawArticle
from kabarfeed.sources.directory import DirectoryResult, FileProblem, read_directory, slugify
from tests.conftest import SEED_FILE

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "articles"
SEED = SEED_FILE
BASE = "https://berita.example"
WITA = timezone(timedelta(hours=8))
WIB = timezone(timedelta(hours=7))

TXT = """\
Banjir Rob Genangi Pesisir Banjarmasin

Oleh Redaksi pada 14 Nov 2025, 06:30 WITA
Rob

Air pasang menggenangi Jalan Sutoyo S. (Nusplus)

NUSANTARAPLUS, BANJARMASIN – Banjir rob menggenangi permukiman di tepi Sungai Martapura.

Warga diminta waspada hingga akhir pekan. (Ham/Red/ADV)

Tinggalkan Komentar
"""

MD_TOML = """\
+++
title = "Festival Budaya Samarinda"
date = 2025-11-20T19:00:00+08:00
updated = "2025-11-21T08:00:00+08:00"
author = "Rina"
summary = "Ringkasan."
regions = ["samarinda"]
categories = ["budaya"]
tags = ["festival", "seni"]
image = "https://img.example/festival.jpg"
advertorial = false
language = "id"
+++

NUSANTARAPLUS, SAMARINDA – Festival budaya digelar di **Citra Niaga**.

| Hari | Acara |
|---|---|
| Sabtu | Tari |

<script>alert(1)</script>
"""

MD_YAML = """\
---
title: Liga Pelajar Surabaya
date: 2025-11-22 15:00
guid: liga-pelajar-2025
regions: [surabaya]
categories: olahraga, pendidikan
image:
  url: https://img.example/liga.jpg
  caption: Laga pembuka.
advertorial: true
---

Pertandingan pembuka berlangsung seru.
"""


def _write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _read(root: Path, default_tz: str = "Asia/Jakarta") -> DirectoryResult:
    return read_directory("lokal", root, default_tz=default_tz, base_url=BASE + "/")


def _only(result: DirectoryResult) -> RawArticle:
    assert result.problems == ()
    assert len(result.articles) == 1
    return result.articles[0]


# --- .txt -------------------------------------------------------------------------


def test_txt_article(tmp_path: Path) -> None:
    file = _write(tmp_path, "Banjir Rob_Banjarmasin.txt", TXT)
    article = _only(_read(tmp_path))
    assert article.source == "lokal"
    assert article.origin == str(file)
    assert article.title == "Banjir Rob Genangi Pesisir Banjarmasin"
    assert article.author == "Redaksi"
    assert article.published == datetime(2025, 11, 14, 6, 30, tzinfo=WITA)
    assert article.local_tz == "Asia/Makassar"
    assert article.url == f"{BASE}/artikel/banjir-rob-banjarmasin"
    assert article.guid == article.url
    assert article.content_html == (
        "<p>Banjir rob menggenangi permukiman di tepi Sungai Martapura.</p>\n"
        "<p>Warga diminta waspada hingga akhir pekan.</p>"
    )
    assert article.image is None
    assert article.summary is None
    assert article.tags == ("Rob",)
    assert article.dateline_city == "Banjarmasin"
    assert article.advertorial is True
    assert article.warnings == ()


def test_txt_without_byline_keeps_body_with_warning(tmp_path: Path) -> None:
    _write(tmp_path, "a.txt", TXT.replace("Oleh Redaksi pada 14 Nov 2025, 06:30 WITA\n", ""))
    article = _only(_read(tmp_path, default_tz="Asia/Jayapura"))
    assert article.published is None
    assert article.local_tz == "Asia/Jayapura"
    assert "Sungai Martapura" in (article.content_html or "")
    assert any("no byline" in w for w in article.warnings)


def test_txt_zone_less_byline_uses_default_tz(tmp_path: Path) -> None:
    _write(tmp_path, "a.txt", TXT.replace("06:30 WITA", "06:30"))
    article = _only(_read(tmp_path, default_tz="Asia/Jakarta"))
    assert article.published == datetime(2025, 11, 14, 6, 30, tzinfo=WIB)
    assert article.local_tz == "Asia/Jakarta"


def test_seed_file_through_directory(tmp_path: Path) -> None:
    _write(tmp_path, SEED.name, SEED.read_bytes())
    article = _only(_read(tmp_path))
    assert article.dateline_city == "Balikpapan"
    assert article.advertorial is True
    assert article.published is not None
    assert article.published.isoformat() == "2025-11-16T13:07:00+07:00"
    assert article.url == f"{BASE}/artikel/balikpapan-rakor-akhir-tahun"
    html = article.content_html or ""
    assert html.startswith("<p>Pemerintah Kota Balikpapan menggelar")
    assert "(Nusplus)" not in html
    assert "Tinggalkan Komentar" not in html


# --- .md ----------------------------------------------------------------------------


def test_markdown_with_toml_front_matter(tmp_path: Path) -> None:
    _write(tmp_path, "festival.md", MD_TOML)
    article = _only(_read(tmp_path))
    assert article.title == "Festival Budaya Samarinda"
    assert article.published == datetime(2025, 11, 20, 11, 0, tzinfo=UTC)
    assert article.updated == datetime(2025, 11, 21, 0, 0, tzinfo=UTC)
    assert article.author == "Rina"
    assert article.summary == "Ringkasan."
    assert article.regions == ("samarinda",)
    assert article.categories == ("budaya",)
    assert article.tags == ("festival", "seni")
    assert article.image == Image(url="https://img.example/festival.jpg")
    assert article.advertorial is False
    assert article.language == "id"
    assert article.local_tz == "Asia/Makassar"  # the +08:00 offset, not the default zone
    assert article.dateline_city == "Samarinda"
    assert article.url == f"{BASE}/artikel/festival"
    html = article.content_html or ""
    assert "<strong>Citra Niaga</strong>" in html
    assert "<table>" in html and "<td>Tari</td>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_markdown_with_yaml_front_matter(tmp_path: Path) -> None:
    _write(tmp_path, "liga.md", MD_YAML)
    article = _only(_read(tmp_path, default_tz="Asia/Jakarta"))
    assert article.title == "Liga Pelajar Surabaya"
    assert article.published == datetime(2025, 11, 22, 15, 0, tzinfo=WIB)  # naive -> default
    assert article.local_tz == "Asia/Jakarta"
    assert article.guid == "liga-pelajar-2025"
    assert article.url == f"{BASE}/artikel/liga"
    assert article.categories == ("olahraga", "pendidikan")
    assert article.image == Image(url="https://img.example/liga.jpg", caption="Laga pembuka.")
    assert article.advertorial is True
    assert article.dateline_city is None
    assert article.content_html == "<p>Pertandingan pembuka berlangsung seru.</p>\n"


def test_markdown_crlf_and_bom(tmp_path: Path) -> None:
    data = ("\ufeff" + MD_YAML.replace("\n", "\r\n")).encode("utf-8")
    _write(tmp_path, "liga.md", data)
    article = _only(_read(tmp_path))
    assert article.title == "Liga Pelajar Surabaya"
    assert article.warnings == ()


def test_markdown_date_only_is_midnight_in_default_zone(tmp_path: Path) -> None:
    _write(tmp_path, "a.md", "+++\ntitle = 'A'\ndate = 2025-11-03\n+++\nIsi.\n")
    article = _only(_read(tmp_path, default_tz="Asia/Makassar"))
    assert article.published == datetime(2025, 11, 3, tzinfo=WITA)


def test_markdown_title_from_heading_when_no_front_matter(tmp_path: Path) -> None:
    _write(tmp_path, "b.md", "# Judul dari Heading\n\nIsi berita.\n")
    article = _only(_read(tmp_path))
    assert article.title == "Judul dari Heading"
    assert article.content_html == "<p>Isi berita.</p>\n"
    assert article.published is None
    assert any("no 'date'" in w for w in article.warnings)


def test_unknown_front_matter_key_is_a_warning(tmp_path: Path) -> None:
    _write(tmp_path, "a.md", "---\ntitle: A\nredaktur: Budi\n---\nIsi.\n")
    article = _only(_read(tmp_path))
    assert any("unknown key 'redaktur'" in w for w in article.warnings)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("+++\ntitle = 'A'\n\nIsi.\n", "never closed"),
        ("+++\ntitle = \n+++\nIsi.\n", "invalid TOML front matter"),
        ("---\ntitle: [a\n---\nIsi.\n", "invalid YAML front matter"),
        ("---\n- a\n- b\n---\nIsi.\n", "front matter must be a table"),
        ("---\ndate: 2025-11-01\n---\nIsi.\n", "no 'title'"),
        ("---\ntitle: A\n---\n\n  \n", "body is empty"),
        ("---\ntitle: A\ndate: kemarin sore\n---\nIsi.\n", "'date' is not an ISO 8601"),
        ("---\ntitle: A\ndate: [1]\n---\nIsi.\n", "'date' must be an ISO 8601"),
        ("---\ntitle: A\nregions: {a: 1}\n---\nIsi.\n", "'regions' must be a list"),
        ("---\ntitle: A\nadvertorial: mungkin\n---\nIsi.\n", "'advertorial' must be true or false"),
        ("---\ntitle: A\nimage: {caption: x}\n---\nIsi.\n", "'image' table needs a 'url'"),
        ("---\ntitle: A\nimage: [x]\n---\nIsi.\n", "'image' must be a URL"),
        ("---\ntitle: {a: 1}\n---\nIsi.\n", "'title' must be text"),
        ("+++\ntitle = 'A'\ndate = 0001-01-01T00:00:00+08:00\n+++\nIsi.\n", "out of range"),
    ],
)
def test_bad_markdown_is_a_problem_naming_file_and_fault(
    tmp_path: Path, content: str, fragment: str
) -> None:
    bad = _write(tmp_path, "rusak.md", content)
    _write(tmp_path, "baik.txt", TXT)
    result = _read(tmp_path)
    assert [a.title for a in result.articles] == ["Banjir Rob Genangi Pesisir Banjarmasin"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.path == str(bad)
    assert problem.message.startswith(f"{bad}: ")
    assert fragment in problem.message


# --- .json ----------------------------------------------------------------------------


def test_json_single_object_with_content_html(tmp_path: Path) -> None:
    obj = {
        "title": "Harga Cabai Naik",
        "date": "2025-11-10T08:00:00Z",
        "id": 4521,
        "url": "https://berita.example/ekonomi/harga-cabai",
        "categories": ["ekonomi"],
        "regions": ["banjarbaru"],
        "content_html": "<p>NUSANTARAPLUS, BANJARBARU – Harga cabai &amp; bawang naik.</p>",
    }
    _write(tmp_path, "cabai.json", json.dumps(obj))
    article = _only(_read(tmp_path))
    assert article.guid == "4521"
    assert article.url == "https://berita.example/ekonomi/harga-cabai"
    assert article.published == datetime(2025, 11, 10, 8, 0, tzinfo=UTC)
    assert article.content_html == obj["content_html"]
    assert article.dateline_city == "Banjarbaru"
    assert article.categories == ("ekonomi",)


def test_json_list_with_markdown_body_and_bad_item(tmp_path: Path) -> None:
    items = [
        {"title": "Satu", "body": "Isi *pertama*.", "date": "2025-11-01T09:00:00"},
        {"title": "Dua"},
        "bukan objek",
        {"title": "Tiga", "body": "Isi ketiga.", "guid": "tiga"},
    ]
    file = _write(tmp_path, "kumpulan.json", json.dumps(items))
    result = _read(tmp_path, default_tz="Asia/Jayapura")
    assert [a.title for a in result.articles] == ["Satu", "Tiga"]
    first, third = result.articles
    assert first.content_html == "<p>Isi <em>pertama</em>.</p>\n"
    assert first.url == f"{BASE}/artikel/kumpulan-satu"
    assert first.origin == f"{file}[1]"
    assert first.published == datetime(2025, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    assert third.guid == "tiga"
    assert third.url == f"{BASE}/artikel/kumpulan-tiga"
    assert result.problems == (
        FileProblem(f"{file}[2]", f"{file}[2]: needs a non-empty 'content_html' or 'body'"),
        FileProblem(f"{file}[3]", f"{file}[3]: expected an object, got text"),
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"title": "A",', "invalid JSON at line 1"),
        ("42", "expected an object or a list of objects, got int"),
        ("[]", "list of articles is empty"),
        ('{"title": "A", "id": ' + "9" * 5000 + "}", "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
    ],
)
def test_bad_json_is_a_problem(tmp_path: Path, content: str, fragment: str) -> None:
    bad = _write(tmp_path, "rusak.json", content)
    result = _read(tmp_path)
    assert result.articles == ()
    assert len(result.problems) == 1
    assert result.problems[0].path == str(bad)
    assert result.problems[0].message.startswith(str(bad))
    assert fragment in result.problems[0].message


# --- walking, decoding, identity -------------------------------------------------------


def test_recursion_sorting_and_skipped_files(tmp_path: Path) -> None:
    _write(tmp_path, "b.txt", TXT.replace("Banjir Rob", "B"))
    _write(tmp_path, "a/z.md", "---\ntitle: Z\n---\nIsi.\n")
    _write(tmp_path, "a/c.json", json.dumps({"title": "C", "body": "Isi."}))
    for skipped in (
        ".hidden.txt",
        ".git/x.txt",
        "draf/.tersembunyi/y.md",
        "b.txt~",
        "~b.txt",
        "#b.txt#",
        ".b.txt.swp",
        "b.txt.swp",
        "catatan.docx",
        "foto.jpg",
    ):
        _write(tmp_path, skipped, "sampah yang tidak boleh dibaca")
    (tmp_path / "folder.txt").mkdir()
    result = _read(tmp_path)
    assert result.problems == ()
    assert [Path(a.origin).relative_to(tmp_path).as_posix() for a in result.articles] == [
        "a/c.json",
        "a/z.md",
        "b.txt",
    ]


def test_upper_case_suffix_is_read(tmp_path: Path) -> None:
    _write(tmp_path, "BERITA.TXT", TXT)
    assert _only(_read(tmp_path)).url == f"{BASE}/artikel/berita"


def test_cp1252_fallback_with_warning(tmp_path: Path) -> None:
    text = TXT.replace("Banjir rob menggenangi", "Banjir rob “parah” menggenangi")
    _write(tmp_path, "lama.txt", text.encode("cp1252"))
    article = _only(_read(tmp_path))
    assert "Banjir rob “parah” menggenangi" in (article.content_html or "")
    assert any("not valid UTF-8" in w and "Windows-1252" in w for w in article.warnings)
    assert article.warnings[0].startswith(str(tmp_path / "lama.txt"))


def test_utf8_bom_txt(tmp_path: Path) -> None:
    _write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + TXT.encode("utf-8"))
    article = _only(_read(tmp_path))
    assert article.title == "Banjir Rob Genangi Pesisir Banjarmasin"
    assert article.warnings == ()


def test_unparseable_txt_is_a_problem(tmp_path: Path) -> None:
    bad = _write(tmp_path, "kosong.txt", "\n\n   \n")
    _write(tmp_path, "judul.txt", "Hanya Judul\n")
    _write(tmp_path, "ok.txt", TXT)
    result = _read(tmp_path)
    assert len(result.articles) == 1
    assert [p.path for p in result.problems] == [str(tmp_path / "judul.txt"), str(bad)]
    assert "no body" in result.problems[0].message
    assert "no title" in result.problems[1].message


def test_duplicate_permalinks_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "a/berita.txt", TXT)
    second = _write(tmp_path, "b/berita.txt", TXT)
    result = _read(tmp_path)
    assert len(result.articles) == 1
    assert len(result.problems) == 1
    assert result.problems[0].path == str(second)
    assert "same guid/permalink" in result.problems[0].message
    assert str(tmp_path / "a" / "berita.txt") in result.problems[0].message


def test_result_is_deterministic(tmp_path: Path) -> None:
    _write(tmp_path, "x.txt", TXT)
    _write(tmp_path, "y.md", MD_TOML)
    assert _read(tmp_path) == _read(tmp_path)


def test_missing_directory_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        _read(tmp_path / "tidak-ada")


def test_file_instead_of_directory_raises_source_error(tmp_path: Path) -> None:
    file = _write(tmp_path, "a.txt", TXT)
    with pytest.raises(SourceError, match="is not a directory"):
        _read(file)


def test_unknown_default_zone_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown time zone 'Asia/Atlantis'"):
        _read(tmp_path, default_tz="Asia/Atlantis")


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Rakor Akhir_Tahun 2025", "rakor-akhir-tahun-2025"),
        ("  --Pasar  Terapung!-- ", "pasar-terapung"),
        ("Café Kopi Tubruk", "cafe-kopi-tubruk"),
        ("balikpapan-rakor-akhir-tahun", "balikpapan-rakor-akhir-tahun"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_slugify_without_ascii_is_stable_hash() -> None:
    assert slugify("日本語") == slugify("日本語")
    assert len(slugify("日本語")) == 12
    assert slugify("日本語") != slugify("中文")


# --- the shipped examples ------------------------------------------------------------------


def test_examples_all_parse_cleanly() -> None:
    result = read_directory(
        "contoh", EXAMPLES, default_tz="Asia/Jakarta", base_url="https://nusantaraplus.example"
    )
    assert result.problems == ()
    assert 8 <= len(result.articles) <= 10
    for article in result.articles:
        assert article.warnings == (), article.origin
        assert article.published is not None, article.origin
        assert (article.published.year, article.published.month) == (2025, 11)
        assert article.content_html and article.content_html.count("<p>") >= 3, article.origin
        assert article.dateline_city, article.origin
    suffixes = [Path(a.origin).suffix for a in result.articles]
    assert suffixes.count(".txt") >= 5
    assert suffixes.count(".md") >= 3
    assert suffixes.count(".json") >= 1
    assert {a.local_tz for a in result.articles} == {
        "Asia/Jakarta",
        "Asia/Makassar",
        "Asia/Jayapura",
    }
    assert {a.dateline_city for a in result.articles} >= {
        "Balikpapan",
        "Samarinda",
        "Bontang",
        "Banjarmasin",
        "Banjarbaru",
        "Surabaya",
        "Malang",
        "Jayapura",
    }
    advertorials = [Path(a.origin).suffix for a in result.articles if a.advertorial]
    assert ".txt" in advertorials and ".md" in advertorials
    for article in result.articles:
        if article.origin.endswith(".md"):
            assert article.regions and article.categories, article.origin


def test_examples_use_both_month_spellings_and_all_zones() -> None:
    bylines = [
        next(line for line in p.read_text(encoding="utf-8").splitlines() if line.startswith("Oleh"))
        for p in sorted(EXAMPLES.glob("*.txt"))
    ]
    joined = "\n".join(bylines)
    assert " Nov 2025" in joined and " November 2025" in joined
    for zone in (" WIB", " WITA", " WIT\n"):
        assert zone in joined + "\n"


def test_a_file_over_the_size_cap_is_a_problem_and_not_read(tmp_path: Path) -> None:
    _write(tmp_path, "besar.md", "# Judul\n\n" + "isi " * 1000)
    _write(tmp_path, "kecil.md", "# Kecil\n\nisi\n")
    result = read_directory(
        "lokal", tmp_path, default_tz="Asia/Jakarta", base_url=BASE, max_bytes=1000
    )
    assert [a.title for a in result.articles] == ["Kecil"]
    [problem] = result.problems
    assert "besar.md: larger than 1000 bytes" in problem.message


def test_lone_surrogates_in_front_matter_and_json_are_refused_per_file(tmp_path: Path) -> None:
    _write(tmp_path, "a.md", '---\ntitle: "Judul \\udfff"\n---\nIsi.\n')
    _write(
        tmp_path, "b.json", '[{"title": "Baik", "body": "Isi."}, {"title": "\\ud800", "body": "x"}]'
    )
    result = _read(tmp_path)
    assert [a.title for a in result.articles] == ["Baik"]
    messages = sorted(p.message for p in result.problems)
    assert "a.md: front matter: 'title' contains a lone surrogate U+DFFF" in messages[0]
    assert "b.json[2]: 'title' contains a lone surrogate U+D800" in messages[1]
