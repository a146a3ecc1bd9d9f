"""``kabarfeed config check`` and ``kabarfeed db upgrade``."""

from __future__ import annotations

import click
from rich.console import Console
from rich.tree import Tree

from kabarfeed.cli.context import AppContext
from kabarfeed.config import Config
from kabarfeed.models import Taxonomy

pass_app = click.make_pass_decorator(AppContext)


def _region_tree(taxonomy: Taxonomy) -> Tree:
    tree = Tree(f"regions ({len(taxonomy.regions)})")

    def add(node: Tree, slug: str) -> None:
        for child in taxonomy.children(slug):
            add(node.add(f"{child.name} [dim]{child.slug} · {child.timezone}[/]"), child.slug)

    for root in taxonomy.roots():
        add(tree.add(f"{root.name} [dim]{root.slug} · {root.timezone}[/]"), root.slug)
    return tree


def _summary(config: Config, console: Console) -> None:
    console.print(f"[green]ok[/] {config.path}: {config.site.title} <{config.site.base_url}>")
    console.print(f"sources ({len(config.sources)}):")
    for s in config.sources:
        where = s.path if s.kind == "directory" else s.url
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
    console.print(f"storage {config.storage.url.split('@')[-1]}; delivery via {mail}")


def register(main: click.Group) -> None:
    """Add the admin commands to ``main``."""

    @main.group("config")
    def config_group() -> None:
        """Inspect the configuration."""

    @config_group.command("check")
    @pass_app
    def check(app: AppContext) -> None:
        """Validate config.toml and print a summary (sources, regions tree, categories)."""
        _summary(app.config, Console(highlight=False))

    @main.group("db")
    def db_group() -> None:
        """Database schema management."""

    @db_group.command("upgrade")
    @pass_app
    def upgrade(app: AppContext) -> None:
        """Apply pending migrations (other commands also do this on first use)."""
        db = app.db
        click.echo(f"database at revision {db.current_revision()}")
