"""``kabarfeed bounces ingest|list|show``: the mail world's answers.

``ingest`` is made for an MTA pipe (Postfix ``pipe``/``local`` command,
procmail, ``.forward``): it reads one message on stdin and exits with a
sysexits code — 0 once the report is durably recorded (in the database, or in
the failed folder with its reason), 75 (``EX_TEMPFAIL``) when it could not be,
so the MTA keeps the message and retries. It never exits 0 without a record.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import click
from rich.console import Console
from rich.table import Table

from kabarfeed.bounces import store
from kabarfeed.bounces.intake import IntakeOutcome, ingest_bytes, intake_settings
from kabarfeed.bounces.model import EventKind
from kabarfeed.cli.context import AppContext
from kabarfeed.config import parse_duration
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.store import subscribers as subscriber_store

pass_app = click.make_pass_decorator(AppContext)

EX_OK = 0
EX_TEMPFAIL = 75
_CHUNK = 1 << 16


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of ``stream`` (one more tells "too large");
    the rest is read and dropped, so the writer never sees a broken pipe."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        while stream.read(_CHUNK):
            pass
    return data


def _summary(outcome: IntakeOutcome) -> str:
    if not outcome.events:
        return f"kept in {outcome.failed_path}: {outcome.reason}"
    parts = []
    for ev in outcome.events:
        who = f"subscriber {ev.target.subscriber_id}" if ev.target.subscriber_id else "nobody"
        dup = " (already recorded)" if ev.duplicate else ""
        parts.append(
            f"event {ev.id}: {ev.kind.value} {ev.recipient or ''} → {who} "
            f"[{ev.target.attribution.value}]{dup}"
        )
    if outcome.failed_path:
        parts.append(f"copy kept in {outcome.failed_path}: {outcome.reason}")
    return "; ".join(parts)


def _since(value: str | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InputError(f'--since "{value}" is neither a duration like 7d nor a date') from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)


def _ingest(app: AppContext, recipient: str | None, files: tuple[Path, ...]) -> None:
    """Record stdin (no ``files``) or each file; raises on anything not recorded."""
    settings = intake_settings(app.config, app.db, now=app.clock())
    if not files:
        data = read_limited(sys.stdin.buffer, settings.max_bytes)
        outcome = ingest_bytes(
            app.db, data, settings, now=app.clock(), raw_ref="stdin", envelope_to=recipient
        )
        click.echo(_summary(outcome))
        return
    for file in files:
        with open(file, "rb") as fh:
            data = read_limited(fh, settings.max_bytes)
        outcome = ingest_bytes(
            app.db,
            data,
            settings,
            now=app.clock(),
            raw_ref=f"file:{file.name}",
            envelope_to=recipient,
        )
        click.echo(f"{file}: {_summary(outcome)}")


def _subscriber_id(app: AppContext, email: str | None) -> int | None:
    if email is None:
        return None
    with app.db.connect() as conn:
        sub = subscriber_store.get_by_email(conn, email)
    if sub is None:
        raise NotFoundError(f"no subscriber with address {email.strip()}")
    return sub.id


def _console() -> Console:
    return Console(width=200 if not sys.stdout.isatty() else None)


def _print_events(rows: list[store.EventRow]) -> None:
    table = Table("id", "received", "source", "kind", "recipient", "status", "by", "action")
    for r in rows:
        table.add_row(
            str(r.id),
            r.received_at.strftime("%Y-%m-%d %H:%M"),
            r.provider or r.source.value,
            r.kind.value,
            r.subscriber_email or r.recipient or "",
            r.status_code or "",
            r.attribution.value,
            r.action or "",
        )
    _console().print(table)
    if not rows:
        click.echo("no events")


def _print_event(row: store.EventRow, history: list[store.EventRow]) -> None:
    for key, value in row.as_json().items():
        click.echo(f"{key:>17}: {'' if value is None else value}")
    if history:
        click.echo("\nsubscriber history:")
        for h in history:
            click.echo(
                f"  {h.id:>6}  {h.received_at:%Y-%m-%d %H:%M}  {h.kind.value:<11} "
                f"{h.status_code or '':<7} {h.action or ''}"
            )


def _print_suppressed(rows: list[dict[str, Any]]) -> None:
    table = Table("email", "reason", "since", "event")
    for r in rows:
        table.add_row(r["email"], r["reason"], r["created_at"][:16], str(r["event_id"] or ""))
    _console().print(table)
    if not rows:
        click.echo("no suppressed addresses")


def _json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def register(group: click.Group) -> None:
    """Add the ``bounces`` group to ``group``."""

    @group.group("bounces")
    def bounces() -> None:
        """Bounces, complaints and auto-replies the mail world sent back."""

    @bounces.command("ingest")
    @click.option(
        "--recipient",
        envvar=["ORIGINAL_RECIPIENT", "RECIPIENT"],
        default=None,
        help="The address the MTA delivered to (default: $ORIGINAL_RECIPIENT).",
    )
    @click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
    @pass_app
    def ingest(app: AppContext, recipient: str | None, files: tuple[Path, ...]) -> None:
        """Record one report read on stdin, or each FILE (e.g. kept in the failed
        folder, after a fix): exit 0 once recorded, 75 (try again later) otherwise."""
        try:
            _ingest(app, recipient, files)
        except Exception as e:  # every failure is temporary for the MTA: it keeps the mail
            click.echo(f"kabarfeed bounces ingest: not recorded, try again later: {e}", err=True)
            sys.exit(EX_TEMPFAIL)
        sys.exit(EX_OK)

    @bounces.command("list")
    @click.option("--since", default=None, help="A duration (7d, 12h) or a date.")
    @click.option("--kind", type=click.Choice([k.value for k in EventKind]), default=None)
    @click.option("--subscriber", "email", default=None, help="Only this address's history.")
    @click.option("--limit", type=int, default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="One JSON array.")
    @pass_app
    def list_cmd(
        app: AppContext,
        since: str | None,
        kind: str | None,
        email: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """Recorded events, newest first."""
        start = _since(since, app.clock())
        subscriber_id = _subscriber_id(app, email)
        with app.db.connect() as conn:
            rows = store.list_events(
                conn,
                since=start,
                subscriber_id=subscriber_id,
                kind=EventKind(kind) if kind else None,
                limit=limit,
            )
        if as_json:
            _json([r.as_json() for r in rows])
        else:
            _print_events(rows)

    @bounces.command("show")
    @click.argument("event_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @pass_app
    def show(app: AppContext, event_id: int, as_json: bool) -> None:
        """One event with everything known about it, and the subscriber's history."""
        with app.db.connect() as conn:
            row = store.get_event(conn, event_id)
            if row is None:
                raise NotFoundError(f"no event {event_id}", hint="see kabarfeed bounces list")
            history = (
                store.list_events(conn, subscriber_id=row.subscriber_id, limit=20)
                if row.subscriber_id
                else []
            )
        if as_json:
            _json(row.as_json() | {"history": [h.as_json() for h in history]})
        else:
            _print_event(row, history)

    @bounces.command("suppressed")
    @click.option("--json", "as_json", is_flag=True, help="One JSON array.")
    @pass_app
    def suppressed_cmd(app: AppContext, as_json: bool) -> None:
        """Addresses never mailed again (complaints) until they opt in afresh."""
        with app.db.connect() as conn:
            rows = store.list_suppressed(conn)
        if as_json:
            _json(rows)
        else:
            _print_suppressed(rows)


def print_health(console: Console, mail: dict[str, Any]) -> None:
    """The mail-health part of ``kabarfeed status``: rates per window and per
    edition, warnings past 0.1 % complaints / 2 % bounces, mailbox polls."""
    rows = [*mail.get("windows", []), *mail.get("editions", [])]
    if not any(r.get("sent") for r in rows) and not mail.get("polls"):
        return
    table = Table(
        "mail",
        "sent",
        "hard",
        "soft",
        "bounce %",
        "complaints",
        "complaint %",
        "unsubscribes",
        "delayed",
    )
    for r in rows:
        table.add_row(
            r["label"],
            str(r["sent"]),
            str(r["hard"]),
            str(r["soft"]),
            f"{r['bounce_rate']:.2%}",
            str(r["complaints"]),
            f"{r['complaint_rate']:.2%}",
            str(r["unsubscribes"]),
            str(r.get("delayed", 0)),
        )
    console.print(table)
    console.print(f"suppressed addresses: {mail.get('suppressed', 0)}")
    for warning in mail.get("warnings", []):
        console.print(f"[yellow]warning: {warning}[/yellow]", highlight=False)
    for name, poll in sorted(mail.get("polls", {}).items()):
        state = f"[red]{poll['error']}[/red]" if poll.get("error") else "ok"
        console.print(
            f"bounce {name}: last poll {poll.get('time', '?')}, {poll.get('read', 0)} read, "
            f"{poll.get('events', 0)} new events: {state}",
            highlight=False,
        )
