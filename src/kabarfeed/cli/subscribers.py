"""``kabarfeed subscribers add|remove|list|import|export``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kabarfeed.cli.context import AppContext
from kabarfeed.digest.schedule import BREAKING, FREQUENCIES, WEEKLY, gets_breaking
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.models import Consent, Subscriber, SubscriberStatus
from kabarfeed.store import subscribers as store
from kabarfeed.store import welcomes
from kabarfeed.subscribers import (
    CSV_COLUMNS,
    WEEKDAY_NAMES,
    SubscriberDraft,
    check_weekday,
    csv_record,
    parse_csv,
    validate_draft,
    with_defaults,
)

pass_app = click.make_pass_decorator(AppContext)
_STATUSES = [s.value for s in SubscriberStatus]


def subscriber_json(sub: Subscriber) -> dict[str, Any]:
    """The public JSON shape of a subscriber (``list --json``); the token is left out."""
    consent = sub.consent
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status.value,
        "regions": list(sub.regions),
        "categories": list(sub.categories),
        "timezone": sub.timezone,
        "send_at": sub.send_at,
        "language": sub.language,
        "frequency": sub.frequency,
        "weekday": WEEKDAY_NAMES[sub.weekly_day] if sub.frequency == "weekly" else None,
        "breaking_alerts": gets_breaking(sub),
        "created_at": sub.created_at.isoformat(),
        "confirmed_at": sub.confirmed_at.isoformat() if sub.confirmed_at else None,
        "unsubscribed_at": sub.unsubscribed_at.isoformat() if sub.unsubscribed_at else None,
        "consent": {"at": consent.at.isoformat(), "method": consent.method} if consent else None,
    }


def _add(app: AppContext, draft: SubscriberDraft, *, welcome: bool = False) -> Subscriber:
    config = app.config
    ready = with_defaults(validate_draft(draft, config.taxonomy), config)
    now = app.clock()
    with app.db.begin() as conn:
        sub = store.add(conn, ready, now=now)
        if welcome:
            welcomes.promise(conn, sub.id, now)
        return sub


def _require(app: AppContext, email: str) -> Subscriber:
    with app.db.connect() as conn:
        found = store.get_by_email(conn, email)
    if found is None:
        raise NotFoundError(f"no subscriber with address {email.strip()}")
    return found


def _table(subs: list[Subscriber]) -> Table:
    table = Table(
        "id", "email", "name", "status", "regions", "categories", "zone", "at", "lang", "every"
    )
    for s in subs:
        table.add_row(
            str(s.id),
            s.email,
            s.name or "",
            s.status.value,
            " ".join(s.regions),
            " ".join(s.categories),
            s.timezone,
            s.send_at,
            s.language,
            _every(s),
        )
    return table


def _every(sub: Subscriber) -> str:
    if sub.frequency == BREAKING:
        return "breaking only"
    rhythm = f"week ({WEEKDAY_NAMES[sub.weekly_day][:3]})" if sub.frequency == WEEKLY else "day"
    return f"{rhythm} + breaking" if sub.breaking_alerts else rhythm


def _import(app: AppContext, path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    now = app.clock()
    parsed = parse_csv(text, app.config.taxonomy, now=now)
    rows = [(r, with_defaults(r.draft, app.config)) for r in parsed.rows]
    report = store.import_rows(app.db, rows, now=now)
    problems = sorted([(p.line, p.message) for p in parsed.problems] + list(report.failed))
    for line, message in problems:
        click.echo(f"{path.name}:{line}: {message}", err=True)
    click.echo(
        f"imported {path.name}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(problems)} rejected"
    )
    if problems:
        sys.exit(1)


def _export(app: AppContext, path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for batch in store.iter_batches(app.db, status=None, batch_size=1000):
            writer.writerows(csv_record(s) for s in batch)
            count += len(batch)
    return count


def register(main: click.Group) -> None:
    """Add the ``subscribers`` group to ``main``."""

    @main.group("subscribers")
    def group() -> None:
        """Manage digest subscribers."""

    @group.command("add")
    @click.argument("email")
    @click.option("--name", help="Display name (used in the greeting).")
    @click.option("--region", "regions", multiple=True, help="Region slug (repeatable).")
    @click.option("--category", "categories", multiple=True, help="Category slug (repeatable).")
    @click.option("--tz", "timezone", help="IANA zone (default: first region's, else site's).")
    @click.option("--send-at", help='Local send time "HH:MM" (default: [digest] send_at).')
    @click.option("--lang", "language", type=click.Choice(["id", "en"]))
    @click.option(
        "--frequency",
        type=click.Choice(list(FREQUENCIES)),
        help="Edition rhythm (default daily; breaking: breaking alerts only, no digest).",
    )
    @click.option("--weekday", help="A weekly edition's day: monday ... sunday (default monday).")
    @click.option(
        "--breaking/--no-breaking",
        "breaking",
        default=None,
        help="A daily or weekly reader also gets breaking alerts (default no).",
    )
    @click.option(
        "--welcome",
        is_flag=True,
        help="Send them a welcome edition ([digest] welcome) now, not only the next regular one.",
    )
    @pass_app
    def add(
        app: AppContext,
        email: str,
        name: str | None,
        regions: tuple[str, ...],
        categories: tuple[str, ...],
        timezone: str | None,
        send_at: str | None,
        language: str | None,
        frequency: str | None,
        weekday: str | None,
        breaking: bool | None,
        welcome: bool,
    ) -> None:
        """Add an active subscriber (an admin vouches for their consent)."""
        consent = Consent(app.clock(), "cli")
        sub = _add(
            app,
            SubscriberDraft(
                email,
                name,
                regions,
                categories,
                timezone,
                send_at,
                language,
                SubscriberStatus.ACTIVE,
                consent,
                frequency=frequency,
                weekly_day=check_weekday(weekday) if weekday else None,
                breaking_alerts=breaking,
            ),
            welcome=welcome,
        )
        click.echo(f"added {sub.email} (id {sub.id}, {sub.timezone} {sub.send_at}, {sub.language})")

    @group.command("remove")
    @click.argument("email")
    @click.option(
        "--purge",
        is_flag=True,
        help="Erase the subscriber and their history instead of unsubscribing.",
    )
    @pass_app
    def remove(app: AppContext, email: str, purge: bool) -> None:
        """Unsubscribe an address (or erase it with --purge)."""
        sub = _require(app, email)
        with app.db.begin() as conn:
            if purge:
                store.delete_subscriber(conn, sub.id)
            else:
                store.set_status(conn, sub.id, SubscriberStatus.UNSUBSCRIBED, now=app.clock())
        click.echo(f"{'erased' if purge else 'unsubscribed'} {sub.email}")

    @group.command("list")
    @click.option("--status", type=click.Choice(_STATUSES), help="Only this status.")
    @click.option("--region", help="Only subscribers of this region slug.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
    @pass_app
    def list_(app: AppContext, status: str | None, region: str | None, as_json: bool) -> None:
        """List subscribers."""
        with app.db.connect() as conn:
            subs = store.list_subscribers(
                conn, status=SubscriberStatus(status) if status else None, region=region
            )
        if as_json:
            click.echo(json.dumps([subscriber_json(s) for s in subs], ensure_ascii=False, indent=2))
        else:
            Console(highlight=False, width=200).print(_table(subs))

    @group.command("frequency")
    @click.argument("email")
    @click.argument("frequency", type=click.Choice(list(FREQUENCIES)))
    @click.option("--weekday", help="A weekly edition's day: monday ... sunday.")
    @click.option(
        "--breaking/--no-breaking",
        "breaking",
        default=None,
        help="A daily or weekly reader also gets breaking alerts (unchanged if not given).",
    )
    @pass_app
    def frequency(
        app: AppContext, email: str, frequency: str, weekday: str | None, breaking: bool | None
    ) -> None:
        """Change a subscriber's rhythm: daily, weekly on --weekday, or breaking
        (alerts only). The next edition covers everything since the previous
        one (nothing skipped or sent twice)."""
        sub = _require(app, email)
        draft = SubscriberDraft(
            sub.email,
            frequency=frequency,
            weekly_day=check_weekday(weekday) if weekday else None,
            breaking_alerts=breaking,
        )
        with app.db.begin() as conn:
            changed = store.update_preferences(conn, sub.id, draft, now=app.clock())
        day = f" on {WEEKDAY_NAMES[changed.weekly_day]}" if changed.frequency == "weekly" else ""
        alerts = " + breaking alerts" if changed.breaking_alerts and frequency != BREAKING else ""
        click.echo(f"{changed.email}: {changed.frequency}{day}{alerts}")

    @group.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @pass_app
    def import_(app: AppContext, file: Path) -> None:
        """Import FILE.csv (header row; email required; idempotent). Bad rows are
        reported with their line number; the good ones are imported."""
        _import(app, file)

    @group.command("export")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @pass_app
    def export(app: AppContext, file: Path) -> None:
        """Write every subscriber to FILE.csv (re-importable)."""
        click.echo(f"exported {_export(app, file)} subscribers to {file}")
