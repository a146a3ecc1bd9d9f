"""The exactly-once proof: a fault-injecting SMTP server, repeated
``kabarfeed digest send`` runs and a concurrent second sender (a ``kabarfeed
worker --once`` loop) drain one outbox until nothing is left to do.

Per recipient and attempt the server accepts, answers ``421`` and closes,
``451``, ``550``, drops the connection mid-DATA, drops it after the final dot
(message stored, no reply), or stalls before or after the final dot (seeded,
deterministic per address and attempt). Whatever happened, at the end:

* no row is left ``queued``, ``sending`` or ``deferred``;
* each address has at most one copy the client was told about (a ``250``) and
  its row is ``sent`` exactly when it has one;
* every other copy is one the server stored without its reply reaching the
  client: at most one per ``unknown`` outcome recorded on the row (the
  documented bound), and all copies carry the row's Message-ID;
* the senders' own counts of sent messages add up to the ledger, and no result
  was lost to the other sender.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from deliveryhelpers import add_subscribers, rows, states
from digest_support import article, save
from kabarfeed.cli import main
from kabarfeed.clock import system_clock
from kabarfeed.config import Config, load_config
from kabarfeed.delivery.worker import DeliveryWorker, WorkerOptions, WorkerReport
from kabarfeed.models import DeliveryState
from kabarfeed.store import Database
from smtpserver import Act, Faults, ScriptedSMTPServer

EDITIONS = 40
FAULTY_ATTEMPTS = 3
SEED = os.environ.get("KABARFEED_PROOF_SEED", "22")
WEIGHTS = {act: (6 if act is Act.ACCEPT else 1) for act in Act}
SMTP = (
    'security = "none"\npool_size = 3\nbatch_size = 8\nlease = "3s"\n'
    'timeout = "1s"\ngreeting_timeout = "1s"\nmail_timeout = "1s"\n'
    'rcpt_timeout = "500ms"\ndata_timeout = "1s"\ndata_end_timeout = "500ms"\n'
    'retry_base = "10ms"\nretry_max = "20ms"\nmax_attempts = 5\n'
    'unknown_retries = 2\nunknown_retry_after = "10ms"\n'
    'reconnect_base = "10ms"\nreconnect_max = "20ms"\npause_after_failures = 6\n'
)
SETTLED = {DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED}


def plan(address: str, attempt: int) -> Act:
    """A seeded act for each address and attempt; from the fourth on, accept."""
    if attempt > FAULTY_ATTEMPTS:
        return Act.ACCEPT
    rng = random.Random(f"{SEED}:{address}:{attempt}")
    return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]


def _settled(db: Database) -> bool:
    """Nothing left that a sender would still send."""
    return all(
        r.state in SETTLED or (r.state is DeliveryState.UNKNOWN and r.next_attempt_at is None)
        for r in rows(db)
    )


def _message_id(data: bytes) -> bytes:
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip()
    return b""


def _second_sender(
    config: Config, db: Database, done: threading.Event, out: list[WorkerReport]
) -> None:
    """``kabarfeed worker --once`` again and again until the first sender is done."""
    while not done.is_set():
        worker = DeliveryWorker(config, db, system_clock, WorkerOptions(once=True))
        out.append(asyncio.run(worker.run()))
        time.sleep(0.02)


def test_every_address_ends_with_one_copy_or_the_documented_bound(
    db: Database, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    save(db, [article(n) for n in (1, 2, 3)])
    add_subscribers(db, EDITIONS, datetime(2025, 11, 1, tzinfo=UTC))
    with ScriptedSMTPServer(Faults(plan=plan, stall=1.5)) as server:
        make_config(f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\n{SMTP}')
        config_path = str(tmp_path / "config.toml")
        config = load_config(Path(config_path), environ={})
        done = threading.Event()
        worker_reports: list[WorkerReport] = []
        second = threading.Thread(target=_second_sender, args=(config, db, done, worker_reports))
        second.start()
        runs, outputs = 0, []
        try:
            while runs < 30 and (runs == 0 or not _settled(db)):
                result = CliRunner().invoke(
                    main,
                    ["--config", config_path, "digest", "send", "--date", "2025-11-17", "--force"],
                )
                assert result.exit_code in (0, 1), result.output
                outputs.append(result.output)
                runs += 1
                time.sleep(0.02)
        finally:
            done.set()
            second.join(120)
        assert _settled(db), (states(db), outputs[-1])
        acts = Counter(act for _, _, act in server.acts)
        received = list(server.received)
        unreplied = Counter(server.unreplied)

    assert set(acts) == set(Act), acts  # every fault was exercised
    ledger = {r.email: r for r in rows(db)}
    assert len(ledger) == EDITIONS
    copies: Counter[str] = Counter(a for m in received for a in m.rcpt_tos)
    for address, row in ledger.items():
        told = copies[address] - unreplied[address]  # copies whose 250 the client got
        assert told in (0, 1), (address, copies[address], unreplied[address])
        assert (row.state is DeliveryState.SENT) == (told == 1), (address, row.state, told)
        # the documented bound: an extra copy only behind an unknown outcome
        assert unreplied[address] <= row.unknown_outcomes, (address, row)
        assert copies[address] <= 1 + row.unknown_outcomes
        ids = {_message_id(m.data) for m in received if address in m.rcpt_tos}
        assert ids <= {(row.message_id or "").encode()}, (address, ids, row.message_id)
    sent_by_cli = sum(_sent(o) for o in outputs)
    sent_by_worker = sum(r.sent for r in worker_reports)
    assert sent_by_cli + sent_by_worker == states(db).get("sent", 0)
    assert worker_reports and sum(r.lost for r in worker_reports) == 0
    assert not [line for o in outputs for line in _summaries(o) if "lost" in line]
    print(
        f"{runs} digest send runs, {len(worker_reports)} worker rounds; acts {dict(acts)}; "
        f"ledger {states(db)}; extra copies {sum(unreplied.values())}"
    )


def _summaries(output: str) -> list[str]:
    """``digest send``'s summary line(s) (the captured output also holds the
    other sender's log lines)."""
    return [line for line in output.splitlines() if line.startswith("delivery: sent ")]


def _sent(output: str) -> int:
    return sum(
        int(line.removeprefix("delivery: sent ").partition(",")[0]) for line in _summaries(output)
    )
