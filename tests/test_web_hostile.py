"""The web app under hostile input: crafted and random tokens on every route
that takes one, bodies over the limit (declared and chunked, over real
HTTP), security headers on 500 responses, and the static server's
containment of every file it opens (the ``.gz`` sibling included)."""

from __future__ import annotations

import gzip
import re
import socket
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from conftest import ConfigFactory
from kabarfeed.config import Config
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from kabarfeed.subscribers import SubscriberDraft, with_defaults
from kabarfeed.web import create_app
from kabarfeed.web.security import CsrfTokens, Signer, parse_confirm_token
from uvicorn_support import ServerThread, local_server

with warnings.catch_warnings():  # Starlette nudges towards httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "https://news.example.id"
SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


@pytest.fixture
def config(make_config: ConfigFactory, tmp_path: Path) -> Config:
    return make_config(
        f'[maildir]\npath = "{tmp_path / "maildir"}"\n[feeds]\noutput = "{tmp_path / "public"}"\n'
        "[web]\nmax_body = 4096\n"
    )


@pytest.fixture
def subscriber(config: Config, db: Database, fixed_now: datetime) -> Subscriber:
    draft = with_defaults(
        SubscriberDraft(email="ani@example.org", status=SubscriberStatus.PENDING), config
    )
    with db.begin() as conn:
        return sub_store.add(conn, draft, now=fixed_now)


@pytest.fixture
def client(config: Config, db: Database, fixed_now: datetime) -> TestClient:
    app = create_app(config, db, clock=lambda: fixed_now)
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


# -- tokens ------------------------------------------------------------------------------


def test_crafted_tokens_are_404_not_500(client: TestClient, subscriber: Subscriber) -> None:
    for signed in (
        "AAAAAAAAAAAAAAAAAAAAAA.ffffffffff.x",
        f"{subscriber.token}.ffffffffffff.AAAAAAAAAAAAAAAAAAAAAA",
        f"{subscriber.token}.0.x",
    ):
        assert client.get(f"/confirm/{signed}").status_code == 404
        assert client.post(f"/confirm/{signed}", data={"csrf": "x"}).status_code == 404
        assert client.post(f"/confirm/{signed}/resend", data={"csrf": "x"}).status_code == 404
    for csrf in ("ffffffffff.x", "ffffffffffff.AAAAAAAAAAAAAAAAAAAAAA", "0.", ".", "f" * 3000):
        page = client.post(f"/preferences/{subscriber.token}", data={"csrf": csrf})
        assert page.status_code == 403
        page = client.post(f"/u/{subscriber.token}", data={"csrf": csrf})
        assert page.status_code == 403


def test_signature_is_checked_before_the_stamp_is_read() -> None:
    signer = Signer(b"k" * 32)
    token = "A" * 22
    # A genuine signature over an out-of-range stamp: still no exception.
    huge = "ffffffffffff"
    signed = f"{token}.{huge}.{signer.sign('confirm', token, huge)}"
    assert parse_confirm_token(signer, signed) is None
    tokens = CsrfTokens(signer, ttl=__import__("datetime").timedelta(hours=1))
    forged = f"{huge}.{signer.sign('csrf', 'f', 'b', huge)}"
    assert tokens.valid(forged, "f", "b", datetime.now().astimezone()) is False


def _token_routes(client: TestClient) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every route of the app that takes a token: path parameters, or a
    posted form (its CSRF token) — but the static catch-all: (path template,
    method, parameter names). New token routes are found here without
    changing the test."""
    found = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, Route) or route.name == "static":
            continue
        if not route.param_convertors and "POST" not in (route.methods or ()):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((route.path, method, tuple(route.param_convertors)))
    return found


SIGNATURE = st.from_regex(r"[A-Za-z0-9_-]{0,30}", fullmatch=True)
STAMP = st.integers(min_value=0, max_value=16**14).map(lambda n: format(n, "x"))
CRAFTED = st.one_of(
    st.builds(
        lambda t, s, g: f"{t}.{s}.{g}", st.sampled_from(["A" * 22, "x" * 16]), STAMP, SIGNATURE
    ),
    st.builds(lambda s, g: f"{s}.{g}", STAMP, SIGNATURE),
)
SEGMENT = st.one_of(
    CRAFTED,
    st.text(min_size=1, max_size=80),
    st.from_regex(r"[A-Za-z0-9_-]{16,40}\.[0-9a-f]{1,14}\.[A-Za-z0-9_-]{0,30}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{8,14}\.[A-Za-z0-9_-]{0,30}", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
    st.sampled_from(["..", ".", "%00", "\x00", "😀" * 30, "9" * 5000]),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_tokens_never_give_5xx(
    client: TestClient, subscriber: Subscriber, data: st.DataObject
) -> None:
    routes = _token_routes(client)
    assert {p for p, _, _ in routes} >= {
        "/confirm/{signed}",
        "/preferences/{token}",
        "/u/{token}",
        "/subscribe",
    }
    path, method, names = data.draw(st.sampled_from(routes))
    url = path
    for name in names:
        value = data.draw(st.one_of(SEGMENT, st.just(subscriber.token)))
        url = url.replace("{" + name + "}", quote(value.replace("/", ""), safe="") or "x")
    if method == "GET":
        response = client.get(url)
    else:
        form = {"csrf": data.draw(SEGMENT), data.draw(st.text(max_size=10)): data.draw(SEGMENT)}
        cookie = data.draw(st.from_regex(r"[A-Za-z0-9_-]{0,40}", fullmatch=True))
        client.cookies.set("kf_csrf", cookie, path="/subscribe")
        response = client.post(url, data=form)
        client.cookies.clear()
    assert response.status_code < 500, (method, url, response.status_code)


# -- the body limit ------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_with_headers(
    client: TestClient, subscriber: Subscriber
) -> None:
    response = client.post(f"/u/{subscriber.token}", content=b"a=" + b"x" * 5000)
    assert response.status_code == 413
    for name in SECURITY_HEADERS:
        assert name in response.headers


def _chunked_post(port: int, path: str, chunks: Iterator[bytes]) -> tuple[int, int]:
    """POST ``chunks`` with chunked transfer encoding; (status, bytes the
    server let us send before answering)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending
        head = b""
        while b"\r\n" not in head:
            piece = sock.recv(4096)
            if not piece:
                break
            head += piece
        return int(head.split(b" ")[1]), sent
    finally:
        sock.close()


def test_chunked_body_over_the_limit_is_cut_off_on_the_stream(
    config: Config, db: Database, fixed_now: datetime, subscriber: Subscriber
) -> None:
    app = create_app(config, db, clock=lambda: fixed_now)
    read: list[int] = []

    async def echo(request: Request) -> Response:  # a future API or webhook route
        size = 0
        async for piece in request.stream():
            size += len(piece)
        read.append(size)
        return PlainTextResponse(str(size))

    app.router.routes.insert(0, Route("/api/echo", echo, methods=["POST"]))
    many_fields = (b"regions=" + b"x" * 200 + b"&" for _ in range(10_000))  # ~2 MB
    with ServerThread(local_server(app)) as server:
        status, _ = _chunked_post(server.port, f"/preferences/{subscriber.token}", many_fields)
        assert status == 413
        status, _ = _chunked_post(server.port, "/api/echo", (b"y" * 1000 for _ in range(2000)))
        assert status == 413
        assert read == []  # the route never saw a body past the limit
        status, _ = _chunked_post(server.port, "/api/echo", (b"y" * 1000 for _ in range(4)))
        assert status == 200 and read == [4000]


# -- 500 responses ---------------------------------------------------------------------------


def test_500_carries_the_security_headers(
    config: Config, db: Database, fixed_now: datetime
) -> None:
    app = create_app(config, db, clock=lambda: fixed_now)

    async def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    app.router.routes.insert(0, Route("/broken", broken))
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False)
    response = client.get("/broken")
    assert response.status_code == 500
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    assert "default-src" in response.headers["content-security-policy"]


# -- static containment ----------------------------------------------------------------------


@pytest.fixture
def static_client(config: Config, db: Database, tmp_path: Path, fixed_now: datetime) -> TestClient:
    public = config.feeds.output
    (public / "feeds").mkdir(parents=True)
    body = b"<rss>" + b"inside " * 200 + b"</rss>"
    (public / "feeds" / "x.rss").write_bytes(body)
    (public / "feeds" / "y.rss").write_bytes(body)
    (public / "feeds" / "z.rss").write_bytes(body)
    outside = tmp_path / "secret.txt.gz"
    outside.write_bytes(gzip.compress(b"TOP SECRET outside the output folder"))
    (public / "feeds" / "x.rss.gz").symlink_to(outside)
    hidden = public / ".private.gz"
    hidden.write_bytes(gzip.compress(b"TOP SECRET dot-file"))
    (public / "feeds" / "y.rss.gz").symlink_to(hidden)
    (public / "feeds" / "z.rss.gz").write_bytes(gzip.compress(b"genuine sibling"))
    (public / "feeds" / "link.rss").symlink_to(hidden)
    app = create_app(config, db, clock=lambda: fixed_now)
    return TestClient(app, base_url=BASE)


def test_gz_sibling_outside_or_hidden_is_not_served(static_client: TestClient) -> None:
    for name in ("x", "y"):
        response = static_client.get(f"/feeds/{name}.rss", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert b"TOP SECRET" not in response.content
        assert response.content.startswith(b"<rss>inside")
    genuine = static_client.get("/feeds/z.rss", headers={"Accept-Encoding": "gzip"})
    assert genuine.content == b"genuine sibling"  # the legitimate sibling still serves
    assert static_client.get("/feeds/x.rss.gz").status_code == 404
    assert static_client.get("/feeds/link.rss").status_code == 404  # symlink to a dot-file


def test_folder_without_slash_serves_its_index_as_html(static_client: TestClient) -> None:
    feeds = static_client.app.state.config.feeds.output / "feeds"  # type: ignore[attr-defined]
    (feeds / "index.html").write_text("<p>feeds</p>")
    response = static_client.get("/feeds")
    assert response.status_code == 200
    assert re.match(r"text/html", response.headers["content-type"])
