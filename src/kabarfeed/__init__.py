"""kabarfeed: regional news feeds and daily email digests."""

__version__ = "0.1.0"
