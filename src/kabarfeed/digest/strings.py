"""Interface strings of the digest email, per language (``id`` and ``en``).

Templates receive the table for the subscriber's language as ``t``; a
publisher restyling templates may use or replace any of them.
"""

from __future__ import annotations

from kabarfeed.texts import Texts

_ID = {
    "hello": "Halo",
    "intro": "Berikut ringkasan berita pilihan Anda untuk {date}.",
    "welcome": "Selamat datang di {site}! Berikut berita terbaru sesuai pilihan Anda. "
    "Mulai besok, ringkasan tiba setiap hari pukul {time}.",
    "edition_title": "Kabar {place}",
    "count": "{n} berita",
    "count_one": "{n} berita",
    "more": "Lihat {n} berita lainnya di web",
    "read_more": "Baca selengkapnya",
    "other": "Berita lainnya",
    "all_news": "semua berita",
    "why": "Anda menerima email ini karena {email} berlangganan ringkasan berita harian "
    "{site} untuk: {prefs}.",
    "preferences": "Atur preferensi",
    "unsubscribe": "Berhenti berlangganan",
    "browser": "Lihat di browser",
    "empty": "Belum ada berita baru sesuai pilihan Anda sejak edisi sebelumnya.",
    "photo": "Foto",
    "welcome_weekly": "Selamat datang di {site}! Berikut berita terbaru sesuai pilihan Anda. "
    "Selanjutnya, ringkasan mingguan tiba setiap hari {day} pukul {time}.",
    "weekly_title": "Sepekan di {place}",
    "weekly_title_all": "Berita pilihan sepekan",
    "weekly_intro": "Berita pilihan sepekan terakhir, {start} – {date}.",
    "why_weekly": "Anda menerima email ini karena {email} berlangganan ringkasan berita "
    "mingguan {site} untuk: {prefs}.",
}

_EN = {
    "hello": "Hello",
    "intro": "Here is your news digest for {date}.",
    "welcome": "Welcome to {site}! Here are the latest stories on your topics. "
    "From tomorrow, your digest arrives every day at {time}.",
    "edition_title": "{place} News",
    "count": "{n} stories",
    "count_one": "{n} story",
    "more": "See {n} more stories on the web",
    "read_more": "Read more",
    "other": "More news",
    "all_news": "all news",
    "why": "You are receiving this email because {email} subscribed to the {site} daily "
    "digest for: {prefs}.",
    "preferences": "Manage preferences",
    "unsubscribe": "Unsubscribe",
    "browser": "View in your browser",
    "empty": "No new stories matched your choices since the previous edition.",
    "photo": "Photo",
    "welcome_weekly": "Welcome to {site}! Here are the latest stories on your topics. "
    "From now on, your weekly digest arrives every {day} at {time}.",
    "weekly_title": "The week in {place}",
    "weekly_title_all": "The week's top stories",
    "weekly_intro": "The week's top stories, {start} – {date}.",
    "why_weekly": "You are receiving this email because {email} subscribed to the {site} weekly "
    "digest for: {prefs}.",
}

strings_for = Texts(id=_ID, en=_EN)
"""The table for a subscriber's language (Indonesian when unknown)."""
