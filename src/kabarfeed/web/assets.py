"""``/assets/``: the ``[site] assets`` folder (logo, images for pages and emails).

Served as is, read-only, without folder listings; ETag/Last-Modified and
``304`` come from Starlette's static file handler. Without the setting no
route is added.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from kabarfeed.config import Config

ASSETS_PATH = "/assets"


def asset_routes(config: Config) -> list[BaseRoute]:
    """The ``/assets`` mount, or nothing when ``[site] assets`` is unset."""
    folder = config.site.assets
    if folder is None:
        return []
    files = StaticFiles(directory=folder, check_dir=False, follow_symlink=False)
    return [Mount(ASSETS_PATH, app=files, name="assets")]
