"""The app over real HTTP in tests: a uvicorn server on 127.0.0.1, port 0,
run in a daemon thread for the length of a ``with`` block."""

from __future__ import annotations

import threading
import time
from typing import Self

import uvicorn
from starlette.types import ASGIApp


def local_server(app: ASGIApp) -> uvicorn.Server:
    """A quiet uvicorn server for ``app`` on 127.0.0.1, a free port, no lifespan."""
    return uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )


class ServerThread:
    """``server`` running in a thread; ``port`` is where it listens once entered."""

    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.run, daemon=True)
        self.port = 0

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
