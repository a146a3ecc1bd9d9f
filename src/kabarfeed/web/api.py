"""``/api/v1``: the CMS push API.

* ``POST /api/v1/articles`` creates or updates an article (idempotent by
  guid: the same push again answers 200 and changes nothing);
  ``PUT /api/v1/articles/{guid}`` updates (or creates) it,
  ``DELETE /api/v1/articles/{guid}`` unpublishes it,
  ``GET /api/v1/articles/{guid}`` reads it back, ``GET /api/v1/articles?since=``
  lists what changed, ``GET /api/v1/status`` counts what the source holds.
  Authentication: ``Authorization: Bearer <token>`` from ``kabarfeed
  api-token add``; a token reads and writes its own source only.
* ``POST /api/v1/webhooks/{source}``: the same article JSON from a CMS
  plugin, signed ``X-Signature: sha256=<hex HMAC-SHA256 of the raw body>``
  with the source's ``push_secret``; ``"action": "unpublish"`` unpublishes.
* ``GET /api/v1/openapi.json``: the OpenAPI 3.1 description (no token).

Errors are RFC 9457 problem details (``application/problem+json``); a
validation failure is 422 with every field's problem in ``errors``. The body
limit is the app's own middleware (413); requests are limited per token in the
database (429 with ``Retry-After``), so every process counts together. Routes
call :mod:`kabarfeed.push` only, never the store.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kabarfeed import push
from kabarfeed.config import Config, SourceConfig
from kabarfeed.errors import KabarfeedError, NotFoundError, ParseError, StoreError
from kabarfeed.models import Article, Clock
from kabarfeed.store import Database
from kabarfeed.web.apispec import openapi_document
from kabarfeed.web.limits import SharedWindowLimiter

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
PROBLEM_BASE = "urn:kabarfeed:problem:"
Handler = Callable[[Request], Awaitable[Response]]


def problem(status: int, kind: str, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM, headers={"Cache-Control": "no-store"}
    )


def _with_headers(response: Response, headers: Mapping[str, str]) -> Response:
    for name, value in headers.items():
        response.headers[name] = value
    return response


def article_json(article: Article) -> dict[str, Any]:
    """The API's view of a stored article."""
    image = article.image
    return {
        "id": article.id,
        "guid": article.guid,
        "source": article.source,
        "url": article.url,
        "title": article.title,
        "author": article.author,
        "published": article.published.astimezone(UTC).isoformat(),
        "updated": article.updated.astimezone(UTC).isoformat(),
        "first_seen": article.first_seen.astimezone(UTC).isoformat(),
        "summary": article.summary,
        "content_html": article.content_html,
        "image": {"url": image.url, "caption": image.caption} if image else None,
        "regions": list(article.regions),
        "categories": list(article.categories),
        "advertorial": article.advertorial,
        "language": article.language,
    }


def push_secrets(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """Each source's webhook secret: ``KABARFEED_SOURCE_<NAME>_PUSH_SECRET``,
    else its ``push_secret``; sources without one are left out."""
    found: dict[str, str] = {}
    for source in config.sources:
        var = "KABARFEED_SOURCE_" + source.name.upper().replace("-", "_") + "_PUSH_SECRET"
        secret = environ.get(var) or source.push_secret.get_secret_value()
        if secret:
            found[source.name] = secret
    return found


class PushApi:
    """The ``/api/v1`` endpoints of one app."""

    def __init__(
        self,
        config: Config,
        db: Database,
        clock: Clock,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.secrets = push_secrets(config, os.environ if environ is None else environ)
        self.limiter = SharedWindowLimiter(
            db, "api", config.api.requests_per_minute, timedelta(minutes=1)
        )

    # ---- plumbing

    async def _limited(self, key: str) -> Response | None:
        wait = await run_in_threadpool(self.limiter.hit, key, self.clock())
        if not wait:
            return None
        return _with_headers(
            problem(429, "rate-limited", "Too many requests", f"try again in {wait} s"),
            {"Retry-After": str(wait)},
        )

    async def _token(self, request: Request) -> tuple[SourceConfig, str] | Response:
        """The source the bearer token writes into and its rate-limit key, or
        the 401/403/429 to answer."""
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        row = None
        if scheme.lower() == "bearer" and secret.strip():
            row = await run_in_threadpool(
                push.authenticate, self.db, secret.strip(), now=self.clock()
            )
        if row is None:
            return _with_headers(
                problem(401, "unauthorized", "A valid API token is required"),
                {"WWW-Authenticate": 'Bearer realm="kabarfeed"'},
            )
        source = self.config.source(row.source)
        if source is None:
            detail = f"token {row.name!r} writes into source {row.source!r}, no longer configured"
            return problem(403, "forbidden", "The token's source is not configured", detail)
        limited = await self._limited(f"t{row.id}")
        return limited or (source, f"t{row.id}")

    async def _json(self, request: Request) -> tuple[bytes, object] | Response:
        body = await request.body()
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if kind != "application/json" and not kind.endswith("+json"):
            return problem(415, "unsupported-media-type", "Send application/json", kind)
        try:
            return body, json.loads(body)
        except (ValueError, RecursionError) as e:
            return problem(400, "invalid-json", "The body is not valid JSON", _line(e))

    def _notify(self, request: Request) -> None:
        hook = getattr(request.app.state, "on_push", None)
        if callable(hook):
            hook()

    # ---- article writes

    async def _store(
        self, request: Request, source: SourceConfig, data: object, guid: str | None
    ) -> Response:
        try:
            payload = push.parse_payload(
                data, source=source.name, default_tz=self.config.site.timezone, guid=guid
            )
            outcome = await run_in_threadpool(
                push.push_article, self.config, self.db, source, payload, now=self.clock()
            )
        except push.PayloadError as e:
            return _invalid(e.errors)
        except push.ConflictError as e:
            return problem(409, "conflict", "Already stored from another source", str(e))
        except ParseError as e:
            return _invalid([push.FieldError("", str(e))])
        except StoreError as e:
            log.error("push into %s failed: %s", source.name, e)
            return problem(503, "unavailable", "The store is unavailable", "retry later")
        if outcome.status != "unchanged":
            self._notify(request)
            log.info("push %s: %s %s", source.name, outcome.status, outcome.article.id)
        body = {
            "result": outcome.status,
            "article": article_json(outcome.article),
            "notes": list(outcome.notes),
        }
        status = 201 if outcome.status == "created" else 200
        headers = {"Location": f"{PREFIX}/articles/{outcome.article.guid}"} if status == 201 else {}
        return JSONResponse(body, status_code=status, headers=headers)

    async def create(self, request: Request) -> Response:
        """``POST /api/v1/articles``."""
        return await self._push(request, None)

    async def replace(self, request: Request) -> Response:
        """``PUT /api/v1/articles/{guid}``."""
        return await self._push(request, request.path_params["guid"])

    async def _push(self, request: Request, guid: str | None) -> Response:
        """Authenticate, parse the JSON body and store it (under ``guid`` on a PUT)."""
        auth = await self._token(request)
        if isinstance(auth, Response):
            return auth
        parsed = await self._json(request)
        if isinstance(parsed, Response):
            return parsed
        return await self._store(request, auth[0], parsed[1], guid)

    async def remove(self, request: Request) -> Response:
        """``DELETE /api/v1/articles/{guid}``: unpublish (204, again 204)."""
        auth = await self._token(request)
        if isinstance(auth, Response):
            return auth
        return await self._unpublish(request, auth[0], request.path_params["guid"])

    async def _unpublish(self, request: Request, source: SourceConfig, guid: str) -> Response:
        try:
            was = await run_in_threadpool(
                push.unpublish, self.db, source.name, guid, now=self.clock()
            )
        except NotFoundError as e:
            return problem(404, "not-found", "No such article", str(e))
        if was:
            self._notify(request)
            log.info("push %s: unpublished %s", source.name, guid)
        return Response(status_code=204)

    # ---- reads

    async def read(self, request: Request) -> Response:
        """``GET /api/v1/articles/{guid}``."""
        auth = await self._token(request)
        if isinstance(auth, Response):
            return auth
        guid = request.path_params["guid"]
        try:
            found = await run_in_threadpool(push.get_pushed, self.db, auth[0].name, guid)
        except push.UnpublishedError as e:
            return problem(410, "gone", "The article was unpublished", str(e))
        except NotFoundError as e:
            return problem(404, "not-found", "No such article", str(e))
        return JSONResponse(article_json(found))

    async def listing(self, request: Request) -> Response:
        """``GET /api/v1/articles?since=ISO-8601&limit=N``."""
        auth = await self._token(request)
        if isinstance(auth, Response):
            return auth
        errors: list[push.FieldError] = []
        since = _since(request.query_params.get("since"), errors)
        limit = _limit(request.query_params.get("limit"), errors)
        if errors:
            return _invalid(errors)
        found = await run_in_threadpool(
            push.articles_since, self.db, auth[0].name, since, limit=limit
        )
        return JSONResponse({"source": auth[0].name, "articles": [article_json(a) for a in found]})

    async def status(self, request: Request) -> Response:
        """``GET /api/v1/status``."""
        auth = await self._token(request)
        if isinstance(auth, Response):
            return auth
        held = await run_in_threadpool(push.source_status, self.db, auth[0].name)
        newest = held.newest_change.astimezone(UTC).isoformat() if held.newest_change else None
        return JSONResponse(
            {
                "source": held.source,
                "articles": held.articles,
                "unpublished": held.unpublished,
                "newest_change": newest,
                "time": self.clock().astimezone(UTC).isoformat(),
            }
        )

    async def openapi(self, request: Request) -> Response:
        """``GET /api/v1/openapi.json``."""
        return JSONResponse(openapi_document(self.config.site.base_url))

    # ---- signed webhook

    async def webhook(self, request: Request) -> Response:
        """``POST /api/v1/webhooks/{source}`` signed with the source's secret."""
        name = request.path_params["source"]
        source, secret = self.config.source(name), self.secrets.get(name)
        if source is None or not secret:
            return problem(404, "not-found", "No signed webhook for this source", name)
        body = await request.body()
        if not push.signature_ok(secret, body, request.headers.get("x-signature")):
            return problem(401, "bad-signature", "X-Signature does not match the body")
        limited = await self._limited(f"s{name}")
        if limited is not None:
            return limited
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as e:
            return problem(400, "invalid-json", "The body is not valid JSON", _line(e))
        if isinstance(data, dict) and data.get("action") == "unpublish":
            guid = data.get("guid") or data.get("id") or data.get("url")
            if not isinstance(guid, str) or not guid:
                return _invalid([push.FieldError("guid", "unpublish needs a 'guid' string")])
            return await self._unpublish(request, source, guid)
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "action"}
        return await self._store(request, source, data, None)


def _invalid(errors: Any) -> JSONResponse:
    items = [{"pointer": f"#/{e.field}" if e.field else "#", "detail": e.message} for e in errors]
    return problem(
        422,
        "validation",
        "The article is not valid",
        f"{len(items)} problem(s)",
        errors=items,
    )


def _since(value: str | None, errors: list[push.FieldError]) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)
        return moment
    except (ValueError, OverflowError):
        errors.append(push.FieldError("since", "must be an ISO 8601 date/time"))
        return None


def _limit(value: str | None, errors: list[push.FieldError]) -> int:
    if value is None:
        return push.MAX_LIST
    if value.isdigit() and 0 < int(value) <= push.MAX_LIST:
        return int(value)
    errors.append(push.FieldError("limit", f"must be a whole number from 1 to {push.MAX_LIST}"))
    return push.MAX_LIST


def _line(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


def api_routes(api: PushApi) -> list[BaseRoute]:
    """The ``/api/v1`` routes."""
    return [
        Route(f"{PREFIX}/openapi.json", api.openapi, methods=["GET"]),
        Route(f"{PREFIX}/status", api.status, methods=["GET"]),
        Route(f"{PREFIX}/articles", api.create, methods=["POST"]),
        Route(f"{PREFIX}/articles", api.listing, methods=["GET"]),
        Route(f"{PREFIX}/articles/{{guid:path}}", api.read, methods=["GET"]),
        Route(f"{PREFIX}/articles/{{guid:path}}", api.replace, methods=["PUT"]),
        Route(f"{PREFIX}/articles/{{guid:path}}", api.remove, methods=["DELETE"]),
        Route(f"{PREFIX}/webhooks/{{source}}", api.webhook, methods=["POST"]),
    ]


__all__ = ["KabarfeedError", "PushApi", "api_routes", "article_json", "problem", "push_secrets"]
