"""An IMAP mailbox polled by the service (``[bounces] imap_url``).

Only encrypted connections: ``imaps://user@host[:993]/FOLDER`` (TLS from the
first byte) or ``imap://user@host[:143]/FOLDER``, which must upgrade with
STARTTLS before logging in (a server without STARTTLS is refused). The
password comes from ``[bounces] imap_password``, i.e. the environment
(``KABARFEED_BOUNCES_IMAP_PASSWORD``).

Each message is read with ``BODY.PEEK[]`` (the server's \\Seen flag is left
alone), goes through the pipeline, and only after its record is committed is
it moved to ``[bounces] imap_folder_done`` (``MOVE``, or ``COPY`` + ``\\Deleted``
+ ``EXPUNGE``). A restart re-reads only what was not moved, and the pipeline's
dedup key makes a re-read no-op.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from kabarfeed.bounces.intake import IntakeOutcome, IntakeSettings, ingest_bytes, keep_failed
from kabarfeed.bounces.maildir import PollReport
from kabarfeed.errors import ConfigError, MailboxError, StoreError
from kabarfeed.models import Clock
from kabarfeed.store import Database

log = logging.getLogger(__name__)

_BODY = b"BODY[]"
_HEADER = b"BODY[HEADER]"
_SIZE = b"RFC822.SIZE"


@dataclass(frozen=True, slots=True)
class ImapTarget:
    """A parsed ``imap_url``."""

    host: str
    port: int
    user: str
    folder: str
    implicit_tls: bool

    @classmethod
    def parse(cls, url: str) -> ImapTarget:
        """``imaps://user@host:993/INBOX`` → target; :class:`ConfigError` otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("imaps", "imap") or not parts.hostname or not parts.username:
            raise ConfigError([f'bounces.imap_url: "{url}" is not imaps://user@host/FOLDER'])
        implicit = parts.scheme == "imaps"
        return cls(
            parts.hostname,
            parts.port or (993 if implicit else 143),
            unquote(parts.username),
            unquote(parts.path.lstrip("/")) or "INBOX",
            implicit,
        )


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate and host name checked, against ``ca_file`` or the system's CAs."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextmanager
def connect(
    target: ImapTarget, password: str, context: ssl.SSLContext, *, timeout: float = 30.0
) -> Iterator[IMAPClient]:
    """A logged-in client on an encrypted connection; logged out at the end."""
    try:
        client = IMAPClient(
            target.host,
            port=target.port,
            ssl=target.implicit_tls,
            ssl_context=context if target.implicit_tls else None,
            timeout=timeout,
        )
    except (OSError, IMAPClientError) as e:
        raise MailboxError(f"cannot connect to IMAP {target.host}:{target.port}: {e}") from e
    try:
        if not target.implicit_tls:
            if not client.has_capability("STARTTLS"):
                raise MailboxError(
                    f"IMAP {target.host}:{target.port} offers no STARTTLS; "
                    "refusing to send the password in clear text"
                )
            client.starttls(context)
        client.login(target.user, password)
        yield client
    except (OSError, IMAPClientError, ssl.SSLError) as e:
        raise MailboxError(f"IMAP {target.host}:{target.port}: {e}") from e
    finally:
        with suppress(TimeoutError, OSError, IMAPClientError):
            client.logout()


def poll_imap(
    db: Database,
    target: ImapTarget,
    password: str,
    settings: IntakeSettings,
    *,
    clock: Clock,
    done_folder: str,
    context: ssl.SSLContext,
    limit: int = 200,
) -> PollReport:
    """Ingest up to ``limit`` messages of the folder, moving each one after its
    record is committed; a store failure stops the poll and leaves the rest."""
    report = PollReport()
    with connect(target, password, context) as client:
        client.select_folder(target.folder)
        uids = sorted(client.search(["NOT", "DELETED"]))[:limit]
        if not uids:
            return report
        if not client.folder_exists(done_folder):
            client.create_folder(done_folder)
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        for uid in uids:
            size = sizes.get(uid, {}).get(_SIZE)
            if not isinstance(size, int):
                continue  # gone meanwhile
            try:
                if size > settings.max_bytes:
                    outcome = _keep_headers(client, uid, size, settings, done_folder)
                else:
                    fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
                    data = fetched.get(_BODY)
                    if not isinstance(data, bytes):
                        continue
                    outcome = ingest_bytes(
                        db, data, settings, now=clock(), raw_ref=f"imap:{target.folder}/{uid}"
                    )
            except StoreError as e:
                report.error = str(e)
                log.warning("bounce mailbox: %s; message %s stays", e, uid)
                break
            _move(client, uid, done_folder)
            report.read += 1
            report.names.append(str(uid))
            report.events += sum(1 for ev in outcome.events if not ev.duplicate)
            report.duplicates += sum(1 for ev in outcome.events if ev.duplicate)
            report.failed += 1 if outcome.failed_path and not outcome.events else 0
    return report


def _keep_headers(
    client: IMAPClient, uid: int, size: int, settings: IntakeSettings, done_folder: str
) -> IntakeOutcome:
    """A message over ``max_bytes`` is not downloaded: its headers are kept in
    the failed folder with the reason, the message itself in ``done_folder``."""
    head = client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {}).get(_HEADER)
    reason = (
        f"too large: {size} bytes (max_bytes = {settings.max_bytes}); "
        f"headers kept, the message is in the IMAP folder {done_folder}"
    )
    data = head if isinstance(head, bytes) else b""
    return IntakeOutcome(failed_path=keep_failed(settings.failed_dir, data, reason), reason=reason)


def _move(client: IMAPClient, uid: int, folder: str) -> None:
    if client.has_capability("MOVE"):
        client.move([uid], folder)
        return
    client.copy([uid], folder)
    client.delete_messages([uid])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])
    else:
        client.expunge()
