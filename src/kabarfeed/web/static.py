"""Serve the feed output folder like a careful static web server.

- ``Content-Type`` per extension, ``; charset=utf-8`` on every text type;
- strong ``ETag`` (content hash) and ``Last-Modified`` (file mtime); ``304``
  on ``If-None-Match``, or on ``If-Modified-Since`` when no ETag was sent;
- the precompressed ``.gz`` sibling (or on-the-fly gzip) when the client
  accepts gzip, with ``Vary: Accept-Encoding``;
- ``Cache-Control: public, max-age=`` from ``feeds.cache_max_age``;
- ``GET`` and ``HEAD``; ``/`` (and any folder with one) serves ``index.html``;
- ``404`` page for everything else: unknown paths, folders without an index
  (no listings), dot-files, ``..`` in any (decoded) segment, and symlinks
  that lead out of the folder.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kabarfeed.feeds.writer import gzip_bytes

CONTENT_TYPES: Mapping[str, str] = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".opml": "text/x-opml",
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".xsl": "application/xslt+xml",
    ".gz": "application/gzip",
}
TEXT_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/json",
        "text/x-opml",
        "text/html",
        "application/xml",
        "text/plain",
        "text/css",
        "text/javascript",
        "image/svg+xml",
        "application/xslt+xml",
    }
)
MIN_GZIP = 512
"""Smaller bodies are not worth compressing on the fly."""
_ETAG_CACHE_MAX = 4096


def content_type(relative: str) -> str:
    """The ``Content-Type`` for an output-relative path, charset included for text.

    ``.json`` under ``feeds/`` is a JSON Feed (``application/feed+json``).
    """
    suffix = Path(relative).suffix.lower()
    if suffix == ".json":
        base = "application/feed+json" if relative.startswith("feeds/") else "application/json"
    else:
        base = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(relative)[0] or ""
        base = base or "application/octet-stream"
    return f"{base}; charset=utf-8" if base in TEXT_TYPES else base


def safe_relative(url_path: str) -> str | None:
    """The output-relative file path for a decoded URL path, or ``None`` when
    the path is unsafe (``..``, ``.``, dot-files, backslashes, NUL)."""
    if "\x00" in url_path or "\\" in url_path:
        return None
    parts = [p for p in url_path.split("/") if p]
    if any(p.startswith(".") for p in parts):  # "..", ".", hidden and temp files
        return None
    relative = "/".join(parts)
    return (
        f"{relative}/index.html"
        if relative and url_path.endswith("/")
        else (relative or "index.html")
    )


def resolve(root: Path, relative: str) -> Path | None:
    """The real file for ``relative`` inside ``root`` (see :func:`locate`)."""
    found = locate(root, relative)
    return found[1] if found else None


def locate(root: Path, relative: str) -> tuple[str, Path] | None:
    """``(name, real file)`` for ``relative`` inside ``root``: ``name`` is the
    output-relative name served (a folder's ``.../index.html``). ``None`` when
    unsafe, missing, outside ``root`` after following symlinks, or (after
    following them) a dot-file.

    Every file the server opens goes through here (the ``.gz`` sibling too):
    the containment and dot-file rules hold for each of them.
    """
    if safe_relative(relative) is None:
        return None
    real_root = root.resolve()
    try:
        target = (real_root / relative).resolve()
        if target.is_dir():
            relative = f"{relative.rstrip('/')}/index.html".lstrip("/")
            target = (real_root / relative).resolve()
        if not target.is_relative_to(real_root) or not target.is_file():
            return None
        if _hidden(target.relative_to(real_root)):
            return None
    except (OSError, RuntimeError, ValueError):  # symlink loops, names too long
        return None
    return relative, target


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def accepts_gzip(header: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``q=0`` forbids it)."""
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(q) > 0
            except ValueError:
                return True
    return False


def etag_matches(header: str, *tags: str) -> bool:
    """Weak comparison of ``If-None-Match`` against our tags (``*`` matches)."""
    offered = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in offered or any(t in offered for t in tags)


def not_modified_since(header: str, mtime: float) -> bool:
    """Whether the file is no newer than ``If-Modified-Since`` (to the second)."""
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


@dataclass(frozen=True, slots=True)
class _Variant:
    body: bytes
    etag: str
    encoded: bool


class StaticFiles:
    """The request handler over one output folder (holds a small ETag cache)."""

    def __init__(self, root: Path, *, max_age: int, not_found: bytes) -> None:
        self.root = root
        self.max_age = max_age
        self.not_found_page = not_found
        self._etags: dict[tuple[str, int, int], str] = {}

    def endpoint(self, request: Request) -> Response:
        """Answer one GET or HEAD request (sync: Starlette runs it in a thread)."""
        asked = safe_relative(str(request.scope["path"]))
        found = locate(self.root, asked) if asked is not None else None
        if found is None:
            return self.not_found()
        relative, file = found
        try:
            stat = file.stat()
            body = file.read_bytes()
        except OSError:
            return self.not_found()
        return self._respond(request, file, relative, body, stat)

    def _respond(
        self, request: Request, file: Path, relative: str, body: bytes, stat: os.stat_result
    ) -> Response:
        ctype = content_type(relative)
        compressible = ctype.split(";")[0] in TEXT_TYPES
        identity = self._etag(file, stat, body)
        headers = {
            "Content-Type": ctype,
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "Cache-Control": f"public, max-age={self.max_age}",
            "X-Content-Type-Options": "nosniff",
        }
        if compressible:
            headers["Vary"] = "Accept-Encoding"
        gzip_ok = compressible and accepts_gzip(request.headers.get("accept-encoding", ""))
        variant = self._variant(relative, stat, body, identity, gzip_ok)
        headers["ETag"] = variant.etag
        if self._fresh(request, stat.st_mtime, identity, _gz_tag(identity)):
            return Response(status_code=304, headers=_without(headers, "Content-Type"))
        if variant.encoded:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(variant.body))
        content = b"" if request.method == "HEAD" else variant.body
        return Response(content, status_code=200, headers=headers)

    def _variant(
        self, relative: str, stat: os.stat_result, body: bytes, identity: str, gzip_ok: bool
    ) -> _Variant:
        if not gzip_ok:
            return _Variant(body, identity, False)
        # The sibling of the name asked for, checked like any requested file.
        sibling = resolve(self.root, relative + ".gz")
        try:
            if sibling is not None and sibling.stat().st_mtime_ns >= stat.st_mtime_ns:
                return _Variant(sibling.read_bytes(), _gz_tag(identity), True)
        except OSError:
            pass
        if len(body) < MIN_GZIP:
            return _Variant(body, identity, False)
        return _Variant(gzip_bytes(body), _gz_tag(identity), True)

    @staticmethod
    def _fresh(request: Request, mtime: float, *tags: str) -> bool:
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None:
            return etag_matches(if_none_match, *tags)
        since = request.headers.get("if-modified-since")
        return since is not None and not_modified_since(since, mtime)

    def _etag(self, file: Path, stat: os.stat_result, body: bytes) -> str:
        key = (str(file), stat.st_mtime_ns, stat.st_size)
        found = self._etags.get(key)
        if found is None:
            if len(self._etags) >= _ETAG_CACHE_MAX:
                self._etags.clear()
            found = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            self._etags[key] = found
        return found

    def not_found(self) -> Response:
        """The 404 page."""
        return Response(
            self.not_found_page,
            status_code=404,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _gz_tag(identity: str) -> str:
    return identity[:-1] + '-gzip"'


def _without(headers: Mapping[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


def static_routes(handler: StaticFiles) -> list[BaseRoute]:
    """The catch-all route serving ``handler``'s folder; mount it last."""
    return [Route("/{path:path}", handler.endpoint, methods=["GET", "HEAD"], name="static")]
