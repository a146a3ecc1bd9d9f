"""Serving the output folder over real HTTP: uvicorn on 127.0.0.1, port 0."""

from __future__ import annotations

import gzip
import http.client
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

import pytest

from kabarfeed.config import Config
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.store import Database
from kabarfeed.web import create_app
from kabarfeed.web.static import accepts_gzip, content_type, etag_matches, safe_relative
from tests.conftest import ConfigFactory
from tests.feeds_support import make_article, store
from tests.uvicorn_support import ServerThread, local_server

with warnings.catch_warnings():  # Starlette nudges towards httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = datetime(2025, 11, 30, tzinfo=UTC)


class _Server(ServerThread):
    def __init__(self, config: Config, db: Database) -> None:
        super().__init__(local_server(create_app(config, db, clock=lambda: NOW)))

    def get(
        self, path: str, method: str = "GET", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name.replace("_", "-"), value)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            conn.close()


@pytest.fixture
def built(make_config: ConfigFactory, db: Database) -> tuple[Config, Database]:
    config = make_config('[feeds]\ncache_max_age = "2m"\n')
    store(db, [make_article(n) for n in range(30)])
    FeedBuilder(config, db, lambda: NOW).build()
    return config, db


@pytest.fixture
def server(built: tuple[Config, Database]) -> Iterator[_Server]:
    with _Server(*built) as running:
        yield running


CONTENT_TYPES = [
    ("/feeds/all.rss", "application/rss+xml; charset=utf-8"),
    ("/feeds/region/balikpapan.atom", "application/atom+xml; charset=utf-8"),
    ("/feeds/category/pemerintahan.json", "application/feed+json; charset=utf-8"),
    ("/feeds/region/kalimantan-timur/pemerintahan.rss", "application/rss+xml; charset=utf-8"),
    ("/feeds/index.opml", "text/x-opml; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
]


def test_content_types_and_caching_headers(server: _Server, built: tuple[Config, Database]) -> None:
    for path, ctype in CONTENT_TYPES:
        status, headers, body = server.get(path)
        assert status == 200
        assert headers["content-type"] == ctype
        assert headers["cache-control"] == "public, max-age=120"
        assert headers["vary"] == "Accept-Encoding"
        assert headers["x-content-type-options"] == "nosniff"
        assert "content-encoding" not in headers
        relative = "index.html" if path == "/" else path.lstrip("/")
        file = built[0].feeds.output / relative
        assert body == file.read_bytes()
        assert headers["last-modified"] == formatdate(file.stat().st_mtime, usegmt=True)
        assert headers["etag"].startswith('"') and int(headers["content-length"]) == len(body)


def test_conditional_get(server: _Server) -> None:
    _, headers, _ = server.get("/feeds/all.atom")
    etag, modified = headers["etag"], headers["last-modified"]
    status, h304, body = server.get("/feeds/all.atom", If_None_Match=etag)
    assert (status, body) == (304, b"") and h304["etag"] == etag
    assert "content-type" not in h304 and h304["cache-control"]
    assert server.get("/feeds/all.atom", If_None_Match=f'"x", W/{etag}')[0] == 304
    assert server.get("/feeds/all.atom", If_None_Match='"other"')[0] == 200
    assert server.get("/feeds/all.atom", If_Modified_Since=modified)[0] == 304
    assert (
        server.get("/feeds/all.atom", If_Modified_Since="Mon, 01 Jan 2001 00:00:00 GMT")[0] == 200
    )
    # If-None-Match wins over If-Modified-Since
    assert (
        server.get("/feeds/all.atom", If_None_Match='"other"', If_Modified_Since=modified)[0] == 200
    )
    assert server.get("/feeds/all.atom", If_Modified_Since="garbage")[0] == 200


def test_gzip(server: _Server, built: tuple[Config, Database]) -> None:
    plain = (built[0].feeds.output / "feeds/all.rss").read_bytes()
    status, headers, body = server.get("/feeds/all.rss", Accept_Encoding="gzip, deflate")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == plain and len(body) < len(plain)
    assert headers["vary"] == "Accept-Encoding" and headers["etag"].endswith('-gzip"')
    # both representations' tags validate
    assert (
        server.get("/feeds/all.rss", Accept_Encoding="gzip", If_None_Match=headers["etag"])[0]
        == 304
    )
    _, identity, _ = server.get("/feeds/all.rss", Accept_Encoding="gzip;q=0")
    assert "content-encoding" not in identity and identity["etag"] != headers["etag"]
    assert accepts_gzip("br;q=1.0, gzip;q=0.5") and not accepts_gzip("identity")
    assert accepts_gzip("*") and not accepts_gzip("gzip;q=0")


def test_head(server: _Server) -> None:
    status, get_headers, body = server.get("/feeds/all.json")
    status, headers, empty = server.get("/feeds/all.json", method="HEAD")
    assert status == 200 and empty == b""
    assert headers["content-length"] == str(len(body))
    assert headers["etag"] == get_headers["etag"]
    assert headers["content-type"] == "application/feed+json; charset=utf-8"


TRAVERSALS = [
    "/feeds/../config.toml",
    "/feeds/%2e%2e/config.toml",
    "/feeds/%2E%2E/%2e%2e/etc/passwd",
    "/feeds%2f..%2fconfig.toml",
    "/../config.toml",
    "/feeds/..%5cconfig.toml",
    "/feeds/",
    "/feeds",
    "/feeds/region/",
    "/.kabarfeed-build.lock",
    "/feeds/missing.rss",
    "/feeds/all.rss%00.html",
    "/escape/config.toml",
]


def test_not_found_and_no_traversal(server: _Server, built: tuple[Config, Database]) -> None:
    output = built[0].feeds.output
    (output / "escape").symlink_to(output.parent, target_is_directory=True)
    assert (output / "escape" / "config.toml").exists()  # reachable on disk, not over HTTP
    for path in TRAVERSALS:
        status, headers, body = server.get(path)
        assert status == 404, path
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert b"Halaman tidak ditemukan" in body and b"[storage]" not in body


def test_methods(server: _Server) -> None:
    assert server.get("/feeds/all.rss", method="POST")[0] == 405
    assert server.get("/feeds/all.rss", method="DELETE")[0] == 405


def test_unit_helpers() -> None:
    assert safe_relative("/") == "index.html"
    assert safe_relative("/feeds/") == "feeds/index.html"
    assert safe_relative("/feeds//all.rss") == "feeds/all.rss"
    assert safe_relative("/feeds/../x") is None and safe_relative("/a\\b") is None
    assert content_type("data.json") == "application/json; charset=utf-8"
    assert content_type("feeds/all.json.gz") == "application/gzip"
    assert content_type("logo.png") == "image/png"
    assert etag_matches("*", '"a"') and not etag_matches('"b"', '"a"')


def test_test_client_sees_the_same_app(built: tuple[Config, Database], tmp_path: Path) -> None:
    config, db = built
    client = TestClient(create_app(config, db, clock=lambda: NOW))
    response = client.get("/feeds/all.rss")
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert client.get("/nope").status_code == 404
