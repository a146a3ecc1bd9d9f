"""The ``kabarfeed run`` process: web server + scheduler on one asyncio loop.

* uvicorn serves the web app; its own signal capture is disabled so this
  module owns SIGTERM/SIGINT (graceful stop) and SIGHUP (config reload);
* :class:`~kabarfeed.scheduler.ServiceScheduler` runs ingest, feed builds,
  digest groups and the outbox drain through :class:`Workers`;
* a watcher reloads the config when the file or a template folder changes.
  A valid config is applied live with one log line per change; an invalid one
  is refused (every problem logged with its key path, the rejection recorded
  in the ``state`` table for ``kabarfeed status``) and the old one stays;
* a heartbeat row tells ``kabarfeed status`` whether the process is alive.

``run --once`` does everything due now (ingest due sources, build feeds,
queue due editions, drain the outbox) and returns, with the same guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, SecretStr

from kabarfeed import integrations
from kabarfeed.bounces import poller as bounce_poller
from kabarfeed.config import Config, SourceConfig, load_config
from kabarfeed.errors import ConfigError, KabarfeedError
from kabarfeed.ingest import Ingestor
from kabarfeed.leader import Elector, LeaderOnly, Role, make_leadership, poll_interval
from kabarfeed.logsetup import setup_logging
from kabarfeed.models import Clock
from kabarfeed.scheduler import (
    GroupPlan,
    SendGroup,
    ServiceScheduler,
    Timing,
    human_duration,
    plan_group,
)
from kabarfeed.seed import SeedReport, import_seed
from kabarfeed.status import (
    HEARTBEAT_KEY,
    ONCE_KEY,
    RELOAD_KEY,
    active_group_list,
    group_marker,
    set_group_marker,
)
from kabarfeed.store import Database
from kabarfeed.store import sources as source_store
from kabarfeed.store.state import write_state
from kabarfeed.templating import bundled_templates, make_environment
from kabarfeed.web.server import ServerLimits, WebServer, server_config

log = logging.getLogger(__name__)

TEMPLATE_FOLDERS = ("email", "web", "feeds")


# ------------------------------------------------------------------ pure helpers


def timing_of(config: Config) -> Timing:
    """Scheduler cadences from ``[scheduler]``, ``[ingest]`` and ``[feeds]``."""
    sch = config.scheduler
    return Timing(
        jitter=config.ingest.interval_jitter,
        build_delay=config.feeds.build_delay,
        build_max_wait=sch.build_max_wait,
        push_delay=config.api.build_delay,
        push_max_wait=config.api.build_max_wait,
        group_check=sch.digest_check,
        drain_interval=sch.drain_interval,
        heartbeat=sch.heartbeat,
    )


def describe_changes(old: Config, new: Config) -> list[str]:
    """One human line per changed key between two configs (secrets never shown)."""
    lines: list[str] = []
    for name in type(new).model_fields:
        if name in ("path", "sources", "regions", "categories"):
            continue
        before, after = getattr(old, name), getattr(new, name)
        if isinstance(after, BaseModel) and before != after:
            lines.extend(_section_changes(name, before, after))
    lines.extend(_named_changes("sources", old.sources, new.sources, "name"))
    lines.extend(_named_changes("regions", old.regions, new.regions, "slug"))
    lines.extend(_named_changes("categories", old.categories, new.categories, "slug"))
    return lines


def _section_changes(section: str, before: BaseModel, after: BaseModel) -> list[str]:
    out = []
    for key in type(after).model_fields:
        a, b = getattr(before, key), getattr(after, key)
        if a != b:
            shown = "changed" if isinstance(b, SecretStr) else f"{_show(a)} -> {_show(b)}"
            out.append(f"{section}.{key}: {shown}")
    return out


def _named_changes(
    key: str, before: Sequence[BaseModel], after: Sequence[BaseModel], ident: str
) -> list[str]:
    old = {getattr(x, ident): x for x in before}
    new = {getattr(x, ident): x for x in after}
    out = [f"{key}: {n} added" for n in new if n not in old]
    out += [f"{key}: {n} removed" for n in old if n not in new]
    out += [f"{key}: {n} changed" for n in new if n in old and old[n] != new[n]]
    return out


def _show(value: object) -> str:
    if hasattr(value, "total_seconds"):
        return human_duration(value)  # type: ignore[arg-type]
    return repr(str(value)) if isinstance(value, Path) else repr(value)


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """Changes that need a restart (the process keeps the old value until then)."""
    out = []
    if old.storage.url != new.storage.url:
        out.append("storage.url")
    if (old.web.host, old.web.port) != (new.web.host, new.web.port):
        out.append("web.host/web.port")
    if old.admin.listen != new.admin.listen:
        out.append("admin.listen")
    return out


def template_problems(config: Config) -> list[str]:
    """Compile every template (bundled and overrides); one line per broken file."""
    problems = []
    for sub in TEMPLATE_FOLDERS:
        env = make_environment(sub, override=config.digest.templates)
        for name in env.list_templates():
            try:  # parse, not compile: the owning module registers its own filters
                source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
                env.parse(source, name, filename)
            except jinja2.TemplateSyntaxError as e:
                problems.append(f"templates/{sub}/{name}: line {e.lineno}: {e.message}")
            except jinja2.TemplateError as e:
                problems.append(f"templates/{sub}/{name}: {e}")
    return problems


def watched_paths(config: Config) -> list[Path]:
    """The config file and every template folder a reload depends on."""
    paths = [config.path] if config.path else []
    paths.append(bundled_templates())
    if config.digest.templates:
        paths.append(config.digest.templates)
    return [p for p in paths if p is not None and p.exists()]


# ------------------------------------------------------------------ use cases


@dataclass
class Runtime:
    """The one mutable thing: the config currently in force (swapped on reload)."""

    config: Config
    db: Database
    clock: Clock
    run_id: str = field(default_factory=lambda: os.urandom(4).hex())


class Workers:
    """The scheduler's :class:`~kabarfeed.scheduler.UseCases` over the real modules.

    Every call reads ``runtime.config`` afresh, so a reload applies to new work
    while work in progress finishes on the config it started with.
    """

    def __init__(self, runtime: Runtime, role: Callable[[], str] | None = None) -> None:
        self.rt = runtime
        self.started = runtime.clock()
        self.port: int | None = None
        self.role = role or (lambda: "leader")
        # sources ingest concurrently, each in its own job: at most this many at once
        self._ingest_slots = threading.BoundedSemaphore(runtime.config.ingest.concurrency)
        self.on_queued: Callable[[], None] | None = None

    def sources(self) -> Sequence[SourceConfig]:
        """Enabled sources of the current config."""
        return [s for s in self.rt.config.sources if s.enabled]

    def source_next_fetch(self, name: str) -> datetime | None:
        """The stored next fetch time (regular or backoff)."""
        with self.rt.db.connect() as conn:
            state = source_store.get_source(conn, name)
        return state.next_fetch_at if state else None

    def ingest(self, source: SourceConfig) -> bool:
        """Ingest ``source`` if due; whether any article was added or edited.

        At most ``[ingest] concurrency`` sources (as configured at start) are
        read at once; a source waits for a free slot.
        """
        with self._ingest_slots:
            outcome = Ingestor(self.rt.config, self.rt.db, self.rt.clock).run_source(
                source, due_only=True
            )
        if outcome.ok and not outcome.skipped:
            level = logging.INFO if outcome.new or outcome.updated else logging.DEBUG
            log.log(
                level,
                "source %s: new %d, updated %d, unchanged %d",
                source.name,
                outcome.new,
                outcome.updated,
                outcome.unchanged,
                extra={"source": source.name},
            )
        if outcome.changed_ids:
            self.welcome()
        return bool(outcome.changed_ids)

    def welcome(self) -> int:
        """Record promised welcome editions (new articles may have made them
        possible); ask for a drain when any was queued. Returns how many."""
        report = integrations.enqueue_welcomes(self.rt.config, self.rt.db, self.rt.clock())
        if report.queued:
            log.info("welcome editions: %d queued", report.queued)
            if self.on_queued is not None:
                self.on_queued()
        return int(report.queued)

    def build_feeds(self) -> None:
        """Rebuild feeds incrementally."""
        summary = integrations.build_feeds(self.rt.config, self.rt.db, self.rt.clock)
        log.info("feeds built: %s", summary)

    def groups(self) -> Sequence[SendGroup]:
        """Groups of active subscribers (asked before every digest check, so
        promised welcome editions are recorded first: a new subscriber's
        welcome, not a regular edition, is their first digest)."""
        self.welcome()
        with self.rt.db.connect() as conn:
            return active_group_list(conn)

    def run_group(self, group: SendGroup, now: datetime) -> GroupPlan:
        """Queue or skip the group's due editions, then advance its marker."""
        cfg = self.rt.config
        with self.rt.db.connect() as conn:
            done = group_marker(conn, group)
        plan = plan_group(
            group,
            done,
            now,
            max_lateness=cfg.digest.max_lateness,
            catch_up_days=cfg.scheduler.catch_up_days,
        )
        for edition in plan.editions:
            self._handle(group, edition.local_date, edition.send, edition.reason, now)
        if plan.forgotten:
            log.warning("digest %s: %d older missed editions not recorded", group, plan.forgotten)
        if plan.done_through and plan.done_through != done:
            with self.rt.db.begin() as conn:
                set_group_marker(conn, group, plan.done_through, now)
        return plan

    def _handle(self, group: SendGroup, day: date, send: bool, reason: str, now: datetime) -> None:
        cfg, db = self.rt.config, self.rt.db
        extra = {"group": str(group), "local_date": day.isoformat()}
        if send:
            count = integrations.enqueue_group(cfg, db, self.rt.clock, group, day, now)
            log.info("digest %s for %s: %d editions recorded", group, day, count, extra=extra)
        else:
            count = integrations.skip_group(cfg, db, group, day, now, reason)
            log.warning(
                "digest %s for %s skipped (%d editions): %s", group, day, count, reason, extra=extra
            )

    async def drain(self, stop: asyncio.Event) -> int:
        """Send due outbox rows batch by batch until idle or ``stop`` is set."""
        return await integrations.drain_outbox(
            self.rt.config, self.rt.db, self.rt.clock, stop, run_id=self.rt.run_id
        )

    def heartbeat(self, *, stopped: bool = False) -> None:
        """Write the liveness row (``stopped`` on the way out)."""
        now = self.rt.clock()
        row = {
            "stopped": stopped,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.started.isoformat(),
            "beat": now.isoformat(),
            "interval": self.rt.config.scheduler.heartbeat.total_seconds(),
            "port": self.port,
            "config": str(self.rt.config.path or ""),
            "role": self.role(),
        }
        with self.rt.db.begin() as conn:
            write_state(conn, HEARTBEAT_KEY, row, now)


# ------------------------------------------------------------------ web server


class SwappableApp:
    """An ASGI app that forwards to the current app; reload swaps it in place."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _Server(WebServer):
    """The guarded web server without uvicorn's signal handling: the service
    owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:
        """Older uvicorn versions call this; do nothing."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind (port 0 picks a free one) so the real port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        hint = (
            "is another `kabarfeed run` still running? Stop it, or pick another port: "
            "`--port 8081` or KABARFEED_WEB_PORT=8081"
            if e.errno == errno.EADDRINUSE
            else None
        )
        raise KabarfeedError(f"cannot listen on {host}:{port}: {e.strerror}", hint=hint) from e
    sock.set_inheritable(True)
    return sock


# ------------------------------------------------------------------ the service


class Service:
    """One ``run`` process. Build it, then ``await serve(...)`` or ``await once()``."""

    def __init__(self, config: Config, db: Database, clock: Clock) -> None:
        self.rt = Runtime(config, db, clock)
        every = poll_interval(config.scheduler.heartbeat)
        self.elector = Elector(make_leadership(db, ttl=every * 3), clock, every=every)
        self.workers = Workers(self.rt, role=lambda: self.elector.role.value)
        self.cases = LeaderOnly(self.workers, lambda: self.elector.leading)
        self.scheduler = ServiceScheduler(self.cases, clock, timing_of(config))
        self.stopping = asyncio.Event()
        self.web: SwappableApp | None = None
        self.admin_port: int | None = None
        self.seed: SeedReport | None = None
        self.on_listening: Callable[[Service, str, int], None] | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []

    # ---- run --once

    async def once(self) -> int:
        """Do all work due now; return the number of messages sent. While another
        process holds the scheduler role, only the outbox is drained."""
        self.seed = await asyncio.to_thread(self.import_seed)
        self._log_seed()
        if await self.elector.poll() is not Role.LEADER:
            log.info("another process is the scheduler: run --once only drains the outbox")
        try:
            # concurrently, as the scheduler's jobs are (bounded by [ingest] concurrency)
            await asyncio.gather(
                *(asyncio.to_thread(self.cases.ingest, s) for s in self.cases.sources())
            )
            # Always ask: the build is a no-op when nothing changed, and it
            # restores an output folder that was deleted, moved or left stale.
            await asyncio.to_thread(self.cases.build_feeds)
            for group in await asyncio.to_thread(self.cases.groups):
                await asyncio.to_thread(self.cases.run_group, group, self.rt.clock())
            await asyncio.to_thread(self.poll_bounces)
        finally:
            await asyncio.to_thread(self.elector.leadership.release, self.rt.clock())
        return await self.workers.drain(self.stopping)

    def record_once(self, sent: int) -> None:
        """Remember when ``run --once`` last completed (shown by ``status``)."""
        now = self.rt.clock()
        with self.rt.db.begin() as conn:
            write_state(conn, ONCE_KEY, {"time": now.isoformat(), "sent": sent}, now)

    # ---- run

    async def serve(self, host: str, port: int) -> bool:
        """Serve until SIGTERM/SIGINT; return whether shutdown finished in time."""
        sock = bind_socket(host, port)
        self.workers.port = sock.getsockname()[1]
        sockets = [sock, *self._console_socket()]
        server = self._web_server(host)
        self.seed = await asyncio.to_thread(self.import_seed)
        self.workers.on_queued = functools.partial(self._wake_drain, asyncio.get_running_loop())
        if self.on_listening is not None:
            self.on_listening(self, host, self.workers.port)
        self._log_seed()
        log.info("listening on http://%s:%d", host, self.workers.port)
        self._install_signals()
        await self.elector.poll()
        log.info("scheduler role: %s", self.elector.role.value)
        self.elector.on_elected = self._on_elected
        electing = asyncio.create_task(self.elector.run(self.stopping), name="elector")
        await self.scheduler.start()
        # A build soon after start restores missing output and gives a fresh
        # install its index page before the first ingest (a no-op otherwise).
        self.scheduler.request_build()
        serving = asyncio.create_task(server.serve(sockets=sockets), name="web")
        if self.rt.config.scheduler.watch:
            self._tasks.append(asyncio.create_task(self._watch(), name="watch"))
        self._tasks.append(asyncio.create_task(self._poll_bounces_loop(), name="bounces"))
        await self.stopping.wait()
        log.info("stopping: no new work; waiting for running jobs")
        timeout = self.rt.config.scheduler.shutdown_timeout.total_seconds()
        finished = await self.scheduler.shutdown(timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(electing, 5)  # steps down: a follower takes over now
        server.should_exit = True
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(serving, 5)
        for each in sockets:
            each.close()
        return finished

    def _console_socket(self) -> list[socket.socket]:
        """The console's own listener (``[admin] listen``), when configured:
        the console then answers only on it (see ``app.state.admin_port``)."""
        admin = self.rt.config.admin
        address = admin.listen_address() if admin.enabled else None
        if address is None:
            return []
        sock = bind_socket(*address)
        self.admin_port = sock.getsockname()[1]
        log.info("console listening on http://%s:%d/admin", address[0], self.admin_port)
        return [sock]

    def poll_bounces(self) -> None:
        """Read the bounce mailboxes once ([bounces] maildir / imap_url); only
        the scheduler leader does, so two processes do not race for a message."""
        if self.elector.leading and bounce_poller.configured(self.rt.config):
            bounce_poller.poll_all(self.rt.config, self.rt.db, clock=self.rt.clock)

    async def _poll_bounces_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                await asyncio.to_thread(self.poll_bounces)
            except KabarfeedError as e:  # the store is down: try again next time
                log.warning("bounce poll: %s", e)
            every = self.rt.config.bounces.poll_interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(every, 1.0))

    def _wake_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """From a job thread: drain now (editions were queued)."""
        if not loop.is_closed():
            loop.call_soon_threadsafe(self.scheduler.request_drain)

    def import_seed(self) -> SeedReport | None:
        """Import the ``[seed] subscribers`` addresses not imported before."""
        return import_seed(self.rt.config, self.rt.db, now=self.rt.clock())

    def _log_seed(self) -> None:
        if self.seed and self.seed.added:
            log.info("seed: %d subscribers imported from %s", len(self.seed.added), self.seed.label)

    async def _on_elected(self) -> None:
        """Took over from a dead leader: rebuild feeds it may have left stale
        (groups are caught up by the next digest check)."""
        self.scheduler.request_build()

    def _make_app(self, config: Config) -> Any:
        """The web app for ``config``; the console's Apply button calls
        :meth:`reload` through ``app.state.reload`` (the SIGHUP path)."""
        app = integrations.create_app(config, self.rt.db, self.rt.clock)
        state = getattr(app, "state", None)
        if state is not None:
            state.reload = self.reload
            state.admin_port = self.admin_port
            state.on_push = self._on_push
        return app

    def _on_push(self) -> None:
        """An API push changed articles: a prompt feed build (in the loop's thread)."""
        loop = asyncio.get_running_loop()
        loop.call_soon_threadsafe(self.scheduler.request_push_build)

    def _web_server(self, host: str) -> _Server:
        self.web = SwappableApp(self._make_app(self.rt.config))
        config = server_config(
            self.web,
            host=host,
            port=self.workers.port or 0,
            limits=ServerLimits.from_config(self.rt.config.web),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        return _Server(config)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload, "SIGHUP")

    def _on_stop_signal(self, sig: int) -> None:
        if self.stopping.is_set():
            log.warning("second %s: exiting now", signal.Signals(sig).name)
            os._exit(1)
        log.info("%s received: shutting down", signal.Signals(sig).name)
        self.stopping.set()

    def _spawn_reload(self, trigger: str) -> None:
        self._tasks.append(asyncio.create_task(self.reload(trigger), name="reload"))

    # ---- reload

    async def _watch(self) -> None:
        from watchfiles import awatch

        paths = watched_paths(self.rt.config)
        async for _changes in awatch(*paths, stop_event=self.stopping, debounce=300):
            await self.reload("file change")

    async def reload(self, trigger: str) -> bool:
        """Re-read the config; apply it if valid, else keep the old one. Returns ok."""
        async with self._reload_lock:
            path = self.rt.config.path
            if path is None:
                return False
            try:
                new = await asyncio.to_thread(load_config, path)
                problems = await asyncio.to_thread(template_problems, new)
                if problems:
                    raise ConfigError(problems)
            except ConfigError as e:
                self._reject(trigger, e.problems)
                return False
            await self._apply(new, trigger)
            return True

    def _reject(self, trigger: str, problems: list[str]) -> None:
        log.error("config reload (%s) refused; still running on the previous config", trigger)
        for problem in problems:
            log.error("config: %s", problem, extra={"trigger": trigger})
        self._record_reload(trigger, ok=False, problems=problems, changes=[])

    async def _apply(self, new: Config, trigger: str) -> None:
        old = self.rt.config
        for key in restart_only_changes(old, new):
            log.warning("config: %s changed; takes effect after a restart", key)
        new = new.model_copy(
            update={
                "storage": old.storage,
                "web": _keep_listen(old, new),
                "admin": new.admin.model_copy(update={"listen": old.admin.listen}),
            }
        )
        changes = describe_changes(old, new)
        self.rt.config = new
        if old.logging != new.logging:
            setup_logging(new.logging.format, new.logging.level)
        for change in changes:
            log.info("config: %s", change, extra={"trigger": trigger})
        if not changes:
            log.info("config reloaded (%s): no changes", trigger)
        self.scheduler.retime(timing_of(new))
        await self.scheduler.sync_sources()
        if self.web is not None and changes:
            self.web.app = self._make_app(new)
        self._record_reload(trigger, ok=True, problems=[], changes=changes)

    def _record_reload(
        self, trigger: str, *, ok: bool, problems: list[str], changes: list[str]
    ) -> None:
        now = self.rt.clock()
        row = {
            "time": now.isoformat(),
            "ok": ok,
            "trigger": trigger,
            "path": str(self.rt.config.path or ""),
            "problems": problems,
            "changes": changes,
        }
        with self.rt.db.begin() as conn:
            write_state(conn, RELOAD_KEY, row, now)


def _keep_listen(old: Config, new: Config) -> Any:
    return new.web.model_copy(update={"host": old.web.host, "port": old.web.port})


def run_service(
    config: Config,
    db: Database,
    clock: Clock,
    *,
    host: str,
    port: int,
    once: bool = False,
    on_ready: Callable[[Service], None] | None = None,
) -> int:
    """Run the service (or ``--once``) on a fresh event loop; return the exit code."""

    async def main() -> int:
        service = Service(config, db, clock)
        if on_ready:
            on_ready(service)
        if once:
            sent = await service.once()
            service.record_once(sent)
            log.info("run --once finished: %d messages sent", sent)
            return 0
        finished = await service.serve(host, port)
        service.workers.heartbeat(stopped=True)
        log.info("stopped" if finished else "stopped before all work finished")
        return 0 if finished else 1

    try:
        code = asyncio.run(main())
    except KabarfeedError:
        raise
    if code != 0:
        # A job thread may still be blocked; do not wait for it at interpreter exit.
        logging.shutdown()
        os._exit(code)
    return code
