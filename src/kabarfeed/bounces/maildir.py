"""A Maildir the MTA delivers bounces into, polled by the service.

Each message in ``new/`` goes through the pipeline; only after its record is
committed (or it is kept in the failed folder) is it moved to ``cur/`` with the
``S`` (seen) flag. A crash in between re-reads it next time, and the pipeline's
dedup key makes that a no-op; nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from kabarfeed.bounces.intake import IntakeSettings, ingest_bytes
from kabarfeed.errors import StoreError
from kabarfeed.models import Clock
from kabarfeed.store import Database

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    """What one poll did."""

    read: int = 0
    events: int = 0
    duplicates: int = 0
    failed: int = 0
    error: str | None = None
    names: list[str] = field(default_factory=list)


def _ready(path: Path) -> list[Path]:
    new = path / "new"
    try:
        names = sorted(
            p
            for p in new.iterdir()
            if not p.name.startswith(".") and p.is_file() and not p.is_symlink()
        )
    except FileNotFoundError:
        return []
    return names


def done_name(name: str) -> str:
    """The ``cur/`` name of a processed message: the ``S`` flag added (Maildir spec)."""
    base, sep, flags = name.partition(":2,")
    if not sep:
        return f"{name}:2,S"
    return f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}"


def poll_maildir(
    db: Database, path: Path, settings: IntakeSettings, *, clock: Clock, limit: int = 500
) -> PollReport:
    """Ingest up to ``limit`` messages from ``path/new``; stop (leaving the rest)
    at the first store failure, which is reported in ``error``."""
    report = PollReport()
    for file in _ready(path)[:limit]:
        try:
            data = _read(file, settings.max_bytes + 1)
        except FileNotFoundError:
            continue  # another process took it
        except OSError as e:  # left where it is, reported; the others go on
            report.error = f"cannot read {file}: {e.strerror}"
            continue
        try:
            outcome = ingest_bytes(db, data, settings, now=clock(), raw_ref=f"maildir:{file.name}")
        except StoreError as e:
            report.error = str(e)
            log.warning("bounce maildir: %s; %s stays in new/", e, file.name)
            break
        _move_done(path, file)
        report.read += 1
        report.names.append(file.name)
        report.events += sum(1 for ev in outcome.events if not ev.duplicate)
        report.duplicates += sum(1 for ev in outcome.events if ev.duplicate)
        report.failed += 1 if outcome.failed_path and not outcome.events else 0
    return report


def _read(file: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file, never through a symlink (a
    message planted as a link to another file must not be copied anywhere)."""
    fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return fh.read(limit)


def _move_done(path: Path, file: Path) -> None:
    cur = path / "cur"
    cur.mkdir(exist_ok=True)
    # Another process may have moved it after recording the same report (a no-op).
    with contextlib.suppress(FileNotFoundError):
        os.rename(file, cur / done_name(file.name))
