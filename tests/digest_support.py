"""Builders shared by the subscriber and digest tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kabarfeed.models import Article, Image, Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store.articles import Prepared, save_articles

CUTOFF = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)  # 06:00 WITA on Monday 17 November


def article(n: int, **kw: Any) -> Article:
    """Article ``n``: first seen and published ``n`` hours before :data:`CUTOFF`."""
    moment = kw.pop("at", CUTOFF - timedelta(hours=n))
    values: dict[str, Any] = {
        "id": f"art{n:04d}",
        "source": "redaksi",
        "url": f"https://news.example.id/berita/{n}",
        "title": f"Berita nomor {n}",
        "published": moment,
        "updated": moment,
        "first_seen": moment,
        "content_hash": f"h{n}",
        "summary": f"Ringkasan berita {n}.",
        "regions": ("balikpapan",),
        "categories": ("ekonomi",),
    }
    values.update(kw)
    return Article(**values)


def subscriber(sid: int = 1, **kw: Any) -> Subscriber:
    """An active WITA subscriber to Balikpapan."""
    values: dict[str, Any] = {
        "id": sid,
        "email": f"pembaca{sid}@example.org",
        "token": f"tok{sid:029d}",
        "timezone": "Asia/Makassar",
        "send_at": "06:00",
        "language": "id",
        "status": SubscriberStatus.ACTIVE,
        "created_at": CUTOFF - timedelta(days=30),
        "regions": ("balikpapan",),
    }
    values.update(kw)
    return Subscriber(**values)


def sample_articles() -> tuple[Article, ...]:
    """A realistic small edition: news, an advertorial, a thumbnail, odd characters."""
    return (
        article(
            1,
            title="Pemkot Balikpapan gelar rakor akhir tahun",
            author="Juni",
            image=Image("https://news.example.id/img/rakor.jpg", "Suasana rakor"),
        ),
        article(2, title="Harga cabai naik 20% & bawang turun", categories=("ekonomi",)),
        article(3, title="Promo akhir tahun Pameran UMKM", advertorial=True),
        article(4, title="Samarinda: jembatan baru dibuka", regions=("samarinda",)),
    )


def save(db: Database, articles: Sequence[Article]) -> None:
    """Store ``articles`` through the real store."""
    batch = [
        Prepared(a, None, hashlib.sha256(a.url.encode()).hexdigest(), a.content_hash)
        for a in articles
    ]
    with db.begin() as conn:
        save_articles(conn, batch, now=CUTOFF)
