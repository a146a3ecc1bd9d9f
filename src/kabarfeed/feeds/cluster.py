"""Feed builds when several machines share one database.

A build holds the cluster-wide ``feeds.build`` lock (a PostgreSQL advisory
lock; on SQLite the builder's file lock already serialises builds on the one
machine), so two builds never interleave their state writes. Each output
folder carries a stamp of the build marker it was last brought to: a folder
behind the database's marker (another node built since) is rebuilt in full,
writing only changed bytes. Rendering is pure and files are replaced by
atomic renames, so every node's output is byte-identical and a reader never
sees half a file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from kabarfeed.config import Config
from kabarfeed.feeds import writer
from kabarfeed.feeds.build import BuildReport, FeedBuilder
from kabarfeed.feeds.queries import MARKER_KEY
from kabarfeed.leader import FEEDS_LOCK, cluster_lock
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.store.schema import state

STAMP_NAME = ".kabarfeed-build.stamp"


def marker_stamp(db: Database) -> str | None:
    """A digest of the last build's marker row (``None`` before the first build)."""
    with db.connect() as conn:
        raw = conn.execute(select(state.c.value).where(state.c.key == MARKER_KEY)).scalar()
    return hashlib.sha256(raw.encode("utf-8")).hexdigest() if raw else None


def folder_stamp(output: Path) -> str | None:
    """The marker digest ``output`` was last built to, if any."""
    data = writer.read_or_none(output / STAMP_NAME)
    return data.decode("ascii", "replace").strip() if data else None


def needs_full(folder: str | None, marker: str | None) -> bool:
    """Whether a folder must be rebuilt in full: another node built since it was."""
    return marker is not None and folder != marker


def build(config: Config, db: Database, clock: Clock, *, full: bool = False) -> BuildReport:
    """Build the feeds into ``config.feeds.output`` safely next to other nodes."""
    output = config.feeds.output
    with cluster_lock(db, FEEDS_LOCK):
        behind = needs_full(folder_stamp(output), marker_stamp(db))
        report = FeedBuilder(config, db, clock).build(full=full or behind)
        stamp = marker_stamp(db)
        if stamp is not None:
            writer.write_if_changed(output / STAMP_NAME, stamp.encode("ascii"), with_gzip=False)
    return report
