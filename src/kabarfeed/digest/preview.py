"""The exact edition a subscriber would get next (or on a given date), built
for inspection: ``kabarfeed digest preview`` and the console's preview page
use it. Nothing is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from kabarfeed.config import Config
from kabarfeed.digest.render import EditionInput
from kabarfeed.digest.schedule import first_window, local_date_for, send_moment, window_max_age
from kabarfeed.digest.selection import (
    Selection,
    region_scope,
    select_articles,
    select_latest,
)
from kabarfeed.models import Subscriber
from kabarfeed.store import subscribers as store
from kabarfeed.store import welcomes
from kabarfeed.store.articles import load_articles
from kabarfeed.store.db import Database


@dataclass(frozen=True, slots=True)
class Preview:
    """An edition built for inspection (nothing is recorded)."""

    edition: EditionInput
    selection: Selection


def build_preview(
    db: Database, config: Config, sub: Subscriber, *, now: datetime, on: date | None = None
) -> Preview:
    """The edition for local date ``on`` (cut-off at its send time), or without
    ``on`` the next edition as it would be built at ``now`` (the welcome
    edition while one is promised)."""
    if on is None:
        cutoff, local_date = now, local_date_for(sub.timezone, now)
    else:
        cutoff, local_date = send_moment(sub.timezone, sub.send_at, on), on
    limit = config.digest.welcome_articles
    with db.connect() as conn:
        if limit and welcomes.pending_among(conn, [sub.id]):
            pool = load_articles(
                conn,
                regions=sorted(region_scope(sub.regions, config.taxonomy)) if sub.regions else None,
                categories=list(sub.categories) or None,
                first_seen_until=cutoff,
                limit=limit,
            )
            welcome = select_latest(sub, pool, limit=limit, cutoff=cutoff, taxonomy=config.taxonomy)
            edition = EditionInput(
                sub, local_date, welcome.articles, welcome.total_matching, first=True
            )
            return Preview(edition, welcome)
        previous = store.previous_cutoff(conn, sub.id, before=cutoff)
        first = first_window(sub, config.digest.first_window)
        since = previous if previous is not None else cutoff - first
        max_age = window_max_age(sub, since, cutoff, config.digest.max_age)
        candidates = store.edition_candidates(
            conn,
            sub,
            since=since,
            cutoff=cutoff,
            max_age=max_age,
            taxonomy=config.taxonomy,
        )
    selection = select_articles(
        sub,
        candidates,
        since=since,
        cutoff=cutoff,
        taxonomy=config.taxonomy,
        config=config.digest,
        max_age=max_age,
    )
    edition = EditionInput(sub, local_date, selection.articles, selection.total_matching)
    return Preview(edition, selection)
