"""Pure helpers for the subscription forms: the region tree, choice lists,
and turning submitted fields into a validated :class:`SubscriberDraft`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kabarfeed.errors import InputError
from kabarfeed.models import Subscriber, Taxonomy
from kabarfeed.subscribers import SubscriberDraft, default_timezone, validate_draft

AUTO_ZONE = "auto"
"""The time zone choice meaning "from the first chosen region"."""

ZONE_LABELS = {
    "Asia/Jakarta": "WIB (UTC+7)",
    "Asia/Pontianak": "WIB (UTC+7)",
    "Asia/Makassar": "WITA (UTC+8)",
    "Asia/Jayapura": "WIT (UTC+9)",
}


@dataclass(frozen=True, slots=True)
class RegionNode:
    """A province (or city) checkbox with its children."""

    slug: str
    name: str
    checked: bool
    children: tuple[RegionNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a select or checkbox list."""

    value: str
    label: str
    selected: bool = False


def region_tree(taxonomy: Taxonomy, selected: Iterable[str]) -> tuple[RegionNode, ...]:
    """The province → city tree with ``selected`` regions checked."""
    chosen = set(selected)

    def node(slug: str, name: str) -> RegionNode:
        kids = tuple(node(c.slug, c.name) for c in taxonomy.children(slug))
        return RegionNode(slug, name, slug in chosen, kids)

    return tuple(node(r.slug, r.name) for r in taxonomy.roots())


def collapse_regions(selected: Iterable[str], taxonomy: Taxonomy) -> tuple[str, ...]:
    """Known regions in taxonomy order, without those already covered by a
    chosen province (a province includes its cities)."""
    chosen = set(selected)
    return tuple(
        r.slug
        for r in taxonomy.regions
        if r.slug in chosen and not chosen.intersection(taxonomy.ancestors(r.slug))
    )


def category_choices(taxonomy: Taxonomy, selected: Iterable[str]) -> tuple[Choice, ...]:
    """Every category, ``selected`` ones ticked."""
    chosen = set(selected)
    return tuple(Choice(c.slug, c.name, c.slug in chosen) for c in taxonomy.categories)


def send_time_choices(current: str, *, step_minutes: int = 30) -> tuple[Choice, ...]:
    """``00:00`` … ``23:30``; a current value off the grid is kept as an option."""
    values = [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 24 * 60, step_minutes)]
    if current and current not in values:
        values = sorted([*values, current])
    return tuple(Choice(v, v, v == current) for v in values)


def zone_choices(
    taxonomy: Taxonomy, site_zone: str, current: str, *, auto_label: str | None
) -> tuple[Choice, ...]:
    """The zones of the taxonomy and the site (plus ``current``), optionally
    preceded by the automatic choice (selected when ``current`` is empty)."""
    zones: list[str] = []
    for zone in (*(r.timezone for r in taxonomy.regions), site_zone, current):
        if zone and zone not in zones:
            zones.append(zone)
    out = [Choice(AUTO_ZONE, auto_label, not current)] if auto_label is not None else []
    out += [Choice(z, f"{ZONE_LABELS.get(z, z)} · {z}", z == current) for z in zones]
    return tuple(out)


def language_choices(labels: dict[str, str], current: str) -> tuple[Choice, ...]:
    """The supported languages with ``current`` selected."""
    return tuple(Choice(code, label, code == current) for code, label in labels.items())


@dataclass(frozen=True, slots=True)
class Fields:
    """The submitted preference fields, as strings (a subset of the form)."""

    regions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    send_at: str = ""
    timezone: str = ""
    language: str = ""
    name: str | None = None
    frequency: str = ""
    """``daily``, ``weekly-<weekday 0..6>`` or ``breaking`` (one select: rhythm and day)."""
    breaking: bool = False
    """The breaking-alerts checkbox (a daily or weekly reader's opt-in)."""


def frequency_value(frequency: str, weekly_day: int) -> str:
    """The form value of a rhythm: ``daily``, ``weekly-<weekday>`` or ``breaking``."""
    if frequency == "breaking":
        return "breaking"
    return f"weekly-{weekly_day}" if frequency == "weekly" else "daily"


def frequency_choices(
    labels: Sequence[str], daily: str, current: str, breaking: str = ""
) -> tuple[Choice, ...]:
    """Daily, then weekly on each weekday (``labels``: weekly labels, Monday
    first), then breaking alerts only (when ``breaking`` labels it)."""
    values = [("daily", daily), *((f"weekly-{n}", label) for n, label in enumerate(labels))]
    if breaking:
        values.append(("breaking", breaking))
    chosen = current or "daily"
    return tuple(Choice(v, label, v == chosen) for v, label in values)


def parse_frequency(value: str) -> tuple[str | None, int | None]:
    """``(frequency, weekday)`` of a form value (``(None, None)`` when empty);
    :class:`InputError` when it is not one of the offered values."""
    if not value:
        return None, None
    if value in ("daily", "breaking"):
        return value, None
    kind, _, day = value.partition("-")
    if kind == "weekly" and len(day) == 1 and day in "0123456":
        return "weekly", int(day)
    raise InputError(f'unknown frequency "{value}"')


def preferences_draft(
    email: str, fields: Fields, taxonomy: Taxonomy, site_zone: str
) -> SubscriberDraft:
    """A validated draft from the form (:class:`InputError` on any bad value).

    Regions and categories come out in taxonomy order; provinces swallow their
    chosen cities; the ``auto`` zone becomes the zone of the first chosen
    region (else the site's).
    """
    frequency, weekly_day = parse_frequency(fields.frequency)
    draft = validate_draft(
        SubscriberDraft(
            email=email,
            name=fields.name,
            regions=fields.regions,
            categories=fields.categories,
            timezone=None if fields.timezone in ("", AUTO_ZONE) else fields.timezone,
            send_at=fields.send_at or None,
            language=fields.language or None,
            frequency=frequency,
            weekly_day=weekly_day,
            breaking_alerts=fields.breaking,
        ),
        taxonomy,
    )
    regions = collapse_regions(draft.regions or (), taxonomy)
    chosen = set(draft.categories or ())
    categories = tuple(c.slug for c in taxonomy.categories if c.slug in chosen)
    zone = draft.timezone or default_timezone(regions, taxonomy, site_zone)
    return SubscriberDraft(
        email=draft.email,
        name=draft.name,
        regions=regions,
        categories=categories,
        timezone=zone,
        send_at=draft.send_at,
        language=draft.language,
        frequency=draft.frequency,
        weekly_day=draft.weekly_day,
        breaking_alerts=draft.breaking_alerts,
    )


def check_known(values: Sequence[str], known: Iterable[str], what: str) -> None:
    """:class:`InputError` when a submitted value is not among the offered ones."""
    allowed = set(known)
    for value in values:
        if value not in allowed:
            raise InputError(f'unknown {what} "{value}"')


def current_fields(sub: Subscriber) -> Fields:
    """The form values showing ``sub``'s current preferences."""
    return Fields(
        sub.regions,
        sub.categories,
        sub.send_at,
        sub.timezone,
        sub.language,
        sub.name or "",
        frequency_value(sub.frequency, sub.weekly_day),
        sub.breaking_alerts,
    )
