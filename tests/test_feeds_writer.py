"""Atomic, change-aware writes of the output folder (real files in tmp_path)."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import pytest

from kabarfeed.feeds import writer


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(writer.TEMP_PREFIX)]


def test_a_write_replaces_the_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "feeds" / "all.rss"
    writer.atomic_write(target, b"first")  # the folder is made, the file created
    assert target.read_bytes() == b"first" and target.stat().st_mode & 0o777 == 0o644
    with target.open("rb") as reader:  # a reader of the old version keeps it whole
        writer.atomic_write(target, b"second version")
        assert reader.read() == b"first"
    assert target.read_bytes() == b"second version"
    assert _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "all.rss"
    writer.atomic_write(target, b"kept")

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer, "_write_all", disk_full)
    with pytest.raises(writer.OutputError, match=r"cannot write .*No space left"):
        writer.atomic_write(target, b"lost")
    assert target.read_bytes() == b"kept" and _leftovers(tmp_path) == []


def test_unchanged_bytes_are_not_rewritten_but_a_missing_gzip_is(tmp_path: Path) -> None:
    target = tmp_path / "all.atom"
    assert writer.write_if_changed(target, b"<feed/>")
    assert gzip.decompress(writer.gzip_path(target).read_bytes()) == b"<feed/>"
    os.utime(target, (1_000_000, 1_000_000))
    assert not writer.write_if_changed(target, b"<feed/>")
    assert target.stat().st_mtime == 1_000_000  # Last-Modified stays
    writer.gzip_path(target).unlink()
    assert writer.write_if_changed(target, b"<feed/>")
    assert target.stat().st_mtime == 1_000_000 and writer.gzip_path(target).exists()
    gz = writer.gzip_path(target)
    gz.write_bytes(gz.read_bytes()[:-4])  # cut short: its trailer does not match
    assert writer.write_if_changed(target, b"<feed/>")
    assert gzip.decompress(gz.read_bytes()) == b"<feed/>"
    assert not writer.write_if_changed(target, b"<feed/>")
    gz.write_bytes(writer.gzip_bytes(b"<feed>new</feed>"))  # a build stopped after the .gz
    assert writer.write_if_changed(target, b"<feed/>")
    assert gzip.decompress(gz.read_bytes()) == b"<feed/>"
    assert writer.write_if_changed(target, b"<feed>new</feed>")
    assert gzip.decompress(writer.gzip_path(target).read_bytes()) == b"<feed>new</feed>"
    assert _leftovers(tmp_path) == []


def test_a_folder_in_the_way_is_an_error_and_stays(tmp_path: Path) -> None:
    target = tmp_path / "all.rss"
    target.mkdir()
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(writer.OutputError, match="cannot write"):
        writer.atomic_write(target, b"<rss/>")
    assert (target / "inside").read_bytes() == b"kept" and _leftovers(tmp_path) == []
