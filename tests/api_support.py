"""The push API's test harness: the whole app on real HTTP (uvicorn on
127.0.0.1, port 0), a config with two directory sources, tokens made by the
use case the CLI calls, and the signed-webhook helper."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from kabarfeed import push
from kabarfeed.config import Config
from kabarfeed.store import Database
from kabarfeed.web import create_app
from tests.uvicorn_support import ServerThread, local_server

SECRET = "webhook-shared-secret-for-tests"


class Clock:
    """A settable clock shared by the app and the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def api_config(make_config: Callable[..., Config], tmp_path: Path, extra: str = "") -> Config:
    """Two directory sources (``redaksi`` with a webhook secret, ``mitra``) and ``extra``."""
    for name in ("redaksi", "mitra"):
        (tmp_path / name).mkdir(exist_ok=True)
    return make_config(
        "[[sources]]\n"
        'name = "redaksi"\n'
        'kind = "directory"\n'
        f'path = "{tmp_path / "redaksi"}"\n'
        f'push_secret = "{SECRET}"\n\n'
        "[[sources]]\n"
        'name = "mitra"\n'
        'kind = "directory"\n'
        f'path = "{tmp_path / "mitra"}"\n\n'
        f'[feeds]\noutput = "{tmp_path / "public"}"\n\n'
        f"{extra}\n"
    )


class LiveApp(ServerThread):
    """The app served on a free port in a thread."""

    def __init__(self, config: Config, db: Database, clock: Callable[[], datetime]) -> None:
        self.app = create_app(config, db, clock=clock)
        super().__init__(local_server(self.app))

    @property
    def base(self) -> str:
        """The app's root URL (once entered)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)


@contextmanager
def live(config: Config, db: Database, clock: Callable[[], datetime]) -> Iterator[LiveApp]:
    with LiveApp(config, db, clock) as running:
        yield running


def token_for(config: Config, db: Database, source: str, name: str | None = None) -> str:
    """A new token for ``source`` (the secret, as the CLI prints it)."""
    made = push.add_token(config, db, name or f"cms-{source}", source, now=datetime.now(UTC))
    return made.secret


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Headers of a signed webhook request."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def article(n: int = 1, **over: Any) -> dict[str, Any]:
    """A pushed article in the JSON import's shape."""
    body: dict[str, Any] = {
        "guid": f"cms-{n}",
        "url": f"https://news.example.id/berita/{n}",
        "title": f"Pemkot Balikpapan gelar rapat koordinasi {n}",
        "body": f"BALIKPAPAN – Rapat koordinasi akhir tahun nomor {n} digelar di balai kota.",
        "published": "2025-11-16T09:00:00+08:00",
        "regions": ["balikpapan"],
        "categories": ["pemerintahan"],
        "author": "Redaksi",
    }
    body.update(over)
    return body
