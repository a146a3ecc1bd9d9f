"""What every command shares: the config path, loaded config and database."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from kabarfeed.clock import system_clock
from kabarfeed.config import Config, default_config_path, load_config
from kabarfeed.errors import InputError
from kabarfeed.logsetup import setup_logging
from kabarfeed.models import Clock
from kabarfeed.store import Database, open_database


@dataclass
class AppContext:
    """Lazily loads the config and opens (and migrates) the database once."""

    config_path: Path
    verbose: bool = False
    clock: Clock = system_clock
    _config: Config | None = field(default=None, repr=False)
    _db: Database | None = field(default=None, repr=False)

    @classmethod
    def create(cls, config_path: str | None, *, verbose: bool = False) -> AppContext:
        """Context for ``--config`` (or the default location)."""
        path = Path(config_path) if config_path else default_config_path()
        return cls(path, verbose)

    @property
    def config(self) -> Config:
        """The validated config (raises ConfigError with every problem)."""
        if self._config is None:
            self._config = load_config(self.config_path)
            setup_logging(
                self._config.logging.format, self._config.logging.level, verbose=self.verbose
            )
        return self._config

    @property
    def db(self) -> Database:
        """The database, migrated to the newest schema on first use."""
        if self._db is None:
            self._db = open_database(self.config.storage.url)
        return self._db

    @property
    def interactive(self) -> bool:
        """Whether stdout is a terminal (progress bars) or a log/pipe (summary lines)."""
        return sys.stdout.isatty()

    def close(self) -> None:
        """Release database connections."""
        if self._db is not None:
            self._db.dispose()


def parse_date_option(value: str | None, option: str = "--date") -> date | None:
    """A ``YYYY-MM-DD`` command-line value, or ``None`` when not given."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InputError(f'{option} "{value}" is not a date like 2025-11-17') from e
