"""One exception tree for kabarfeed.

Every layer raises a subclass of :class:`KabarfeedError`; foreign exceptions are
wrapped exactly once at the boundary where they enter (``raise ... from e``).
The CLI maps the tree to exit codes and one-line messages.
"""

from __future__ import annotations


class KabarfeedError(Exception):
    """Base class of every error kabarfeed raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(KabarfeedError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` lists every problem found, each already prefixed with the file
    name and key path (``config.toml: sources[2].interval: ...``).
    """

    exit_code = 2

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class SourceError(KabarfeedError):
    """A source could not be read; recorded on the source's row."""


class FetchError(SourceError):
    """Network-level failure fetching a feed (timeout, HTTP error, too large)."""


class ParseError(SourceError):
    """A document or file could not be parsed into articles."""


class StoreError(KabarfeedError):
    """The database could not be opened, migrated or written."""


class NotFoundError(KabarfeedError):
    """A named object (source, subscriber, edition, ...) does not exist."""

    exit_code = 3


class InputError(KabarfeedError):
    """A value given by a user (CLI option, CSV row, form field) is invalid."""

    exit_code = 2


class RenderError(KabarfeedError):
    """A template failed to render."""


class DeliveryError(KabarfeedError):
    """A message could not be handed to the transport."""


class TemporaryDeliveryError(DeliveryError):
    """The recipient's server said 'try later' (SMTP 4xx): retry with backoff."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class PermanentDeliveryError(DeliveryError):
    """The recipient was refused for good (SMTP 5xx): never retried."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConnectionDeliveryError(DeliveryError):
    """The connection to the mail server failed; no recipient is to blame."""


class IntakeError(KabarfeedError):
    """A report from the mail world (bounce, complaint, webhook) could not be read:
    garbage, truncated or too large. Kept aside with this reason, never fatal."""


class MailboxError(KabarfeedError):
    """The bounce mailbox (IMAP) could not be reached, logged into or read."""


class WebhookAuthError(KabarfeedError):
    """A webhook's signature, credentials or timestamp did not check out; the
    request is refused (401/403) and nothing is recorded."""
