"""Building due editions and the outbox renderer (the digest ↔ delivery join).

Enqueue: for each active subscriber (streamed in batches) whose edition for
local date D is due and has no row yet, the window starts at the newest
recorded cut-off (first edition: ``first_window`` back), the cut-off is the
moment of building, articles are selected (pure), and the row is inserted —
``queued``, or ``skipped`` when empty and ``skip_empty``. The unique
(subscriber, local date) constraint is the final guard against doubles.

Subscribers with the same preferences and window share one selection, and
candidates are loaded once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, select

from kabarfeed.bounces.sending import ReturnPaths, suppressed
from kabarfeed.config import Config
from kabarfeed.delivery.dkim import DkimSigner
from kabarfeed.delivery.engine import Claim, Envelope, RenderedBatch, Skip
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.digest.schedule import (
    WEEKLY,
    first_window,
    gets_breaking,
    is_due,
    is_edition_day,
    local_date_for,
    send_moment,
    window_max_age,
)
from kabarfeed.digest.selection import (
    Selection,
    region_scope,
    select_articles,
    select_latest,
)
from kabarfeed.models import Article, Clock, DeliveryState, Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import alerts as alert_store
from kabarfeed.store import deliveries as outbox_store
from kabarfeed.store import subscribers as subscriber_store
from kabarfeed.store import welcomes as welcome_store
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import subscribers as subscribers_table
from kabarfeed.store.sources import list_sources
from kabarfeed.subscribers import greets

_CHUNK = 400


@dataclass(frozen=True, slots=True)
class DueOptions:
    """Which editions ``digest send`` builds.

    ``local_date`` None means each subscriber's current local date; ``zone``
    restricts to subscribers in one time zone; ``force`` ignores send times.
    """

    local_date: date | None = None
    zone: str | None = None
    force: bool = False
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """One edition ready to be recorded (and, in a dry run, rendered)."""

    subscriber: Subscriber
    local_date: date
    selection: Selection
    welcome: bool = False

    @property
    def empty(self) -> bool:
        """No article to send."""
        return not self.selection.articles

    def new_delivery(self, skip_empty: bool) -> outbox_store.NewDelivery:
        """The outbox row for this edition."""
        sel = self.selection
        ids = tuple(a.id for a in sel.articles)
        skipped = self.empty and skip_empty
        return outbox_store.NewDelivery(
            self.subscriber.id,
            self.local_date.isoformat(),
            sel.since,
            sel.cutoff,
            ids,
            DeliveryState.SKIPPED if skipped else DeliveryState.QUEUED,
            "empty edition" if skipped else "",
            sel.total_matching,
        )


@dataclass(frozen=True, slots=True)
class EnqueueReport:
    """What building found: new rows, empty skips, and rows that already existed."""

    considered: int = 0
    queued: int = 0
    skipped_empty: int = 0
    existing: int = 0
    not_due: int = 0


@dataclass
class _Candidates:
    """Articles first seen in ``(after, until]`` and published after
    ``published_after``; reloaded only when a batch needs a wider window."""

    config: Config
    until: datetime
    after: datetime | None = None
    published_after: datetime | None = None
    articles: list[Article] = field(default_factory=list)
    selections: dict[tuple[object, ...], Selection] = field(default_factory=dict)

    def covering(
        self, conn: Connection, since: datetime, cutoff: datetime, max_age: timedelta | None = None
    ) -> list[Article]:
        """Every article any edition with window ``(since, cutoff]`` or later may
        hold (published at most ``max_age`` before, default ``[digest] max_age``)."""
        oldest = cutoff - (self.config.digest.max_age if max_age is None else max_age)
        if (
            self.after is None
            or self.published_after is None
            or since < self.after
            or oldest < self.published_after
        ):
            self.after = since if self.after is None else min(since, self.after)
            self.published_after = (
                oldest if self.published_after is None else min(oldest, self.published_after)
            )
            self.articles = load_articles(
                conn,
                first_seen_after=self.after,
                first_seen_until=self.until,
                published_after=self.published_after,
            )
        return self.articles


Due = tuple[Subscriber, date, datetime]
"""A subscriber, the local date of the edition to build, and its cut-off."""


def plan(
    config: Config, conn: Connection, batch: Sequence[Due], candidates: _Candidates
) -> list[Planned]:
    """Select each edition's articles; same preferences and window share one selection."""
    if not batch:
        return []
    previous = outbox_store.newest_cutoffs(conn, [s.id for s, _, _ in batch])
    since = {s.id: _since(previous.get(s.id), s, cut, config) for s, _, cut in batch}
    ages = {s.id: window_max_age(s, since[s.id], cut, config.digest.max_age) for s, _, cut in batch}
    pool = candidates.covering(
        conn, min(since.values()), min(cut for _, _, cut in batch), max(ages.values())
    )
    taxonomy = config.taxonomy
    shared = candidates.selections  # valid across batches: the pool only ever widens
    promised = _promised(config, conn, [s.id for s, _, _ in batch])
    alerted = _alerted(config, conn, [s for s, _, _ in batch], pool)
    out: list[Planned] = []
    for sub, day, cutoff in batch:
        if sub.id in promised:
            limit = config.digest.welcome_articles
            out.append(Planned(sub, day, _welcome(config, conn, sub, limit, cutoff), welcome=True))
            continue
        left_out = frozenset(alerted.get(sub.id, ()))
        key = (sub.regions, sub.categories, since[sub.id], cutoff, ages[sub.id], left_out)
        if key not in shared:
            shared[key] = select_articles(
                sub,
                [a for a in pool if a.id not in left_out] if left_out else pool,
                since=since[sub.id],
                cutoff=cutoff,
                taxonomy=taxonomy,
                config=config.digest,
                max_age=ages[sub.id],
            )
        out.append(Planned(sub, day, shared[key]))
    return out


def _alerted(
    config: Config, conn: Connection, subs: Sequence[Subscriber], pool: Sequence[Article]
) -> dict[int, set[str]]:
    """The articles of ``pool`` each weekly reader taking breaking alerts
    already got (or is getting) as an alert: their weekly edition leaves them
    out unless ``[digest] weekly_repeats_breaking``."""
    if config.digest.weekly_repeats_breaking:
        return {}
    ids = [s.id for s in subs if s.frequency == WEEKLY and gets_breaking(s)]
    return alert_store.alerted(conn, ids, [a.id for a in pool]) if ids else {}


def _since(
    previous: datetime | None, sub: Subscriber, cutoff: datetime, config: Config
) -> datetime:
    """The edition's window start: the previous cut-off, else the first window
    back (a week for a weekly reader)."""
    if previous is not None:
        return previous
    return cutoff - first_window(sub, config.digest.first_window)


def _due(sub: Subscriber, options: DueOptions, now: datetime) -> Due | None:
    """The edition to build for ``sub`` at ``now``, if any.

    The cut-off is the moment of building; for an explicit past ``--date`` it
    is that date's send time (an old edition does not swallow today's news).
    """
    if options.zone and sub.timezone != options.zone:
        return None
    day = options.local_date or local_date_for(sub.timezone, now)
    if not is_edition_day(sub, day):  # a weekly reader's other days
        return None
    if not (options.force or is_due(sub, day, now)):
        return None
    cutoff = now
    if options.local_date is not None:
        cutoff = min(now, send_moment(sub.timezone, sub.send_at, day))
    return sub, day, cutoff


def plan_due(
    config: Config,
    db: Database,
    options: DueOptions,
    *,
    now: datetime,
    batch_size: int = 500,
) -> Iterator[tuple[list[Planned], EnqueueReport]]:
    """Stream the due editions that have no row yet, batch by batch, with counts."""
    candidates = _Candidates(config, now)
    left = options.limit
    for subs in subscriber_store.iter_active(db, batch_size=batch_size):
        due = [d for s in subs if (d := _due(s, options, now)) is not None]
        with db.connect() as conn:
            exists = outbox_store.existing_editions(
                conn, [s.id for s, _, _ in due], {d.isoformat() for _, d, _ in due}
            )
            fresh = [e for e in due if (e[0].id, e[1].isoformat()) not in exists]
            todo = fresh if left is None else fresh[:left]
            planned = plan(config, conn, todo, candidates)
        if left is not None:
            left -= len(todo)
        yield (
            planned,
            EnqueueReport(len(subs), existing=len(due) - len(fresh), not_due=len(subs) - len(due)),
        )
        if left is not None and left <= 0:
            return


def _promised(config: Config, conn: Connection, ids: Sequence[int]) -> set[int]:
    """Subscribers whose edition is to be their welcome edition."""
    if not ids or config.digest.welcome_articles == 0:
        return set()
    return welcome_store.pending_among(conn, ids)


def recordable(planned: Sequence[Planned]) -> list[Planned]:
    """What :func:`record` inserts: an empty welcome edition is not recorded
    (the promise waits for a matching article; the subscriber gets no row that day)."""
    return [p for p in planned if not (p.welcome and p.empty)]


def record(config: Config, db: Database, planned: Sequence[Planned], now: datetime) -> int:
    """Insert the rows (conflicts with a concurrent run are ignored) and settle
    the welcome promises they keep, in one transaction; return how many are new."""
    kept = recordable(planned)
    rows = [p.new_delivery(config.digest.skip_empty) for p in kept]
    with db.begin() as conn:
        new = outbox_store.insert_editions(conn, rows, now)
        welcome_store.settle(conn, [p.subscriber.id for p in kept if p.welcome])
        return new


def enqueue_due(
    config: Config,
    db: Database,
    options: DueOptions,
    *,
    now: datetime,
    batch_size: int = 500,
) -> EnqueueReport:
    """Build and record every due edition (see :func:`plan_due`)."""
    total = EnqueueReport()
    for planned, counts in plan_due(config, db, options, now=now, batch_size=batch_size):
        record(config, db, planned, now)
        kept = recordable(planned)
        empty = sum(1 for p in kept if p.empty and config.digest.skip_empty)
        total = EnqueueReport(
            total.considered + counts.considered,
            total.queued + len(kept) - empty,
            total.skipped_empty + empty,
            total.existing + counts.existing,
            total.not_due + counts.not_due,
        )
    return total


def enqueue_editions(
    config: Config,
    db: Database,
    subscriber_ids: Sequence[int],
    local_date: date,
    *,
    now: datetime,
) -> int:
    """Build and record the editions of ``subscriber_ids`` for ``local_date``
    (the scheduler's entry point: it already decided they are due)."""
    candidates = _Candidates(config, now)
    new = 0
    for start in range(0, len(subscriber_ids), _CHUNK):
        ids = list(subscriber_ids[start : start + _CHUNK])
        with db.connect() as conn:
            subs = [
                s
                for s in load_subscribers(conn, ids).values()
                if s.status is SubscriberStatus.ACTIVE and is_edition_day(s, local_date)
            ]
            exists = outbox_store.existing_editions(conn, ids, [local_date.isoformat()])
            todo = [
                (s, local_date, now) for s in subs if (s.id, local_date.isoformat()) not in exists
            ]
            planned = plan(config, conn, todo, candidates)
        new += record(config, db, planned, now)
    return new


@dataclass(frozen=True, slots=True)
class WelcomeReport:
    """Promised welcome editions: recorded now, still waiting for a matching
    article, or dropped (subscriber gone or inactive, already has an edition,
    or ``[digest] welcome = "off"``)."""

    queued: int = 0
    waiting: int = 0
    dropped: int = 0


def enqueue_welcomes(config: Config, db: Database, *, now: datetime) -> WelcomeReport:
    """Record every promised welcome edition (see :mod:`kabarfeed.store.welcomes`).

    A welcome edition holds the subscriber's ``[digest] welcome`` newest
    matching articles whatever their age, is the edition of the subscriber's
    current local date, and its cut-off is ``now``: the next regular edition
    continues from there, so no article comes twice, and the unique (subscriber,
    local date) row means at most one digest that day. The row is inserted and
    the promise settled in one transaction. While the promise is open, a due
    regular edition is built as the welcome instead (:func:`plan`); with no
    matching article yet, nothing is recorded and the promise waits (for the
    next ingest). A promise is dropped when welcomes are ``"off"``, the
    subscriber is no longer active, or already had a digest.
    """
    with db.connect() as conn:
        promised = sorted(welcome_store.pending(conn))
        if promised and _unread_sources(config, conn):
            return WelcomeReport(waiting=len(promised))
    limit = config.digest.welcome_articles
    queued = waiting = dropped = 0
    for start in range(0, len(promised), _CHUNK):
        ids = promised[start : start + _CHUNK]
        with db.begin() as conn:
            people = load_subscribers(conn, ids)
            had = welcome_store.had_digest(conn, ids)
            days = {s.id: local_date_for(s.timezone, now).isoformat() for s in people.values()}
            taken = outbox_store.existing_editions(conn, ids, days.values())
            settled: list[int] = []
            rows: list[outbox_store.NewDelivery] = []
            for sid in ids:
                sub = people.get(sid)
                if (
                    limit == 0
                    or sid in had
                    or sub is None
                    or sub.status is not SubscriberStatus.ACTIVE
                ):
                    settled.append(sid)
                    continue
                if (sid, days[sid]) in taken:
                    continue  # today already has a (skipped) row: tomorrow's edition is the welcome
                selection = _welcome(config, conn, sub, limit, now)
                if not selection.articles:
                    continue
                day = date.fromisoformat(days[sid])
                rows.append(Planned(sub, day, selection, True).new_delivery(skip_empty=True))
                settled.append(sid)
            outbox_store.insert_editions(conn, rows, now)
            welcome_store.settle(conn, settled)
        queued += len(rows)
        dropped += len(settled) - len(rows)
        waiting += len(ids) - len(settled)
    return WelcomeReport(queued, waiting, dropped)


def _unread_sources(config: Config, conn: Connection) -> bool:
    """Whether an enabled source has never been read (successfully or not).

    Welcomes wait for that: on a new install the first digest would otherwise
    hold only what the fastest source brought in. Afterwards every source has
    been read, so a new subscriber's welcome goes out at once.
    """
    names = [s.name for s in config.sources if s.enabled]
    read = {s.name for s in list_sources(conn, names) if s.last_fetch_at is not None}
    return any(name not in read for name in names)


def _welcome(
    config: Config, conn: Connection, sub: Subscriber, limit: int, now: datetime
) -> Selection:
    taxonomy = config.taxonomy
    pool = load_articles(
        conn,
        regions=sorted(region_scope(sub.regions, taxonomy)) if sub.regions else None,
        categories=list(sub.categories) or None,
        first_seen_until=now,
        limit=limit,
    )
    return select_latest(sub, pool, limit=limit, cutoff=now, taxonomy=taxonomy)


def load_subscribers(conn: Connection, ids: Sequence[int]) -> dict[int, Subscriber]:
    """Subscribers by id, with their regions and categories, in few queries."""
    out: dict[int, Subscriber] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = conn.execute(
            select(subscribers_table).where(subscribers_table.c.id.in_(chunk))
        ).all()
        out.update({s.id: s for s in subscriber_store._hydrate(conn, rows)})
    return out


class OutboxRenderer:
    """The engine's :class:`~kabarfeed.delivery.engine.Renderer`: claimed rows →
    signed message bytes, via the digest's batch renderer.

    A row is skipped when its subscriber is no longer active (unsubscribed or
    bounced meanwhile) or every article it lists has since been deleted.
    """

    def __init__(self, config: Config, db: Database, *, clock: Clock) -> None:
        self.config = config
        self.db = db
        self.digest = DigestRenderer(config, clock=clock)
        self.signer = DkimSigner.from_config(config.dkim)
        self.return_paths = ReturnPaths.from_config(config, db, clock=clock)

    def render(self, claims: Sequence[Claim]) -> RenderedBatch:
        """Render a batch of claims (articles and subscribers loaded once per batch)."""
        with self.db.connect() as conn:
            people = load_subscribers(conn, sorted({c.subscriber_id for c in claims}))
            firsts = welcome_store.first_cutoffs(conn, sorted(people))
            wanted = sorted({a for c in claims for a in c.article_ids})
            found = {a.id: a for a in load_articles(conn, ids=wanted)} if wanted else {}
        blocked = suppressed(self.db, list(people.values()))
        editions: list[tuple[Claim, EditionInput]] = []
        skipped: list[Skip] = []
        for c in claims:
            sub = people.get(c.subscriber_id)
            if sub is None or sub.status is not SubscriberStatus.ACTIVE:
                skipped.append(Skip(c, f"subscriber is {sub.status.value if sub else 'gone'}"))
                continue
            if sub.id in blocked:
                skipped.append(Skip(c, "address is on the suppression list (complaint)"))
                continue
            articles = tuple(found[a] for a in c.article_ids if a in found)
            if c.article_ids and not articles:
                skipped.append(Skip(c, "its articles were removed"))
                continue
            day = date.fromisoformat(c.local_date)
            total = max(c.total_matching, len(articles))
            first = greets(sub) and firsts.get(sub.id) == c.cutoff
            editions.append((c, EditionInput(sub, day, articles, total, first)))
        return RenderedBatch(self._envelopes(editions), tuple(skipped))

    def _envelopes(self, editions: Sequence[tuple[Claim, EditionInput]]) -> tuple[Envelope, ...]:
        messages = self.digest.render_batch([e for _, e in editions])
        sign = self.signer.sign if self.signer else None
        return tuple(
            Envelope(
                c,
                m.recipient,
                m.message_id,
                sign(m.data) if sign else m.data,
                self.return_paths.for_delivery(c.id),
            )
            for (c, _), m in zip(editions, messages, strict=True)
        )
