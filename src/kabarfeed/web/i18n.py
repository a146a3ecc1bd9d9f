"""Interface strings of the subscription pages and the confirmation email
(``id`` Bahasa Indonesia, ``en`` English) and the choice of language.

The language of a page is, in order: an explicit ``?lang=`` (or the form's
``lang`` field), the subscriber's own language on link pages, the browser's
``Accept-Language``, then ``[site] language``.
"""

from __future__ import annotations

from kabarfeed.texts import Texts

LANGUAGES = ("id", "en")

_ID = {
    "lang_name": "Bahasa Indonesia",
    "switch_language": "Bahasa",
    "skip": "Langsung ke isi",
    "home": "Beranda",
    "feeds": "Umpan berita",
    "footer": "Ringkasan berita harian {site}",
    # subscribe
    "subscribe_title": "Berlangganan ringkasan berita harian",
    "subscribe_intro": (
        "Setiap pagi kami kirim satu email berisi berita pilihan Anda. Gratis, tanpa akun, "
        "dan bisa berhenti kapan saja."
    ),
    "email": "Alamat email",
    "email_hint": "Kami kirim tautan konfirmasi ke alamat ini.",
    "name": "Nama (opsional)",
    "regions": "Wilayah",
    "regions_hint": "Pilih provinsi untuk semua kotanya. Kosongkan untuk semua wilayah.",
    "categories": "Kategori",
    "categories_hint": "Kosongkan untuk semua kategori.",
    "delivery": "Pengiriman",
    "send_at": "Jam kirim",
    "frequency": "Frekuensi",
    "daily": "Setiap hari",
    "weekly_0": "Sepekan sekali, hari Senin",
    "weekly_1": "Sepekan sekali, hari Selasa",
    "weekly_2": "Sepekan sekali, hari Rabu",
    "weekly_3": "Sepekan sekali, hari Kamis",
    "weekly_4": "Sepekan sekali, hari Jumat",
    "weekly_5": "Sepekan sekali, hari Sabtu",
    "weekly_6": "Sepekan sekali, hari Minggu",
    "breaking_only": "Hanya berita kilat (breaking news)",
    "breaking_alerts": "Kirimi saya juga berita kilat (breaking news) saat terbit",
    "timezone": "Zona waktu",
    "timezone_auto": "Otomatis (dari wilayah pertama yang dipilih)",
    "language": "Bahasa email",
    "consent": (
        "Dengan berlangganan, Anda setuju menerima email harian dari {site}. Sebagai bukti "
        "persetujuan kami menyimpan alamat email dan pilihan Anda, serta waktu, alamat IP dan "
        "peramban saat mendaftar. Anda bisa berhenti kapan saja lewat tautan di setiap email."
    ),
    "honeypot": "Jangan isi kolom ini",
    "subscribe_button": "Berlangganan",
    "check_title": "Periksa kotak masuk Anda",
    "check_text": (
        "Jika alamat itu bisa menerima email, kami telah mengirim tautan konfirmasi ke sana. "
        "Buka email tersebut dan tekan tombol konfirmasi. Tautan berlaku {days} hari."
    ),
    "check_spam": "Tidak ada email dalam beberapa menit? Periksa folder spam atau promosi.",
    "invalid_email": "Alamat email tidak valid. Periksa lagi penulisannya.",
    "invalid_choice": "Ada pilihan yang tidak dikenal. Muat ulang halaman dan coba lagi.",
    # confirm
    "confirm_title": "Konfirmasi langganan",
    "confirm_text": "Tekan tombol di bawah untuk mulai menerima ringkasan berita harian.",
    "confirm_button": "Ya, saya mau berlangganan",
    "confirmed_title": "Langganan Anda aktif",
    "confirmed_text": "Terima kasih! Edisi pertama datang pada jam kirim berikutnya ({time}).",
    "already_title": "Langganan Anda sudah aktif",
    "already_text": "Alamat ini sudah dikonfirmasi. Tidak perlu melakukan apa-apa lagi.",
    "expired_title": "Tautan konfirmasi kedaluwarsa",
    "expired_text": "Tautan ini sudah tidak berlaku. Kami bisa mengirim tautan baru.",
    "resend_button": "Kirim tautan baru",
    "stale_title": "Tautan ini tidak berlaku lagi",
    "stale_text": "Langganan ini sudah dihentikan. Silakan berlangganan lagi bila mau.",
    "subscribe_again": "Berlangganan lagi",
    # preferences
    "preferences_title": "Preferensi langganan",
    "preferences_intro": "Atur berita yang masuk ke {email}.",
    "save_button": "Simpan preferensi",
    "saved": "Preferensi Anda sudah disimpan.",
    "status_pending": "Langganan ini belum dikonfirmasi. Cari email konfirmasi di kotak masuk.",
    "status_stopped": "Langganan ini sudah berhenti; perubahan di sini tidak mengirim email.",
    "unsubscribe_link": "Berhenti berlangganan",
    "preferences_link": "Atur preferensi",
    # unsubscribe
    "unsubscribe_title": "Berhenti berlangganan?",
    "unsubscribe_text": "{email} tidak akan lagi menerima ringkasan berita harian {site}.",
    "unsubscribe_button": "Berhenti berlangganan",
    "unsubscribe_instead": "Terlalu banyak email? Anda bisa mengubah wilayah dan kategori:",
    "unsubscribed_title": "Anda sudah berhenti berlangganan",
    "unsubscribed_text": "Kami tidak akan mengirim ringkasan berita lagi ke {email}.",
    # errors
    "not_found_title": "Halaman tidak ditemukan",
    "not_found_text": "Tautan ini tidak dikenal atau sudah tidak berlaku.",
    "forbidden_title": "Formulir kedaluwarsa",
    "forbidden_text": "Formulir ini sudah terlalu lama terbuka atau tidak berasal dari situs ini. "
    "Muat ulang halaman dan coba lagi.",
    "cookies": "Pastikan peramban Anda menerima cookie dari situs ini.",
    "too_many_title": "Terlalu banyak permintaan",
    "too_many_text": "Mohon tunggu sebentar (sekitar {minutes} menit) lalu coba lagi.",
    "bad_request_title": "Permintaan tidak valid",
    "error_title": "Terjadi kesalahan",
    "error_text": "Layanan sedang bermasalah. Silakan coba lagi nanti.",
    "back": "Kembali ke formulir",
    # email
    "mail_subject": "Konfirmasi langganan {site}",
    "mail_hello": "Halo",
    "mail_intro": "Seseorang (semoga Anda) meminta ringkasan berita harian {site} dikirim ke "
    "alamat ini.",
    "mail_action": "Konfirmasi langganan",
    "mail_expiry": "Tautan ini berlaku sampai {date}.",
    "mail_ignore": "Bukan Anda? Abaikan email ini; kami tidak akan mengirim apa pun lagi.",
    "notice_subject": "Langganan {site} Anda",
    "notice_intro": "Alamat ini sudah berlangganan ringkasan berita harian {site}.",
    "notice_action": "Atur preferensi",
}

_EN = {
    "lang_name": "English",
    "switch_language": "Language",
    "skip": "Skip to content",
    "home": "Home",
    "feeds": "News feeds",
    "footer": "{site} daily news digest",
    "subscribe_title": "Subscribe to the daily news digest",
    "subscribe_intro": (
        "Every morning we send one email with the news you choose. Free, no account, "
        "and you can leave at any time."
    ),
    "email": "Email address",
    "email_hint": "We send a confirmation link to this address.",
    "name": "Name (optional)",
    "regions": "Regions",
    "regions_hint": "Choose a province for all of its cities. Leave empty for every region.",
    "categories": "Categories",
    "categories_hint": "Leave empty for every category.",
    "delivery": "Delivery",
    "send_at": "Send time",
    "frequency": "How often",
    "daily": "Every day",
    "weekly_0": "Once a week, on Monday",
    "weekly_1": "Once a week, on Tuesday",
    "weekly_2": "Once a week, on Wednesday",
    "weekly_3": "Once a week, on Thursday",
    "weekly_4": "Once a week, on Friday",
    "weekly_5": "Once a week, on Saturday",
    "weekly_6": "Once a week, on Sunday",
    "breaking_only": "Breaking news alerts only",
    "breaking_alerts": "Also email me breaking news the moment it is published",
    "timezone": "Time zone",
    "timezone_auto": "Automatic (from the first region you choose)",
    "language": "Email language",
    "consent": (
        "By subscribing you agree to receive a daily email from {site}. As proof of consent "
        "we keep your address and choices, and the time, IP address and browser of your "
        "sign-up. You can leave at any time with the link in every email."
    ),
    "honeypot": "Leave this field empty",
    "subscribe_button": "Subscribe",
    "check_title": "Check your inbox",
    "check_text": (
        "If that address can receive email, we have sent a confirmation link to it. Open "
        "the email and press the confirm button. The link is valid for {days} days."
    ),
    "check_spam": "Nothing after a few minutes? Look in your spam or promotions folder.",
    "invalid_email": "That email address is not valid. Please check it.",
    "invalid_choice": "Some choice was not recognised. Reload the page and try again.",
    "confirm_title": "Confirm your subscription",
    "confirm_text": "Press the button below to start receiving the daily news digest.",
    "confirm_button": "Yes, subscribe me",
    "confirmed_title": "Your subscription is active",
    "confirmed_text": "Thank you! The first edition arrives at your next send time ({time}).",
    "already_title": "Your subscription is already active",
    "already_text": "This address is already confirmed. Nothing else to do.",
    "expired_title": "This confirmation link has expired",
    "expired_text": "The link is no longer valid. We can send you a new one.",
    "resend_button": "Send a new link",
    "stale_title": "This link is no longer valid",
    "stale_text": "This subscription has ended. You are welcome to subscribe again.",
    "subscribe_again": "Subscribe again",
    "preferences_title": "Subscription preferences",
    "preferences_intro": "Choose the news sent to {email}.",
    "save_button": "Save preferences",
    "saved": "Your preferences have been saved.",
    "status_pending": "This subscription is not confirmed yet. Look for the confirmation email.",
    "status_stopped": "This subscription has ended; changes here do not send any email.",
    "unsubscribe_link": "Unsubscribe",
    "preferences_link": "Manage preferences",
    "unsubscribe_title": "Unsubscribe?",
    "unsubscribe_text": "{email} will no longer receive the {site} daily news digest.",
    "unsubscribe_button": "Unsubscribe",
    "unsubscribe_instead": "Too much email? You can change your regions and categories instead:",
    "unsubscribed_title": "You have unsubscribed",
    "unsubscribed_text": "We will not send the news digest to {email} again.",
    "not_found_title": "Page not found",
    "not_found_text": "This link is unknown or no longer valid.",
    "forbidden_title": "This form has expired",
    "forbidden_text": "The form was open too long or did not come from this site. "
    "Reload the page and try again.",
    "cookies": "Make sure your browser accepts cookies from this site.",
    "too_many_title": "Too many requests",
    "too_many_text": "Please wait a little (about {minutes} minutes) and try again.",
    "bad_request_title": "Invalid request",
    "error_title": "Something went wrong",
    "error_text": "The service is having trouble. Please try again later.",
    "back": "Back to the form",
    "mail_subject": "Confirm your subscription to {site}",
    "mail_hello": "Hello",
    "mail_intro": "Someone (hopefully you) asked for the {site} daily news digest to be sent "
    "to this address.",
    "mail_action": "Confirm subscription",
    "mail_expiry": "This link is valid until {date}.",
    "mail_ignore": "Not you? Ignore this email; we will not write again.",
    "notice_subject": "Your {site} subscription",
    "notice_intro": "This address is already subscribed to the {site} daily news digest.",
    "notice_action": "Manage preferences",
}

strings = Texts(id=_ID, en=_EN)
"""The table for a page's language (Indonesian when unknown)."""
STRINGS = strings.tables


def parse_accept_language(header: str) -> list[str]:
    """Primary language subtags of ``Accept-Language``, best first (``q=0`` dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary and q > 0:
            ranked.append((-q, i, primary))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(
    explicit: str | None,
    subscriber: str | None,
    accept_language: str,
    default: str,
) -> str:
    """The page language (see the module docstring); always one of :data:`LANGUAGES`."""
    for candidate in (explicit, subscriber):
        if candidate and candidate.lower() in LANGUAGES:
            return candidate.lower()
    for tag in parse_accept_language(accept_language):
        if tag == "in":  # the old code for Indonesian
            return "id"
        if tag in LANGUAGES:
            return tag
    return default if default in LANGUAGES else "id"
