"""The digest's size fitting degrades one article at a time (issue 22 §3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from digest_support import article, subscriber
from kabarfeed.config import Config
from kabarfeed.digest.render import HTML_LIMIT, DigestRenderer, EditionInput, fit_step

DAY = date(2025, 11, 17)
SENT = datetime(2025, 11, 16, 22, 0, 5, tzinfo=UTC)


@pytest.fixture
def renderer(make_config: Callable[..., Config]) -> DigestRenderer:
    config = make_config('[digest]\nfrom_address = "redaksi@news.example.id"\n')
    return DigestRenderer(config, clock=lambda: SENT)


def test_one_oversized_article_among_twelve_costs_only_itself(renderer: DigestRenderer) -> None:
    arts = [article(n, title=f"Berita nomor {n} dari Balikpapan") for n in range(1, 13)]
    arts[2] = article(3, title="Judul raksasa " * 80_000)  # about 1 MB
    ed = EditionInput(subscriber(), DAY, tuple(arts), 12)
    html = renderer.render_html(ed)
    assert len(html.encode()) <= HTML_LIMIT
    shown = [n for n in range(1, 13) if f"Berita nomor {n} dari" in html]
    assert shown == [n for n in range(1, 13) if n != 3]
    assert "Judul raksasa" not in html
    assert renderer.render_one(ed).data == renderer.render_reference(ed).data


def test_articles_of_ordinary_size_go_from_the_end() -> None:
    kept = tuple(range(10))
    assert fit_step(kept, [100] * 10, size=20_000, limit=10_000) == (0, 1, 2, 3, 4)
    assert fit_step(kept, [100] * 10, size=10_001, limit=10_000) == tuple(range(9))
    assert fit_step((0, 1), [100, 100], size=10**9, limit=10_000) == (0,)


def test_the_heaviest_article_goes_alone_when_it_is_an_outlier() -> None:
    weights = [100, 100, 5_000, 120, 90]
    assert fit_step((0, 1, 2, 3, 4), weights, size=10**6, limit=10_000) == (0, 1, 3, 4)
