"""What the sending side needs from the bounce machinery: each delivery's VERP
envelope sender, and the suppression list it must respect."""

from __future__ import annotations

from collections.abc import Sequence

from kabarfeed.bounces import store, verp
from kabarfeed.config import Config
from kabarfeed.models import Clock, Subscriber
from kabarfeed.secrets import site_secret
from kabarfeed.store import Database
from kabarfeed.subscribers import email_key


class ReturnPaths:
    """``bounces+<id>-<mac>@domain`` per delivery when ``[bounces] address`` is
    set; ``None`` otherwise (the run's envelope sender is used)."""

    def __init__(self, base: str, key: bytes | None) -> None:
        self.base = base
        self._key = key

    @classmethod
    def from_config(cls, config: Config, db: Database, *, clock: Clock) -> ReturnPaths:
        """Read the bounce address and (only when it is set) the site secret."""
        base = config.bounces.address
        return cls(base, site_secret(config, db, now=clock()) if base else None)

    def for_delivery(self, delivery_id: int) -> str | None:
        """The envelope sender of ``delivery_id``'s message."""
        if not self.base or self._key is None:
            return None
        return verp.encode(self.base, delivery_id, self._key)


def suppressed(db: Database, people: Sequence[Subscriber]) -> set[int]:
    """The ids of ``people`` whose address is on the suppression list."""
    if not people:
        return set()
    with db.connect() as conn:
        keys = store.suppressed_among(conn, [p.email for p in people])
    return {p.id for p in people if email_key(p.email) in keys}
