"""The lease keeper: while a sender holds rows in ``sending``, a thread extends
their lease every third of ``[smtp] lease``.

A thread rather than an asyncio task, so a renewal is not held up by a busy
event loop (rendering a large batch, a slow commit): a live sender's lease
must never run out mid-batch however slowly the relay or the rate limit lets
it send, or another sender would take its rows and send them again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from kabarfeed.errors import StoreError

log = logging.getLogger(__name__)

MIN_RENEW_EVERY = 0.1
"""Seconds: renewals are never more frequent than this."""


def renew_every(lease: timedelta) -> float:
    """Seconds between lease renewals: a third of the lease (at least 0.1 s)."""
    return max(lease.total_seconds() / 3, MIN_RENEW_EVERY)


class LeaseKeeper:
    """Calls ``renew`` (which extends every row this sender holds and returns
    how many) every :func:`renew_every` seconds between ``__enter__`` and
    ``__exit__``. A failed renewal is logged and tried again next round."""

    def __init__(self, renew: Callable[[], int], lease: timedelta) -> None:
        self.renew = renew
        self.lease = lease
        self.renewals = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kf-lease", daemon=True)

    def renew_once(self) -> int:
        """Extend the lease of every row held now; return how many."""
        count = self.renew()
        self.renewals += 1
        return count

    def _loop(self) -> None:
        while not self._done.wait(renew_every(self.lease)):
            try:
                self.renew_once()
            except StoreError as e:  # the next round tries again; recovery covers the rest
                log.warning("could not renew delivery leases: %s", e)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)
