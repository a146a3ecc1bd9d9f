"""The service ingests each source in its own job: at most ``[ingest]
concurrency`` of them read at once (issue 22 §5)."""

from __future__ import annotations

import threading
from datetime import datetime

from kabarfeed.service import Runtime, Workers
from kabarfeed.store import Database
from kabarfeed.store import sources as source_store
from tests.conftest import ConfigFactory
from tests.feedserver import serve
from tests.test_ingest import feed_source, rss


def test_the_service_reads_no_more_sources_at_once_than_the_bound(
    make_config: ConfigFactory, db: Database, fixed_now: datetime
) -> None:
    """The first source answers only once the second is asked. With one slot the
    second waits for the first, which gives up at its deadline."""
    second_asked = threading.Event()
    with serve() as server:
        server.add("/1.xml", body=rss(("Satu", "https://u.example/1", "isi")), hold=second_asked)
        server.add("/2.xml", body=rss(("Dua", "https://u.example/2", "isi")), hit=second_asked)
        config = make_config(
            '[ingest]\ntimeout = "4s"\nconcurrency = 1\n'
            + feed_source("satu", server.url("/1.xml"))
            + feed_source("dua", server.url("/2.xml"))
        )
        workers = Workers(Runtime(config, db, lambda: fixed_now))
        first = threading.Thread(target=workers.ingest, args=(config.sources[0],))
        first.start()
        while not server.hits("/1.xml") and first.is_alive():  # it holds the only slot
            first.join(0.01)
        workers.ingest(config.sources[1])
        first.join()
    with db.connect() as conn:
        satu = source_store.get_source(conn, "satu")
        dua = source_store.get_source(conn, "dua")
    assert satu and satu.error_count == 1 and "timed out" in (satu.last_error or "")
    assert dua and dua.error_count == 0 and dua.last_success_at == fixed_now
