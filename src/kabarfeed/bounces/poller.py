"""One poll of every configured bounce mailbox (``[bounces] maildir`` and
``imap_url``), as the service runs it every ``poll_interval``. The outcome of
the last poll of each is kept in ``state`` (``bounces.poll.<name>``) for
``kabarfeed status``."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from kabarfeed.bounces.imap import ImapTarget, poll_imap, tls_context
from kabarfeed.bounces.intake import intake_settings
from kabarfeed.bounces.maildir import PollReport, poll_maildir
from kabarfeed.bounces.stats import POLL_STATE_PREFIX, mail_polls
from kabarfeed.config import Config
from kabarfeed.errors import KabarfeedError
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.store.state import write_state

log = logging.getLogger(__name__)

STATE_PREFIX = POLL_STATE_PREFIX


def configured(config: Config) -> bool:
    """Whether any bounce mailbox is configured."""
    return bool(config.bounces.maildir or config.bounces.imap_url)


def poll_all(config: Config, db: Database, *, clock: Clock) -> dict[str, PollReport]:
    """Poll each configured mailbox once; failures are reported, never raised
    (except a store failure while reading the site secret, which is raised)."""
    out: dict[str, PollReport] = {}
    if not configured(config):
        return out
    b = config.bounces
    settings = intake_settings(config, db, now=clock())
    if b.maildir is not None:
        out["maildir"] = poll_maildir(db, b.maildir, settings, clock=clock)
    if b.imap_url:
        try:
            out["imap"] = poll_imap(
                db,
                ImapTarget.parse(b.imap_url),
                b.imap_password.get_secret_value(),
                settings,
                clock=clock,
                done_folder=b.imap_folder_done,
                context=tls_context(b.imap_ca_file),
            )
        except KabarfeedError as e:
            out["imap"] = PollReport(error=str(e))
    for name, report in out.items():
        _remember(db, name, report, clock)
        if report.error:
            log.warning("bounce %s: %s", name, report.error)
        elif report.read:
            log.info(
                "bounce %s: %d read, %d new events, %d already known, %d kept as failed",
                name,
                report.read,
                report.events,
                report.duplicates,
                report.failed,
            )
    return out


def _remember(db: Database, name: str, report: PollReport, clock: Clock) -> None:
    now = clock()
    value: dict[str, Any] = {k: v for k, v in asdict(report).items() if k != "names"}
    value["time"] = now.isoformat()
    try:
        with db.begin() as conn:
            write_state(conn, STATE_PREFIX + name, value, now)
    except KabarfeedError as e:
        log.warning("bounce %s: cannot record the poll: %s", name, e)


def last_polls(db: Database) -> dict[str, dict[str, Any]]:
    """The last poll of each mailbox, by name."""
    with db.connect() as conn:
        return mail_polls(conn)
