"""One request-body limit for every route, enforced on the stream.

:class:`BodyLimit` wraps the whole application, so every route (the pages'
forms, and any API or webhook added later) gets the limit without asking for
it. A declared ``Content-Length`` over the limit is answered ``413`` before
the application runs; otherwise the bytes of the ``http.request`` messages
are counted as the application reads them (chunked or not), and the read
that crosses the limit ends the request with ``413`` instead of handing the
application more data. Nothing is ever buffered here.

A client that goes away in the middle of its body (or is disconnected by
the server's body timeout) is not a server error: the route's
``ClientDisconnect`` ends here, logged at debug level, not as a traceback.
"""

from __future__ import annotations

import json
import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1024 * 1024
"""Bytes a request body may carry unless ``[web] max_body`` says otherwise."""


class BodyTooLarge(Exception):
    """Raised inside ``receive`` when the body crosses the limit; caught by
    :class:`BodyLimit` (not part of the kabarfeed error tree: it never leaves
    the middleware)."""


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``; ``None`` when absent or malformed
    (the server rejects malformed ones before the app sees them)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


PROBLEM_PREFIXES = ("/api/",)
"""Paths answered with RFC 9457 problem details (JSON) rather than text."""


def _body_413(scope: Scope, limit: int) -> tuple[bytes, bytes]:
    """The 413 body and its content type: problem+json under /api/, else text."""
    if str(scope.get("path", "")).startswith(PROBLEM_PREFIXES):
        problem = {
            "type": "urn:kabarfeed:problem:too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"request body larger than {limit} bytes",
        }
        return json.dumps(problem).encode("ascii"), b"application/problem+json"
    return f"request body larger than {limit} bytes\n".encode("ascii"), b"text/plain; charset=utf-8"


async def _send_413(send: Send, limit: int, scope: Scope) -> None:
    body, kind = _body_413(scope, limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body per request."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 for a declared or streamed body over the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_413(send, self.max_bytes, scope)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _send_413(send, self.max_bytes, scope)
        except ClientDisconnect:
            log.debug("client left while sending %s %s", scope.get("method"), scope.get("path"))
