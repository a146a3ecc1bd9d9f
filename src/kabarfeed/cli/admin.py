"""``kabarfeed config check`` and ``kabarfeed db upgrade``."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kabarfeed.cli.context import AppContext
from kabarfeed.config import Config
from kabarfeed.errors import ConfigError
from kabarfeed.models import Taxonomy

CONNECT_TIMEOUT = 10
"""Seconds ``config check`` waits for a database server."""

pass_app = click.make_pass_decorator(AppContext)


def _region_tree(taxonomy: Taxonomy) -> Tree:
    tree = Tree(f"regions ({len(taxonomy.regions)})")

    def add(node: Tree, slug: str) -> None:
        for child in taxonomy.children(slug):
            label = f"{escape(child.name)} [dim]{child.slug} · {escape(child.timezone)}[/]"
            add(node.add(label), child.slug)

    for root in taxonomy.roots():
        add(
            tree.add(f"{escape(root.name)} [dim]{root.slug} · {escape(root.timezone)}[/]"),
            root.slug,
        )
    return tree


def _summary(config: Config, console: Console) -> None:
    site = config.site
    console.print(
        f"[green]ok[/] {escape(str(config.path))}: {escape(site.title)} <{escape(site.base_url)}>"
    )
    console.print(f"sources ({len(config.sources)}):")
    for s in config.sources:
        where = escape(str(s.path if s.kind == "directory" else s.url))
        state = "" if s.enabled else " [yellow](disabled)[/]"
        console.print(f"  {s.name} [dim]{s.kind}[/] {where} every {s.interval}{state}")
    console.print(_region_tree(config.taxonomy))
    cats = ", ".join(f"{c.slug} ({len(c.keywords)} keywords)" for c in config.taxonomy.categories)
    console.print(f"categories ({len(config.categories)}): {cats}")
    mail = (
        f"smtp {config.smtp.host}:{config.smtp.port}"
        if config.smtp.host
        else f"maildir {config.maildir.path}"
    )
    storage = config.storage.url.split("@")[-1]
    console.print(f"storage {escape(storage)}; delivery via {escape(mail)}")


def storage_problem(url: str) -> str | None:
    """Why the database at ``url`` cannot be opened; ``None`` when it can.

    Nothing is created or migrated: a SQLite file that does not exist yet
    is checked by the folder it would be created in.
    """
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError) as e:
        return f"not a database URL ({e})"
    if backend == "sqlite":
        return _sqlite_problem(parsed.database or "")
    args = {"connect_timeout": CONNECT_TIMEOUT} if backend == "postgresql" else {}
    try:
        engine = create_engine(url, connect_args=args)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        return f"cannot use this URL: {e}"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, ValueError) as e:
        return f"cannot connect: {getattr(e, 'orig', None) or e}"
    finally:
        engine.dispose()
    return None


def _sqlite_problem(database: str) -> str | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    if path.is_dir():
        return f"{path} is a folder, not a database file"
    if path.exists():
        try:
            conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as e:
            return f"{path}: {e}"
        try:
            conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as e:
            return f"{path}: {e}"
        finally:
            conn.close()
        return None
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return f"{path}: cannot be created ({folder} is not a writable folder)"
    return None


def register(main: click.Group) -> None:
    """Add the admin commands to ``main``."""

    @main.group("config")
    def config_group() -> None:
        """Inspect the configuration."""

    @config_group.command("check")
    @pass_app
    def check(app: AppContext) -> None:
        """Validate config.toml, try to open the database, and print a summary
        (sources, regions tree, categories). Exit 2 with one line per problem."""
        config = app.config
        problem = storage_problem(config.storage.url)
        if problem is not None:
            label = config.path.name if config.path else "config"
            raise ConfigError([f"{label}: storage.url: {problem}"])
        _summary(config, Console(highlight=False))

    @main.group("db")
    def db_group() -> None:
        """Database schema management."""

    @db_group.command("upgrade")
    @pass_app
    def upgrade(app: AppContext) -> None:
        """Apply pending migrations (other commands also do this on first use)."""
        db = app.db
        click.echo(f"database at revision {db.current_revision()}")
