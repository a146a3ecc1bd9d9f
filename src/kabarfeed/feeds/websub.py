"""WebSub: tell the hub which feeds changed. Failures are logged, never raised."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

log = logging.getLogger(__name__)
PING_BATCH = 50
"""Feed URLs per ping."""


def ping(client: httpx.Client | None, hub: str, urls: Sequence[str]) -> None:
    """Ping ``hub`` about ``urls`` in batches (``client``: ``None`` for a new one)."""
    if not hub or not urls:
        return
    own = client or httpx.Client(timeout=10.0)
    try:
        for start in range(0, len(urls), PING_BATCH):
            ping_hub(own, hub, urls[start : start + PING_BATCH])
    finally:
        if client is None:
            own.close()


def ping_hub(client: httpx.Client, hub: str, urls: Sequence[str]) -> bool:
    """POST ``hub.mode=publish`` with one ``hub.url`` per feed; whether the hub
    accepted (2xx). Errors are logged, never raised."""
    try:
        response = client.post(hub, data={"hub.mode": "publish", "hub.url": list(urls)})
    except httpx.HTTPError as e:
        log.warning("WebSub ping to %s failed: %s", hub, e)
        return False
    if not response.is_success:
        log.warning(
            "WebSub hub %s answered %s to a ping for %d feeds", hub, response.status_code, len(urls)
        )
        return False
    return True
