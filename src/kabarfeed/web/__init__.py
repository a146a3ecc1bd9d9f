"""The HTTP side of kabarfeed: one Starlette app serving the feed output folder
(and, from the web module's routes, the subscription pages)."""

from kabarfeed.web.app import create_app

__all__ = ["create_app"]
