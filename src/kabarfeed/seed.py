"""Sample subscribers ``run`` imports once from ``[seed] subscribers`` (a CSV file).

The bundled ``config.toml`` points it at ``examples/subscribers.csv`` so a
first ``make run`` has readers to mail; a real install leaves it unset and
this module does nothing. Each address of the file is imported at most once,
ever (remembered in the ``state`` table): one the admin deleted or that
unsubscribed is not brought back. Consent is recorded as method ``seed`` with
the file it came from, and each new active reader is promised a welcome
edition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from kabarfeed.config import Config
from kabarfeed.errors import ConfigError
from kabarfeed.models import Consent, SubscriberStatus
from kabarfeed.store import Database, welcomes
from kabarfeed.store import subscribers as store
from kabarfeed.store.state import lock_state, write_state
from kabarfeed.subscribers import email_key, parse_csv, with_defaults

SEED_KEY = "seed.subscribers"
"""``state`` key remembering which seed addresses were imported, and when."""


@dataclass(frozen=True, slots=True)
class SeedReport:
    """One look at the seed file: addresses added now, and the earlier import."""

    file: Path
    label: str
    added: tuple[str, ...]
    total: int
    first_import: datetime


def seed_label(config: Config, path: Path) -> str:
    """The seed file as written in the consent record: relative to the config's
    folder when inside it, at most 40 characters."""
    base = config.path.parent if config.path else None
    try:
        shown = path.relative_to(base).as_posix() if base else path.name
    except ValueError:
        shown = path.name
    return shown[-40:]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError([f"seed.subscribers: cannot read {path}: {e.strerror}"]) from e


def import_seed(config: Config, db: Database, *, now: datetime) -> SeedReport | None:
    """Import the seed file's addresses not imported before; ``None`` without a seed file.

    :class:`ConfigError` (listing every bad line) when the file is unreadable or invalid.
    """
    path = config.seed.subscribers
    if path is None:
        return None
    parsed = parse_csv(_read(path), config.taxonomy, now=now)
    if parsed.problems:
        raise ConfigError(
            [f"seed.subscribers: {path.name} line {p.line}: {p.message}" for p in parsed.problems]
        )
    label = seed_label(config, path)
    consent = Consent(now, "seed", wording_version=label)
    added: list[str] = []
    with db.begin() as conn:
        record = lock_state(conn, SEED_KEY, now)
        done = set(record.get("imported") or [])
        for row in parsed.rows:
            key = email_key(row.draft.email)
            if key in done:
                continue
            done.add(key)
            if store.get_by_email(conn, row.draft.email) is not None:
                continue
            draft = with_defaults(replace(row.draft, consent=consent), config)
            sub = store.add(conn, draft, now=now)
            if sub.status is SubscriberStatus.ACTIVE:
                welcomes.promise(conn, sub.id, now)
            added.append(sub.email)
        first = str(record.get("first_import") or now.isoformat())
        value = {"file": label, "imported": sorted(done), "first_import": first}
        write_state(conn, SEED_KEY, value, now)
    return SeedReport(path, label, tuple(added), len(parsed.rows), datetime.fromisoformat(first))
