"""Synthetic data shared by the benchmarks: the 40-region / 15-category
taxonomy and subscriber rows for bulk inserts."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def taxonomy_toml(province_timezone: str | None = None) -> str:
    """8 provinces of 4 cities each (40 regions) and 15 categories, as TOML."""
    zone = [f'timezone = "{province_timezone}"'] if province_timezone else []
    lines: list[str] = []
    for p in range(8):
        lines += ["[[regions]]", f'slug = "provinsi-{p}"', f'name = "Provinsi {p}"', *zone, ""]
        for c in range(4):
            lines += [
                "[[regions]]",
                f'slug = "kota-{p}-{c}"',
                f'name = "Kota {p}-{c}"',
                f'parent = "provinsi-{p}"',
                "",
            ]
    for k in range(15):
        lines += ["[[categories]]", f'slug = "kategori-{k}"', f'name = "Kategori {k}"', ""]
    return "\n".join(lines)


def subscriber_row(i: int, created: datetime) -> dict[str, Any]:
    """An active WITA subscriber ``r<i>@example.org`` for ``subscribers`` inserts."""
    return {
        "id": i,
        "email": f"r{i}@example.org",
        "email_key": f"r{i}@example.org",
        "name": f"Pembaca {i}",
        "token": f"{i:032x}",
        "timezone": "Asia/Makassar",
        "send_at": "06:00",
        "language": "id",
        "status": "active",
        "bounce_count": 0,
        "created_at": created,
        "updated_at": created,
    }
