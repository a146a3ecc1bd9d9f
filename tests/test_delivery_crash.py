"""Crash safety: ``kabarfeed digest send`` for 500 editions is SIGKILLed at
several random points; after a final run every subscriber has exactly one
message — except the documented window (a ``250`` that arrived just before
the kill, at most one per open connection per kill) — and no row is left
``sending``."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from deliveryhelpers import add_subscribers, states
from digest_support import CUTOFF, article, save
from kabarfeed.store import Database
from smtpserver import ScriptedSMTPServer

EDITIONS = 500
POOL = 4
KILLS = 3


def _send(config: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "kabarfeed",
        "--config",
        str(config),
        "digest",
        "send",
        "--date",
        "2025-11-17",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _kill_when(proc: subprocess.Popen[bytes], server: ScriptedSMTPServer, received: int) -> bool:
    """SIGKILL ``proc`` once the server holds ``received`` messages; False if it ended first."""
    deadline = time.monotonic() + 60
    while len(server.received) < received:
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def test_sigkill_at_random_points_sends_each_edition_once(
    db: Database, make_config, tmp_path: Path
) -> None:
    save(db, [article(n) for n in (1, 2, 3)])
    add_subscribers(db, EDITIONS, CUTOFF)
    rng = random.Random(os.environ.get("KABARFEED_CRASH_SEED", "20251117"))
    points = sorted(rng.sample(range(15, EDITIONS - 60), KILLS))
    with ScriptedSMTPServer() as server:
        make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
            f"pool_size = {POOL}\nbatch_size = 50\nmax_per_connection = 100\n"
        )
        config = tmp_path / "config.toml"
        kills = 0
        for point in points:
            proc = _send(config)
            killed = _kill_when(proc, server, point)
            assert killed, proc.stdout.read().decode() if proc.stdout else ""
            kills += 1
        final = _send(config)
        output, _ = final.communicate(timeout=120)
    assert final.returncode == 0, output.decode()
    assert "re-queued" in output.decode()  # the last kill left rows in "sending"
    got = Counter(r for m in server.received for r in m.rcpt_tos)
    expected = {f"reader{i}@example.org" for i in range(EDITIONS)}
    assert set(got) == expected  # nobody lost
    duplicates = {r: n for r, n in got.items() if n > 1}
    print(f"killed after {points} received; duplicates: {duplicates}")
    assert sum(n - 1 for n in duplicates.values()) <= kills * POOL, duplicates
    for address in duplicates:  # a duplicate is the very same message (same Message-ID)
        ids = {_message_id(m.data) for m in server.messages_for(address)}
        assert len(ids) == 1
    assert states(db) == {"sent": EDITIONS}  # nothing left "sending"


def _message_id(data: bytes) -> bytes:
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip()
    return b""
