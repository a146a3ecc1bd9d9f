"""The newsroom console at ``/admin``: server-rendered pages over the
use cases of :mod:`kabarfeed.admin`."""

from kabarfeed.web.admin.routes import admin_routes, create_console

__all__ = ["admin_routes", "create_console"]
