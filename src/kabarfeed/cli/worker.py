"""``kabarfeed worker``: a delivery-only process (any number on PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import click

from kabarfeed.cli.context import AppContext
from kabarfeed.delivery.worker import DEFAULT_POLL, WorkerOptions, run_workers

pass_app = click.make_pass_decorator(AppContext)


def register(main: click.Group) -> None:
    """Add ``worker`` to ``main``."""

    @main.command("worker")
    @click.option(
        "--processes",
        type=click.IntRange(1, 64),
        default=1,
        show_default=True,
        help="Worker processes to run here (each with its own SMTP pool).",
    )
    @click.option("--once", is_flag=True, help="Send everything due now, then exit.")
    @click.option(
        "--poll",
        type=click.FloatRange(0.05, 3600),
        default=DEFAULT_POLL.total_seconds(),
        show_default=True,
        help="Seconds between outbox checks while idle.",
    )
    @pass_app
    def worker(app: AppContext, processes: int, once: bool, poll: float) -> None:
        """Send queued digests from the outbox until stopped (SIGTERM finishes the
        messages in flight). Start as many as you like on as many machines as you
        like against PostgreSQL; on SQLite only one worker may run."""
        config = app.config
        options = WorkerOptions(
            once=once,
            poll=timedelta(seconds=poll),
            stop_timeout=config.scheduler.shutdown_timeout,
        )
        report = run_workers(config, app.db, app.clock, processes=processes, options=options)
        click.echo(f"worker: {report.summary()}")
        if once and (report.paused or report.failed or report.lost):
            if report.last_pause:
                click.echo(f"paused: {report.last_pause}", err=True)
            raise click.exceptions.Exit(1)
