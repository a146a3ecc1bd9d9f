"""Shared helpers of the bounce tests: a subscriber with one sent delivery in a
real database, and the fixture reports under tests/data/bounces/ filled in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from kabarfeed.bounces import verp
from kabarfeed.bounces.intake import IntakeSettings
from kabarfeed.bounces.policy import PolicySettings
from kabarfeed.bounces.record import Keys
from kabarfeed.models import SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as subscriber_store
from kabarfeed.store.schema import deliveries, subscribers
from kabarfeed.subscribers import SubscriberDraft

FIXTURES = Path(__file__).parent / "data" / "bounces"
BASE = "bounces@news.example.id"
SECRET = b"test-secret-for-bounces"


@dataclass(frozen=True)
class Sent:
    """A subscriber and the delivery we sent them."""

    subscriber_id: int
    delivery_id: int
    email: str
    token: str
    message_id: str

    @property
    def verp(self) -> str:
        return verp.encode(BASE, self.delivery_id, SECRET)


def add_sent(
    db: Database, now: datetime, *, email: str = "budi@example.net", local_date: str = "2026-12-05"
) -> Sent:
    """One active subscriber and one ``sent`` delivery to them."""
    token = "tok" + email.replace("@", "_").replace(".", "_").ljust(29, "x")
    message_id = f"<{abs(hash((email, local_date))):032x}@news.example.id>"
    with db.begin() as conn:
        sid = conn.execute(
            insert(subscribers).values(
                email=email,
                email_key=email.casefold(),
                token=token,
                timezone="Asia/Makassar",
                send_at="06:00",
                language="id",
                status=SubscriberStatus.ACTIVE.value,
                bounce_count=0,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        did = conn.execute(
            insert(deliveries).values(
                subscriber_id=sid,
                local_date=local_date,
                since_at=now - timedelta(days=1),
                cutoff_at=now,
                state="sent",
                attempts=1,
                message_id=message_id,
                created_at=now,
                updated_at=now,
                sent_at=now,
            )
        ).inserted_primary_key[0]
    return Sent(int(sid), int(did), email, token, message_id)


def reader(
    address: str, status: SubscriberStatus = SubscriberStatus.ACTIVE, name: str | None = None
) -> SubscriberDraft:
    """A Balikpapan reader (id, 06:00 Asia/Makassar) to add to the store."""
    return SubscriberDraft(
        address,
        name=name,
        regions=("balikpapan",),
        categories=(),
        timezone="Asia/Makassar",
        send_at="06:00",
        language="id",
        status=status,
    )


def add_reader(db: Database, address: str, *, now: datetime, name: str | None = None) -> int:
    """An active :func:`reader` added at ``now``; its id."""
    with db.begin() as conn:
        return subscriber_store.add(conn, reader(address, name=name), now=now).id


def status_of(db: Database, subscriber_id: int) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            ).scalar()
        )


def fixture(
    name: str,
    sent: Sent | None = None,
    *,
    verp_to: str | None = None,
    message_id: str | None = None,
    token: str | None = None,
    crlf: bool = True,
) -> bytes:
    """A fixture report addressed to ``sent``'s VERP address (or ``verp_to``)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    values = {
        "{{VERP}}": verp_to or (sent.verp if sent else BASE),
        "{{RCPT}}": sent.email if sent else "someone@example.net",
        "{{MSGID}}": message_id or (sent.message_id if sent else "<none@example.net>"),
        "{{TOKEN}}": token or (sent.token if sent else "x" * 32),
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text.replace("\n", "\r\n").encode() if crlf else text.encode()


def settings(tmp_path: Path, **policy: object) -> IntakeSettings:
    return IntakeSettings(
        Keys(BASE, SECRET),
        PolicySettings(**policy),  # type: ignore[arg-type]
        256 * 1024,
        tmp_path / "failed",
    )
