"""Render editions into ready-to-send messages, fast.

Editions whose content is the same (same articles, language, date, zone and
preferences) form a group. A group's templates are rendered once, with
sentinel strings standing in for the per-recipient parts (name, address,
token); CSS is inlined once; the bodies are split into lines, and lines
without a sentinel are quoted-printable encoded once. Each recipient then
costs a few string joins: their values are spliced into the few lines that
hold sentinels, which alone are encoded per recipient.

:meth:`DigestRenderer.render_reference` builds the same message the plain
way (templates with real values, :class:`email.message.EmailMessage`); the
tests and ``bench/render.py`` check that both give identical bytes.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import css_inline
import jinja2
from babel.dates import format_date, format_time

from kabarfeed.config import Config
from kabarfeed.digest import message as mail
from kabarfeed.digest.selection import Section, sections_of
from kabarfeed.digest.strings import strings_for
from kabarfeed.errors import RenderError
from kabarfeed.models import Article, Clock, Subscriber, Taxonomy
from kabarfeed.templating import make_environment

HTML_LIMIT = 100_000
"""Gmail clips messages whose HTML is larger; editions are trimmed to fit."""

_ZONE_ABBR = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Jayapura": "WIT",
}
_HOLES = ("name", "email", "token")
_QP_AS_IS = re.compile(rb"[\t -<>-~]{0,75}[!-<>-~]")
"""Lines quoted-printable leaves unchanged: printable ASCII but ``=``, at most
76 characters, not ending in white space (see :func:`email.quoprimime.body_encode`)."""
_GROUP_CACHE = 512


@dataclass(frozen=True, slots=True)
class EditionInput:
    """What to render: one subscriber's selected articles for one local date."""

    subscriber: Subscriber
    local_date: date
    articles: tuple[Article, ...]
    total_matching: int
    first: bool = False
    """The subscriber's first edition (a welcome edition): the intro welcomes them."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered edition: envelope recipient, stable Message-ID and RFC 5322 bytes."""

    subscriber_id: int
    local_date: str
    recipient: str
    message_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class _Recipient:
    name: str
    email: str
    token: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One group's parts: encoded static runs (bytes) and line templates (tuples
    of literal text and hole names, alternating)."""

    kept: tuple[int, ...]
    """Positions (in ``EditionInput.articles``) of the articles the edition shows."""
    subject: bytes
    language: bytes
    text: tuple[bytes | tuple[str, ...], ...]
    html: tuple[bytes | tuple[str, ...], ...]


def _sentinels() -> dict[str, str]:
    salt = secrets.token_hex(5)
    return {hole: f"kfhole{salt}{i}x" for i, hole in enumerate(_HOLES)}


def _html_text(value: str) -> str:
    """``value`` as the CSS inliner's HTML serialiser writes text."""
    return (
        value.replace("&", "&amp;")
        .replace("\xa0", "&nbsp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def _html_attr(value: str) -> str:
    """``value`` as the CSS inliner's HTML serialiser writes attribute values."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


def _safe_url(url: str | None, fallback: str) -> str:
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return fallback


def _on_site(url: str, base_url: str) -> str:
    """A path on the site (``/assets/logo.png``) made absolute against ``base_url``."""
    return base_url + url if url.startswith("/") and not url.startswith("//") else url


def trim_summary(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters at a word boundary, with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,.;:-") + "…"


def more_url(subscriber: Subscriber, base_url: str) -> str:
    """The web page or feed with everything matching the subscriber's choices."""
    regions, cats = subscriber.regions, subscriber.categories
    if len(regions) == 1 and len(cats) <= 1:
        tail = f"/{cats[0]}" if cats else ""
        return f"{base_url}/feeds/region/{regions[0]}{tail}.rss"
    if not regions and len(cats) == 1:
        return f"{base_url}/feeds/category/{cats[0]}.rss"
    if not regions and not cats:
        return f"{base_url}/feeds/all.rss"
    return f"{base_url}/"


class _Context:
    """Builds template contexts; knows the config, taxonomy and strings."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.taxonomy: Taxonomy = config.taxonomy

    def edition(
        self, edition: EditionInput, articles: Sequence[Article], who: _Recipient
    ) -> dict[str, Any]:
        """The full template context for ``edition`` showing ``articles``."""
        sub = edition.subscriber
        t = strings_for(sub.language)
        base = self.config.site.base_url
        token = quote(who.token, safe="")
        date_iso = edition.local_date.isoformat()
        return {
            "lang": sub.language,
            "t": t,
            "site": self._site(),
            "edition": self._edition_info(edition, articles),
            "sections": [
                self._section(s, sub, edition.local_date)
                for s in sections_of(sub, articles, self.taxonomy)
            ],
            "advertorial_label": self.config.digest.advertorial_label,
            "recipient": {"name": who.name, "email": who.email},
            "links": {
                "unsubscribe": f"{base}/u/{token}",
                "preferences": f"{base}/preferences/{token}",
                "browser": f"{base}/digest/{token}/{date_iso}",
                "home": f"{base}/",
            },
            "why": self._why(sub),
        }

    def _site(self) -> dict[str, str]:
        site = self.config.site
        return {
            "title": site.title,
            "url": site.base_url,
            "logo_url": _safe_url(_on_site(self.config.digest.logo_url, site.base_url), ""),
            "postal_address": site.postal_address,
        }

    def _edition_info(self, edition: EditionInput, articles: Sequence[Article]) -> dict[str, Any]:
        sub = edition.subscriber
        t = strings_for(sub.language)
        n = len(articles)
        titles = " · ".join(a.title for a in articles[:3])
        weekly = sub.frequency == "weekly" and not edition.first
        start = edition.local_date - timedelta(days=6)
        return {
            "title": self._weekly_title(sub) if weekly else self._title(sub),
            "weekly": weekly,
            "week_start": format_date(start, "d MMMM", locale=sub.language),
            "date_iso": edition.local_date.isoformat(),
            "date_long": format_date(edition.local_date, "full", locale=sub.language),
            "count": n,
            "count_label": t["count_one" if n == 1 else "count"].format(n=n),
            "total_matching": edition.total_matching,
            "more_count": max(0, edition.total_matching - n),
            "more_url": more_url(sub, self.config.site.base_url),
            "preheader": trim_summary(titles, 140),
            "welcome": self._welcome(sub, t) if edition.first else "",
        }

    def _welcome(self, sub: Subscriber, t: Mapping[str, str]) -> str:
        zone = _ZONE_ABBR.get(sub.timezone) or sub.timezone
        time = f"{sub.send_at} {zone}"
        if sub.frequency == "weekly":
            weekday = date(2025, 11, 17) + timedelta(days=sub.weekly_day)  # a Monday, + days
            day = format_date(weekday, "EEEE", locale=sub.language)
            return t["welcome_weekly"].format(site=self.config.site.title, day=day, time=time)
        return t["welcome"].format(site=self.config.site.title, time=time)

    def _title(self, sub: Subscriber) -> str:
        region = self.taxonomy.region(sub.regions[0]) if sub.regions else None
        if region is None:
            return self.config.site.title
        return strings_for(sub.language)["edition_title"].format(place=region.name)

    def _weekly_title(self, sub: Subscriber) -> str:
        """A weekly edition's title: the week in the first region, or the week's top stories."""
        t = strings_for(sub.language)
        region = self.taxonomy.region(sub.regions[0]) if sub.regions else None
        return t["weekly_title"].format(place=region.name) if region else t["weekly_title_all"]

    def _why(self, sub: Subscriber) -> str:
        names = [self._region_name(r) for r in sub.regions]
        names += [self._category_name(c) for c in sub.categories]
        return ", ".join(names) if names else strings_for(sub.language)["all_news"]

    def _region_name(self, slug: str) -> str:
        region = self.taxonomy.region(slug)
        return region.name if region else slug

    def _category_name(self, slug: str) -> str:
        category = self.taxonomy.category(slug)
        return category.name if category else slug

    def _section(self, section: Section, sub: Subscriber, day: date) -> dict[str, Any]:
        title = section.title or strings_for(sub.language)["other"]
        return {
            "title": title,
            "kind": section.kind,
            "slug": section.slug,
            "articles": [self._article(a, sub, day) for a in section.articles],
        }

    def _article(self, a: Article, sub: Subscriber, day: date | None = None) -> dict[str, Any]:
        base = self.config.site.base_url
        image = None
        if a.image and _safe_url(a.image.url, ""):
            image = {"url": a.image.url, "alt": a.image.caption or a.title}
        labels = [self._region_name(r) for r in self._specific_first(a.regions)[:2]]
        labels += [self._category_name(c) for c in a.categories[:2]]
        return {
            "title": a.title,
            "url": _safe_url(a.url, base),
            "labels": labels,
            "time": self._local_time(a.published, sub, day),
            "image": image,
            "summary": trim_summary(a.summary, self.config.digest.summary_chars),
            "advertorial": a.advertorial,
            "author": a.author or "",
        }

    def _specific_first(self, regions: Sequence[str]) -> list[str]:
        """Cities before their provinces ("Samarinda · Kalimantan Timur"), then
        taxonomy order; regions no longer configured go last."""
        order = {r.slug: i for i, r in enumerate(self.taxonomy.regions)}

        def key(slug: str) -> tuple[int, int]:
            if slug not in order:
                return (1, 0)
            return (-len(self.taxonomy.ancestors(slug)), order[slug])

        return sorted(regions, key=key)

    def _local_time(self, moment: datetime, sub: Subscriber, edition_day: date | None) -> str:
        """The weekday and time; the date instead of the weekday for an article
        a week or more older than the edition (a welcome edition's older news)."""
        local = moment.astimezone(ZoneInfo(sub.timezone))
        zone = _ZONE_ABBR.get(sub.timezone) or local.strftime("UTC%z")
        old = edition_day is not None and (edition_day - local.date()).days >= 7
        pattern = "d MMM y" if old else "EEEE"
        day = format_date(local.date(), pattern, locale=sub.language)
        return f"{day}, {format_time(local, 'short', locale=sub.language)} {zone}"


OUTLIER = 4
"""An article weighing this many times the median is dropped on its own."""


def fit_step(
    kept: tuple[int, ...], weights: Sequence[int], size: int, limit: int
) -> tuple[int, ...]:
    """One step of fitting an edition of ``size`` bytes under ``limit``. Pure.

    ``weights`` estimates each kept article's share. The heaviest article goes
    alone when it weighs :data:`OUTLIER` times the median (one huge article
    never costs the others); otherwise articles go from the end, as many as
    the overflow needs, at least one and never all.
    """
    heaviest = max(range(len(kept)), key=lambda i: weights[i])
    median = sorted(weights)[len(weights) // 2]
    if weights[heaviest] > OUTLIER * max(median, 1):
        return kept[:heaviest] + kept[heaviest + 1 :]
    n = len(kept)
    return kept[: max(1, min(n - 1, n * limit // size))]


def _group_key(e: EditionInput) -> tuple[Any, ...]:
    s = e.subscriber
    return (
        s.language,
        e.local_date,
        s.timezone,
        s.regions,
        s.categories,
        tuple(a.id for a in e.articles),
        e.total_matching,
        bool(mail.header_text(s.name or "")),
        e.first,
        s.send_at if e.first else "",
        s.frequency,
    )


class DigestRenderer:
    """Renders editions into messages; reuse one instance for a whole run
    (it caches rendered groups and encoded lines)."""

    def __init__(self, config: Config, *, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._env = make_environment("email", override=config.digest.templates, html=False)
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self._context = _Context(config)
        self._qp = mail.QPCache()
        self._holes = _sentinels()
        self._hole_re = re.compile("|".join(self._holes.values()))
        self._hole_attr_re = re.compile(f"({self._hole_re.pattern})(@attr)?")
        self._hole_of = {v: k for k, v in self._holes.items()}
        self._groups: OrderedDict[tuple[Any, ...], _Compiled] = OrderedDict()
        self._domain = mail.site_domain(config.site.base_url)
        secret = config.site.secret.get_secret_value() or config.site.base_url
        self._key = secret.encode("utf-8")

    # -- templates ---------------------------------------------------------

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self._env.get_template(name)
        except jinja2.TemplateError as e:
            raise RenderError(f"email template {name}: {e}") from e

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self._template(name).render(context)
        except jinja2.TemplateError as e:
            raise RenderError(f"email template {name}: {e}") from e

    def _parts(
        self, edition: EditionInput, kept: Sequence[int], who: _Recipient
    ) -> tuple[str, str, str]:
        """Subject, text and CSS-inlined HTML showing the articles at positions ``kept``."""
        ctx = self._context.edition(edition, [edition.articles[i] for i in kept], who)
        subject = mail.header_text(self._render("subject.txt.j2", ctx))
        text = self._render("digest.txt.j2", ctx)
        try:
            html = self._inliner.inline(self._render("digest.html.j2", ctx))
        except ValueError as e:
            raise RenderError(f"cannot inline CSS of digest.html.j2: {e}") from e
        return subject, text, html

    # -- shared (per group) rendering ---------------------------------------

    def _placeholder(self, edition: EditionInput) -> _Recipient:
        h = self._holes
        return _Recipient(
            h["name"] if mail.header_text(edition.subscriber.name or "") else "",
            h["email"],
            h["token"],
        )

    def _fit(self, edition: EditionInput) -> tuple[tuple[int, ...], tuple[str, str, str]]:
        """Which articles fit under :data:`HTML_LIMIT`, and the placeholder render.

        The edition degrades one article at a time: an article far heavier than
        the others (see :func:`fit_step`) is dropped alone; articles of ordinary
        size are dropped from the end, as many as the overflow says.
        """
        kept = tuple(range(len(edition.articles)))
        parts = self._parts(edition, kept, self._placeholder(edition))
        size = len(parts[2].encode("utf-8"))
        while len(kept) > 1 and size > HTML_LIMIT:
            weights = [self._weight(edition.articles[i], edition.subscriber) for i in kept]
            kept = fit_step(kept, weights, size, HTML_LIMIT)
            parts = self._parts(edition, kept, self._placeholder(edition))
            size = len(parts[2].encode("utf-8"))
        return kept, parts

    def _weight(self, a: Article, sub: Subscriber) -> int:
        """An article's share of the rendered HTML, estimated from its text."""
        shown = self._context._article(a, sub)
        image = shown["image"] or {}
        fields = (shown["title"], shown["url"], shown["summary"], shown["author"], *image.values())
        return sum(len(str(f).encode("utf-8")) for f in fields) + 2 * len(shown["title"])

    def _group(self, edition: EditionInput) -> _Compiled:
        key = _group_key(edition)
        found = self._groups.get(key)
        if found is not None:
            self._groups.move_to_end(key)
            return found
        kept, (subject, text, html) = self._fit(edition)
        compiled = _Compiled(
            kept,
            mail.fold("Subject", subject),
            mail.fold("Content-Language", edition.subscriber.language),
            self._compile(text),
            self._compile(self._mark_attrs(html)),
        )
        self._groups[key] = compiled
        if len(self._groups) > _GROUP_CACHE:
            self._groups.popitem(last=False)
        return compiled

    def _mark_attrs(self, html: str) -> str:
        """Rename holes that sit inside a tag (attribute values) to ``hole@attr``."""

        def rename(m: re.Match[str]) -> str:
            inside = html.rfind("<", 0, m.start()) > html.rfind(">", 0, m.start())
            return f"{m.group()}@attr" if inside else m.group()

        return self._hole_re.sub(rename, html)

    def _compile(self, body: str) -> tuple[bytes | tuple[str, ...], ...]:
        items: list[bytes | tuple[str, ...]] = []
        run: list[bytes] = []
        for raw in body.encode("utf-8").splitlines():
            if b"kfhole" not in raw or not self._hole_re.search(raw.decode("utf-8")):
                run.append(self._qp.line(raw))
                continue
            if run:
                items.append(b"".join(run))
                run = []
            items.append(self._line_template(raw.decode("utf-8")))
        if run:
            items.append(b"".join(run))
        return tuple(items)

    def _line_template(self, line: str) -> tuple[str, ...]:
        pieces: list[str] = []
        pos = 0
        for m in self._hole_attr_re.finditer(line):
            pieces += [line[pos : m.start()], self._hole_of[m[1]] + (m[2] or "")]
            pos = m.end()
        pieces.append(line[pos:])
        return tuple(pieces)

    # -- per recipient -------------------------------------------------------

    def _recipient(self, sub: Subscriber) -> _Recipient:
        return _Recipient(mail.header_text(sub.name or ""), sub.email, sub.token)

    @staticmethod
    def _values(who: _Recipient, html: bool) -> dict[str, str]:
        token = quote(who.token, safe="")
        if not html:
            return {"name": who.name, "email": who.email, "token": token}
        return {
            "name": _html_text(who.name),
            "email": _html_text(who.email),
            "token": token,
            "name@attr": _html_attr(who.name),
            "email@attr": _html_attr(who.email),
            "token@attr": token,
        }

    def _fill(self, items: tuple[bytes | tuple[str, ...], ...], values: dict[str, str]) -> bytes:
        out: list[bytes] = []
        for item in items:
            if isinstance(item, bytes):
                out.append(item)
                continue
            line = "".join(values[p] if i % 2 else p for i, p in enumerate(item))
            out.extend(map(self._qp_line, line.encode("utf-8").splitlines() or [b""]))
        return b"".join(out)

    def _qp_line(self, raw: bytes) -> bytes:
        """One quoted-printable line; a short line of safe ASCII is its own encoding
        (per-recipient lines would only fill the cache with one-offs)."""
        if _QP_AS_IS.fullmatch(raw):
            return raw + b"\r\n"
        return self._qp.line(raw)

    # -- headers ---------------------------------------------------------------

    def message_id(self, subscriber_id: int, local_date: date | str) -> str:
        """The Message-ID of an edition: the same on every (re-)render."""
        day = local_date if isinstance(local_date, str) else local_date.isoformat()
        return mail.deterministic_message_id(
            self._key, self._domain, "digest", str(subscriber_id), day
        )

    def _unsubscribe_mailto(self) -> str:
        d = self.config.digest
        return d.unsubscribe_mailto or "unsubscribe@" + d.from_address.rpartition("@")[2]

    def _envelope(self, edition: EditionInput, subject: str, now: datetime) -> mail.Envelope:
        d, sub = self.config.digest, edition.subscriber
        token = quote(sub.token, safe="")
        unsubscribe = f"{self.config.site.base_url}/u/{token}"
        return mail.Envelope(
            from_name=d.from_name or self.config.site.title,
            from_address=d.from_address,
            to_name=sub.name,
            to_address=sub.email,
            subject=subject,
            date=now,
            message_id=self.message_id(sub.id, edition.local_date),
            reply_to=d.reply_to,
            extra=(
                ("List-Id", f"{self.config.site.title} <digest.{self._domain}>"),
                (
                    "List-Unsubscribe",
                    mail.list_unsubscribe(unsubscribe, self._unsubscribe_mailto(), token),
                ),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Content-Language", sub.language),
            ),
        )

    # -- public API --------------------------------------------------------------

    def render_batch(self, editions: Sequence[EditionInput]) -> list[OutgoingMessage]:
        """Messages for ``editions`` (same order); shared content is rendered once."""
        heads = self._batch_headers(self.clock())
        return [self._fast(e, heads) for e in editions]

    def render_one(self, edition: EditionInput) -> OutgoingMessage:
        """The message for one edition (exactly what :meth:`render_batch` gives)."""
        return self.render_batch([edition])[0]

    def render_html(self, edition: EditionInput) -> str:
        """The HTML part for ``edition``, with the recipient's own links (web view)."""
        kept = self._group(edition).kept
        return self._parts(edition, kept, self._recipient(edition.subscriber))[2]

    def render_reference(self, edition: EditionInput) -> OutgoingMessage:
        """The same message built the slow, obvious way (for tests and benchmarks)."""
        kept = self._group(edition).kept
        subject, text, html = self._parts(edition, kept, self._recipient(edition.subscriber))
        env = self._envelope(edition, subject, self.clock())
        data = mail.reference_message(env, text, html)
        return self._outgoing(edition, env.message_id, data)

    def _outgoing(self, edition: EditionInput, message_id: str, data: bytes) -> OutgoingMessage:
        sub = edition.subscriber
        return OutgoingMessage(sub.id, edition.local_date.isoformat(), sub.email, message_id, data)

    def _batch_headers(self, now: datetime) -> _BatchHeaders:
        d, site = self.config.digest, self.config.site
        lists = mail.fold("Reply-To", d.reply_to) if d.reply_to else b""
        return _BatchHeaders(
            from_=mail.fold_address("From", d.from_name or site.title, d.from_address),
            date=mail.fold("Date", mail.format_date_header(now)),
            lists=lists + mail.fold("List-Id", f"{site.title} <digest.{self._domain}>"),
            post=mail.fold("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        )

    def _fast(self, edition: EditionInput, heads: _BatchHeaders) -> OutgoingMessage:
        sub = edition.subscriber
        group = self._group(edition)
        who = self._recipient(sub)
        mid = self.message_id(sub.id, edition.local_date)
        token = quote(sub.token, safe="")
        unsub = mail.list_unsubscribe(
            f"{self.config.site.base_url}/u/{token}", self._unsubscribe_mailto(), token
        )
        headers = (
            heads.from_,
            mail.fold_address("To", sub.name, sub.email),
            group.subject,
            heads.date,
            _message_id_line(mid),
            heads.lists,
            mail.MAIL_POLICY.fold_binary("List-Unsubscribe", unsub),
            heads.post,
        )
        data = mail.serialize(
            headers,
            mail.boundary_for(mid),
            self._fill(group.text, self._values(who, html=False)),
            self._fill(group.html, self._values(who, html=True)),
            trailer=(group.language,),
        )
        return self._outgoing(edition, mid, data)


@dataclass(frozen=True, slots=True)
class _BatchHeaders:
    """Header lines that are the same for every message of a batch."""

    from_: bytes
    date: bytes
    lists: bytes
    post: bytes


_SIMPLE_MID = re.compile(r"^<[0-9a-f]+@[a-z0-9.-]+>$")


def _message_id_line(mid: str) -> bytes:
    line = f"Message-ID: {mid}"
    if _SIMPLE_MID.match(mid) and len(line) <= 76:
        return (line + "\r\n").encode("ascii")
    return mail.fold("Message-ID", mid)
