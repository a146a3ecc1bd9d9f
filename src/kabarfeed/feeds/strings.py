"""Human-readable text of feeds, the OPML file and the index page, per language.

``site.language`` picks the table (``"id"`` Bahasa Indonesia, ``"en"``
English). Kept as plain, immutable mappings: no gettext catalogues to build.
"""

from __future__ import annotations

from kabarfeed.texts import Texts

_ID = {
    "all_title": "{site}",
    "all_subtitle": "Semua berita dari {site}",
    "region_title": "{site}: {region}",
    "region_subtitle": "Berita {region} dari {site}",
    "region_includes": "termasuk {children}",
    "category_title": "{site}: {category}",
    "category_subtitle": "Berita kategori {category} dari {site}",
    "pair_title": "{site}: {region} · {category}",
    "pair_subtitle": "Berita {category} di {region} dari {site}",
    "page_title": "Umpan berita {site}",
    "intro": (
        "Ikuti berita yang Anda pilih di aplikasi pembaca umpan (RSS reader) seperti "
        "Feedly, Inoreader, NetNewsWire atau Thunderbird: salin alamat umpan di bawah, "
        "atau impor semua sekaligus dengan berkas OPML."
    ),
    "all_feeds": "Semua berita",
    "regions": "Wilayah",
    "categories": "Kategori",
    "articles": "{count} artikel",
    "updated": "Terakhir diperbarui {date}",
    "opml": "Unduh semua umpan (OPML)",
    "subscribe_title": "Berita harian lewat email",
    "subscribe_text": "Setiap pagi, satu email berisi wilayah dan topik pilihan Anda. "
    "Gratis; berhenti kapan saja.",
    "subscribe_label": "Alamat email",
    "subscribe_button": "Berlangganan",
    "formats": "Format",
    "no_articles": "Belum ada artikel.",
    "not_found_title": "Halaman tidak ditemukan",
    "not_found_text": "Alamat yang Anda minta tidak ada. Daftar semua umpan ada di",
    "home": "halaman utama",
}

_EN = {
    "all_title": "{site}",
    "all_subtitle": "All news from {site}",
    "region_title": "{site}: {region}",
    "region_subtitle": "News from {region} by {site}",
    "region_includes": "including {children}",
    "category_title": "{site}: {category}",
    "category_subtitle": "{category} news from {site}",
    "pair_title": "{site}: {region} · {category}",
    "pair_subtitle": "{category} news from {region} by {site}",
    "page_title": "{site} news feeds",
    "intro": (
        "Follow the news you choose in a feed reader such as Feedly, Inoreader, "
        "NetNewsWire or Thunderbird: copy a feed address below, or import them all "
        "at once with the OPML file."
    ),
    "all_feeds": "All news",
    "regions": "Regions",
    "categories": "Categories",
    "articles": "{count} articles",
    "updated": "Last updated {date}",
    "opml": "Download every feed (OPML)",
    "subscribe_title": "Daily news by email",
    "subscribe_text": "Every morning, one email with the regions and topics you choose. "
    "Free; leave at any time.",
    "subscribe_label": "Email address",
    "subscribe_button": "Subscribe",
    "formats": "Formats",
    "no_articles": "No articles yet.",
    "not_found_title": "Page not found",
    "not_found_text": "The address you asked for does not exist. Every feed is listed on the",
    "home": "home page",
}

strings = Texts(id=_ID, en=_EN)
"""The table for a language (Indonesian when unknown): ``strings("en")["regions"]``."""


def list_join(items: list[str], language: str) -> str:
    """``"a, b dan c"`` / ``"a, b and c"``."""
    word = " dan " if language == "id" else " and "
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + word + items[-1]
