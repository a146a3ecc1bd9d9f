"""Rendering feed entries in worker processes, for builds with many articles.

A full build renders each shown article once (feedgen entry, RSS and Atom
elements, serialisation, JSON item): the largest part of its work, and
CPU-bound Python that threads cannot share (and feedgen, which switches the
process locale for RSS dates, must not be run from several threads anyway).
Worker processes each load their share of articles from the store by id and
return the serialised entries; the builder splices them into documents as
if it had rendered them itself (rendering is pure, so the bytes are the same).

Workers are plain ``python -c "...pool import main; main()"`` children talking
pickle over their stdin/stdout: unlike ``multiprocessing`` (``fork`` is unsafe
in a threaded scheduler or web process; ``spawn`` re-runs the caller's main
script in every child), they never touch the caller's ``__main__``. They
start as soon as a build knows it is large, so their start-up overlaps
planning. Any failure to start or run them is logged and the build
continues in-process.
"""

from __future__ import annotations

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

from kabarfeed.feeds import queries
from kabarfeed.feeds.render import FeedSite, Renderer
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


# ---------------------------------------------------------------- worker side


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """A worker's loop: one ``(url, site, formats)`` set-up message, then
    ``(article ids, their slugs or None)`` tasks, each answered with a list
    of :class:`Rendered`."""
    # pickle is safe here: both ends are this program, over the child's own pipes
    url, site, formats = pickle.load(requests)  # noqa: S301
    db = Database(url)
    renderer = Renderer(site, max_cached=0)
    try:
        while True:
            try:
                ids, links = pickle.load(requests)  # noqa: S301
            except EOFError:
                return
            with db.connect() as conn:
                articles = queries.load_by_id(conn, ids, links)
            done = [
                Rendered(a.id, a.updated, renderer.entries(a, formats)) for a in articles.values()
            ]
            pickle.dump(done, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
    finally:
        db.dispose()


# ---------------------------------------------------------------- builder side


class _Child:
    """One worker process and its pipes."""

    def __init__(self, setup: bytes) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(  # noqa: S603 (our interpreter, our code)
            [sys.executable, "-c", WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests, self.replies = self.process.stdin, self.process.stdout
        self.requests.write(setup)
        self.requests.flush()

    def render(self, ids: Sequence[str], links: Links | None) -> list[Rendered]:
        """Send one task and wait for its reply. Any failure leaves the pipes
        out of step, so the worker is stopped: its later tasks fail at once."""
        try:
            pickle.dump((list(ids), links), self.requests, protocol=pickle.HIGHEST_PROTOCOL)
            self.requests.flush()
            done: list[Rendered] = pickle.load(self.replies)  # noqa: S301 (our own child)
        except BaseException:
            self.process.kill()
            raise
        return done

    def close(self) -> None:
        with suppress(OSError):
            self.requests.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.replies.close()


class EntryPool:
    """Worker processes rendering entries for one build (see the module doc).

    Each task is sent by a thread of a small thread pool to an idle worker
    and waits for its reply (pipe I/O releases the GIL)."""

    def __init__(self, children: Sequence[_Child]) -> None:
        self._children = list(children)
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        for child in children:
            self._idle.put(child)
        self._threads = ThreadPoolExecutor(len(children), thread_name_prefix="kf-render")
        self._inflight: set[str] = set()
        self.broken = False

    def submit(
        self, ids: Sequence[str], links: Links | None = None
    ) -> list[Future[list[Rendered]]]:
        """Render ``ids`` (those not already on their way) in the workers;
        ``links`` (every article's slugs, when known) saves them a query."""
        todo = [i for i in ids if i not in self._inflight]
        self._inflight.update(todo)
        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        return [self._threads.submit(self._run, chunk, _subset(links, chunk)) for chunk in chunks]

    def _run(self, ids: Sequence[str], links: Links | None) -> list[Rendered]:
        child = self._idle.get()
        try:
            return child.render(ids, links)
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
        """Stop the workers (after the tasks already submitted)."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        for child in self._children:
            child.close()


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
    children: list[_Child] = []
    try:
        data = pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL)
        children.extend(_Child(data) for _ in range(processes))
    except (OSError, pickle.PicklingError) as e:
        log.warning("cannot start feed render workers, rendering in-process: %s", e)
        for child in children:
            child.close()
        yield None
        return
    pool = EntryPool(children)
    log.debug("started %d feed render workers", processes)
    try:
        yield pool
    finally:
        pool.close()


def main() -> None:
    """A worker process's entry point (see :class:`_Child`)."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the reply stream
    serve(sys.stdin.buffer, replies)
