"""Breaking alerts end to end: queue them when a ``breaking`` article arrives
(:func:`enqueue_alerts`, after :mod:`kabarfeed.digest.breaking` decided who and
when), and render claimed alert rows into short signed messages
(:class:`AlertRenderer`) for the same :class:`~kabarfeed.delivery.engine.DeliveryEngine`,
lease, rate limit and transport as digests (:mod:`kabarfeed.delivery.runner`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jinja2
from sqlalchemy import Connection, or_, select

from kabarfeed.bounces.sending import suppressed
from kabarfeed.config import Config
from kabarfeed.delivery.dkim import DkimSigner
from kabarfeed.delivery.engine import Claim, Envelope, RenderedBatch, Skip
from kabarfeed.delivery.enqueue import load_subscribers
from kabarfeed.digest import message as mail
from kabarfeed.digest.breaking import plan_alerts, rules_from
from kabarfeed.digest.schedule import BREAKING, gets_breaking
from kabarfeed.errors import RenderError
from kabarfeed.models import Article, Clock, Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import alerts as alert_store
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import subscribers as subscribers_table
from kabarfeed.templating import make_environment

log = logging.getLogger(__name__)

TEXTS: Mapping[str, Mapping[str, str]] = {
    "id": {
        "label": "Berita kilat",
        "read": "Baca selengkapnya",
        "why": "Anda menerima berita kilat {site} karena {email} memintanya.",
        "preferences": "Ubah langganan",
        "unsubscribe": "Berhenti berlangganan",
    },
    "en": {
        "label": "Breaking news",
        "read": "Read the full story",
        "why": "You get {site} breaking news alerts because {email} asked for them.",
        "preferences": "Change your subscription",
        "unsubscribe": "Unsubscribe",
    },
}


def _readers(conn: Connection) -> list[Subscriber]:
    s = subscribers_table.c
    query = select(s.id).where(
        s.status == SubscriberStatus.ACTIVE.value,
        or_(s.frequency == BREAKING, s.breaking_alerts.is_(True)),
    )
    ids = sorted(conn.execute(query).scalars())
    return list(load_subscribers(conn, ids).values())


def enqueue_alerts(config: Config, db: Database, articles: Sequence[Article], now: datetime) -> int:
    """Queue the breaking alerts of newly arrived ``breaking`` articles; return
    how many rows are new. An article that already has alert rows is not
    planned again (an update or a second push alerts nobody twice)."""
    rules = rules_from(config.digest)
    if not articles or rules.max_per_day == 0:
        return 0
    days = [now.date() + timedelta(days=k) for k in range(-1, 3)]
    with db.begin() as conn:
        planned = alert_store.queued_articles(conn, [a.id for a in articles])
        fresh = [a for a in articles if a.id not in planned]
        readers = _readers(conn) if fresh else []
        if not readers:
            return 0
        counted: dict[tuple[int, date], int] = alert_store.counted(
            conn, [r.id for r in readers], days
        )
        added = 0
        for article in fresh:
            plan = plan_alerts(article, readers, counted, rules, config.taxonomy, now)
            if plan.reason:
                log.info("breaking article %s alerts nobody: %s", article.id, plan.reason)
            for alert in plan.alerts:
                key = (alert.subscriber_id, alert.local_date)
                counted[key] = counted.get(key, 0) + 1
            if plan.skipped:
                log.info(
                    "breaking article %s: %d readers at their daily cap",
                    article.id,
                    len(plan.skipped),
                )
            added += alert_store.insert_alerts(conn, plan.alerts, now)
    return added


class AlertRenderer:
    """The engine's :class:`~kabarfeed.delivery.engine.Renderer` for alert rows.

    A row is skipped when its subscriber is no longer active, no longer takes
    breaking alerts, is on the suppression list, or its article was removed.
    """

    def __init__(self, config: Config, db: Database, *, clock: Clock) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.signer = DkimSigner.from_config(config.dkim)
        self._env = make_environment("email", override=config.digest.templates, html=False)
        self._domain = mail.site_domain(config.site.base_url)
        secret = config.site.secret.get_secret_value() or config.site.base_url
        self._key = secret.encode("utf-8")

    def message_id(self, subscriber_id: int, article_id: str) -> str:
        """The Message-ID of an alert: the same on every (re-)render."""
        return mail.deterministic_message_id(
            self._key, self._domain, "breaking", str(subscriber_id), article_id
        )

    def render(self, claims: Sequence[Claim]) -> RenderedBatch:
        """Render a batch of claimed alert rows."""
        with self.db.connect() as conn:
            people = load_subscribers(conn, sorted({c.subscriber_id for c in claims}))
            wanted = sorted({a for c in claims for a in c.article_ids})
            found = {a.id: a for a in load_articles(conn, ids=wanted)} if wanted else {}
        blocked = suppressed(self.db, list(people.values()))
        envelopes: list[Envelope] = []
        skipped: list[Skip] = []
        now = self.clock()
        for c in claims:
            sub = people.get(c.subscriber_id)
            article = found.get(c.article_ids[0]) if c.article_ids else None
            reason = self._skip_reason(sub, article, blocked)
            if reason or sub is None or article is None:
                skipped.append(Skip(c, reason))
                continue
            data = self._message(sub, article, now)
            sign = self.signer.sign if self.signer else None
            envelopes.append(
                Envelope(
                    c, sub.email, self.message_id(sub.id, article.id), sign(data) if sign else data
                )
            )
        return RenderedBatch(tuple(envelopes), tuple(skipped))

    @staticmethod
    def _skip_reason(sub: Subscriber | None, article: Article | None, blocked: set[int]) -> str:
        if sub is None or sub.status is not SubscriberStatus.ACTIVE:
            return f"subscriber is {sub.status.value if sub else 'gone'}"
        if not gets_breaking(sub):
            return "subscriber no longer takes breaking alerts"
        if sub.id in blocked:
            return "address is on the suppression list (complaint)"
        if article is None:
            return "its article was removed"
        return ""

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self._env.get_template(name).render(context)
        except jinja2.TemplateError as e:
            raise RenderError(f"email template {name}: {e}") from e

    def _message(self, sub: Subscriber, article: Article, now: datetime) -> bytes:
        site, d = self.config.site, self.config.digest
        t = TEXTS.get(sub.language, TEXTS["id"])
        token = quote(sub.token, safe="")
        links = {
            "unsubscribe": f"{site.base_url}/u/{token}",
            "preferences": f"{site.base_url}/preferences/{token}",
        }
        subject = f"{t['label']}: {' '.join(article.title.split())}"
        summary = article.summary[: d.summary_chars]
        context = {
            "t": t,
            "subject": subject,
            "article": {"title": article.title, "summary": summary, "url": article.url},
            "recipient": {"email": sub.email, "name": sub.name, "language": sub.language},
            "site": {"title": site.title, "postal_address": site.postal_address},
            "links": links,
        }
        mailto = d.unsubscribe_mailto or "unsubscribe@" + d.from_address.rpartition("@")[2]
        envelope = mail.Envelope(
            from_name=d.from_name or site.title,
            from_address=d.from_address,
            to_name=sub.name,
            to_address=sub.email,
            subject=subject,
            date=now,
            message_id=self.message_id(sub.id, article.id),
            reply_to=d.reply_to,
            extra=(
                ("List-Id", f"{site.title} <breaking.{self._domain}>"),
                ("List-Unsubscribe", mail.list_unsubscribe(links["unsubscribe"], mailto, token)),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Content-Language", sub.language),
            ),
        )
        text = self._render("breaking.txt.j2", context)
        html = self._render("breaking.html.j2", context)
        return mail.build_message(envelope, text, html)
