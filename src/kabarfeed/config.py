"""Load ``config.toml`` (+ environment overrides) into validated, frozen objects.

Every problem is reported at once, each naming the file and the key path::

    config.toml: sources[2].interval: "15x" is not a duration like "15m"

Relative paths resolve against the config file's folder. Environment variables
``KABARFEED_<SECTION>_<KEY>`` override scalar keys of the single-table
sections (e.g. ``KABARFEED_SMTP_PASSWORD``, ``KABARFEED_STORAGE_URL``); that is
where secrets belong.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from kabarfeed.errors import ConfigError
from kabarfeed.models import Category, Region, Taxonomy

ENV_PREFIX = "KABARFEED_"
DEFAULT_CONFIG_NAME = "config.toml"
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?")
MAX_DURATION_SECONDS = 100 * 365 * 86400
"""The longest duration a config value may name (100 years)."""
MAX_REGION_DEPTH = 8
"""Province → city → ... : how deep regions may nest."""
MAX_PROBLEM_CHARS = 300


def parse_duration(value: object) -> timedelta:
    """Parse ``"15m"``, ``"2h"``, ``"7d"``, ``"500ms"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        seconds = float(value) if value <= MAX_DURATION_SECONDS else math.inf
    elif isinstance(value, str) and len(value) <= 64:
        match = _DURATION_RE.match(value)
        if match:
            seconds = float(match[1]) * _DURATION_UNITS[match[2]]
    if seconds is None:
        raise ValueError(f'{shown(value)} is not a duration like "15m" (units: ms, s, m, h, d, w)')
    if not seconds <= MAX_DURATION_SECONDS:
        raise ValueError(
            f"{shown(value)} is too long (at most {MAX_DURATION_SECONDS // 86400} days)"
        )
    return timedelta(seconds=seconds)


def shown(value: object, limit: int = 60) -> str:
    """``value`` for an error message: quoted, escapes visible, one line, short."""
    text = value if isinstance(value, str) else type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        text = f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    quoted = repr(text) if _CONTROL_CHARS.search(text) else f'"{text}"'
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + '..."'


def _check_phrase(value: str) -> str:
    """Text that ends up in a mail header (names, titles): no line breaks or
    control characters (they would start a new header)."""
    if _CONTROL_CHARS.search(value):
        raise ValueError(
            f"{shown(value)} contains a line break or control character "
            "(not allowed in a value used in mail headers)"
        )
    return value


def _check_address(value: str) -> str:
    """An email address (no display name) for a header or the SMTP envelope;
    empty means "not set"."""
    _check_phrase(value)
    if not value:
        return value
    try:
        # Syntax only; test and internal domains (".test", no dot) are the admin's call.
        validate_email(
            value, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as e:
        raise ValueError(f"{shown(value)} is not an email address like news@example.id: {e}") from e
    return value


def _check_host(value: str) -> str:
    """A host name (or empty): letters, digits, dots and hyphens."""
    if value and not _HOST_RE.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a host name like mail.example.id")
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f'"{value}" is not an IANA time zone (e.g. "Asia/Jakarta", "Asia/Makassar")'
        ) from e
    return value


def _check_slug(value: str) -> str:
    if not _SLUG_RE.match(value):
        raise ValueError(f'"{value}" is not a slug (lowercase letters, digits and hyphens)')
    return value


def _check_hhmm(value: str) -> str:
    if not _HHMM_RE.match(value):
        raise ValueError(f'"{value}" is not a time like "06:00"')
    return value


def _check_quiet(value: str) -> str:
    found = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", value)
    if value and (found is None or found.group(1, 2) == found.group(3, 4)):
        raise ValueError(f'"{value}" is not a time range like "22:00-06:00" (or "" for none)')
    return value


def _check_http_url(value: str) -> str:
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f'"{value}" is not an http(s) URL')
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
TimeZoneName = Annotated[str, AfterValidator(_check_zone)]
Slug = Annotated[str, AfterValidator(_check_slug)]
HHMM = Annotated[str, AfterValidator(_check_hhmm)]
Phrase = Annotated[str, AfterValidator(_check_phrase)]
"""Text used in mail headers (a display name, a title)."""
EmailAddress = Annotated[str, AfterValidator(_check_address)]
"""A bare email address used in headers or the SMTP envelope ("" = not set)."""
HostName = Annotated[str, AfterValidator(_check_host)]


def _check_welcome(value: str) -> str:
    if value == "off" or re.fullmatch(r"latest:([1-9]\d?|1\d\d|200)", value):
        return value
    raise ValueError(f'"{value}" is not "off" or "latest:N" (N from 1 to 200), e.g. "latest:10"')


Welcome = Annotated[str, AfterValidator(_check_welcome)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Section):
    """``[site]``: identity of the publication."""

    title: Phrase = "Nusantara Plus"
    base_url: str = "http://127.0.0.1:8080"
    language: Literal["id", "en"] = "id"
    timezone: TimeZoneName = "Asia/Makassar"
    description: str = ""
    postal_address: str = ""
    secret: SecretStr = SecretStr("")
    assets: Path | None = None

    @model_validator(mode="after")
    def _strip_base(self) -> SiteConfig:
        if not re.match(r"^https?://[^/\s]+", self.base_url) or re.search(
            r"[\s\x00-\x1f\x7f-\x9f<>\"]", self.base_url
        ):
            raise ValueError(
                f"base_url {shown(self.base_url)} must be an http:// or https:// URL "
                "without spaces, quotes or control characters"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        return self


class StorageConfig(_Section):
    """``[storage]``: database URL (SQLite default, PostgreSQL for scale-out)."""

    url: str = "sqlite:///var/kabarfeed.db"


class SourceConfig(_Section):
    """One ``[[sources]]`` entry."""

    name: Slug
    kind: Literal["directory", "feed"]
    path: Path | None = None
    url: str | None = None
    interval: Duration = timedelta(minutes=15)
    region: Slug | None = None
    category: Slug | None = None
    enabled: bool = True
    push_secret: SecretStr = SecretStr("")
    """Shared secret of the signed push webhook (``X-Signature: sha256=...``);
    ``KABARFEED_SOURCE_<NAME>_PUSH_SECRET`` in the environment wins."""

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceConfig:
        if self.kind == "directory" and self.path is None:
            raise ValueError('a "directory" source needs path = "folder"')
        if self.kind == "feed" and not self.url:
            raise ValueError('a "feed" source needs url = "https://..."')
        if self.kind == "feed" and self.url and not re.match(r"^(https?://|file:)", self.url):
            raise ValueError(f'url "{self.url}" must be http://, https:// or file:')
        return self


class RegionConfig(_Section):
    """One ``[[regions]]`` entry (province or city/regency)."""

    slug: Slug
    name: str
    parent: Slug | None = None
    timezone: TimeZoneName | None = None
    aliases: tuple[str, ...] = ()


class CategoryConfig(_Section):
    """One ``[[categories]]`` entry."""

    slug: Slug
    name: str
    keywords: tuple[str, ...] = ()


class IngestConfig(_Section):
    """``[ingest]``: fetch limits and retry policy for feed sources."""

    timeout: Duration = timedelta(seconds=20)
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    retry_base: Duration = timedelta(minutes=5)
    retry_max: Duration = timedelta(hours=6)
    interval_jitter: float = Field(default=0.1, ge=0, le=1)
    concurrency: int = Field(default=4, ge=1, le=64)
    """Sources read at the same time (ingest, the service); a slow upstream holds only its slot."""
    max_title_chars: int = Field(default=1000, ge=10)
    max_author_chars: int = Field(default=200, ge=10)
    max_summary_chars: int = Field(default=10_000, ge=100)
    """Cap of a summary as the source gives it (stored summaries are shorter still)."""
    max_tags: int = Field(default=50, ge=1)
    """Tags, categories and regions hints kept per article (each list)."""
    max_tag_chars: int = Field(default=100, ge=10)
    max_body_chars: int = Field(default=1_000_000, ge=1000)
    """Cap of an article's sanitised HTML body; longer bodies are cut at an element boundary."""


class FeedsConfig(_Section):
    """``[feeds]``: what is published and where."""

    output: Path = Path("public")
    items: int = Field(default=50, gt=0, le=1000)
    formats: tuple[Literal["rss", "atom", "json"], ...] = ("rss", "atom", "json")
    full_content: bool = True
    websub_hub: Annotated[str, AfterValidator(_check_http_url)] = ""
    cache_max_age: Duration = timedelta(minutes=5)
    build_delay: Duration = timedelta(seconds=10)


class DigestConfig(_Section):
    """``[digest]``: what goes into each subscriber's daily edition."""

    send_at: HHMM = "06:00"
    max_age: Duration = timedelta(hours=48)
    first_window: Duration = timedelta(hours=24)
    max_articles: int = Field(default=30, gt=0, le=200)
    summary_chars: int = Field(default=300, gt=0)
    skip_empty: bool = True
    max_lateness: Duration = timedelta(hours=6)
    from_address: Annotated[EmailAddress, Field(min_length=1)] = "redaksi@news.example.id"
    from_name: Phrase = ""
    reply_to: EmailAddress = ""
    unsubscribe_mailto: EmailAddress = ""
    advertorial_label: Phrase = "Advertorial"
    logo_url: str = ""
    templates: Path | None = None
    welcome: Welcome = "latest:10"
    breaking_max_per_day: int = Field(default=3, ge=0, le=100)
    """Breaking alerts per subscriber per local day (0: no breaking alerts)."""
    breaking_quiet: Annotated[str, AfterValidator(_check_quiet)] = "22:00-06:00"
    """Local quiet hours of each subscriber's zone; alerts wait until they end ("": none)."""
    breaking_max_age: Duration = timedelta(hours=6)
    """An article published longer ago than this sends no breaking alert."""
    weekly_repeats_breaking: bool = False
    """Whether a weekly edition also lists articles its reader got as breaking alerts."""

    @property
    def welcome_articles(self) -> int:
        """How many articles a welcome edition holds (0: welcome editions are off)."""
        return 0 if self.welcome == "off" else int(self.welcome.removeprefix("latest:"))


class SmtpConfig(_Section):
    """``[smtp]``: the outgoing mail server. No host means maildir delivery."""

    host: str = ""
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout: Duration = timedelta(minutes=5)
    """EHLO, STARTTLS, AUTH, RSET and QUIT replies (the steps below have their own)."""
    greeting_timeout: Duration = timedelta(minutes=5)
    """Connect and the 220 greeting (RFC 5321 4.5.3.2.1: 5 min)."""
    mail_timeout: Duration = timedelta(minutes=5)
    """The reply to MAIL FROM (4.5.3.2.2: 5 min)."""
    rcpt_timeout: Duration = timedelta(minutes=5)
    """The reply to RCPT TO (4.5.3.2.3: 5 min)."""
    data_timeout: Duration = timedelta(minutes=2)
    """The 354 reply to DATA (4.5.3.2.4: 2 min)."""
    data_block_timeout: Duration = timedelta(minutes=3)
    """Each block of message data reaching the network (4.5.3.2.5: 3 min)."""
    data_end_timeout: Duration = timedelta(minutes=10)
    """The reply to the final dot (4.5.3.2.6: 10 min); past it the outcome is unknown."""
    unknown_retries: int = Field(default=1, ge=0, le=10)
    """How often an unknown outcome is sent again (same Message-ID); 0: left for an admin."""
    unknown_retry_after: Duration = timedelta(minutes=30)
    confirmation_timeout: Duration = timedelta(seconds=30)
    """Caps every step of a confirmation mail, which a web request waits for."""
    ca_file: Path | None = None
    verify_tls: bool = True
    pool_size: int = Field(default=4, gt=0, le=64)
    max_per_connection: int = Field(default=100, gt=0)
    rate_per_second: float = Field(default=0, ge=0)
    rate_per_minute: float = Field(default=0, ge=0)
    max_attempts: int = Field(default=5, gt=0)
    retry_base: Duration = timedelta(minutes=1)
    retry_max: Duration = timedelta(hours=2)
    bounce_threshold: int = Field(default=3, gt=0)
    envelope_from: EmailAddress = ""
    pause_after_failures: int = Field(default=10, gt=0)
    helo: HostName = ""
    reconnect_base: Duration = timedelta(seconds=1)
    reconnect_max: Duration = timedelta(minutes=1)
    batch_size: int = Field(default=200, gt=0, le=10000)
    lease: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _waits_are_positive(self) -> SmtpConfig:
        zero = [name for name in _SMTP_WAITS if not getattr(self, name)]
        if zero:
            raise ValueError(f"{', '.join(zero)} must be longer than 0s")
        return self


_SMTP_WAITS = (
    "timeout",
    "confirmation_timeout",
    "greeting_timeout",
    "mail_timeout",
    "rcpt_timeout",
    "data_timeout",
    "data_block_timeout",
    "data_end_timeout",
    "lease",
)
"""``[smtp]`` durations a sender waits on: 0 would fail every step (or every lease)."""


class MaildirConfig(_Section):
    """``[maildir]``: where messages go when no SMTP host is configured."""

    path: Path = Path("var/maildir")


class DkimConfig(_Section):
    """``[dkim]``: optional DKIM signing of outgoing mail."""

    enabled: bool = False
    domain: HostName = ""
    selector: HostName = ""
    key_file: Path | None = None
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"

    @model_validator(mode="after")
    def _complete(self) -> DkimConfig:
        if self.enabled and not (self.domain and self.selector and self.key_file):
            raise ValueError("enabled DKIM needs domain, selector and key_file")
        return self


class WebConfig(_Section):
    """``[web]``: the HTTP server (feeds, subscription pages)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, lt=65536)
    confirm_ttl: Duration = timedelta(days=7)
    resend_interval: Duration = timedelta(minutes=10)
    subscribe_per_ip_per_hour: int = Field(default=20, gt=0)
    subscribe_per_address_per_hour: int = Field(default=5, gt=0)
    consent_version: str = "2025-11"
    form_ttl: Duration = timedelta(hours=4)
    metrics_token: SecretStr = SecretStr("")
    max_body: int = Field(default=1024 * 1024, gt=0, le=1024**3)
    header_timeout: Duration = timedelta(seconds=10)
    keep_alive: Duration = timedelta(seconds=5)
    max_connections: int = Field(default=2048, gt=0, le=1_000_000)


class ApiConfig(_Section):
    """``[api]``: the CMS push API under ``/api/v1``."""

    requests_per_minute: int = Field(default=120, gt=0, le=100_000)
    """Per token (or per signed-webhook source), shared by every process."""
    build_delay: Duration = timedelta(milliseconds=250)
    """A push's feed rebuild waits this long for more pushes (a burst builds once)."""
    build_max_wait: Duration = timedelta(seconds=1)
    """...but never longer than this after the first push of a burst."""


class BouncesConfig(_Section):
    """``[bounces]``: hearing back from the mail world (DSNs, complaints, webhooks)."""

    address: str = ""
    maildir: Path | None = None
    imap_url: str = ""
    imap_password: SecretStr = SecretStr("")
    imap_folder_done: str = "kabarfeed-processed"
    imap_ca_file: Path | None = None
    poll_interval: Duration = timedelta(minutes=1)
    failed: Path = Path("var/bounces-failed")
    max_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    soft_threshold: int = Field(default=5, gt=0)
    soft_window: Duration = timedelta(days=30)
    postmark_user: str = ""
    postmark_password: SecretStr = SecretStr("")
    postmark_path_secret: SecretStr = SecretStr("")
    mailgun_signing_key: SecretStr = SecretStr("")
    webhook_max_age: Duration = timedelta(minutes=5)
    sendgrid_public_key: str = ""
    ses_topic_arns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> BouncesConfig:
        if self.address and "@" not in self.address:
            raise ValueError(f'address "{self.address}" is not an email address')
        if self.address and "+" in self.address.split("@", 1)[0]:
            raise ValueError(f'address "{self.address}" must not contain "+" (VERP adds it)')
        if self.imap_url and not re.match(r"^imaps?://[^/\s]+", self.imap_url):
            raise ValueError(f'imap_url "{self.imap_url}" must be imaps://... or imap://...')
        return self


class AdminConfig(_Section):
    """``[admin]``: the newsroom console at ``/admin`` (accounts come from the CLI)."""

    enabled: bool = True
    host: str = ""
    listen: str = ""
    session_idle: Duration = timedelta(minutes=30)
    session_max: Duration = timedelta(hours=12)
    invite_ttl: Duration = timedelta(days=3)
    login_per_ip: int = Field(default=20, gt=0)
    login_per_account: int = Field(default=5, gt=0)
    login_window: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _check(self) -> AdminConfig:
        if self.session_idle > self.session_max:
            raise ValueError("session_idle must not be longer than session_max")
        if self.host and not re.match(r"^[A-Za-z0-9.-]+(:\d+)?$", self.host):
            raise ValueError(f'host "{self.host}" is not a host name like "admin.example.id"')
        if self.listen and self.listen_address() is None:
            raise ValueError(f'listen "{self.listen}" is not an address like "127.0.0.1:8081"')
        return self

    def listen_address(self) -> tuple[str, int] | None:
        """``listen`` as (host, port): the console's own listener, or ``None``."""
        match = re.match(r"^\[?([A-Za-z0-9.:-]+?)\]?:(\d{1,5})$", self.listen)
        if not match or int(match[2]) > 65535:
            return None
        return match[1], int(match[2])


class SeedConfig(_Section):
    """``[seed]``: sample data ``run`` imports once (the bundled config's demo readers)."""

    subscribers: Path | None = None


class LoggingConfig(_Section):
    """``[logging]``: text on a terminal, or JSON lines."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class SchedulerConfig(_Section):
    """``[scheduler]``: cadences of ``kabarfeed run`` (sources use their own interval)."""

    digest_check: Duration = timedelta(minutes=1)
    drain_interval: Duration = timedelta(seconds=30)
    heartbeat: Duration = timedelta(seconds=15)
    build_max_wait: Duration = timedelta(minutes=2)
    catch_up_days: int = Field(default=7, gt=0, le=60)
    shutdown_timeout: Duration = timedelta(seconds=25)
    watch: bool = True


class Config(_Section):
    """The whole validated configuration. Immutable; reload builds a new one."""

    site: SiteConfig = SiteConfig()
    storage: StorageConfig = StorageConfig()
    ingest: IngestConfig = IngestConfig()
    sources: tuple[SourceConfig, ...] = ()
    regions: tuple[RegionConfig, ...] = ()
    categories: tuple[CategoryConfig, ...] = ()
    feeds: FeedsConfig = FeedsConfig()
    digest: DigestConfig = DigestConfig()
    smtp: SmtpConfig = SmtpConfig()
    maildir: MaildirConfig = MaildirConfig()
    dkim: DkimConfig = DkimConfig()
    web: WebConfig = WebConfig()
    logging: LoggingConfig = LoggingConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    seed: SeedConfig = SeedConfig()
    admin: AdminConfig = AdminConfig()
    bounces: BouncesConfig = BouncesConfig()
    api: ApiConfig = ApiConfig()
    path: Path | None = Field(default=None, exclude=True)

    @property
    def taxonomy(self) -> Taxonomy:
        """Regions (zones inherited from parents, else the site zone) and categories."""
        return build_taxonomy(self)

    def source(self, name: str) -> SourceConfig | None:
        """The source named ``name``, or ``None``."""
        return next((s for s in self.sources if s.name == name), None)


def build_taxonomy(config: Config) -> Taxonomy:
    """Turn the region/category config into the pure :class:`Taxonomy`."""
    by_slug = {r.slug: r for r in config.regions}

    def zone(slug: str) -> str:
        seen: set[str] = set()
        region = by_slug[slug]
        while not region.timezone:
            seen.add(region.slug)
            if not region.parent or region.parent not in by_slug or region.parent in seen:
                return config.site.timezone
            region = by_slug[region.parent]
        return region.timezone

    regions = tuple(
        Region(r.slug, r.name, zone(r.slug), r.parent, tuple(r.aliases)) for r in config.regions
    )
    categories = tuple(Category(c.slug, c.name, tuple(c.keywords)) for c in config.categories)
    return Taxonomy(regions, categories)


def _tables(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The ``[[key]]`` tables of raw config data (non-tables become empty)."""
    items = data.get(key)
    if not isinstance(items, list | tuple):
        return []
    return [item if isinstance(item, Mapping) else {} for item in items]


def _str(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    return value if isinstance(value, str) and value else None


def _cross_checks(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems that span several keys: duplicates, unknown references, cycles.

    Works on the raw data, so they are reported together with per-key
    problems instead of only after those are fixed.
    """
    problems: list[tuple[str, str]] = []
    for key, ident in (("sources", "name"), ("regions", "slug"), ("categories", "slug")):
        seen: set[str] = set()
        for i, table in enumerate(_tables(data, key)):
            value = _str(table, ident)
            if value in seen:
                problems.append((f"{key}[{i}]", f'"{value}" is defined twice'))
            if value:
                seen.add(value)
    regions = _tables(data, "regions")
    parents = {_str(r, "slug"): _str(r, "parent") for r in regions}
    region_slugs = {slug for slug in parents if slug}
    category_slugs = {c for c in (_str(t, "slug") for t in _tables(data, "categories")) if c}
    for i, region in enumerate(regions):
        parent = _str(region, "parent")
        if parent and parent not in region_slugs:
            problems.append((f"regions[{i}].parent", _unknown("region", parent, region_slugs)))
        elif parent and _in_cycle(_str(region, "slug"), parents):
            problems.append((f"regions[{i}].parent", f'"{parent}" makes a cycle'))
        elif parent and _depth(_str(region, "slug"), parents) > MAX_REGION_DEPTH:
            problems.append(
                (f"regions[{i}].parent", f"regions nest deeper than {MAX_REGION_DEPTH} levels")
            )
    for i, source in enumerate(_tables(data, "sources")):
        for key, valid in (("region", region_slugs), ("category", category_slugs)):
            value = _str(source, key)
            if value and value not in valid:
                problems.append((f"sources[{i}].{key}", _unknown(key, value, valid)))
    return problems


def _in_cycle(slug: str | None, parents: Mapping[str | None, str | None]) -> bool:
    seen: set[str] = set()
    node = parents.get(slug)
    while node and node not in seen:
        if node == slug:
            return True
        seen.add(node)
        node = parents.get(node)
    return False


def _depth(slug: str | None, parents: Mapping[str | None, str | None]) -> int:
    """How many levels a region sits below its root (cycles counted once)."""
    seen: set[str] = set()
    node = slug
    while node and node not in seen:
        seen.add(node)
        node = parents.get(node)
    return len(seen)


def _unknown(kind: str, value: str, valid: set[str]) -> str:
    choices = ", ".join(sorted(valid)) or "none defined"
    return f'unknown {kind} "{value}" (valid: {choices})'


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = str(part)
        else:
            out += f".{part}"
    return out or "(top level)"


def _format_error(err: Mapping[str, Any]) -> tuple[str, str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see the commented config.toml)"
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] in ("literal_error", "enum"):
        message = f"{shown(err.get('input'))} is not allowed: {message.lower()}"
    return _format_loc(loc), _one_line(message)


def _one_line(text: str) -> str:
    """A problem as one bounded line (values can be hostile: long, multi-line)."""
    flat = " ".join(
        repr(part)[1:-1] if _CONTROL_CHARS.search(part) else part for part in text.split()
    )
    return flat if len(flat) <= MAX_PROBLEM_CHARS else flat[: MAX_PROBLEM_CHARS - 3] + "..."


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``KABARFEED_SECTION_KEY`` variables to single-table sections."""
    sections = {
        name for name, field in Config.model_fields.items() if isinstance(field.default, BaseModel)
    }
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in sections and key:
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value
    return merged


def _resolve_paths(config: Config, base: Path) -> Config:
    """Make every relative path (and relative SQLite URL) absolute against ``base``."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p).resolve()

    url = resolve_storage_url(config.storage.url, base)

    def fix_url(u: str | None) -> str | None:
        if u and u.startswith("file:") and not u.startswith("file:///"):
            return (base / u.removeprefix("file:").removeprefix("//")).resolve().as_uri()
        return u

    return config.model_copy(
        update={
            "path": config.path,
            "storage": config.storage.model_copy(update={"url": url}),
            "sources": tuple(
                s.model_copy(update={"path": fix(s.path), "url": fix_url(s.url)})
                for s in config.sources
            ),
            "feeds": config.feeds.model_copy(update={"output": fix(config.feeds.output)}),
            "digest": config.digest.model_copy(update={"templates": fix(config.digest.templates)}),
            "smtp": config.smtp.model_copy(update={"ca_file": fix(config.smtp.ca_file)}),
            "maildir": config.maildir.model_copy(update={"path": fix(config.maildir.path)}),
            "dkim": config.dkim.model_copy(update={"key_file": fix(config.dkim.key_file)}),
            "site": config.site.model_copy(update={"assets": fix(config.site.assets)}),
            "seed": config.seed.model_copy(update={"subscribers": fix(config.seed.subscribers)}),
            "bounces": config.bounces.model_copy(
                update={
                    "maildir": fix(config.bounces.maildir),
                    "failed": fix(config.bounces.failed),
                    "imap_ca_file": fix(config.bounces.imap_ca_file),
                }
            ),
        }
    )


def resolve_storage_url(url: str, base: Path) -> str:
    """A relative SQLite path made absolute against ``base`` (the config's folder)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        return "sqlite:///" + str((base / url.removeprefix("sqlite:///")).resolve())
    return url


def parse_config(
    data: Mapping[str, Any],
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate already-loaded TOML data; raise :class:`ConfigError` listing every problem."""
    label = path.name if path else DEFAULT_CONFIG_NAME
    merged = _env_overrides(dict(data), os.environ if environ is None else environ)
    cross = _cross_checks(merged)
    try:
        config = Config.model_validate(merged)
    except ValidationError as e:
        problems = [_format_error(err) for err in e.errors()] + cross
        raise ConfigError([f"{label}: {loc}: {msg}" for loc, msg in problems]) from e
    except (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError) as e:
        # A validator met input nobody planned for: still one line, never a traceback.
        raise ConfigError([f"{label}: {_one_line(f'unusable value: {e}')}"]) from e
    if cross:
        raise ConfigError([f"{label}: {loc}: {msg}" for loc, msg in cross])
    base = path.parent if path else Path.cwd()
    try:
        return _resolve_paths(config.model_copy(update={"path": path}), base.resolve())
    except (OSError, ValueError, RuntimeError) as e:  # NUL in a path, symlink loops
        raise ConfigError([f"{label}: {_one_line(f'unusable path: {e}')}"]) from e


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``. Raises :class:`ConfigError` with every problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(
            [f"{path}: file not found"],
            hint="pass --config PATH or set KABARFEED_CONFIG",
        ) from e
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from e
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path.name}: not UTF-8 text (byte {e.start})"]) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path.name}: TOML syntax error: {e}"]) from e
    except RecursionError as e:
        raise ConfigError([f"{path.name}: values nested too deeply"]) from e
    except ValueError as e:  # an integer of thousands of digits
        raise ConfigError(
            [f"{path.name}: a value cannot be read ({_one_line(str(e))[:80]})"]
        ) from e
    return parse_config(data, path=path.resolve(), environ=environ)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$KABARFEED_CONFIG`` if set, else ``./config.toml``."""
    env = os.environ if environ is None else environ
    return Path(env.get("KABARFEED_CONFIG") or DEFAULT_CONFIG_NAME)
