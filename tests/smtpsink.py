"""An aiosmtpd sink in its own process that records every accepted message.

    python tests/smtpsink.py PORT_FILE RECORD_DB

Listens on 127.0.0.1, port 0; writes the port to ``PORT_FILE`` once ready.
Every accepted message becomes a row ``(recipient, message_id)`` in the SQLite
file ``RECORD_DB`` (committed in small groups *before* the ``250`` goes out, so
a message the client saw accepted is always counted). SIGTERM stops it.

:class:`SinkProcess` starts and stops it from a test and reads the counts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any


def _message_id(data: bytes) -> str:
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""


class _Recorder:
    """aiosmtpd handler: records under one write per event-loop turn."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE IF NOT EXISTS received (rcpt TEXT, message_id TEXT)")
        self.pending: list[tuple[str, str]] = []
        self.flushed: asyncio.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mid = _message_id(envelope.original_content or b"")
        self.pending.extend((r, mid) for r in envelope.rcpt_tos)
        if self.flushed is None:
            self.flushed = asyncio.Event()
            asyncio.get_running_loop().call_soon(self._flush)
        await self.flushed.wait()
        return "250 2.0.0 Ok: recorded"

    def _flush(self) -> None:
        rows, self.pending = self.pending, []
        event, self.flushed = self.flushed, None
        self.db.executemany("INSERT INTO received VALUES (?, ?)", rows)
        if event is not None:
            event.set()


async def _serve(port_file: Path, record: Path) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = _Recorder(record)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink", data_size_limit=0), "127.0.0.1", 0
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.sockets[0].getsockname()[1]))
    os.replace(tmp, port_file)
    await stop.wait()
    server.close()
    handler.db.close()


class SinkProcess:
    """``with SinkProcess(folder) as sink:`` — ``sink.port``, then ``sink.counts()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port_file = folder / "sink.port"
        self.record = folder / "sink.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> SinkProcess:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.port_file), str(self.record)]
        )
        deadline = time.monotonic() + 30
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("SMTP sink did not start")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def rows(self) -> list[tuple[str, str]]:
        """Every (recipient, Message-ID) received so far."""
        with sqlite3.connect(self.record) as db:
            return [(r, m) for r, m in db.execute("SELECT rcpt, message_id FROM received")]

    def counts(self) -> Counter[str]:
        """Messages per recipient."""
        return Counter(r for r, _ in self.rows())


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1]), Path(sys.argv[2])))
