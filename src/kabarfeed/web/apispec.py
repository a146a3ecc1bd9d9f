"""The OpenAPI 3.1 description of ``/api/v1``, written by hand (the API is
small; a hand-written document says what a CMS developer needs to know)."""

from __future__ import annotations

from typing import Any

_STRINGS = {"type": "array", "items": {"type": "string"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


_ARTICLE_IN: dict[str, Any] = {
    "type": "object",
    "description": (
        "The shape of the directory source's JSON import. Unknown keys are ignored "
        "and listed in the answer's notes."
    ),
    "required": ["title"],
    "properties": {
        "title": {"type": "string"},
        "body": {"type": "string", "description": "Markdown (raw HTML in it is escaped)"},
        "content_html": {"type": "string", "description": "HTML, sanitised with nh3"},
        "summary": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
        "guid": {"type": "string", "description": "Stable id; defaults to url"},
        "id": {"type": "string", "description": "Alias of guid"},
        "published": {"type": "string", "format": "date-time"},
        "date": {"type": "string", "format": "date-time", "description": "Alias of published"},
        "updated": {"type": "string", "format": "date-time"},
        "regions": _STRINGS,
        "categories": _STRINGS,
        "category": {"type": "string"},
        "tags": _STRINGS,
        "image": {
            "oneOf": [
                {"type": "string", "format": "uri"},
                {
                    "type": "object",
                    "required": ["url"],
                    "properties": {"url": {"type": "string"}, "caption": {"type": "string"}},
                },
            ]
        },
        "author": {"type": "string"},
        "advertorial": {"type": "boolean"},
        "language": {"type": "string"},
        "breaking": {
            "type": "boolean",
            "description": (
                "Queues one breaking alert per matching opted-in subscriber "
                "(once per article; the answer's notes say how many)"
            ),
        },
    },
}

_ARTICLE_OUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "guid": {"type": ["string", "null"]},
        "source": {"type": "string"},
        "url": {"type": "string"},
        "title": {"type": "string"},
        "author": {"type": ["string", "null"]},
        "published": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "first_seen": {"type": "string", "format": "date-time"},
        "summary": {"type": "string"},
        "content_html": {"type": "string"},
        "image": {
            "type": ["object", "null"],
            "properties": {"url": {"type": "string"}, "caption": {"type": ["string", "null"]}},
        },
        "regions": _STRINGS,
        "categories": _STRINGS,
        "advertorial": {"type": "boolean"},
        "language": {"type": "string"},
    },
}

_PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string", "description": "JSON pointer fragment"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}

_PUSHED = {
    "type": "object",
    "properties": {
        "result": {"type": "string", "enum": ["created", "updated", "unchanged"]},
        "article": _ref("Article"),
        "notes": _STRINGS,
    },
}

_WRITE_ERRORS = {
    "400": _problem("The body is not JSON"),
    "401": _problem("No valid token"),
    "403": _problem("The token's source is not configured"),
    "409": _problem("The item is already stored from another source"),
    "413": _problem("The body is larger than [web] max_body"),
    "415": _problem("Not application/json"),
    "422": _problem("Validation failed; errors lists every field"),
    "429": {
        "description": "Rate limited",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    },
}

_GUID = {
    "name": "guid",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The article's guid (percent-encoded when it is a URL)",
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kabarfeed push API",
            "version": "1.0.0",
            "description": (
                "A newsroom CMS pushes articles on publish; feeds are rebuilt and the "
                "WebSub hub pinged within seconds."
            ),
        },
        "servers": [{"url": f"{base_url}/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "kabarfeed api-token add",
                },
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Signature",
                    "description": "sha256=<hex HMAC-SHA256 of the raw body, key: push_secret>",
                },
            },
            "schemas": {
                "ArticleIn": _ARTICLE_IN,
                "Article": _ARTICLE_OUT,
                "Pushed": _PUSHED,
                "Problem": _PROBLEM,
            },
        },
        "paths": {
            "/articles": {
                "post": {
                    "summary": "Create or update an article (idempotent by guid)",
                    "operationId": "pushArticle",
                    "requestBody": _json_body(_ref("ArticleIn")),
                    "responses": {
                        "201": _ok("Created", _ref("Pushed")),
                        "200": _ok("Updated, or unchanged (the same push again)", _ref("Pushed")),
                        **_WRITE_ERRORS,
                    },
                },
                "get": {
                    "summary": "The source's articles changed after `since`",
                    "operationId": "listArticles",
                    "parameters": [
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                    ],
                    "responses": {
                        "200": _ok(
                            "Oldest change first",
                            {
                                "type": "object",
                                "properties": {
                                    "source": {"type": "string"},
                                    "articles": {"type": "array", "items": _ref("Article")},
                                },
                            },
                        ),
                        "401": _problem("No valid token"),
                        "422": _problem("Bad since or limit"),
                    },
                },
            },
            "/articles/{guid}": {
                "parameters": [_GUID],
                "get": {
                    "summary": "One article",
                    "operationId": "getArticle",
                    "responses": {
                        "200": _ok("The stored article", _ref("Article")),
                        "404": _problem("Unknown guid"),
                        "410": _problem("Unpublished"),
                    },
                },
                "put": {
                    "summary": "Update (or create) the article",
                    "operationId": "putArticle",
                    "requestBody": _json_body(_ref("ArticleIn")),
                    "responses": {
                        "201": _ok("Created", _ref("Pushed")),
                        "200": _ok("Updated or unchanged", _ref("Pushed")),
                        **_WRITE_ERRORS,
                    },
                },
                "delete": {
                    "summary": "Unpublish: out of every feed, edition and archive page",
                    "operationId": "unpublishArticle",
                    "responses": {
                        "204": {"description": "Unpublished (or already)"},
                        "404": _problem("Unknown guid"),
                    },
                },
            },
            "/status": {
                "get": {
                    "summary": "What kabarfeed holds of the token's source",
                    "operationId": "status",
                    "responses": {
                        "200": _ok(
                            "Counts",
                            {
                                "type": "object",
                                "properties": {
                                    "source": {"type": "string"},
                                    "articles": {"type": "integer"},
                                    "unpublished": {"type": "integer"},
                                    "newest_change": {"type": ["string", "null"]},
                                    "time": {"type": "string", "format": "date-time"},
                                },
                            },
                        ),
                    },
                },
            },
            "/webhooks/{source}": {
                "post": {
                    "summary": "Signed push: article JSON, or {action: unpublish, guid}",
                    "operationId": "signedPush",
                    "security": [{"signature": []}],
                    "parameters": [
                        {
                            "name": "source",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": _json_body(_ref("ArticleIn")),
                    "responses": {
                        "201": _ok("Created", _ref("Pushed")),
                        "200": _ok("Updated or unchanged", _ref("Pushed")),
                        "204": {"description": "Unpublished"},
                        **_WRITE_ERRORS,
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                },
            },
        },
    }
