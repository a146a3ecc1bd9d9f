"""HTTP-level tests of the subscription pages with Starlette's test client:
real app, real SQLite/PostgreSQL store, real Maildir (and a real aiosmtpd
server for the SMTP path), a clock the tests move by hand."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from conftest import ConfigFactory
from feeds_support import make_article, store
from kabarfeed.config import Config
from kabarfeed.delivery.enqueue import enqueue_editions
from kabarfeed.delivery.sharedrate import DatabaseSlots, Rates
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from kabarfeed.store.schema import deliveries, state
from kabarfeed.subscribers import SubscriberDraft, with_defaults
from kabarfeed.web import create_app
from kabarfeed.web.confirmations import ConfirmationMailer, Prepared
from kabarfeed.web.pages import CSRF_COOKIE
from kabarfeed.web.security import Signer
from smtpserver import ScriptedSMTPServer

BASE = "https://news.example.id"


@dataclass
class Clock:
    """A clock the test moves."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Web:
    """The app under test and what it writes to."""

    client: TestClient
    config: Config
    db: Database
    clock: Clock
    maildir: Path
    seen: set[str] = field(default_factory=set)

    def new_client(self) -> TestClient:
        """A fresh client: no cookies, same app."""
        return TestClient(self.client.app, base_url=BASE)

    def mails(self) -> list[EmailMessage]:
        folder = self.maildir / "new"
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        return [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files
        ]

    def subscriber(self, address: str) -> Subscriber | None:
        with self.db.connect() as conn:
            return sub_store.get_by_email(conn, address)


def _make_web(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path, web_toml: str
) -> Web:
    maildir = tmp_path / "maildir"
    config = make_config(
        f'[maildir]\npath = "{maildir}"\n[feeds]\noutput = "{tmp_path / "public"}"\n'
        f"[web]\n{web_toml}\n"
    )
    clock = Clock(fixed_now)
    client = TestClient(create_app(config, db, clock=clock), base_url=BASE)
    return Web(client, config, db, clock, maildir)


@pytest.fixture
def web(make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path) -> Web:
    return _make_web(make_config, db, fixed_now, tmp_path, "subscribe_per_ip_per_hour = 1000")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found[1]


def form_action(html: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)"', html)
    assert found
    return found[1]


def subscribe(
    web: Web, address: str, client: TestClient | None = None, **fields: Any
) -> tuple[int, str]:
    """Fill and post the sign-up form; return (status, final page text)."""
    client = client or web.client
    page = client.get("/subscribe")
    data: dict[str, Any] = {
        "csrf": csrf_of(page.text),
        "step": "submit",
        "lang": "id",
        "email": address,
        "regions": ["balikpapan"],
        "categories": ["ekonomi"],
        "send_at": "06:30",
        "timezone": "auto",
        "language": "id",
    }
    data.update(fields)
    response = client.post("/subscribe", data=data, follow_redirects=True)
    return response.status_code, response.text


def confirm_path(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    link = re.search(r"https://news\.example\.id(/confirm/\S+)", body.get_content())
    assert link
    return link[1]


def add_subscriber(
    web: Web, address: str, status: SubscriberStatus = SubscriberStatus.ACTIVE, **changes: Any
) -> Subscriber:
    draft = with_defaults(SubscriberDraft(email=address, status=status, **changes), web.config)
    with web.db.begin() as conn:
        return sub_store.add(conn, draft, now=web.clock())


class _Labels(HTMLParser):
    """Collects input ids and label ``for`` targets."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[str] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.inputs.append(a.get("id") or "")
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"] or "")


# -- sign-up ------------------------------------------------------------------------


def test_subscribe_form_is_accessible_and_secured(web: Web) -> None:
    page = web.client.get("/subscribe")
    assert page.status_code == 200
    parser = _Labels()
    parser.feed(page.text)
    assert parser.inputs and all(i and i in parser.labels for i in parser.inputs)
    assert '<html lang="id">' in page.text and "<script" not in page.text
    # the province -> city tree: Balikpapan nested under Kalimantan Timur
    kaltim = page.text.index('value="kalimantan-timur"')
    assert kaltim < page.text.index('value="balikpapan"') < page.text.index('value="jawa-timur"')
    headers = page.headers
    assert "script-src" not in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert CSRF_COOKIE in page.cookies
    css = web.client.get("/_kabarfeed/web.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_subscribe_creates_pending_subscriber_with_consent_and_mails_a_link(web: Web) -> None:
    status, text = subscribe(
        web,
        "Ani@Example.COM",
        regions=["kalimantan-timur", "balikpapan", "surabaya"],
        name="Ani\r\nBcc: victim@example.org",
        headers={"User-Agent": "TestBrowser/1.0"},
    )
    assert status == 200 and "Periksa kotak masuk Anda" in text
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.status is SubscriberStatus.PENDING
    assert sub.regions == ("kalimantan-timur", "surabaya")  # the province covers Balikpapan
    assert sub.timezone == "Asia/Makassar" and sub.send_at == "06:30"
    assert sub.consent is not None and sub.consent.method == "web"
    assert sub.consent.ip == "testclient" and sub.consent.wording_version == "2025-11"
    assert sub.consent.at == web.clock.now
    [message] = web.mails()
    [to] = message["To"].addresses  # the CR/LF in the name became a space, quoted
    assert (to.addr_spec, to.display_name) == ("Ani@example.com", "Ani Bcc: victim@example.org")
    assert "Bcc" not in message
    assert message["Message-ID"].endswith("@news.example.id>") and message["Date"]
    assert message["Subject"] == "Konfirmasi langganan Nusantara Plus"
    assert message.get_body(("html",)) is not None
    path = confirm_path(message)
    assert "ani" not in path.lower() and "example" not in path.lower()
    assert sub.token in path  # the random token, never the address or an id


def test_signup_answers_the_same_whatever_the_address(web: Web) -> None:
    add_subscriber(web, "active@example.com")
    add_subscriber(web, "pending@example.com", SubscriberStatus.PENDING)
    add_subscriber(web, "gone@example.com", SubscriberStatus.UNSUBSCRIBED)
    answers = set()
    for address in ("new@example.com", "active@example.com", "pending@example.com",
                    "gone@example.com"):  # fmt: skip
        page = web.client.get("/subscribe")
        response = web.client.post(
            "/subscribe",
            data={"csrf": csrf_of(page.text), "email": address, "lang": "id"},
            follow_redirects=False,
        )
        final = web.client.get(response.headers["location"])
        answers.add((response.status_code, response.headers["location"], final.text))
    assert len(answers) == 1
    active = web.subscriber("active@example.com")
    assert active is not None and active.status is SubscriberStatus.ACTIVE
    assert active.regions == ()  # a stranger cannot change an active subscriber
    gone = web.subscriber("gone@example.com")
    assert gone is not None and gone.status is SubscriberStatus.PENDING
    subjects = sorted(str(m["Subject"]) for m in web.mails())
    assert subjects == [
        "Konfirmasi langganan Nusantara Plus",
        "Konfirmasi langganan Nusantara Plus",
        "Konfirmasi langganan Nusantara Plus",
        "Langganan Nusantara Plus Anda",  # the active one gets a notice, not a new opt-in
    ]


def test_resubmitting_a_pending_address_resends_at_most_every_ten_minutes(web: Web) -> None:
    for _ in range(3):
        subscribe(web, "ani@example.com")
    assert len(web.mails()) == 1
    web.clock.advance(minutes=9, seconds=59)
    subscribe(web, "ani@example.com")
    assert len(web.mails()) == 1
    web.clock.advance(seconds=1)
    subscribe(web, "ani@example.com", categories=["olahraga"])
    assert len(web.mails()) == 2
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.categories == ("olahraga",)


def test_honeypot_gets_the_same_answer_and_does_nothing(web: Web) -> None:
    status, text = subscribe(web, "bot@example.com", website="http://spam.example")
    assert status == 200 and "Periksa kotak masuk Anda" in text
    assert web.subscriber("bot@example.com") is None and web.mails() == []


def test_invalid_email_shows_the_form_again(web: Web) -> None:
    status, text = subscribe(web, "not-an-address", name="Ani")
    assert status == 400 and 'aria-invalid="true"' in text
    assert 'value="Ani"' in text and 'value="balikpapan" checked' in text


def test_unknown_region_is_rejected(web: Web) -> None:
    status, _ = subscribe(web, "ani@example.com", regions=["atlantis"])
    assert status == 400 and web.subscriber("ani@example.com") is None


def test_forged_or_missing_csrf_is_rejected(web: Web) -> None:
    page = web.client.get("/subscribe")
    token = csrf_of(page.text)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for data in ({"csrf": forged}, {}, {"csrf": "0.x"}):
        response = web.client.post("/subscribe", data={"email": "a@example.com", **data})
        assert response.status_code == 403 and "Formulir kedaluwarsa" in response.text
    # a valid token but a different visitor (no cookie): also refused
    other = web.new_client()
    response = other.post("/subscribe", data={"email": "a@example.com", "csrf": token})
    assert response.status_code == 403 and "cookie" in response.text
    # a cross-site POST with a good token and cookie
    response = web.client.post(
        "/subscribe",
        data={"email": "a@example.com", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert web.subscriber("a@example.com") is None


def test_csrf_token_expires(web: Web) -> None:
    page = web.client.get("/subscribe")
    web.clock.advance(hours=4)
    response = web.client.post(
        "/subscribe", data={"email": "a@example.com", "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 403


def test_rate_limits_answer_429(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> None:
    web = _make_web(
        make_config, db, fixed_now, tmp_path,
        "subscribe_per_ip_per_hour = 3\nsubscribe_per_address_per_hour = 2",
    )  # fmt: skip
    assert subscribe(web, "a@example.com")[0] == 200
    assert subscribe(web, "a@example.com")[0] == 200
    status, text = subscribe(web, "a@example.com")  # third for this address
    assert status == 429 and "Terlalu banyak permintaan" in text
    status, _ = subscribe(web, "b@example.com")  # fourth from this IP
    assert status == 429
    page = web.client.get("/subscribe")
    response = web.client.post(
        "/subscribe", data={"email": "c@example.com", "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    web.clock.advance(hours=1)
    assert subscribe(web, "c@example.com")[0] == 200


def test_index_step_one_leads_to_the_full_form(web: Web) -> None:
    FeedBuilder(web.config, web.db, web.clock).build(full=True)
    index = web.client.get("/")
    assert index.status_code == 200
    assert '<form method="post" action="/subscribe">' in index.text
    assert 'name="step" value="start"' in index.text
    assert "form-action 'self'" in index.headers["content-security-policy"]
    assert "script-src 'self'" in index.headers["content-security-policy"]
    response = web.new_client().post(
        "/subscribe", data={"step": "start", "email": "ani@example.com", "lang": "en"}
    )
    assert response.status_code == 200
    assert 'value="ani@example.com"' in response.text and "Subscribe to the daily" in response.text
    assert web.subscriber("ani@example.com") is None and web.mails() == []


# -- confirm ---------------------------------------------------------------------------


def test_get_confirm_changes_nothing_and_post_activates(web: Web) -> None:
    subscribe(web, "ani@example.com")
    path = confirm_path(web.mails()[0])
    scanner = web.new_client()
    for _ in range(3):
        page = scanner.get(path)
        assert page.status_code == 200 and "Konfirmasi langganan" in page.text
        scanner.head(path)
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.status is SubscriberStatus.PENDING and not sub.confirmed_at
    reader = web.new_client()
    page = reader.get(path)
    response = reader.post(form_action(page.text), data={"csrf": csrf_of(page.text)})
    assert response.status_code == 200 and "Langganan Anda aktif" in response.text
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.status is SubscriberStatus.ACTIVE
    assert sub.confirmed_at == web.clock.now
    again = reader.post(form_action(page.text), data={"csrf": csrf_of(page.text)})
    assert again.status_code == 200 and "sudah aktif" in again.text


def test_confirm_rejects_forged_csrf(web: Web) -> None:
    subscribe(web, "ani@example.com")
    subscribe(web, "budi@example.com")
    ani, budi = (confirm_path(m) for m in web.mails())
    budi_token = csrf_of(web.client.get(budi).text)
    for data in ({}, {"csrf": "1.abc"}, {"csrf": budi_token}):
        assert web.client.post(ani, data=data).status_code == 403
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.status is SubscriberStatus.PENDING


def test_expired_link_offers_a_new_one(web: Web) -> None:
    subscribe(web, "ani@example.com")
    old = confirm_path(web.mails()[0])
    web.clock.advance(days=7)
    page = web.client.get(old)
    assert page.status_code == 410 and "kedaluwarsa" in page.text
    assert web.client.post(old, data={"csrf": "x"}).status_code == 403
    response = web.client.post(
        form_action(page.text), data={"csrf": csrf_of(page.text)}, follow_redirects=True
    )
    assert response.status_code == 200 and "Periksa kotak masuk Anda" in response.text
    assert len(web.mails()) == 2
    fresh = confirm_path(web.mails()[1])
    page = web.client.get(fresh)
    response = web.client.post(fresh, data={"csrf": csrf_of(page.text)})
    assert response.status_code == 200
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.status is SubscriberStatus.ACTIVE


def test_confirm_link_of_an_ended_subscription_is_void(web: Web) -> None:
    subscribe(web, "ani@example.com")
    path = confirm_path(web.mails()[0])
    page = web.client.get(path)
    sub = web.subscriber("ani@example.com")
    assert sub is not None
    web.client.post(f"/u/{sub.token}", data={"List-Unsubscribe": "One-Click"})
    response = web.client.post(path, data={"csrf": csrf_of(page.text)})
    assert response.status_code == 410
    sub = web.subscriber("ani@example.com")
    assert sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED


def test_links_survive_a_restart_without_a_configured_secret(web: Web) -> None:
    subscribe(web, "ani@example.com")
    path = confirm_path(web.mails()[0])
    with web.db.connect() as conn:
        stored = conn.execute(select(state.c.value).where(state.c.key == "site.secret")).scalar()
    assert stored and len(stored) == 64
    restarted = TestClient(create_app(web.config, web.db, clock=web.clock), base_url=BASE)
    assert restarted.get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/confirm/nope",
        "/confirm/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ffffffff.AAAAAAAAAAAAAAAAAAAAAA",
        "/preferences/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/preferences/short",
        "/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/u/..%2F..%2Fetc%2Fpasswd",
        "/u/%2e%2e",
        "/preferences/../../etc/passwd",
        "/digest/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/2025-11-17",
        "/digest/..%2F..%2Fconfig.toml/2025-11-17",
        "/subscribe/../../config.toml",
        "/%2e%2e/config.toml",
    ],
)
def test_bad_tokens_and_traversal_get_404(web: Web, path: str) -> None:
    assert web.client.get(path).status_code == 404
    if path.startswith(("/u/", "/preferences/", "/confirm/")):
        response = web.client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code in (404, 405)


def test_tampered_confirm_signature_is_404(web: Web) -> None:
    subscribe(web, "ani@example.com")
    path = confirm_path(web.mails()[0])
    token, stamp, signature = path.removeprefix("/confirm/").split(".")
    later = format(int(stamp, 16) + 86400, "x")
    assert web.client.get(f"/confirm/{token}.{later}.{signature}").status_code == 404
    assert web.client.get(f"/confirm/{token}.{stamp}.{signature[::-1]}").status_code == 404


# -- preferences -------------------------------------------------------------------------


def test_preferences_show_and_save(web: Web) -> None:
    sub = add_subscriber(web, "ani@example.com", regions=("balikpapan",), language="id")
    page = web.client.get(f"/preferences/{sub.token}")
    assert page.status_code == 200 and "ani@example.com" in page.text
    assert 'value="balikpapan" checked' in page.text
    assert page.headers["cache-control"] == "no-store"
    response = web.client.post(
        f"/preferences/{sub.token}",
        data={
            "csrf": csrf_of(page.text),
            "regions": ["jayapura", "surabaya"],
            "categories": ["olahraga", "budaya"],
            "send_at": "19:30",
            "timezone": "Asia/Jayapura",
            "language": "en",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/preferences/{sub.token}?saved=1"
    saved = web.client.get(response.headers["location"])
    assert "Your preferences have been saved." in saved.text  # now in English
    changed = web.subscriber("ani@example.com")
    assert changed is not None
    assert changed.regions == ("surabaya", "jayapura")
    assert changed.categories == ("olahraga", "budaya")  # taxonomy order
    assert (changed.send_at, changed.timezone, changed.language) == ("19:30", "Asia/Jayapura", "en")


def test_preferences_reject_forgery_and_bad_values(web: Web) -> None:
    sub = add_subscriber(web, "ani@example.com")
    other = add_subscriber(web, "budi@example.com")
    foreign = csrf_of(web.client.get(f"/preferences/{other.token}").text)
    url = f"/preferences/{sub.token}"
    assert web.client.post(url, data={"csrf": foreign, "send_at": "07:00"}).status_code == 403
    token = csrf_of(web.client.get(url).text)
    bad = web.client.post(url, data={"csrf": token, "send_at": "25:00"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    bad = web.client.post(url, data={"csrf": token, "timezone": "Mars/Olympus"})
    assert bad.status_code == 400
    unchanged = web.subscriber("ani@example.com")
    assert unchanged is not None and unchanged.send_at == sub.send_at


# -- unsubscribe ----------------------------------------------------------------------------


def test_unsubscribe_page_changes_nothing_and_links_preferences(web: Web) -> None:
    sub = add_subscriber(web, "ani@example.com")
    page = web.client.get(f"/u/{sub.token}")
    assert page.status_code == 200 and f'href="/preferences/{sub.token}"' in page.text
    assert page.text.count("<button") == 1
    still = web.subscriber("ani@example.com")
    assert still is not None and still.status is SubscriberStatus.ACTIVE


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_unsubscribe_needs_no_cookie_or_token(web: Web, multipart: bool) -> None:
    sub = add_subscriber(web, "ani@example.com")
    provider = web.new_client()
    if multipart:
        response = provider.post(f"/u/{sub.token}", files={"List-Unsubscribe": (None, "One-Click")})
    else:
        response = provider.post(
            f"/u/{sub.token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    gone = web.subscriber("ani@example.com")
    assert gone is not None and gone.status is SubscriberStatus.UNSUBSCRIBED
    first = gone.unsubscribed_at
    web.clock.advance(minutes=5)
    again = provider.post(f"/u/{sub.token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    still = web.subscriber("ani@example.com")
    assert still is not None and still.unsubscribed_at == first  # idempotent


def test_form_unsubscribe_checks_csrf_and_stops_the_next_edition(web: Web) -> None:
    store(web.db, [make_article(1, regions=("balikpapan",))], now=web.clock.now)
    keep = add_subscriber(web, "keep@example.com")
    leave = add_subscriber(web, "leave@example.com")
    url = f"/u/{leave.token}"
    assert web.client.post(url, data={}).status_code == 403
    assert web.client.post(url, data={"List-Unsubscribe": "Yes"}).status_code == 403
    response = web.client.post(url, data={"csrf": csrf_of(web.client.get(url).text)})
    assert response.status_code == 200 and "sudah berhenti berlangganan" in response.text
    enqueue_editions(web.config, web.db, [keep.id, leave.id], date(2025, 11, 17), now=web.clock.now)
    with web.db.connect() as conn:
        ids = set(conn.execute(select(deliveries.c.subscriber_id)).scalars())
    assert ids == {keep.id}


# -- language ------------------------------------------------------------------------------


def test_language_from_query_browser_and_subscriber(web: Web) -> None:
    assert '<html lang="id">' in web.client.get("/subscribe").text
    english = web.client.get("/subscribe", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text and "Subscribe to the daily" in english.text
    forced = web.client.get("/subscribe?lang=id", headers={"Accept-Language": "en"})
    assert '<html lang="id">' in forced.text
    sub = add_subscriber(web, "ani@example.com", language="en")
    page = web.client.get(f"/u/{sub.token}", headers={"Accept-Language": "id"})
    assert '<html lang="en">' in page.text
    assert f'href="/u/{sub.token}?lang=id"' in page.text


# -- digest view ------------------------------------------------------------------------------


def test_digest_view_shows_the_edition(web: Web) -> None:
    store(web.db, [make_article(n, regions=("balikpapan",)) for n in (1, 2)], now=web.clock.now)
    sub = add_subscriber(web, "ani@example.com", regions=("balikpapan",))
    with web.db.begin() as conn:
        conn.execute(
            insert(deliveries).values(
                subscriber_id=sub.id,
                local_date="2025-11-17",
                since_at=web.clock.now - timedelta(days=1),
                cutoff_at=web.clock.now,
                article_ids='["a000002", "a000001"]',
                article_count=2,
                state="sent",
                attempts=1,
                created_at=web.clock.now,
                updated_at=web.clock.now,
            )
        )
    page = web.client.get(f"/digest/{sub.token}/2025-11-17")
    assert page.status_code == 200
    assert page.text.index("Berita nomor 2") < page.text.index("Berita nomor 1")
    assert f"/u/{sub.token}" in page.text
    assert "style-src 'unsafe-inline'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert web.client.get(f"/digest/{sub.token}/2025-11-16").status_code == 404
    assert web.client.get(f"/digest/{sub.token}/2025-13-45").status_code == 404
    assert web.client.get(f"/digest/{sub.token}/yesterday").status_code == 404


# -- operations ---------------------------------------------------------------------------------


def test_healthz_and_metrics(web: Web) -> None:
    assert web.client.get("/healthz").text == "ok\n"
    store(web.db, [make_article(n) for n in range(3)], now=web.clock.now)
    add_subscriber(web, "a@example.com")
    add_subscriber(web, "b@example.com", SubscriberStatus.PENDING)
    FeedBuilder(web.config, web.db, web.clock).build(full=True)
    metrics = web.client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(metrics.text.splitlines())
    assert "kabarfeed_articles 3" in lines
    assert 'kabarfeed_subscribers{status="active"} 1' in lines
    assert 'kabarfeed_subscribers{status="pending"} 1' in lines
    assert 'kabarfeed_subscribers{status="bounced"} 0' in lines
    assert 'kabarfeed_deliveries{state="queued"} 0' in lines
    assert f"kabarfeed_last_feed_build_timestamp_seconds {web.clock.now.timestamp():.3f}" in lines
    assert "kabarfeed_last_send_timestamp_seconds 0.000" in lines


def test_metrics_token(
    make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path
) -> None:
    web = _make_web(make_config, db, fixed_now, tmp_path, 'metrics_token = "s3cret-token"')
    assert web.client.get("/metrics").status_code == 401
    wrong = web.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = web.client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200


def test_healthz_reports_a_dead_database(web: Web) -> None:
    dead = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens there
    client = TestClient(create_app(web.config, web.db, clock=web.clock), base_url=BASE)
    web.db.engine, alive = dead.engine, web.db.engine
    try:
        assert client.get("/healthz").status_code == 503
        assert client.get("/metrics").status_code == 503
        page = client.get("/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        assert page.status_code == 503 and "Terjadi kesalahan" in page.text
    finally:
        web.db.engine = alive


# -- SMTP ----------------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[ScriptedSMTPServer]:
    with ScriptedSMTPServer() as server:
        yield server


def test_confirmation_goes_through_smtp(
    make_config: ConfigFactory,
    db: Database,
    fixed_now: datetime,
    tmp_path: Path,
    smtp: ScriptedSMTPServer,
) -> None:
    config = make_config(
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        f'[maildir]\npath = "{tmp_path / "maildir"}"\n'
    )
    clock = Clock(fixed_now)
    client = TestClient(create_app(config, db, clock=clock), base_url=BASE)
    web = Web(client, config, db, clock, tmp_path / "maildir")
    status, _ = subscribe(web, "ani@example.com", headers={"Accept-Language": "en"})
    assert status == 200
    assert web.mails() == []
    [received] = smtp.received
    assert received.rcpt_tos == ("ani@example.com",)
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Auto-Submitted"] == "auto-generated"
    path = urlsplit("https://news.example.id" + confirm_path(message)).path
    assert client.get(path).status_code == 200


def test_confirmation_mails_take_their_slot_of_the_global_rate(
    make_config: ConfigFactory, db: Database, tmp_path: Path, smtp: ScriptedSMTPServer
) -> None:
    """Digest senders and confirmation mails share one bucket: with 5 slots
    already reserved at 10/s, a confirmation waits for the 6th (0.5 s)."""
    config = make_config(
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\nrate_per_second = 10\n'
    )
    start = 1_800_000_000.0
    DatabaseSlots(db, Rates(10, 0)).take(5, start)
    waits: list[float] = []
    mailer = ConfirmationMailer(
        config, Signer(b"k" * 32), db=db, clock=lambda: start, sleep=waits.append
    )
    data = b"From: a@news.example.id\r\nTo: ani@example.com\r\nSubject: x\r\n\r\nhi\r\n"
    assert mailer.send_blocking(Prepared("ani@example.com", "<m@news.example.id>", data))
    assert waits == [pytest.approx(0.5)] and len(smtp.received) == 1
    # the bucket moved on: the next sender's slot comes after this mail's
    assert DatabaseSlots(db, Rates(10, 0)).take(1, start) == [pytest.approx(start + 0.6)]

    maildir = make_config(f'[maildir]\npath = "{tmp_path / "md"}"\n[smtp]\nrate_per_second = 10\n')
    quiet = ConfirmationMailer(maildir, Signer(b"k" * 32), db=db, sleep=waits.append)
    assert quiet.send_blocking(Prepared("ani@example.com", "<n@news.example.id>", data))
    assert len(waits) == 1  # the Maildir is not paced


def test_failed_send_can_be_retried_at_once(web: Web) -> None:
    web.maildir.parent.mkdir(parents=True, exist_ok=True)
    web.maildir.write_text("not a folder")  # the Maildir cannot be written
    subscribe(web, "ani@example.com")
    web.maildir.unlink()
    subscribe(web, "ani@example.com")  # no 10-minute wait: nothing went out before
    assert len(web.mails()) == 1
