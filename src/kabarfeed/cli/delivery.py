"""``kabarfeed digest send`` and ``kabarfeed deliveries [retry]``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kabarfeed.cli.context import AppContext, parse_date_option
from kabarfeed.delivery import enqueue, run
from kabarfeed.delivery.engine import Progress as SendProgress
from kabarfeed.delivery.engine import ProgressCallback
from kabarfeed.errors import InputError
from kabarfeed.models import DeliveryState
from kabarfeed.store import deliveries as store

pass_app = click.make_pass_decorator(AppContext)
log = logging.getLogger("kabarfeed.delivery")
_LOG_EVERY = 10.0
_STATES = [s.value for s in DeliveryState]


def _check_zone(value: str | None) -> str | None:
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InputError(f'--zone "{value}" is not an IANA time zone like Asia/Makassar') from e
    return value


@contextmanager
def _progress(interactive: bool) -> Iterator[ProgressCallback]:
    """A rich bar on a terminal; a summary log line every few seconds otherwise."""
    if not interactive:
        last = [time.monotonic()]

        def log_line(p: SendProgress) -> None:
            if time.monotonic() - last[0] >= _LOG_EVERY:
                last[0] = time.monotonic()
                log.info("%s", _line(p))

        yield log_line
        return
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(p: SendProgress) -> None:
            bar.update(task, total=max(p.claimed, 1), completed=p.done, description=_line(p))

        yield update


def _line(p: SendProgress) -> str:
    unknown = f", unknown outcome {p.unknown}" if p.unknown else ""
    lost = f", lost to another sender {p.lost}" if p.lost else ""
    return (
        f"sent {p.sent}, deferred {p.deferred}, failed {p.failed}, skipped {p.skipped}"
        f"{unknown}{lost} — {p.rate:.0f} msg/s"
    )


def _print_built(built: enqueue.EnqueueReport) -> None:
    click.echo(
        f"editions: {built.queued} queued, {built.skipped_empty} empty (skipped), "
        f"{built.existing} already built, {built.not_due} not due "
        f"(of {built.considered} active subscribers)"
    )


def _send(app: AppContext, options: enqueue.DueOptions, processes: int) -> int:
    with _progress(app.interactive) as on_progress:
        summary = run.send_due(
            app.config, app.db, app.clock, options, processes=processes, on_progress=on_progress
        )
    _print_built(summary.built)
    report = summary.report
    p = report.progress
    if p.recovered:
        click.echo(f"re-queued {p.recovered} deliveries left 'sending' by an interrupted run")
    click.echo(f"delivery: {_line(p)} in {p.elapsed:.1f}s")
    if report.paused:
        click.secho(f"paused: {report.pause_reason}", fg="red", err=True)
        click.echo(
            f"{report.released} deliveries were put back in the queue; "
            "run `kabarfeed digest send` again once the server is reachable",
            err=True,
        )
    if p.failed:
        click.echo("see the failures: kabarfeed deliveries --status failed", err=True)
    if p.unknown:
        click.echo(
            f"{p.unknown} messages got no reply after the final dot (the server may have "
            "them); see: kabarfeed deliveries --status unknown",
            err=True,
        )
    if p.lost:
        click.secho(
            f"{p.lost} deliveries were taken over by another sender while this one was "
            "sending them (their lease ran out); their results were not recorded here",
            fg="red",
            err=True,
        )
    return 0 if report.ok else 1


def _dry_run(app: AppContext, options: enqueue.DueOptions) -> None:
    summary = run.dry_run(app.config, app.db, app.clock, options)
    _print_built(summary.built)
    average = summary.total_bytes / summary.messages / 1024 if summary.messages else 0
    click.echo(
        f"dry run: {summary.messages} messages would be sent "
        f"(average {average:.1f} KB, largest {summary.largest / 1024:.1f} KB); "
        "nothing was sent or recorded"
    )


def _row_json(r: store.DeliveryRow) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": r.id,
        "subscriber_id": r.subscriber_id,
        "email": r.email,
        "local_date": r.local_date,
        "status": r.state.value,
        "attempts": r.attempts,
        "articles": r.article_count,
        "next_attempt_at": iso(r.next_attempt_at),
        "last_code": r.last_code,
        "last_reply": r.last_reply,
        "message_id": r.message_id,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
        "sent_at": iso(r.sent_at),
        "unknown_outcomes": r.unknown_outcomes,
    }


def _table(found: list[store.DeliveryRow], counts: dict[str, int]) -> None:
    table = Table(
        "id", "date", "email", "status", "tries", "articles", "code", "last reply", "when"
    )
    for r in found:
        when = r.sent_at or r.next_attempt_at or r.updated_at
        table.add_row(
            str(r.id),
            r.local_date,
            r.email,
            r.state.value,
            str(r.attempts),
            str(r.article_count),
            str(r.last_code or ""),
            (r.last_reply or "")[:60],
            when.strftime("%Y-%m-%d %H:%M UTC"),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and pipes: do not wrap addresses
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no deliveries")


def register(main: click.Group) -> None:
    """Add ``digest send`` (to the digest group) and the ``deliveries`` group."""
    digest = main.commands.get("digest")
    if not isinstance(digest, click.Group):
        digest = click.Group("digest", help="Build and send the daily digest.")
        main.add_command(digest)

    @digest.command("send")
    @click.option("--date", "date_text", help="Build editions for this local date (YYYY-MM-DD).")
    @click.option("--zone", help="Only subscribers in this time zone (e.g. Asia/Jayapura).")
    @click.option("--force", is_flag=True, help="Also editions whose send time has not come.")
    @click.option("--dry-run", is_flag=True, help="Render and count; send and record nothing.")
    @click.option("--limit", type=click.IntRange(1), help="At most this many editions.")
    @click.option(
        "--processes",
        type=click.IntRange(1, 32),
        default=1,
        show_default=True,
        help="Sender processes (the rate limit is shared among them).",
    )
    @pass_app
    def send(
        app: AppContext,
        date_text: str | None,
        zone: str | None,
        force: bool,
        dry_run: bool,
        limit: int | None,
        processes: int,
    ) -> None:
        """Build the due editions, queue them and send the outbox.

        Without options: each active subscriber's edition for their current
        local date, once its send time has passed. Re-running never sends an
        edition twice. Exits 1 when a message failed permanently or the mail
        server was unreachable.
        """
        options = enqueue.DueOptions(parse_date_option(date_text), _check_zone(zone), force, limit)
        if dry_run:
            _dry_run(app, options)
            return
        code = _send(app, options, processes)
        if code:
            raise click.exceptions.Exit(code)

    @main.group("deliveries", invoke_without_command=True)
    @click.option("--date", "date_text", help="Only this local date (YYYY-MM-DD).")
    @click.option("--status", type=click.Choice(_STATES), help="Only rows in this state.")
    @click.option("--limit", type=click.IntRange(1), default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    @click.pass_context
    def deliveries(
        ctx: click.Context, date_text: str | None, status: str | None, limit: int, as_json: bool
    ) -> None:
        """List delivery rows (newest date first): state, attempts, last SMTP reply."""
        if ctx.invoked_subcommand is not None:
            return
        app = ctx.find_object(AppContext)
        assert app is not None
        day = parse_date_option(date_text)
        local_date = day.isoformat() if day else None
        state = DeliveryState(status) if status else None
        with app.db.connect() as conn:
            found = store.list_deliveries(conn, local_date=local_date, state=state, limit=limit)
            counts = store.count_by_state(conn, local_date=local_date)
        if as_json:
            click.echo(json.dumps([_row_json(r) for r in found], ensure_ascii=False, indent=2))
            return
        _table(found, counts)

    @deliveries.command("retry")
    @click.option("--date", "date_text", help="Only this local date (YYYY-MM-DD).")
    @click.option(
        "--status",
        type=click.Choice([s.value for s in store.RETRYABLE]),
        default="failed",
        show_default=True,
    )
    @pass_app
    def retry(app: AppContext, date_text: str | None, status: str) -> None:
        """Put failed (or deferred, or unknown) deliveries back in the queue with
        fresh attempts; the next `digest send` sends them (same Message-ID)."""
        day = parse_date_option(date_text)
        with app.db.begin() as conn:
            n = store.requeue(
                conn,
                app.clock(),
                state=DeliveryState(status),
                local_date=day.isoformat() if day else None,
            )
        click.echo(
            f"re-queued {n} {status} deliveries" + (f" for {day.isoformat()}" if day else "")
        )
