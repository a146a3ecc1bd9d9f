"""One bad item never costs the others: the isolation point of every per-item step.

Sources and the ingest stage turn many items (files, JSON list items, feed
entries, raw articles) into results one at a time. Each such step runs through
:func:`isolate`: an error of the project's tree (:class:`KabarfeedError`) rejects
that item with its own message; anything else is a bug in kabarfeed or in a
library it calls, so it is logged with its traceback and the item is rejected
as an internal error. Either way the caller records a :class:`Rejected` and goes
on with the next item.

Text that cannot be stored (lone surrogates, which UTF-8 cannot encode, and NUL
characters, which PostgreSQL refuses) is caught per item by :func:`check_text`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from kabarfeed.errors import KabarfeedError, ParseError

__all__ = ["INTERNAL", "Rejected", "check_text", "isolate", "text_problem"]

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERNAL = "internal error"
"""Prefix of the reason of an item rejected by an unexpected exception."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item that was left out, where it came from and why."""

    origin: str
    reason: str

    def __str__(self) -> str:
        return (
            self.reason if self.reason.startswith(self.origin) else f"{self.origin}: {self.reason}"
        )


def isolate(origin: str, step: Callable[[], T]) -> T | Rejected:
    """Run ``step`` for one item; a failure rejects this item only.

    ``origin`` names the item (file, ``file[3]``, ``feed-url entry 7``) in the
    reason and the log.
    """
    try:
        return step()
    except KabarfeedError as e:
        return Rejected(origin, str(e))
    except Exception as e:  # a bug must cost one item, never the source
        log.exception("%s: unexpected error; item rejected", origin)
        detail = " ".join(str(e).split())[:300]
        return Rejected(origin, f"{INTERNAL}: {type(e).__name__}: {detail}")


def text_problem(value: str, *, nul: bool = True) -> str | None:
    """Why ``value`` cannot be stored as text, or ``None`` when it can.

    ``nul=False`` lets NUL characters pass (for text that is cleaned later).
    """
    if nul and "\x00" in value:
        return f"contains a NUL character (at position {value.index(chr(0))})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        char = value[e.start]
        return f"contains a lone surrogate U+{ord(char):04X} (at position {e.start})"
    return None


def check_text(where: str, fields: Mapping[str, object], *, nul: bool = True) -> None:
    """Raise :class:`ParseError` naming the first field holding unstorable text.

    Values may be strings, ``None``, or (nested) lists, tuples and mappings of
    them; other values are ignored.
    """
    for key, value in fields.items():
        for text in _strings(value):
            problem = text_problem(text, nul=nul)
            if problem is not None:
                raise ParseError(f"{where}: {key!r} {problem}")


def _strings(value: object, depth: int = 0) -> Iterable[str]:
    """Every string inside ``value`` (keys of mappings too), depth-limited."""
    if isinstance(value, str):
        yield value
    elif depth > 50:
        return
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(k, depth + 1)
            yield from _strings(v, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, depth + 1)
