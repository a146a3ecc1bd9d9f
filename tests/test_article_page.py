"""/artikel/<slug>: the pages behind the permalinks a directory source makes."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from kabarfeed.clock import system_clock
from kabarfeed.ingest import Ingestor
from kabarfeed.store import Database
from kabarfeed.web import create_app
from tests.conftest import ConfigFactory


def test_permalinks_of_directory_articles_are_served(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "balikpapan-pasar-murah.md").write_text(
        "+++\n"
        'title = "Pasar Murah di Balikpapan"\n'
        "date = 2025-11-24T13:00:00+08:00\n"
        'author = "Redaksi"\n'
        'regions = ["balikpapan"]\n'
        'categories = ["ekonomi"]\n'
        "advertorial = true\n"
        "[image]\n"
        'url = "/assets/pasar.jpg"\n'
        'caption = "Warga antre di pasar murah."\n'
        "+++\n\n"
        "BALIKPAPAN – Pemkot menggelar pasar murah.\n\n"
        "<script>alert(1)</script>Harga beras turun.\n",
        encoding="utf-8",
    )
    config = make_config(f'[[sources]]\nname = "redaksi"\nkind = "directory"\npath = "{folder}"\n')
    Ingestor(config, db, system_clock).run()
    client = TestClient(create_app(config, db, clock=system_clock))
    page = client.get("/artikel/balikpapan-pasar-murah")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Pasar Murah di Balikpapan</h1>" in html
    assert "Balikpapan · Kalimantan Timur · Ekonomi · 24 Nov 2025, 13.00 WITA · Redaksi" in html
    assert 'class="badge">Advertorial' in html
    assert 'src="https://news.example.id/assets/pasar.jpg"' in html
    assert "Pemkot menggelar pasar murah" in html and "<script" not in html.split("<main")[1]
    for missing in ("/artikel/tidak-ada", "/artikel/Balikpapan-Pasar-Murah", "/artikel/-x"):
        assert client.get(missing).status_code == 404, missing
