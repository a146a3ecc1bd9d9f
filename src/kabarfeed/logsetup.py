"""Logging: readable on a terminal, JSON lines when configured.

Context goes in ``extra=`` keys (``source``, ``subscriber_id``, ...); the
formatter never prints e-mail addresses or secrets it is not given.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from rich.logging import RichHandler

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def redact_addresses(text: str) -> str:
    """``budi@example.id`` -> ``***@example.id`` (the domain helps debugging)."""
    return _ADDRESS.sub(r"***@\1", text)


class RedactAddresses(logging.Filter):
    """Masks e-mail addresses in records at INFO and above (message and string
    context keys); DEBUG records keep them for troubleshooting."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = redact_addresses(message), ()
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str) and "@" in value:
                setattr(record, key, redact_addresses(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and context keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: str = "INFO", *, verbose: bool = False) -> None:
    """Configure the root logger once per process (idempotent)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_kabarfeed", False):
            root.removeHandler(old)
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        handler = RichHandler(show_path=False, rich_tracebacks=verbose)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactAddresses())
    setattr(handler, "_kabarfeed", True)  # noqa: B010 - marks our handler for idempotence
    root.addHandler(handler)
    root.setLevel("DEBUG" if verbose else level)
    # "skipped: maximum number of running instances" is by design (max_instances=1).
    logging.getLogger("apscheduler.scheduler").setLevel("ERROR")
    for noisy in (
        "httpx",
        "httpcore",
        "apscheduler.executors",
        "watchfiles",
        "aiosmtplib",
        "mail.log",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel("WARNING")
