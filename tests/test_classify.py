"""Classification is pure: tested with a taxonomy and signals, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from kabarfeed.classify import Signals, classify, decide_advertorial, mentions, region_for_name
from kabarfeed.config import load_config
from kabarfeed.models import Taxonomy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_config(REPO / "config.toml", environ={}).taxonomy


def test_dateline_city_wins_and_implies_province(taxonomy: Taxonomy) -> None:
    decided = classify(
        taxonomy,
        Signals(
            title="Pemerintah Dorong Realisasi Program",
            lead="Rapat di Samarinda kemarin",
            dateline_city="BALIKPAPAN",
            source_region="jawa-timur",
        ),
    )
    assert decided.regions == ("balikpapan", "kalimantan-timur")


def test_explicit_metadata_by_slug_name_or_alias(taxonomy: Taxonomy) -> None:
    decided = classify(taxonomy, Signals(title="x", explicit_regions=("surabaya", "Kota Malang")))
    assert decided.regions == ("surabaya", "jawa-timur", "malang")


def test_source_default_refined_by_named_city(taxonomy: Taxonomy) -> None:
    decided = classify(
        taxonomy, Signals(title="Banjir melanda Samarinda", source_region="kalimantan-timur")
    )
    assert decided.regions == ("kalimantan-timur", "samarinda")


def test_source_default_ignores_cities_outside_it(taxonomy: Taxonomy) -> None:
    decided = classify(taxonomy, Signals(title="Tim Surabaya menang", source_region="papua"))
    assert decided.regions == ("papua",)


def test_aliases_in_title_or_lead(taxonomy: Taxonomy) -> None:
    decided = classify(taxonomy, Signals(title="Harga BBM di Kota Minyak naik"))
    assert decided.regions == ("balikpapan", "kalimantan-timur")
    assert classify(taxonomy, Signals(title="Kabar dari Jatim")).regions == ("jawa-timur",)


def test_word_boundaries_and_case(taxonomy: Taxonomy) -> None:
    assert mentions("Rapat KOORDINASI digelar", "rapat koordinasi")
    assert not mentions("Malangnya nasib", "Malang")
    assert not mentions("opdate", "opd")
    assert mentions("Pemkot Balikpapan.", "pemkot")
    assert mentions("Ekonomi São Paulo", "sao paulo")


def test_no_signal_no_region(taxonomy: Taxonomy) -> None:
    assert classify(taxonomy, Signals(title="Kabar nasional")).regions == ()


def test_categories_explicit_then_default_then_keywords(taxonomy: Taxonomy) -> None:
    explicit = classify(
        taxonomy,
        Signals(
            title="Sekolah baru", explicit_categories=("Kesehatan",), source_category="ekonomi"
        ),
    )
    assert explicit.categories == ("kesehatan", "ekonomi")
    keywords = classify(
        taxonomy, Signals(title="Wali Kota buka sekolah baru", tags=("Rakor Akhr tahun",))
    )
    assert keywords.categories == ("pemerintahan", "pendidikan")
    unknown = classify(taxonomy, Signals(title="Rapat koordinasi", explicit_categories=("33",)))
    assert unknown.categories == ("pemerintahan",)


def test_advertorial_flag() -> None:
    assert decide_advertorial(Signals(title="x", explicit_advertorial=True))
    assert not decide_advertorial(Signals(title="x", explicit_advertorial=False, tags=("ADV",)))
    assert decide_advertorial(Signals(title="x", explicit_categories=("Advertorial",)))
    assert decide_advertorial(Signals(title="x", tags=("iklan",)))
    assert not decide_advertorial(Signals(title="Advertorial dilarang tanpa label"))


def test_region_for_name_strips_admin_prefix(taxonomy: Taxonomy) -> None:
    assert region_for_name(taxonomy, "KOTA SAMARINDA") == "samarinda"
    assert region_for_name(taxonomy, "Provinsi Kalimantan Timur") == "kalimantan-timur"
    assert region_for_name(taxonomy, "Gotham") is None
