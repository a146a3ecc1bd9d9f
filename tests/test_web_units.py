"""Pure rules of the web layer: signatures, CSRF, rate limits, origin checks,
language choice, form handling, the sign-up decider and the metrics text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from kabarfeed.config import Config, RegionConfig
from kabarfeed.errors import InputError
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store.schema import state
from kabarfeed.texts import Texts
from kabarfeed.web import forms
from kabarfeed.web.i18n import STRINGS, choose_language, parse_accept_language
from kabarfeed.web.limits import KEY_PREFIX, SharedWindowLimiter, window_hit
from kabarfeed.web.ops import Snapshot, format_metrics
from kabarfeed.web.security import (
    CsrfTokens,
    Signer,
    confirm_token,
    cross_site,
    parse_confirm_token,
)
from kabarfeed.web.signup import Change, MailKind, decide

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)
TOKEN = "Wkf1UdPozszZjFVvo-u9YhcTMv0hdk1W"
TAXONOMY = Config(
    regions=(
        RegionConfig(slug="kaltim", name="Kalimantan Timur", timezone="Asia/Makassar"),
        RegionConfig(slug="balikpapan", name="Balikpapan", parent="kaltim"),
        RegionConfig(slug="papua", name="Papua", timezone="Asia/Jayapura"),
        RegionConfig(slug="jayapura", name="Jayapura", parent="papua"),
    )
).taxonomy


def test_signer_binds_purpose_and_parts() -> None:
    signer = Signer(b"k" * 32)
    sig = signer.sign("confirm", "a", "b")
    assert len(sig) == 22 and signer.verify(sig, "confirm", "a", "b")
    assert not signer.verify(sig, "csrf", "a", "b")
    assert not signer.verify(sig, "confirm", "a", "c")
    assert not Signer(b"other").verify(sig, "confirm", "a", "b")
    with pytest.raises(ValueError):
        Signer(b"")


def test_confirm_token_round_trip_expiry_and_tampering() -> None:
    signer = Signer(b"secret")
    value = confirm_token(signer, TOKEN, NOW + timedelta(days=7))
    link = parse_confirm_token(signer, value)
    assert link is not None and link.subscriber_token == TOKEN
    assert not link.expired(NOW + timedelta(days=7, seconds=-1))
    assert link.expired(NOW + timedelta(days=7))
    token, stamp, sig = value.split(".")
    assert parse_confirm_token(signer, f"{token}.{stamp}0.{sig}") is None
    assert parse_confirm_token(signer, f"{token[:-1]}A.{stamp}.{sig}") is None
    assert parse_confirm_token(signer, f"../etc.{stamp}.{sig}") is None
    assert parse_confirm_token(signer, value + ".x") is None
    assert parse_confirm_token(Signer(b"other"), value) is None


def test_csrf_tokens_are_bound_and_expire() -> None:
    csrf = CsrfTokens(Signer(b"secret"), timedelta(hours=4))
    token = csrf.issue("preferences", TOKEN, NOW)
    assert csrf.valid(token, "preferences", TOKEN, NOW + timedelta(hours=3, minutes=59))
    assert not csrf.valid(token, "preferences", TOKEN, NOW + timedelta(hours=4))
    assert not csrf.valid(token, "unsubscribe", TOKEN, NOW)
    assert not csrf.valid(token, "preferences", "someone-else", NOW)
    assert not csrf.valid(token, "preferences", "", NOW)
    for forged in ("", "x", "zz.abc", token.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"):
        assert not csrf.valid(forged, "preferences", TOKEN, NOW)


def test_window_hit_allows_limit_hits_per_window() -> None:
    first = window_hit((), 1000.0, 2, 3600.0)
    second = window_hit(first.hits, 1060.0, 2, 3600.0)
    third = window_hit(second.hits, 1120.0, 2, 3600.0)
    assert (first.retry_after, second.retry_after) == (0, 0) and second.hits == (1000.0, 1060.0)
    assert third.retry_after == 3600 - 120 and third.hits == second.hits  # nothing recorded
    later = window_hit(third.hits, 4600.0, 2, 3600.0)  # the first hit left the window
    assert later.retry_after == 0 and later.hits == (1060.0, 4600.0)


def test_shared_limiter_counts_across_processes_and_prunes(db: Database) -> None:
    """Two limiters on one database stand for two ``run`` processes."""
    hour = timedelta(hours=1)
    a, b = (SharedWindowLimiter(db, "ip", 2, hour) for _ in range(2))
    assert a.hit("k1", NOW) == 0 and b.hit("k1", NOW + timedelta(minutes=1)) == 0
    assert a.hit("k1", NOW + timedelta(minutes=2)) == 58 * 60
    assert b.hit("k2", NOW) == 0  # keys are independent
    assert SharedWindowLimiter(db, "address", 2, hour).hit("k1", NOW) == 0  # and so are names
    assert b.hit("k1", NOW + hour) == 0  # the first hit left the window
    a.hit("k3", NOW + 3 * hour)  # k1 and k2 idle for a whole window: their rows go
    with db.connect() as conn:
        keys = set(conn.execute(select(state.c.key)).scalars())
    assert {k for k in keys if k.startswith(KEY_PREFIX)} == {
        "web.limit.ip.k3",
        "web.limit.address.k1",  # another limiter's rows are its own to prune
    }


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, False),
        ({"origin": "https://news.example.id"}, False),
        ({"origin": "https://NEWS.example.id/"}, False),
        ({"origin": "null"}, False),  # our own no-referrer pages
        ({"origin": "https://evil.example"}, True),
        ({"sec-fetch-site": "cross-site"}, True),
        ({"sec-fetch-site": "same-origin", "origin": "null"}, False),
        ({"sec-fetch-site": "cross-site", "origin": "https://news.example.id"}, True),
    ],
)
def test_cross_site(headers: dict[str, str], expected: bool) -> None:
    assert cross_site(headers, ("https://news.example.id",)) is expected


def test_language_choice() -> None:
    assert parse_accept_language("en-GB;q=0.8, id, fr;q=0") == ["id", "en"]
    assert choose_language(None, None, "", "id") == "id"
    assert choose_language(None, None, "fr, en;q=0.5", "id") == "en"
    assert choose_language(None, None, "in", "en") == "id"
    assert choose_language(None, "en", "id", "id") == "en"
    assert choose_language("ID", "en", "en", "en") == "id"
    assert choose_language("xx", None, "", "en") == "en"


def test_both_languages_have_every_string() -> None:
    assert set(STRINGS["id"]) == set(STRINGS["en"])
    for table in STRINGS.values():
        assert all(value.strip() for value in table.values())


def test_string_tables_refuse_a_missing_or_empty_translation() -> None:
    texts = Texts(id={"a": "satu", "b": "dua"}, en={"a": "one", "b": "two"})
    assert texts("en")["b"] == "two" and texts("jv")["b"] == "dua"  # fallback: Indonesian
    with pytest.raises(ValueError, match=r"'en' strings differ from 'id': \['b'\]"):
        Texts(id={"a": "satu", "b": "dua"}, en={"a": "one"})
    with pytest.raises(ValueError, match=r"'en' strings are empty: \['b'\]"):
        Texts(id={"a": "satu", "b": "dua"}, en={"a": "one", "b": " "})
    with pytest.raises(ValueError, match="no 'id' strings"):
        Texts(en={"a": "one"})


def test_region_tree_and_collapse() -> None:
    tree = forms.region_tree(TAXONOMY, ["balikpapan"])
    assert [n.slug for n in tree] == ["kaltim", "papua"]
    assert tree[0].children[0].checked and not tree[0].checked
    chosen = ["jayapura", "balikpapan", "kaltim"]
    assert forms.collapse_regions(chosen, TAXONOMY) == ("kaltim", "jayapura")


def test_preferences_draft_defaults_zone_from_first_region() -> None:
    fields = forms.Fields(("jayapura", "papua"), (), "6:00", forms.AUTO_ZONE, "en", "  Ani ")
    draft = forms.preferences_draft("Ani@Example.com", fields, TAXONOMY, "Asia/Makassar")
    assert draft.regions == ("papua",) and draft.timezone == "Asia/Jayapura"
    assert (draft.send_at, draft.language, draft.name, draft.email) == (
        "06:00",
        "en",
        "Ani",
        "Ani@example.com",
    )
    none = forms.preferences_draft("a@example.com", forms.Fields(), TAXONOMY, "Asia/Makassar")
    assert none.regions == () and none.timezone == "Asia/Makassar"
    for bad in (
        forms.Fields(regions=("mars",)),
        forms.Fields(send_at="24:00"),
        forms.Fields(timezone="Nowhere/Land"),
        forms.Fields(language="fr"),
    ):
        with pytest.raises(InputError):
            forms.preferences_draft("a@example.com", bad, TAXONOMY, "Asia/Makassar")


def test_choice_lists() -> None:
    times = forms.send_time_choices("06:15")
    assert len(times) == 49 and [c.value for c in times if c.selected] == ["06:15"]
    zones = forms.zone_choices(TAXONOMY, "Asia/Jakarta", "", auto_label="Auto")
    assert [z.value for z in zones] == ["auto", "Asia/Makassar", "Asia/Jayapura", "Asia/Jakarta"]
    assert zones[0].selected


def _sub(status: SubscriberStatus) -> Subscriber:
    return Subscriber(1, "a@example.com", TOKEN, "Asia/Makassar", "06:00", "id", status, NOW)


@pytest.mark.parametrize(
    ("status", "last_sent", "change", "mail"),
    [
        (None, None, Change.CREATE, MailKind.CONFIRM),
        (SubscriberStatus.PENDING, None, Change.REFRESH, MailKind.CONFIRM),
        (SubscriberStatus.PENDING, NOW - timedelta(minutes=9), Change.REFRESH, None),
        (SubscriberStatus.PENDING, NOW - timedelta(minutes=10), Change.REFRESH, MailKind.CONFIRM),
        (SubscriberStatus.UNSUBSCRIBED, None, Change.REOPEN, MailKind.CONFIRM),
        (SubscriberStatus.BOUNCED, NOW, Change.REOPEN, None),
        (SubscriberStatus.ACTIVE, None, Change.NONE, MailKind.NOTICE),
        (SubscriberStatus.ACTIVE, NOW - timedelta(minutes=1), Change.NONE, None),
    ],
)
def test_signup_decider(
    status: SubscriberStatus | None,
    last_sent: datetime | None,
    change: Change,
    mail: MailKind | None,
) -> None:
    existing = _sub(status) if status else None
    decision = decide(existing, last_sent, NOW, timedelta(minutes=10))
    assert (decision.change, decision.mail) == (change, mail)


def test_metrics_text() -> None:
    snap = Snapshot(
        articles=7,
        subscribers={"active": 3, "legacy": 1},
        deliveries={"sent": 5},
        last_times={"ingest": NOW, "send": None},
    )
    text = format_metrics(snap)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert "kabarfeed_articles 7" in lines
    assert 'kabarfeed_subscribers{status="active"} 3' in lines
    assert 'kabarfeed_subscribers{status="pending"} 0' in lines
    assert 'kabarfeed_subscribers{status="legacy"} 1' in lines
    assert 'kabarfeed_deliveries{state="sent"} 5' in lines
    assert f"kabarfeed_last_ingest_timestamp_seconds {NOW.timestamp():.3f}" in lines
    assert "kabarfeed_last_send_timestamp_seconds 0.000" in lines
    names = {line.split("{")[0].split(" ")[0] for line in lines if not line.startswith("#")}
    typed = {line.split(" ")[2] for line in lines if line.startswith("# TYPE")}
    assert names == typed
