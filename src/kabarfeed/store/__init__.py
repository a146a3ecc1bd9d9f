"""The article, subscriber and delivery store (SQLAlchemy Core + Alembic)."""

from kabarfeed.store.db import Database, open_database

__all__ = ["Database", "open_database"]
