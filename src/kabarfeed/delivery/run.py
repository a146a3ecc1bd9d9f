"""``digest send`` as a use case: build due editions, then send the outbox with
one or several sender processes (the Python SMTP client's per-message CPU is
the ceiling, so throughput scales with processes, not connections)."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
from dataclasses import asdict, dataclass, fields
from typing import Any

from kabarfeed.clock import system_clock
from kabarfeed.config import Config
from kabarfeed.delivery import enqueue
from kabarfeed.delivery.engine import Progress, ProgressCallback, RunReport
from kabarfeed.delivery.runner import OutboxRunner
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.errors import DeliveryError
from kabarfeed.models import Clock
from kabarfeed.store import Database, open_database

_REPORT_EVERY = 0.25
_COUNTED = tuple(f.name for f in fields(Progress) if f.name != "elapsed")


@dataclass(frozen=True, slots=True)
class SendSummary:
    """Building and sending, together."""

    built: enqueue.EnqueueReport
    report: RunReport


@dataclass(frozen=True, slots=True)
class DryRunSummary:
    """What a send would do, without sending or recording anything."""

    built: enqueue.EnqueueReport
    messages: int
    total_bytes: int
    largest: int


def make_runner(
    config: Config,
    db: Database,
    clock: Clock,
    *,
    processes: int = 1,
    on_progress: ProgressCallback | None = None,
) -> OutboxRunner:
    """The outbox runner (the same as the worker's and the service's) for one sender."""
    return OutboxRunner(config, db, clock, processes=processes, on_progress=on_progress)


def send_due(
    config: Config,
    db: Database,
    clock: Clock,
    options: enqueue.DueOptions,
    *,
    processes: int = 1,
    on_progress: ProgressCallback | None = None,
) -> SendSummary:
    """Build the due editions, then send everything claimable in the outbox."""
    built = enqueue.enqueue_due(config, db, options, now=clock())
    if processes <= 1:
        runner = make_runner(config, db, clock, on_progress=on_progress)
        return SendSummary(built, asyncio.run(runner.run(options.limit)))
    db.dispose()
    return SendSummary(built, _send_parallel(config, db.url, processes, on_progress, options.limit))


def dry_run(
    config: Config, db: Database, clock: Clock, options: enqueue.DueOptions
) -> DryRunSummary:
    """Render every due edition (as it would be built now) and count; record nothing."""
    renderer = DigestRenderer(config, clock=clock)
    total = enqueue.EnqueueReport()
    messages = size = largest = 0
    for planned, counts in enqueue.plan_due(config, db, options, now=clock()):
        sendable = [p for p in planned if not (p.empty and config.digest.skip_empty)]
        inputs = [
            EditionInput(
                p.subscriber, p.local_date, p.selection.articles, p.selection.total_matching
            )
            for p in sendable
        ]
        for message in renderer.render_batch(inputs):
            messages += 1
            size += len(message.data)
            largest = max(largest, len(message.data))
        total = enqueue.EnqueueReport(
            total.considered + counts.considered,
            total.queued + len(sendable),
            total.skipped_empty + len(planned) - len(sendable),
            total.existing + counts.existing,
            total.not_due + counts.not_due,
        )
    return DryRunSummary(total, messages, size, largest)


# -- several sender processes ------------------------------------------------------


def _child(
    index: int, config: Config, url: str, processes: int, limit: int | None, out: Any
) -> None:
    """One sender process: its own database pool, transport and 1/N of the rate."""
    db = open_database(url, upgrade=False)
    last = [0.0]

    def report(p: Progress) -> None:
        if p.elapsed - last[0] >= _REPORT_EVERY:
            last[0] = p.elapsed
            out.put((index, "progress", asdict(p)))

    try:
        runner = make_runner(config, db, system_clock, processes=processes, on_progress=report)
        result = asyncio.run(runner.run(limit))
        final = (asdict(result.progress), result.paused, result.pause_reason, result.released)
        out.put((index, "done", final))
    except Exception as e:  # reported to the parent, which raises
        out.put((index, "error", f"{e.__class__.__name__}: {e}"))
    finally:
        db.dispose()


def _send_parallel(
    config: Config,
    url: str,
    processes: int,
    on_progress: ProgressCallback | None,
    limit: int | None,
) -> RunReport:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    share = None if limit is None else max(1, limit // processes)
    children = [
        ctx.Process(target=_child, args=(i, config, url, processes, share, out))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    report = _collect(out, children, on_progress)
    for child in children:
        child.join()
    return report


def _collect(out: Any, children: list[Any], on_progress: ProgressCallback | None) -> RunReport:
    latest: dict[int, Progress] = {}
    finals: list[tuple[Progress, bool, str, int]] = []
    errors: list[str] = []
    while len(finals) + len(errors) < len(children):
        try:
            pid, kind, payload = out.get(timeout=1.0)
        except queue_module.Empty:
            if not any(c.is_alive() for c in children):
                errors.append("a sender process died")
            continue
        if kind == "progress":
            latest[pid] = Progress(**payload)
        elif kind == "done":
            finals.append((Progress(**payload[0]), *payload[1:]))
            latest[pid] = finals[-1][0]
        else:
            errors.append(payload)
        if on_progress is not None:
            on_progress(_sum(list(latest.values())))
    if errors:
        raise DeliveryError("sender process failed: " + "; ".join(errors))
    paused = [f for f in finals if f[1]]
    return RunReport(
        _sum([f[0] for f in finals]),
        bool(paused),
        paused[0][2] if paused else "",
        sum(f[3] for f in finals),
    )


def _sum(items: list[Progress]) -> Progress:
    if not items:
        return Progress()
    totals = {f: sum(getattr(p, f) for p in items) for f in _COUNTED}
    return Progress(**totals, elapsed=max(p.elapsed for p in items))
