"""Per-language string tables: the feed pages', the digest's and the web pages'.

Plain immutable mappings, no gettext catalogues to build. kabarfeed speaks
Bahasa Indonesia (also the fallback for any other language) and English.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

FALLBACK = "id"


class Texts:
    """One part's strings in every language it speaks.

    Every table must have the fallback's keys, no more, no fewer, and no
    empty value: a missing translation fails at import, not on a page.
    """

    def __init__(self, **tables: Mapping[str, str]) -> None:
        if FALLBACK not in tables:
            raise ValueError(f"no {FALLBACK!r} strings")
        keys = set(tables[FALLBACK])
        for language, table in tables.items():
            if set(table) != keys:
                diff = sorted(set(table) ^ keys)
                raise ValueError(f"{language!r} strings differ from {FALLBACK!r}: {diff}")
            empty = sorted(k for k, v in table.items() if not v.strip())
            if empty:
                raise ValueError(f"{language!r} strings are empty: {empty}")
        self.tables: Mapping[str, Mapping[str, str]] = MappingProxyType(
            {language: MappingProxyType(dict(table)) for language, table in tables.items()}
        )

    def __call__(self, language: str) -> Mapping[str, str]:
        """The table for ``language`` (the fallback's when unknown)."""
        return self.tables.get(language, self.tables[FALLBACK])
