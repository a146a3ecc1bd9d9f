"""Editing ``config.toml`` from the console: validate with the very validator
``kabarfeed config check`` uses (problems at their key path, located on their
line), show the diff, apply atomically (never an invalid file), keep every
applied version for history and rollback, and edit chosen keys through
tomlkit so the file's comments and layout survive."""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomlkit
from sqlalchemy import insert, select
from tomlkit.exceptions import TOMLKitError

from kabarfeed.admin import audit
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.tables import admin_config_versions
from kabarfeed.config import Config, parse_config
from kabarfeed.errors import ConfigError, KabarfeedError, NotFoundError
from kabarfeed.store import Database

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=")
_TOML_LINE = re.compile(r"at line (\d+)")


class ConfigConflict(KabarfeedError):
    """The file changed on disk since the editor was opened."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: key path (``""`` for syntax), message, line (1-based)."""

    key: str
    message: str
    line: int | None

    @property
    def text(self) -> str:
        """As ``kabarfeed config check`` prints it, without the file name."""
        return f"{self.key}: {self.message}" if self.key else self.message


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of validating a candidate text."""

    config: Config | None
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        """Whether the text may be applied."""
        return self.config is not None and not self.problems


@dataclass(frozen=True, slots=True)
class Version:
    """One applied version of the file."""

    id: int
    at: datetime
    author: str
    sha256: str
    note: str
    text: str


def sha256(text: str) -> str:
    """The hex SHA-256 of ``text`` (UTF-8): identity of a file version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_text(path: Path) -> str:
    """The config file as text (BOM dropped); :class:`ConfigError` if unreadable."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path.name}: cannot read: {e}"]) from e


# -- validation ------------------------------------------------------------------------


def key_lines(text: str) -> dict[str, int]:
    """Key path (``sources[2].interval``, ``site``) → 1-based line of ``text``."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            name = ".".join(p.strip().strip('"') for p in header[2].split("."))
            if header[1] == "[[":
                index = counts.get(name, 0)
                counts[name] = index + 1
                table = f"{name}[{index}]"
            else:
                table = name
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            name = ".".join(p.strip() for p in key[1].split("."))
            lines.setdefault(f"{table}.{name}" if table else name, number)
    return lines


def locate(key: str, lines: Mapping[str, int]) -> int | None:
    """The line of ``key`` or of its nearest enclosing key/table."""
    while key:
        if key in lines:
            return lines[key]
        trimmed = re.sub(r"(\[\d+\]|\.[^.\[\]]+)$", "", key)
        if trimmed == key:
            break
        key = trimmed
    return None


def check_text(text: str, path: Path, *, environ: Mapping[str, str] | None = None) -> Checked:
    """Validate ``text`` as if it were the file at ``path`` (same folder for
    relative paths, same environment overrides, same messages as
    ``kabarfeed config check``), templates included."""
    label = path.name
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as e:
        found = _TOML_LINE.search(str(e))
        line = int(found[1]) if found else None
        return Checked(None, (Problem("", f"TOML syntax error: {e}", line),))
    try:
        config = parse_config(data, path=path.resolve(), environ=environ)
    except ConfigError as e:
        lines = key_lines(text)
        problems = []
        for item in e.problems:
            rest = item.removeprefix(f"{label}: ")
            key, _, message = rest.partition(": ")
            problems.append(Problem(key, message, locate(key, lines)))
        return Checked(None, tuple(problems))
    from kabarfeed.service import template_problems

    broken = template_problems(config)
    return Checked(config, tuple(Problem("", p, None) for p in broken))


def unified_diff(old: str, new: str, name: str) -> list[tuple[str, str]]:
    """``(kind, line)`` pairs of a unified diff; kind is add, del, hunk or ctx."""
    out = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"{name} (now)", f"{name} (edited)", lineterm=""
    ):
        if line.startswith(("+++", "---")):
            kind = "ctx"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def running_changes(running: Config, new: Config) -> tuple[list[str], list[str]]:
    """Lines of what changes against the running config (secrets never shown),
    and the keys that only take effect after a restart."""
    from kabarfeed.service import describe_changes, restart_only_changes

    return describe_changes(running, new), restart_only_changes(running, new)


# -- structured edits (tomlkit) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A key the quick-edit form offers: ``section.key`` and its kind."""

    section: str
    key: str
    kind: str

    @property
    def name(self) -> str:
        """The form field name and key path."""
        return f"{self.section}.{self.key}"


FIELDS = (
    Field("site", "title", "str"),
    Field("site", "description", "str"),
    Field("site", "base_url", "str"),
    Field("digest", "send_at", "str"),
    Field("digest", "max_articles", "int"),
    Field("digest", "from_address", "str"),
    Field("digest", "from_name", "str"),
    Field("digest", "skip_empty", "bool"),
    Field("feeds", "items", "int"),
    Field("smtp", "rate_per_second", "float"),
    Field("logging", "level", "str"),
    Field("admin", "session_idle", "str"),
)
"""Scalar keys editable through the form; everything else in raw mode."""


def field_values(text: str) -> dict[str, str]:
    """The form's current values as written in ``text`` ("" when absent)."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError:
        return {}
    out = {}
    for f in FIELDS:
        table = doc.get(f.section)
        value = table.get(f.key) if isinstance(table, Mapping) else None
        if value is None:
            out[f.name] = ""
        elif isinstance(value, bool):
            out[f.name] = "true" if value else "false"
        else:
            out[f.name] = str(value)
    return out


def _typed(kind: str, value: str) -> Any:
    """The TOML value for a form entry; left a string when it does not parse
    as ``kind`` (the validator then reports it at its key path)."""
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        return value
    if kind == "bool":
        return value.lower() in ("true", "1", "on", "yes")
    return value


def apply_fields(text: str, values: Mapping[str, str]) -> str:
    """``text`` with the changed form values set through tomlkit (comments,
    order and formatting of everything else kept). A value emptied in the
    form removes the key (its default applies)."""
    doc = tomlkit.parse(text)
    current = field_values(text)
    for f in FIELDS:
        if f.name not in values or values[f.name] == current.get(f.name, ""):
            continue
        value = values[f.name]
        table = doc.get(f.section)
        if value == "":
            if isinstance(table, MutableMapping) and f.key in table:
                del table[f.key]
            continue
        if not isinstance(table, Mapping):
            table = tomlkit.table()
            doc[f.section] = table
        table[f.key] = _typed(f.kind, value)  # type: ignore[index]
    return tomlkit.dumps(doc)


# -- applying, history, rollback ----------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (same folder, fsynced,
    same permissions): readers see the old file or the new one, never half."""
    folder = path.parent
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _latest_sha(db: Database) -> str | None:
    v = admin_config_versions.c
    with db.connect() as conn:
        found = conn.execute(select(v.sha256).order_by(v.id.desc()).limit(1)).scalar()
    return str(found) if found else None


def _insert_version(
    db: Database, path: Path, text: str, author: str, note: str, now: datetime
) -> int:
    with db.begin() as conn:
        inserted = conn.execute(
            insert(admin_config_versions).values(
                at=now, author=author, path=str(path), sha256=sha256(text), text=text, note=note
            )
        ).inserted_primary_key
    return int(inserted[0]) if inserted else 0


def apply_text(
    db: Database,
    path: Path,
    text: str,
    actor: Actor,
    *,
    base_sha: str | None,
    now: datetime,
    note: str = "",
) -> tuple[Version, Checked]:
    """Validate ``text``; when valid, write it atomically and record it as a
    new version (the file as it was first, if it was never recorded).

    Raises :class:`ConfigError` (every problem; nothing written) when invalid,
    :class:`ConfigConflict` when the file no longer has ``base_sha``."""
    checked = check_text(text, path)
    if not checked.valid:
        raise ConfigError([p.text for p in checked.problems])
    before = read_text(path)
    if base_sha is not None and sha256(before) != base_sha:
        raise ConfigConflict("the file changed since it was opened; reload and edit again")
    if _latest_sha(db) != sha256(before):
        _insert_version(db, path, before, "file", "as found on disk", now)
    write_atomically(path, text)
    version_id = _insert_version(db, path, text, actor.name, note, now)
    with db.begin() as conn:
        audit.record(
            conn,
            actor,
            "config.apply",
            path.name,
            before={"sha256": sha256(before)[:12]},
            after={"sha256": sha256(text)[:12], "version": version_id, "note": note or "edit"},
            now=now,
        )
    return Version(version_id, now, actor.name, sha256(text), note, text), checked


def history(db: Database, limit: int = 30) -> list[Version]:
    """Applied versions, newest first (text included)."""
    v = admin_config_versions.c
    with db.connect() as conn:
        rows = conn.execute(select(admin_config_versions).order_by(v.id.desc()).limit(limit))
        return [Version(r.id, r.at, r.author, r.sha256, r.note, r.text) for r in rows]


def get_version(db: Database, version_id: int) -> Version:
    """One applied version; :class:`NotFoundError` when unknown."""
    with db.connect() as conn:
        r = conn.execute(
            select(admin_config_versions).where(admin_config_versions.c.id == version_id)
        ).first()
    if r is None:
        raise NotFoundError(f"no config version #{version_id}")
    return Version(r.id, r.at, r.author, r.sha256, r.note, r.text)


def rollback(
    db: Database, path: Path, version_id: int, actor: Actor, *, now: datetime
) -> tuple[Version, Checked]:
    """Apply an earlier version again (validated like any edit; recorded as new)."""
    old = get_version(db, version_id)
    return apply_text(
        db, path, old.text, actor, base_sha=None, now=now, note=f"rollback to #{version_id}"
    )
