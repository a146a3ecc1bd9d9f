"""``kabarfeed ingest``, ``kabarfeed articles`` and ``kabarfeed sources``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from kabarfeed.cli.context import AppContext
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.ingest import Ingestor, IngestReport
from kabarfeed.models import Article
from kabarfeed.store import articles as article_store
from kabarfeed.store import sources as source_store

pass_app = click.make_pass_decorator(AppContext)


def run_ingest(app: AppContext, only: tuple[str, ...] = ()) -> IngestReport:
    """Ingest with a progress bar on a terminal; used by ``ingest`` and ``make run``."""
    for name in only:
        if app.config.source(name) is None:
            valid = ", ".join(s.name for s in app.config.sources)
            raise NotFoundError(f'no source named "{name}"', hint=f"configured: {valid}")
    ingestor = Ingestor(app.config, app.db, app.clock)
    if not app.interactive:
        return ingestor.run(only or None)
    total = len([s for s in app.config.sources if s.enabled and (not only or s.name in only)])
    with Progress(transient=True) as progress:
        task = progress.add_task("ingesting", total=total)
        return ingestor.run(only or None, progress=lambda _o: progress.advance(task))


def article_json(a: Article) -> dict[str, Any]:
    """The public JSON shape of an article (``articles --json``)."""
    zone = ZoneInfo(a.local_tz) if a.local_tz else UTC
    return {
        "id": a.id,
        "title": a.title,
        "url": a.url,
        "author": a.author,
        "published": a.published.astimezone(zone).isoformat(),
        "updated": a.updated.astimezone(zone).isoformat(),
        "regions": list(a.regions),
        "categories": list(a.categories),
        "advertorial": a.advertorial,
        "source": a.source,
        "image": a.image.url if a.image else None,
        "image_caption": a.image.caption if a.image else None,
        "summary": a.summary,
        "language": a.language,
    }


def _parse_since(value: str | None, zone: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InputError(
            f'--since "{value}" is not a date like 2025-11-16 or 2025-11-16T08:00+08:00'
        ) from e
    if parsed.tzinfo is None:
        if len(value) <= 10:
            parsed = datetime.combine(parsed.date(), time())
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed


def register(main: click.Group) -> None:
    """Add the ingest-side commands to ``main``."""

    @main.command("ingest")
    @click.option("--source", "only", multiple=True, help="Only this source (repeatable).")
    @pass_app
    def ingest(app: AppContext, only: tuple[str, ...]) -> None:
        """Fetch every source once and store new and edited articles."""
        report = run_ingest(app, only)
        _print_report(report)
        if report.all_failed:
            raise click.exceptions.Exit(1)

    @main.command("articles")
    @click.option("--region", help="Region slug (a province includes its cities).")
    @click.option("--category", help="Category slug.")
    @click.option("--since", help="Published after this date/time (site zone if none given).")
    @click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    @pass_app
    def articles(
        app: AppContext,
        region: str | None,
        category: str | None,
        since: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """List stored articles, newest first."""
        taxonomy = app.config.taxonomy
        _check_slug("region", region, [r.slug for r in taxonomy.regions])
        _check_slug("category", category, [c.slug for c in taxonomy.categories])
        with app.db.connect() as conn:
            found = article_store.load_articles(
                conn,
                regions=taxonomy.with_descendants(region) if region else None,
                categories=[category] if category else None,
                published_after=_parse_since(since, app.config.site.timezone),
                limit=limit,
            )
        if as_json:
            click.echo(json.dumps([article_json(a) for a in found], ensure_ascii=False, indent=2))
            return
        _articles_table(found)

    @main.command("sources")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    @pass_app
    def sources(app: AppContext, as_json: bool) -> None:
        """Show each source's health: last success, last error, next fetch."""
        names = [s.name for s in app.config.sources]
        with app.db.connect() as conn:
            states = {s.name: s for s in source_store.list_sources(conn, names)}
        rows = [_source_row(s.name, s.kind, states.get(s.name)) for s in app.config.sources]
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        table = Table(
            "source", "kind", "status", "last success", "errors", "next fetch", "last error"
        )
        for r in rows:
            table.add_row(
                r["name"],
                r["kind"],
                r["status"],
                r["last_success"] or "-",
                str(r["error_count"]),
                r["next_fetch"] or "-",
                r["last_error"] or "",
            )
        Console().print(table)


def _check_slug(kind: str, value: str | None, valid: list[str]) -> None:
    if value is not None and value not in valid:
        raise InputError(f'unknown {kind} "{value}"', hint="valid: " + ", ".join(valid))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _source_row(name: str, kind: str, state: source_store.SourceState | None) -> dict[str, Any]:
    status = "never fetched"
    if state and state.last_fetch_at:
        status = "failing" if state.error_count else ("warning" if state.last_error else "ok")
    return {
        "name": name,
        "kind": kind,
        "status": status,
        "location": state.location if state else None,
        "last_fetch": _iso(state.last_fetch_at) if state else None,
        "last_success": _iso(state.last_success_at) if state else None,
        "last_error": state.last_error if state else None,
        "last_error_at": _iso(state.last_error_at) if state else None,
        "error_count": state.error_count if state else 0,
        "next_fetch": _iso(state.next_fetch_at) if state else None,
    }


def _print_report(report: IngestReport) -> None:
    for o in report.outcomes:
        if not o.ok:
            click.secho(f"source {o.source} failed: {o.error}", fg="red", err=True)
        elif o.warnings:
            click.secho(
                f"source {o.source}: {len(o.warnings)} warning(s); first: {o.warnings[0]}",
                fg="yellow",
                err=True,
            )
    click.echo(report.summary())


def _articles_table(found: list[Article]) -> None:
    table = Table("published", "title", "regions", "categories", "adv")
    for a in found:
        zone = ZoneInfo(a.local_tz) if a.local_tz else UTC
        table.add_row(
            a.published.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            a.title,
            ", ".join(a.regions),
            ", ".join(a.categories),
            "ADV" if a.advertorial else "",
        )
    Console().print(table)
