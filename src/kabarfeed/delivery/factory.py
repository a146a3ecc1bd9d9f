"""Build the engine's parts from :class:`~kabarfeed.config.Config` (the only
module of the delivery package that reads the whole config)."""

from __future__ import annotations

from kabarfeed.config import Config
from kabarfeed.delivery.engine import EngineSettings, Transport
from kabarfeed.delivery.maildir import MaildirTransport, MaildirWriter
from kabarfeed.delivery.outbox import RetryPolicy
from kabarfeed.delivery.ratelimit import RateLimiter
from kabarfeed.delivery.sharedrate import shared_limiter
from kabarfeed.delivery.smtp import SmtpSettings, SmtpTransport
from kabarfeed.store import Database


def uses_smtp(config: Config) -> bool:
    """SMTP when ``[smtp] host`` is set, else the Maildir."""
    return bool(config.smtp.host)


def envelope_sender(config: Config) -> str:
    """``[smtp] envelope_from`` (bounce mailbox), else the From address."""
    return config.smtp.envelope_from or config.digest.from_address


def engine_settings(config: Config, *, processes: int = 1) -> EngineSettings:
    """Engine knobs from ``[smtp]`` (they apply to the Maildir transport too)."""
    smtp = config.smtp
    policy = RetryPolicy(
        smtp.max_attempts,
        smtp.retry_base,
        smtp.retry_max,
        unknown_retries=smtp.unknown_retries,
        unknown_retry_after=smtp.unknown_retry_after,
    )
    concurrency = smtp.pool_size if uses_smtp(config) else 1
    return EngineSettings(
        envelope_sender(config),
        policy,
        concurrency,
        _claim_size(config, processes),
        smtp.pause_after_failures,
        lease=smtp.lease,
    )


def _claim_size(config: Config, processes: int) -> int:
    """A batch small enough to be sent well within its lease at the configured rate."""
    smtp = config.smtp
    rates = [r for r in (smtp.rate_per_second, smtp.rate_per_minute / 60) if r > 0]
    if not rates:
        return smtp.batch_size
    per_process = min(rates) / max(processes, 1)
    return max(1, min(smtp.batch_size, int(per_process * smtp.lease.total_seconds() / 4)))


def make_limiter(config: Config, db: Database) -> RateLimiter:
    """The global ``[smtp]`` rate, shared through the database by every sender
    (workers, ``run`` processes, ``digest send --processes N``); no database
    work at all when no rate is configured."""
    return shared_limiter(db, config.smtp.rate_per_second, config.smtp.rate_per_minute)


def make_transport(config: Config, limiter: RateLimiter | None = None) -> Transport:
    """The configured transport: the Maildir, or SMTP paced by ``limiter``.

    Digests pass :func:`make_limiter`'s shared limiter and wait each SMTP step
    as long as RFC 5321 recommends. Without a limiter the transport is unpaced
    and every step is capped at ``[smtp] confirmation_timeout``: that is the
    confirmation mail, one at a time, which a web request waits for.
    """
    if not uses_smtp(config):
        return MaildirTransport(MaildirWriter(config.maildir.path))
    settings = SmtpSettings.from_config(config.smtp)
    if limiter is None:
        return SmtpTransport(settings.capped(config.smtp.confirmation_timeout.total_seconds()))
    return SmtpTransport(settings, limiter)
