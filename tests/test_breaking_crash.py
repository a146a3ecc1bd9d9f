"""Crash safety of breaking alerts, like the digest's (tests/test_delivery_crash.py):
``kabarfeed digest send`` holding 400 queued alerts is SIGKILLed while it is
sending, several times; after a final run every reader has exactly one alert
— except the documented window, a message whose ``250`` arrived but whose
checkpoint had not committed, at most one per open connection per kill — and
the alert outbox says ``sent`` for each, with the Message-ID the server holds."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from deliveryhelpers import add_subscribers
from digest_support import CUTOFF, article, save
from kabarfeed.delivery.breaking import enqueue_alerts
from kabarfeed.store import Database
from kabarfeed.store.schema import breaking_alerts, subscribers
from smtpserver import Faults, Received, ScriptedSMTPServer
from test_delivery_crash import _duplicates_per_kill, _kill_after, _message_id

ALERTS = 400
POOL = 4
KILLS = 3


def _send(config: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "kabarfeed", "--config", str(config), "digest", "send"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _ledger(db: Database) -> dict[str, tuple[str, str | None]]:
    query = select(subscribers.c.email, breaking_alerts.c.state, breaking_alerts.c.message_id).join(
        subscribers, subscribers.c.id == breaking_alerts.c.subscriber_id
    )
    with db.connect() as conn:
        return {email: (state, mid) for email, state, mid in conn.execute(query)}


def test_sigkill_while_sending_alerts_sends_each_once_but_the_window(
    db: Database, make_config, tmp_path: Path
) -> None:
    now = CUTOFF + timedelta(hours=6)  # 12:00 WITA, outside quiet hours
    news = article(1, at=now - timedelta(minutes=5))
    save(db, [news])
    add_subscribers(db, ALERTS, CUTOFF)
    with db.begin() as conn:
        conn.execute(update(subscribers).values(frequency="breaking"))
    rng = random.Random(os.environ.get("KABARFEED_CRASH_SEED", "20251117"))
    delay = float(os.environ.get("KABARFEED_CRASH_DOT_DELAY", "0.002"))
    with ScriptedSMTPServer(Faults(dot_delay=delay)) as server:
        config = make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
            f"pool_size = {POOL}\nbatch_size = 50\nmax_per_connection = 100\n"
        )
        assert enqueue_alerts(config, db, [news], now) == ALERTS
        path = tmp_path / "config.toml"
        bounds = [0]
        for _ in range(KILLS):
            before = len(server.received)
            held = _kill_after(_send(path), server, rng.randrange(20, 100), 0.0)
            assert held > before, "the run ended before it could be killed while sending"
            time.sleep(0.2)
            bounds.append(len(server.received))
        final = _send(path)
        output, _ = final.communicate(timeout=300)
        bounds.append(len(server.received))
        received: list[Received] = list(server.received)
    assert final.returncode == 0, output.decode()
    got = Counter(r for m in received for r in m.rcpt_tos)
    assert set(got) == {f"reader{i}@example.org" for i in range(ALERTS)}  # nobody lost
    per_kill = _duplicates_per_kill(received, bounds)
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    print(f"alerts per run {sizes}; duplicates per kill {per_kill}")
    assert all(n <= POOL for n in per_kill), per_kill
    assert sum(n - 1 for n in got.values()) == sum(per_kill)
    ledger = _ledger(db)
    assert {state for state, _ in ledger.values()} == {"sent"} and len(ledger) == ALERTS
    for address, (_, mid) in ledger.items():
        ids = {_message_id(m.data) for m in received if address in m.rcpt_tos}
        assert ids == {(mid or "").encode()}, (address, ids)
