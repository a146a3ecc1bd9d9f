"""Every fetch has one total deadline: connect, redirects, headers and body (issue 22 §5).

A real local HTTP server stalls or trickles; each stall is shorter than the
deadline, so only a deadline over the whole fetch catches them. Nothing here
measures time: the fetch must end in FetchError (or the source's recorded
error), and the cap on the body holds on a chunked stream.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kabarfeed.errors import FetchError
from kabarfeed.sources.fetch import FetchLimits, fetch, make_client
from tests.feedserver import FeedServer, serve

SHORT = FetchLimits(timeout=0.5, max_bytes=1024 * 1024, max_redirects=5)
LONG = FetchLimits(timeout=10, max_bytes=1024 * 1024, max_redirects=5)  # for fetches that work
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with serve() as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(LONG) as c:  # each fetch brings its own deadline
        yield c


def test_headers_trickled_past_the_deadline_fail(server: FeedServer, client: httpx.Client) -> None:
    """Each header line comes well within the deadline, all of them do not: the
    fetch gives up inside the headers, so the redirect they end in is never followed."""
    server.add("/after-headers.xml", body=RSS)
    route = server.redirect("/trickle-headers", "/after-headers.xml")
    route.headers = {f"X-Pad-{i}": "x" for i in range(12)}
    route.header_dribble = 0.15
    with pytest.raises(FetchError, match=r"timed out after 0\.5s"):
        fetch(client, server.url("/trickle-headers"), limits=SHORT)
    assert server.hits("/after-headers.xml") == []


def test_a_redirect_chain_of_short_stalls_fails(server: FeedServer, client: httpx.Client) -> None:
    """Each hop stalls less than the deadline; the chain as a whole does not get to its end."""
    server.add("/chain.xml", body=RSS)
    for hop, target in (("/hop1", "/hop2"), ("/hop2", "/hop3"), ("/hop3", "/chain.xml")):
        server.redirect(hop, target).delay = 0.3
    with pytest.raises(FetchError, match=r"timed out after 0\.5s"):
        fetch(client, server.url("/hop1"), limits=SHORT)
    assert server.hits("/hop3") == [] and server.hits("/chain.xml") == []


def test_a_trickled_chunked_body_fails(server: FeedServer, client: httpx.Client) -> None:
    route = server.add("/drip-chunked.xml", body=b"x" * 40, chunk_size=1, dribble=0.1, chunked=True)
    with pytest.raises(FetchError, match=r"timed out after 0\.5s"):
        fetch(client, server.url("/drip-chunked.xml"), limits=SHORT)
    assert route.sent < 40


def test_a_chunked_body_over_the_cap_is_abandoned(server: FeedServer, client: httpx.Client) -> None:
    size = 20 * LONG.max_bytes
    route = server.add("/huge-chunked.xml", stream_bytes=size, chunked=True)
    with pytest.raises(FetchError, match="larger than 1 MiB"):
        fetch(client, server.url("/huge-chunked.xml"), limits=LONG)
    assert route.sent < size


def test_a_chunked_feed_within_limits_is_read(server: FeedServer, client: httpx.Client) -> None:
    server.add("/chunked.xml", body=RSS, chunk_size=16, chunked=True)
    assert fetch(client, server.url("/chunked.xml"), limits=LONG).content == RSS


def test_the_deadline_is_per_fetch(server: FeedServer, client: httpx.Client) -> None:
    """A fetch after a timed-out one gets its own full deadline (same client, same pool)."""
    server.add("/stall.xml", body=RSS, delay=0.3, headers={"X-A": "1"}, header_dribble=0.1)
    with pytest.raises(FetchError):
        fetch(client, server.url("/stall.xml"), limits=SHORT)
    server.add("/fine.xml", body=RSS)
    assert fetch(client, server.url("/fine.xml"), limits=LONG).content == RSS
    assert client.get(server.url("/fine.xml")).content == RSS  # outside a fetch: unbounded


def test_a_slow_name_lookup_counts_against_the_deadline(
    server: FeedServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver that hangs (here until the test ends, then fails): the fetch
    gives up at its deadline, while the lookup is still under way."""
    server.add("/dns.xml", body=RSS)
    done = threading.Event()

    def hanging(*args: Any, **kwargs: Any) -> Any:
        done.wait(10)
        raise socket.gaierror("the resolver gave up")

    url = server.url("/dns.xml").replace("127.0.0.1", "localhost")
    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        with pytest.raises(FetchError, match=r"timed out after 0\.5s"):
            fetch(client, url, limits=SHORT)
    finally:
        done.set()
    assert server.hits("/dns.xml") == []


def test_a_host_name_is_looked_up_and_fetched(server: FeedServer, client: httpx.Client) -> None:
    server.add("/named.xml", body=RSS)
    url = server.url("/named.xml").replace("127.0.0.1", "localhost")
    assert fetch(client, url, limits=LONG).content == RSS
