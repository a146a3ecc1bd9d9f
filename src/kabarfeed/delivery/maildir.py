"""Maildir transport: each message becomes one file, atomically.

The message is written to ``tmp/`` under a unique name, flushed to disk, then
renamed into ``new/`` (rename is atomic on POSIX), and the directory entry is
fsynced — so a reader never sees half a message and a crash never leaves one
in ``new/``. This is the default transport when no SMTP host is configured.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from pathlib import Path

from kabarfeed.delivery.outbox import ResultKind, SendResult
from kabarfeed.errors import DeliveryError

_SUBDIRS = ("tmp", "new", "cur")


class MaildirWriter:
    """Writes messages into a Maildir (created on first use)."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._counter = itertools.count(1)
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        for sub in _SUBDIRS:
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._ready = True

    def unique_name(self) -> str:
        """``<seconds>.M<micro>P<pid>Q<n>.<host>``: unique across processes and time;
        microseconds zero-padded, so a listing sorted by name is in delivery order."""
        now = time.time_ns()
        seconds, micro = divmod(now // 1000, 1_000_000)
        return f"{seconds}.M{micro:06d}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    def deliver(self, data: bytes, *, return_path: str = "") -> Path:
        """Store ``data`` (with a ``Return-Path`` line when given); return the new file."""
        name = self.unique_name()
        tmp = self.path / "tmp" / name
        final = self.path / "new" / name
        prefix = f"Return-Path: <{return_path}>\r\n".encode() if return_path else b""
        try:
            self._ensure()
            with open(tmp, "xb") as fh:
                fh.write(prefix + data)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
            os.rename(tmp, final)
            if self._fsync:
                _fsync_dir(final.parent)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise DeliveryError(f"cannot write to maildir {self.path}: {e.strerror}") from e
        return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MaildirTransport:
    """The engine's :class:`~kabarfeed.delivery.engine.Transport` over a Maildir."""

    name = "maildir"

    def __init__(self, writer: MaildirWriter) -> None:
        self.writer = writer

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Write the message; a disk error is a connection-level fault (retry later)."""
        try:
            path = self.writer.deliver(data, return_path=envelope_from)
        except DeliveryError as e:
            return SendResult(ResultKind.CONNECTION, None, e.message)
        return SendResult.accepted(250, f"stored as {path.name}")

    async def close(self) -> None:
        """Nothing to release."""
