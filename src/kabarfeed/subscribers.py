"""Subscriber rules, free of I/O: address validation, defaults, tokens, CSV rows.

Addresses are validated and normalised with ``email-validator`` (syntax only,
no DNS); uniqueness is case-insensitive through :func:`email_key`. Tokens are
``secrets.token_urlsafe(24)`` (192 random bits) and appear only in links.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from kabarfeed.config import Config
from kabarfeed.errors import InputError
from kabarfeed.models import Consent, Subscriber, SubscriberStatus, Taxonomy

LANGUAGES = ("id", "en")
CSV_COLUMNS = (
    "email",
    "name",
    "regions",
    "categories",
    "timezone",
    "send_at",
    "language",
    "status",
    "created_at",
    "confirmed_at",
    "consent_at",
    "consent_method",
    "frequency",
    "weekday",
    "breaking",
)
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_NAMES = (
    ("monday", "senin"),
    ("tuesday", "selasa"),
    ("wednesday", "rabu"),
    ("thursday", "kamis"),
    ("friday", "jumat", "jum'at"),
    ("saturday", "sabtu"),
    ("sunday", "minggu", "ahad"),
)
_FREQUENCIES = {
    "daily": "daily",
    "harian": "daily",
    "weekly": "weekly",
    "mingguan": "weekly",
    "breaking": "breaking",
    "kilat": "breaking",
}
_YES = ("yes", "y", "true", "1", "on", "ya")
_NO = ("no", "n", "false", "0", "off", "tidak")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_LIST_SPLIT = re.compile(r"[\s,;|]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True, slots=True)
class SubscriberDraft:
    """A subscriber to create or update. ``None`` fields take defaults on create
    and are left alone on update."""

    email: str
    name: str | None = None
    regions: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    timezone: str | None = None
    send_at: str | None = None
    language: str | None = None
    status: SubscriberStatus | None = None
    consent: Consent | None = None
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    frequency: str | None = None
    """``daily`` or ``weekly``."""
    weekly_day: int | None = None
    """Weekday of a weekly edition, Monday 0 ... Sunday 6."""
    breaking_alerts: bool | None = None
    """A daily or weekly reader's opt-in to breaking alerts."""


def normalize_email(raw: str) -> str:
    """The normalised address (domain lower-cased, IDN folded); :class:`InputError` if invalid."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise InputError(f'"{raw.strip()}" is not a valid email address: {e}') from e


def email_key(email: str) -> str:
    """The case-insensitive uniqueness key of a normalised address."""
    return email.casefold()


def new_token() -> str:
    """A fresh opaque link token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def clean_name(name: str | None) -> str | None:
    """A display name without control characters or line breaks (``None`` if blank)."""
    if name is None:
        return None
    cleaned = " ".join(_CONTROL.sub(" ", name).split())
    return cleaned[:200] or None


def check_regions(regions: Iterable[str], taxonomy: Taxonomy) -> tuple[str, ...]:
    """``regions`` without duplicates, each a known slug (else :class:`InputError`)."""
    valid = [r.slug for r in taxonomy.regions]
    return _check_slugs("region", regions, valid)


def check_categories(categories: Iterable[str], taxonomy: Taxonomy) -> tuple[str, ...]:
    """``categories`` without duplicates, each a known slug (else :class:`InputError`)."""
    valid = [c.slug for c in taxonomy.categories]
    return _check_slugs("category", categories, valid)


def _check_slugs(kind: str, given: Iterable[str], valid: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for slug in (s.strip().lower() for s in given):
        if slug and slug not in valid:
            raise InputError(f'unknown {kind} "{slug}" (valid: {", ".join(valid) or "none"})')
        if slug and slug not in out:
            out.append(slug)
    return tuple(out)


def check_timezone(tz: str) -> str:
    """``tz`` if it is an IANA zone name, else :class:`InputError`."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InputError(f'"{tz}" is not a time zone like "Asia/Makassar"') from e
    return tz


def check_send_at(value: str) -> str:
    """``"HH:MM"`` (24 h); :class:`InputError` otherwise. ``"6:00"`` becomes ``"06:00"``."""
    value = value.strip()
    if len(value) == 4 and value[1] == ":":
        value = "0" + value
    if not _HHMM.match(value):
        raise InputError(f'"{value}" is not a send time like "06:00"')
    return value


def check_language(value: str) -> str:
    """``id`` or ``en``; :class:`InputError` otherwise."""
    lang = value.strip().lower()
    if lang not in LANGUAGES:
        raise InputError(f'language "{value}" is not supported (valid: {", ".join(LANGUAGES)})')
    return lang


def check_frequency(value: str) -> str:
    """``daily``, ``weekly`` or ``breaking`` (also ``harian``/``mingguan``/``kilat``);
    :class:`InputError` otherwise."""
    found = _FREQUENCIES.get(value.strip().lower())
    if found is None:
        raise InputError(f'frequency "{value}" is not daily, weekly or breaking')
    return found


def check_yes_no(value: str, what: str) -> bool:
    """A yes/no cell (``yes``/``no``, ``true``/``false``, ``1``/``0``, ``ya``/``tidak``);
    :class:`InputError` otherwise."""
    text = value.strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise InputError(f'{what} "{value}" is not yes or no')


def check_weekday(value: str | int) -> int:
    """A weekday as 0 (Monday) ... 6 (Sunday), from a number or an English or
    Indonesian name (``monday``/``senin``, ``mon``); :class:`InputError` otherwise."""
    text = str(value).strip().lower()
    if text.isdigit() and int(text) < 7:
        return int(text)
    for number, names in enumerate(_WEEKDAY_NAMES):
        if text in names or (len(text) >= 3 and any(n.startswith(text) for n in names)):
            return number
    raise InputError(f'"{value}" is not a weekday (monday ... sunday, or 0 ... 6)')


def default_timezone(regions: Sequence[str], taxonomy: Taxonomy, site_timezone: str) -> str:
    """The zone of the first region, else the site's zone."""
    region = taxonomy.region(regions[0]) if regions else None
    return region.timezone if region else site_timezone


def validate_draft(draft: SubscriberDraft, taxonomy: Taxonomy) -> SubscriberDraft:
    """``draft`` with every given field checked and normalised (no defaults added)."""
    return replace(
        draft,
        email=normalize_email(draft.email),
        name=clean_name(draft.name),
        regions=None if draft.regions is None else check_regions(draft.regions, taxonomy),
        categories=None
        if draft.categories is None
        else check_categories(draft.categories, taxonomy),
        timezone=None if draft.timezone is None else check_timezone(draft.timezone),
        send_at=None if draft.send_at is None else check_send_at(draft.send_at),
        language=None if draft.language is None else check_language(draft.language),
        frequency=None if draft.frequency is None else check_frequency(draft.frequency),
        weekly_day=None if draft.weekly_day is None else check_weekday(draft.weekly_day),
    )


def greets(sub: Subscriber) -> bool:
    """Whether the subscriber's first edition welcomes them: yes for those who
    signed up (web, CLI, seed), not for lists imported from another tool."""
    return sub.consent is None or sub.consent.method != "import"


def with_defaults(draft: SubscriberDraft, config: Config) -> SubscriberDraft:
    """A validated ``draft`` completed with defaults for a new subscriber."""
    regions = draft.regions or ()
    return replace(
        draft,
        regions=regions,
        categories=draft.categories or (),
        timezone=draft.timezone or default_timezone(regions, config.taxonomy, config.site.timezone),
        send_at=draft.send_at or config.digest.send_at,
        language=draft.language or config.site.language,
        status=draft.status or SubscriberStatus.ACTIVE,
        frequency=draft.frequency or "daily",
        weekly_day=draft.weekly_day if draft.weekly_day is not None else 0,
        breaking_alerts=bool(draft.breaking_alerts),
    )


# -- CSV ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvRow:
    """A valid CSV row and the line it starts on."""

    line: int
    draft: SubscriberDraft


@dataclass(frozen=True, slots=True)
class CsvProblem:
    """A rejected CSV row: its line number and why."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class CsvParse:
    """Every good row and every problem of one CSV file."""

    rows: tuple[CsvRow, ...]
    problems: tuple[CsvProblem, ...]


def split_list(value: str) -> tuple[str, ...]:
    """``"balikpapan samarinda"`` / ``"a,b"`` / ``"a;b"`` / ``"a|b"`` -> slugs."""
    return tuple(s for s in _LIST_SPLIT.split(value.strip()) if s)


def _parse_time(value: str, column: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InputError(f'{column} "{value}" is not an ISO date-time') from e
    if parsed.tzinfo is None:
        raise InputError(f'{column} "{value}" has no UTC offset')
    return parsed


def _status(value: str) -> SubscriberStatus | None:
    if not value:
        return None
    try:
        return SubscriberStatus(value.strip().lower())
    except ValueError as e:
        valid = ", ".join(s.value for s in SubscriberStatus)
        raise InputError(f'status "{value}" is not one of {valid}') from e


def _row_draft(row: dict[str, str], taxonomy: Taxonomy, now: datetime) -> SubscriberDraft:
    def get(column: str) -> str:
        return (row.get(column) or "").strip()

    def opt(column: str) -> str | None:
        return get(column) or None

    if not get("email"):
        raise InputError("email is empty")
    consent_at = _parse_time(get("consent_at"), "consent_at") or now
    consent = Consent(consent_at, get("consent_method") or "import")
    draft = SubscriberDraft(
        email=get("email"),
        name=opt("name"),
        regions=split_list(get("regions")) if "regions" in row else None,
        categories=split_list(get("categories")) if "categories" in row else None,
        timezone=opt("timezone"),
        send_at=opt("send_at"),
        language=opt("language"),
        status=_status(get("status")),
        consent=consent,
        created_at=_parse_time(get("created_at"), "created_at"),
        confirmed_at=_parse_time(get("confirmed_at"), "confirmed_at"),
        frequency=opt("frequency"),
        weekly_day=check_weekday(get("weekday")) if get("weekday") else None,
        breaking_alerts=check_yes_no(get("breaking"), "breaking") if get("breaking") else None,
    )
    return validate_draft(draft, taxonomy)


def parse_csv(text: str, taxonomy: Taxonomy, *, now: datetime) -> CsvParse:
    """Parse subscriber CSV (header row; ``email`` required, other columns
    optional, see :data:`CSV_COLUMNS`). Bad rows become problems with their
    line number; a repeated address is a problem on its later line."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "email" not in header:
        return CsvParse((), (CsvProblem(1, 'the header row has no "email" column'),))
    reader.fieldnames = header
    rows: list[CsvRow] = []
    problems: list[CsvProblem] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        try:
            draft = _row_draft({k: v or "" for k, v in raw.items() if k}, taxonomy, now)
            first = seen.setdefault(email_key(draft.email), line)
            if first != line:
                raise InputError(f"{draft.email} already appears on line {first}")
            rows.append(CsvRow(line, draft))
        except InputError as e:
            problems.append(CsvProblem(line, e.message))
    return CsvParse(tuple(rows), tuple(problems))


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def csv_record(sub: Subscriber) -> list[str]:
    """One export row, in :data:`CSV_COLUMNS` order (re-importable as is)."""
    consent = sub.consent
    return [
        sub.email,
        sub.name or "",
        " ".join(sub.regions),
        " ".join(sub.categories),
        sub.timezone,
        sub.send_at,
        sub.language,
        sub.status.value,
        _iso(sub.created_at),
        _iso(sub.confirmed_at),
        _iso(consent.at if consent else None),
        consent.method if consent else "",
        sub.frequency,
        WEEKDAY_NAMES[sub.weekly_day] if sub.frequency == "weekly" else "",
        "yes" if sub.breaking_alerts else "no",
    ]
