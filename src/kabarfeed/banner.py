"""The "open these" block ``kabarfeed run`` prints once it listens. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kabarfeed.config import Config
from kabarfeed.seed import SeedReport


@dataclass(frozen=True, slots=True)
class Startup:
    """What the banner reports besides the config."""

    host: str
    port: int
    route_paths: tuple[str, ...]
    outbox: Mapping[str, int]
    seed: SeedReport | None = None


def local_url(host: str, port: int) -> str:
    """The address to open in a browser on this machine (a wildcard host
    becomes the loopback address)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}  # noqa: S104
    shown = wildcard.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def has_route(paths: Iterable[str], prefix: str) -> bool:
    """Whether the web app routes anything under ``prefix`` (``/admin``)."""
    return any(p == prefix or p.startswith(prefix + "/") for p in paths)


def shown_path(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when inside it, with a trailing slash."""
    try:
        return f"{path.relative_to(cwd)}/"
    except ValueError:
        return f"{path}/"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def banner_lines(config: Config, startup: Startup, *, cwd: Path) -> list[str]:
    """The lines to print: where to look, where mail goes, how to stop."""
    url = local_url(startup.host, startup.port)
    rows = [
        ("site", f"{url}/"),
        ("all news", f"{url}/feeds/all.atom   (also .rss and .json)"),
        ("subscribe", f"{url}/subscribe"),
    ]
    if has_route(startup.route_paths, "/admin"):
        rows.append(("console", f"{url}/admin"))
    if config.smtp.host:
        rows.append(("mail", f"sent through {config.smtp.host}:{config.smtp.port}"))
    else:
        new = shown_path(config.maildir.path / "new", cwd)
        rows.append(("digests", f"{new}   (no [smtp] host: each digest is an .eml file here)"))
    lines = ["", "kabarfeed is running. Open these:"]
    lines += [f"  {label:<10} {value}" for label, value in rows]
    lines += _mail_lines(startup)
    lines += ["Stop: press Ctrl-C (or send SIGTERM); work in progress finishes first.", ""]
    return lines


def _mail_lines(startup: Startup) -> list[str]:
    out: list[str] = []
    seed = startup.seed
    if seed is not None and seed.added:
        out.append(
            f"  {len(seed.added)} demo reader(s) imported from {seed.label}; "
            "their welcome digest is written within a minute."
        )
    elif seed is not None:
        out.append(
            f"  demo readers from {seed.label} were imported on {_when(seed.first_import)}; "
            "not imported again."
        )
    sent = startup.outbox.get("sent", 0)
    if sent:
        out.append(
            f"  {sent} digest(s) already sent earlier; an edition already sent is never sent again."
        )
    return out
