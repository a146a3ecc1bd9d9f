"""Where templates live and how Jinja2 environments are made.

Templates ship in the repository's ``templates/`` folder (packaged into the
wheel as ``kabarfeed/templates``). A publisher may point config at an override
folder; files there win over the bundled ones with the same name.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from jinja2.bccache import Bucket

_PACKAGED = Path(__file__).parent / "templates"
_REPO = Path(__file__).resolve().parents[2] / "templates"


def bundled_templates() -> Path:
    """The folder of bundled templates (installed package or source checkout)."""
    return _PACKAGED if _PACKAGED.is_dir() else _REPO


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept for the life of the process, so that a new
    environment (one per feed build, say) does not parse and compile its
    templates again. Jinja checks each template's source checksum, so an
    edited override template is compiled afresh."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        data = self._code.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_CACHES: dict[tuple[str, str, bool], _MemoryBytecodeCache] = {}
"""One cache per environment kind: compiled code depends on its options."""


def _cache(subfolder: str, override: Path | None, html: bool) -> _MemoryBytecodeCache:
    key = (subfolder, str(override or ""), html)
    found = _CACHES.get(key)
    if found is None:
        found = _CACHES.setdefault(key, _MemoryBytecodeCache())
    return found


def make_environment(
    subfolder: str, *, override: Path | None = None, html: bool = True
) -> jinja2.Environment:
    """A Jinja2 environment for ``templates/<subfolder>`` (e.g. ``"email"``, ``"web"``).

    Autoescaping is on for HTML (and for every ``.html*`` template when
    ``html`` is false); undefined variables raise instead of rendering empty.
    """
    paths = [str(bundled_templates() / subfolder)]
    if override is not None:
        paths.insert(
            0, str(override / subfolder) if (override / subfolder).is_dir() else str(override)
        )
    autoescape = True if html else jinja2.select_autoescape(["html", "htm", "html.j2", "xml"])
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths),
        autoescape=autoescape,  # noqa: S701 - True, or select_autoescape for HTML/XML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=_cache(subfolder, override, html),
    )
