"""The one pipeline every intake shares: bytes in, a durable record out.

:func:`ingest_bytes` either commits the report's events (and status changes)
or keeps the bytes in the ``failed/`` folder with a ``.reason`` file beside
them; it raises only :class:`~kabarfeed.errors.StoreError` (the database is
unavailable, or the failed folder cannot be written), so the caller can leave
the message where it is (Maildir, IMAP) or tell the MTA to retry (pipe).
"""

from __future__ import annotations

import logging
import os
import secrets as _random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kabarfeed.bounces.model import EventKind, Report, StoredEvent, Target
from kabarfeed.bounces.parse import parse_report
from kabarfeed.bounces.policy import PolicySettings
from kabarfeed.bounces.record import Keys, record_report
from kabarfeed.bounces.store import first_use
from kabarfeed.config import Config
from kabarfeed.errors import IntakeError, StoreError, WebhookAuthError
from kabarfeed.secrets import site_secret
from kabarfeed.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Nonce:
    """A webhook's one-time value and how long to remember it."""

    value: str
    keep: timedelta


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """Everything the pipeline needs besides the database."""

    keys: Keys
    policy: PolicySettings
    max_bytes: int
    failed_dir: Path


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """What became of one report: stored events, or a kept failure (or both,
    for a readable report nobody could recognise)."""

    events: tuple[StoredEvent, ...] = ()
    failed_path: Path | None = None
    reason: str | None = None

    @property
    def duplicate(self) -> bool:
        """Every event was already stored (the same report came again)."""
        return bool(self.events) and all(ev.duplicate for ev in self.events)


def intake_settings(config: Config, db: Database, *, now: datetime) -> IntakeSettings:
    """Settings from ``[bounces]`` and the site secret."""
    b = config.bounces
    return IntakeSettings(
        Keys(b.address, site_secret(config, db, now=now)),
        PolicySettings(b.soft_threshold, b.soft_window),
        b.max_bytes,
        b.failed,
    )


def ingest_bytes(
    db: Database,
    data: bytes,
    settings: IntakeSettings,
    *,
    now: datetime,
    raw_ref: str = "",
    envelope_to: str | None = None,
) -> IntakeOutcome:
    """Parse, attribute, record and act on one report; never raises for bad input."""
    if len(data) > settings.max_bytes:
        reason = f"too large: {len(data)} bytes (max_bytes = {settings.max_bytes})"
        return IntakeOutcome(
            failed_path=keep_failed(settings.failed_dir, data, reason), reason=reason
        )
    try:
        report = parse_report(data, raw_ref=raw_ref, envelope_to=envelope_to)
    except IntakeError as e:
        return IntakeOutcome(
            failed_path=keep_failed(settings.failed_dir, data, e.message), reason=e.message
        )
    except Exception as e:  # a parser bug must not lose the report nor stop the run
        reason = f"parser error: {e.__class__.__name__}: {e}"
        log.exception("bounce parser failed on %s", raw_ref or "a report")
        return IntakeOutcome(
            failed_path=keep_failed(settings.failed_dir, data, reason), reason=reason
        )
    events = record(db, report, settings, now=now)
    if all(f.kind is EventKind.UNKNOWN for f in report.findings) and not _all_dup(events):
        reason = "no bounce, complaint or auto-reply recognised"
        path = keep_failed(settings.failed_dir, data, reason)
        return IntakeOutcome(events, path, reason)
    return IntakeOutcome(events)


def record(
    db: Database,
    report: Report,
    settings: IntakeSettings,
    *,
    now: datetime,
    target: Target | None = None,
    nonce: Nonce | None = None,
) -> tuple[StoredEvent, ...]:
    """Store ``report`` in one transaction (webhooks enter here with their own
    parsed report). A concurrent duplicate insert is retried once, then seen
    as the duplicate it is. ``nonce`` (a webhook's one-time token) is
    remembered in the same transaction; a reused one raises
    :class:`~kabarfeed.errors.WebhookAuthError` and stores nothing."""
    for attempt in (1, 2):
        try:
            with db.begin() as conn:
                if nonce is not None and not first_use(conn, nonce.value, now, keep=nonce.keep):
                    raise WebhookAuthError("one-time token used before (a replay)")
                return tuple(
                    record_report(
                        conn, report, settings.keys, settings.policy, now=now, target=target
                    )
                )
        except StoreError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _all_dup(events: tuple[StoredEvent, ...]) -> bool:
    return bool(events) and all(ev.duplicate for ev in events)


def keep_failed(folder: Path, data: bytes, reason: str) -> Path:
    """Write ``data`` to ``folder/<name>.eml`` and the reason beside it, durably.

    :class:`StoreError` when the folder cannot be written (the caller must not
    acknowledge the report then).
    """
    name = f"{int(datetime.now().timestamp())}.{os.getpid()}.{_random.token_hex(6)}"
    path = folder / f"{name}.eml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_durably(folder / f"{name}.reason", (reason + "\n").encode("utf-8"))
        _write_durably(path, data)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise StoreError(f"cannot keep a failed report in {folder}: {e.strerror}") from e
    log.warning("bounce report kept in %s: %s", path, reason)
    return path


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
