"""Rendering feed entries in worker processes, for builds with many articles.

A full build renders each shown article once (feedgen entry, RSS and Atom
elements, serialisation, JSON item): the largest part of its work, and
CPU-bound Python that threads cannot share (and feedgen, which switches the
process locale for RSS dates, must not be run from several threads anyway).
Worker processes each load their share of articles from the store by id and
return the serialised entries; the builder splices them into documents as
if it had rendered them itself (rendering is pure, so the bytes are the same).

Workers are one plain ``python -c "...pool import main; main()"`` child that
imports what rendering needs and then forks the others (a fresh
single-threaded interpreter forks safely, and the imports are paid once),
each talking pickle over its own pair of pipes. Unlike ``multiprocessing``
(``fork`` is unsafe in a threaded scheduler or web process; ``spawn`` re-runs
the caller's main script in every child), they never touch the caller's
``__main__``. They start as soon as a build knows it is large and, while the
builder plans, render the newest articles (:meth:`EntryPool.speculate`): the
feeds of a full build show mostly those. Any failure to start or run them is
logged and the build continues in-process.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import queue
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Connection

from kabarfeed.feeds import queries
from kabarfeed.feeds.render import FeedSite, Renderer
from kabarfeed.models import Article
from kabarfeed.store import Database

log = logging.getLogger(__name__)

MIN_ARTICLES = 2_000
"""Below this many stored articles a full build stays in-process: starting
workers (an interpreter and imports each, ~0.5 s of CPU) would not pay off."""
WORKER_CODE = "from kabarfeed.feeds.pool import main; main()"
"""What a worker process runs (``python -c``)."""
CHUNK = 250
"""Articles per worker task: small enough to spread work evenly, large enough
that a task's round trip is noise."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """One article's serialised entries, by format (JSON as UTF-8 bytes)."""

    article_id: str
    updated: datetime
    entries: dict[str, bytes]


def default_processes() -> int:
    """Worker processes for a large build: one per CPU this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable(url: str) -> bool:
    """Whether worker processes can open the database at ``url`` (an
    in-memory SQLite database exists in this process only)."""
    return not (url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"))


Links = tuple[queries.Links, queries.Links]
"""Region and category slugs by article id."""


def _subset(links: Links | None, ids: Sequence[str]) -> Links | None:
    if links is None:
        return None
    regions, categories = links
    return (
        {i: regions[i] for i in ids if i in regions},
        {i: categories[i] for i in ids if i in categories},
    )


Task = tuple[str, Any, Any]
"""``("ids", article ids, their slugs or None)`` or ``("newest", offset, limit)``."""


# ---------------------------------------------------------------- worker side


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """A worker's loop: one ``(url, site, formats)`` set-up message, then
    :data:`Task` messages, each answered with a list of :class:`Rendered`."""
    # pickle is safe here: both ends are this program, over the child's own pipes
    url, site, formats = pickle.load(requests)  # noqa: S301
    db = Database(url)
    renderer = Renderer(site, max_cached=0)
    try:
        while True:
            try:
                task: Task = pickle.load(requests)  # noqa: S301
            except EOFError:
                return
            with db.connect() as conn:
                articles = _articles(conn, task)
            done = [
                Rendered(a.id, a.updated, renderer.entries(a, formats)) for a in articles.values()
            ]
            pickle.dump(done, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
    finally:
        db.dispose()


def _articles(conn: Connection, task: Task) -> dict[str, Article]:
    kind, first, second = task
    if kind == "newest":
        return queries.load_by_id(conn, queries.newest_ids(conn, first, second))
    return queries.load_by_id(conn, first, second)


def _serve_fds(read_fd: int, write_fd: int) -> None:
    with os.fdopen(read_fd, "rb") as requests, os.fdopen(write_fd, "wb") as replies:
        serve(requests, replies)


def main() -> None:
    """A worker process's entry point: its arguments are ``"read_fd,write_fd"``
    pipe pairs, one per worker; the first is served here, every other by a
    forked copy of this process (see the module doc)."""
    os.dup2(2, 1)  # anything printed goes to stderr
    # No cyclic collector: rendering entries makes no reference cycles (see
    # the tests), so it would only rescan live objects over and over.
    gc.disable()
    gc.freeze()  # the imported modules stay shared with the forks, page for page
    pairs = [tuple(int(fd) for fd in arg.split(",")) for arg in sys.argv[1:]]
    forked = []
    for mine in pairs[1:]:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _close_all_but(pairs, mine)
                _serve_fds(*mine)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        forked.append(pid)
    _close_all_but(pairs, pairs[0])
    try:
        _serve_fds(*pairs[0])
    finally:
        for pid in forked:
            os.waitpid(pid, 0)


def _close_all_but(pairs: Sequence[tuple[int, ...]], keep: tuple[int, ...]) -> None:
    for pair in pairs:
        if pair != keep:
            for fd in pair:
                with suppress(OSError):
                    os.close(fd)


# ---------------------------------------------------------------- builder side


class _Child:
    """The builder's end of one worker's pipes."""

    def __init__(self, requests: IO[bytes], replies: IO[bytes], stop: Any) -> None:
        self.requests, self.replies, self._stop = requests, replies, stop

    def render(self, task: Task) -> list[Rendered]:
        """Send one task and wait for its reply. Any failure leaves the pipes
        out of step, so the workers are stopped: later tasks fail at once."""
        try:
            pickle.dump(task, self.requests, protocol=pickle.HIGHEST_PROTOCOL)
            self.requests.flush()
            done: list[Rendered] = pickle.load(self.replies)  # noqa: S301 (our own child)
        except BaseException:
            self._stop()
            raise
        return done

    def close(self) -> None:
        for pipe in (self.requests, self.replies):
            with suppress(OSError):
                pipe.close()


class _Workers:
    """The worker processes of one pool: one spawned, the others forked by
    it, all in a process group of their own (stopped together)."""

    def __init__(self, count: int, setup: bytes) -> None:
        ours: list[tuple[int, int]] = []
        theirs: list[tuple[int, int]] = []
        try:
            for _ in range(count):
                request_read, request_write = os.pipe()
                reply_read, reply_write = os.pipe()
                ours.append((request_write, reply_read))
                theirs.append((request_read, reply_write))
            self.process = self._spawn(theirs)
        except BaseException:
            for fd in (fd for pair in (*ours, *theirs) for fd in pair):
                os.close(fd)
            raise
        for fd in (fd for pair in theirs for fd in pair):
            os.close(fd)
        self.children = [_Child(os.fdopen(w, "wb"), os.fdopen(r, "rb"), self.stop) for w, r in ours]
        try:
            for child in self.children:
                child.requests.write(setup)
                child.requests.flush()
        except OSError:
            self.stop()
            self.close()
            raise

    @staticmethod
    def _spawn(pairs: Sequence[tuple[int, int]]) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        args = [f"{r},{w}" for r, w in pairs]
        return subprocess.Popen(  # noqa: S603 (our interpreter, our code)
            [sys.executable, "-c", WORKER_CODE, *args],
            stdin=subprocess.DEVNULL,
            pass_fds=[fd for pair in pairs for fd in pair],
            env=env,
            process_group=0,
        )

    def stop(self) -> None:
        """Kill every worker (after a failure)."""
        with suppress(OSError):
            os.killpg(self.process.pid, 9)

    def close(self) -> None:
        """Let the workers finish (EOF on their requests), then reap them."""
        for child in self.children:
            child.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.stop()
            self.process.wait()


class EntryPool:
    """Worker processes rendering entries for one build (see the module doc).

    Each task is sent by a thread of a small thread pool to an idle worker
    and waits for its reply (pipe I/O releases the GIL)."""

    def __init__(self, children: Sequence[_Child]) -> None:
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        for child in children:
            self._idle.put(child)
        self._threads = ThreadPoolExecutor(len(children), thread_name_prefix="kf-render")
        self._inflight: set[str] = set()
        self._speculative: list[Future[list[Rendered]]] = []
        self.broken = False

    def speculate(self, count: int) -> None:
        """Start rendering the ``count`` newest articles before the plan is
        known; :meth:`settle` ends it."""
        for offset in range(0, count, CHUNK):
            task: Task = ("newest", offset, min(CHUNK, count - offset))
            self._speculative.append(self._threads.submit(self._run, task))

    def settle(self, renderer: Renderer) -> None:
        """Cancel the speculative tasks not started yet and hand the entries
        of the others to ``renderer``."""
        started = [future for future in self._speculative if not future.cancel()]
        self._speculative.clear()
        self.collect(started, renderer)

    def submit(
        self, ids: Sequence[str], links: Links | None = None
    ) -> list[Future[list[Rendered]]]:
        """Render ``ids`` (those not already on their way) in the workers;
        ``links`` (every article's slugs, when known) saves them a query."""
        todo = [i for i in ids if i not in self._inflight]
        self._inflight.update(todo)
        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        return [
            self._threads.submit(self._run, ("ids", chunk, _subset(links, chunk)))
            for chunk in chunks
        ]

    def _run(self, task: Task) -> list[Rendered]:
        child = self._idle.get()
        try:
            return child.render(task)
        finally:
            self._idle.put(child)

    def collect(self, futures: Sequence[Future[list[Rendered]]], renderer: Renderer) -> None:
        """Wait for ``futures`` and hand their entries to ``renderer``. On a
        failure the pool is marked broken; the caller renders what is missing."""
        for future in futures:
            try:
                results = future.result()
            except Exception as e:  # a worker died or could not start
                if not self.broken:
                    log.warning("feed render workers failed, rendering in-process: %r", e)
                self.broken = True
                continue
            for rendered in results:
                self._inflight.discard(rendered.article_id)
                renderer.seed(rendered.article_id, rendered.updated, rendered.entries)
        if self.broken:
            self._inflight.clear()

    def close(self) -> None:
        """Stop the task threads (after the tasks already submitted)."""
        self._threads.shutdown(wait=True, cancel_futures=True)


@contextmanager
def entry_pool(
    db: Database, site: FeedSite, formats: Sequence[str], processes: int
) -> Iterator[EntryPool | None]:
    """An :class:`EntryPool` of ``processes`` workers, or ``None`` when there
    is no point (fewer than two) or no way (in-memory database, start failure)."""
    if processes < 2 or not usable(db.url):
        yield None
        return
    setup: Any = (db.url, site, tuple(formats))
    try:
        workers = _Workers(processes, pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, pickle.PicklingError) as e:
        log.warning("cannot start feed render workers, rendering in-process: %s", e)
        yield None
        return
    pool = EntryPool(workers.children)
    log.debug("started %d feed render workers", processes)
    try:
        yield pool
    finally:
        pool.close()
        workers.close()
