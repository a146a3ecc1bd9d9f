"""The HTTP side of kabarfeed: one Starlette app serving the feed output folder
(and, from the web module's routes, the subscription pages).

``create_app`` is imported on first use, so importing :mod:`kabarfeed.web.server`
(the service does, and ``kabarfeed status`` imports the service) does not load
the whole application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kabarfeed.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from kabarfeed.web.app import create_app

        return create_app
    raise AttributeError(name)
