"""``kabarfeed run`` (the long-running service, or ``--once``) and ``kabarfeed status``."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kabarfeed.banner import Startup, banner_lines
from kabarfeed.cli.bounces import print_health
from kabarfeed.cli.context import AppContext
from kabarfeed.config import ENV_PREFIX, Config, resolve_storage_url
from kabarfeed.errors import ConfigError
from kabarfeed.service import Service, run_service
from kabarfeed.status import StatusReport, gather_status
from kabarfeed.store import open_database
from kabarfeed.store.deliveries import count_by_state

pass_app = click.make_pass_decorator(AppContext)


def register(main: click.Group) -> None:
    """Add ``run`` and ``status`` to ``main``."""

    @main.command("run")
    @click.option("--host", default=None, help="Listen address (default: [web] host).")
    @click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Listen port; 0 picks a free one (default: [web] port).",
    )
    @click.option("--once", is_flag=True, help="Do all work due now, then exit (cron, timers).")
    @pass_app
    def run(app: AppContext, host: str | None, port: int | None, once: bool) -> None:
        """Ingest, publish and mail on schedule; serve the web app; reload on SIGHUP."""
        config = app.config
        code = run_service(
            config,
            app.db,
            app.clock,
            host=host or config.web.host,
            port=config.web.port if port is None else port,
            once=once,
            on_ready=_announce_when_listening,
        )
        if code:
            raise click.exceptions.Exit(code)

    @main.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @pass_app
    def status(app: AppContext, as_json: bool) -> None:
        """Config, sources, articles, feeds, outbox, send groups and the run process."""
        report = _gather(app)
        if as_json:
            click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        else:
            _print(report)


def _announce_when_listening(service: Service) -> None:
    service.on_listening = _print_banner


def _print_banner(service: Service, host: str, port: int) -> None:
    """Print the "open these" block to stdout, before any log line of the run."""
    with service.rt.db.connect() as conn:
        outbox = count_by_state(conn)
    app = service.web.app if service.web is not None else None
    paths = tuple(str(getattr(r, "path", "")) for r in getattr(app, "routes", ()))
    startup = Startup(host, port, paths, outbox, service.seed)
    click.echo("\n".join(banner_lines(service.rt.config, startup, cwd=Path.cwd())))
    sys.stdout.flush()


def _gather(app: AppContext) -> StatusReport:
    """Status even when the config on disk is invalid (the database URL is
    then read from the raw file or the environment)."""
    now = app.clock()
    try:
        config: Config | None = app.config
    except ConfigError as e:
        db = open_database(_raw_storage_url(app.config_path))
        try:
            return gather_status(
                None, db, now, config_path=app.config_path, problems=tuple(e.problems)
            )
        finally:
            db.dispose()
    return gather_status(config, app.db, now, config_path=app.config_path)


def _raw_storage_url(path: Path) -> str:
    env = os.environ.get(f"{ENV_PREFIX}STORAGE_URL")
    if env:
        return env
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        url = str(data["storage"]["url"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError([f"{path}: cannot find [storage] url for status"]) from e
    return resolve_storage_url(url, path.parent)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"


def _print(r: StatusReport) -> None:
    console = Console()
    console.print(f"kabarfeed {r.version}")
    state = "valid" if r.config_valid else "[red]INVALID[/red]"
    console.print(f"config: {r.config_path} ({state})")
    for problem in r.config_problems:
        console.print(f"  [red]{problem}[/red]", markup=True, highlight=False)
    _print_reload(console, r.last_reload)
    beat = r.heartbeat
    if r.running and beat:
        console.print(
            f"run process: [green]alive[/green] (pid {beat.pid} on {beat.host}, "
            f"since {_when(beat.started)}, port {beat.port}"
            f"{', ' + beat.role if beat.role else ''})"
        )
    else:
        console.print(
            f"run process: [yellow]not running[/yellow] "
            f"(last beat {_when(beat.beat) if beat else 'never'})"
        )
    _print_leader(console, r.leader)
    _print_workers(console, r)
    console.print(
        f"articles: {r.articles_total} ({r.articles_last_24h} in the last 24 h, "
        f"newest {_when(r.newest_article)})"
    )
    console.print(f"feeds: {r.feeds_count} files, last built {_when(r.feeds_built_at)}")
    _print_sources(console, r.sources)
    _print_outbox(console, r.outbox)
    _print_unknown(console, r.unknown)
    print_health(console, r.mail)
    _print_groups(console, r)
    _print_frequencies(console, r)


def _print_workers(console: Console, r: StatusReport) -> None:
    alive = [w for w in r.workers if w.alive(r.now)]
    if not r.workers:
        return
    console.print(f"delivery workers: {len(alive)} alive of {len(r.workers)} seen today")
    for w in r.workers:
        state = "alive" if w.alive(r.now) else "stopped"
        console.print(
            f"  pid {w.pid} on {w.host}: {state}, since {_when(w.started)}, "
            f"last beat {_when(w.beat)}",
            markup=False,
            highlight=False,
        )


def _print_leader(console: Console, leader: dict[str, Any] | None) -> None:
    if not leader:
        return
    console.print(
        f"scheduler role (leader): pid {leader.get('pid')} on {leader.get('host')} "
        f"since {leader.get('since')}, last beat {leader.get('beat')}",
        markup=False,
        highlight=False,
    )


def _print_reload(console: Console, reload: dict[str, Any] | None) -> None:
    if not reload:
        return
    if reload.get("ok"):
        console.print(
            f"last config reload: accepted at {reload.get('time')} "
            f"({len(reload.get('changes') or [])} changes)"
        )
        return
    console.print(
        f"last config reload: [red]REJECTED[/red] at {reload.get('time')}; "
        "the service runs on the previous config:"
    )
    for problem in reload.get("problems") or []:
        console.print(f"  {problem}", markup=False, highlight=False)


def _print_sources(console: Console, rows: tuple[dict[str, Any], ...]) -> None:
    table = Table(
        "source",
        "kind",
        "health",
        "last success",
        "errors",
        "next fetch",
        "last error",
        title="sources",
    )
    for s in rows:
        table.add_row(
            s["name"],
            s["kind"],
            s["health"],
            _when(s["last_success"]),
            str(s["error_count"]),
            _when(s["next_fetch"]),
            s["last_error"] or "",
        )
    console.print(table)


def _print_outbox(console: Console, outbox: dict[str, dict[str, int]]) -> None:
    states = ["queued", "sending", "sent", "deferred", "unknown", "failed", "skipped"]
    table = Table("local date", *states, title="outbox")
    for day, counts in outbox.items():
        table.add_row(day, *(str(counts.get(s, 0)) for s in states))
    console.print(table)


def _print_unknown(console: Console, unknown: dict[str, int]) -> None:
    retrying, for_admin = unknown.get("retrying", 0), unknown.get("for_admin", 0)
    if retrying or for_admin:
        console.print(
            f"[yellow]unknown delivery outcomes[/yellow] (no reply after the final dot): "
            f"{retrying} to be retried, {for_admin} waiting for an admin "
            "(kabarfeed deliveries --status unknown)"
        )


def _print_frequencies(console: Console, r: StatusReport) -> None:
    counts = ", ".join(f"{n} {f}" for f, n in sorted(r.frequencies.items())) or "none"
    console.print(f"active subscribers by frequency: {counts}")
    _print_breaking(console, r.breaking)
    if not r.weekly:
        return
    table = Table(
        "zone", "send at", "weekday", "subscribers", "next edition", "at (UTC)",
        title="next weekly editions",
    )  # fmt: skip
    for w in r.weekly:
        table.add_row(
            w["timezone"],
            w["send_at"],
            w["weekday"],
            str(w["subscribers"]),
            w["local_date"],
            _when(w["at"]),
        )
    console.print(table)


def _print_breaking(console: Console, b: dict[str, Any]) -> None:
    if not b:
        return
    states = ", ".join(f"{n} {s}" for s, n in sorted(b["alerts"].items())) or "none yet"
    line = (
        f"breaking alerts: {b['breaking_only']} breaking-only and {b['opted_in']} opted-in "
        f"readers; alerts {states}"
    )
    if b["held"]:
        line += f"; {b['held']} held by quiet hours until {_when(b['next_release'])}"
    console.print(line)


def _print_groups(console: Console, r: StatusReport) -> None:
    table = Table(
        "zone",
        "send at",
        "subscribers",
        "done through",
        "next send (UTC)",
        title="digest send groups",
    )
    for g in r.groups:
        due = " (due now)" if g.next_send <= r.now else ""
        table.add_row(
            g.timezone,
            g.send_at,
            str(g.subscribers),
            g.done_through or "-",
            _when(g.next_send) + due,
        )
    console.print(table)
