"""Atomic, change-aware file writes for the output folder.

A file is replaced by writing a temporary sibling and putting it in the
target's place in one step, so a reader (web server, CDN origin) sees either
the old or the new bytes, never half a file. Where the target exists, on
Linux, the two names are swapped (``renameat2`` with ``RENAME_EXCHANGE``) and
the old file, now under the temporary name, is unlinked; elsewhere the
temporary file is renamed over the target. The swap spares the file system's
crash guard for replace-by-rename: ext4 (``auto_da_alloc``, on by default)
starts writing a file's data to disk inside a rename over another file, and
an incremental build replaces hundreds of files (see BENCHMARKS.md).

There is no fsync either: the files are rebuilt from the store, and after
the machine restarts a build checks the size of every document written
shortly before the last one (see ``feeds.build.RECENT``), so what a power
loss left short or empty is written again. Unchanged bytes are not
rewritten: the mtime, and with it ``Last-Modified``, stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import struct
import sys
from collections.abc import Callable
from pathlib import Path

from zlib_ng import zlib_ng

from kabarfeed.errors import KabarfeedError

GZIP_LEVEL = 6
GZIP_WBITS = 31
"""A gzip member (header without name or mtime, so deterministic), not a zlib stream."""
TEMP_PREFIX = ".kf-"


class OutputError(KabarfeedError):
    """The output folder could not be written."""


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (no name, mtime 0): same input, same bytes.

    zlib-ng, not the stdlib's zlib: the same format and about the same size
    at level 6, in less than half the CPU time (a full build gzips every
    document; see BENCHMARKS.md)."""
    return zlib_ng.compress(data, GZIP_LEVEL, wbits=GZIP_WBITS)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` via a temporary file (see the module doc)."""
    try:
        fd, tmp = _temp_beside(path)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            if not _swapped(tmp, path):
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e


def _swapped(tmp: str, path: Path) -> bool:
    """Swap the names ``tmp`` and ``path`` and unlink the old file, now at
    ``tmp``; ``False`` (nothing done) where there is no file at ``path`` or
    the system or file system cannot swap names."""
    swap = _RENAMEAT2
    if swap is None or not _exchange(swap, tmp, path):
        return False
    try:
        os.unlink(tmp)
    except IsADirectoryError:  # a folder stood at path: put it back, fail as a rename would
        _exchange(swap, tmp, path)
        raise
    except OSError:
        pass  # a leftover, removed by the next build
    return True


def _exchange(swap: _Renameat2, tmp: str, path: Path) -> bool:
    """Swap two names with ``swap``; ``False`` when it cannot (see ``_NO_SWAP``)."""
    old, new = os.fsencode(tmp), os.fsencode(path)
    if swap(_AT_FDCWD, old, _AT_FDCWD, new, _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_SWAP:
        return False
    raise OSError(code, os.strerror(code), str(path))


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_SWAP = frozenset({errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})
"""No file to swap with, or no way to swap: rename instead."""


_Renameat2 = Callable[[int, bytes, int, bytes, int], int]


def _load_renameat2() -> _Renameat2 | None:
    """glibc's ``renameat2`` (2.28 and later), on Linux only."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    c_int, c_path = ctypes.c_int, ctypes.c_char_p
    function.argtypes = [c_int, c_path, c_int, c_path, ctypes.c_uint]
    function.restype = ctypes.c_int
    found: _Renameat2 = function
    return found


_RENAMEAT2 = _load_renameat2()


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new, empty temporary file in ``path``'s folder (made if missing):
    its descriptor and name. Cheaper than :func:`tempfile.mkstemp`, which
    matters for builds writing thousands of files."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(path.parent, f"{TEMP_PREFIX}{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
    raise FileExistsError(f"no free temporary name in {path.parent}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def files_under(root: Path, folder: str) -> set[str]:
    """The regular files under ``root / folder``, as ``root``-relative POSIX
    paths. One directory read per folder (``os.scandir`` tells files from
    folders without a ``stat`` each): cheaper than asking for every file."""
    found: set[str] = set()
    pending = [(os.path.join(root, folder), folder)]
    while pending:
        path, relative = pending.pop()
        try:
            entries = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise OutputError(f"cannot read {path}: {e.strerror or e}") from e
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, f"{relative}/{entry.name}"))
                elif entry.is_file():
                    found.add(f"{relative}/{entry.name}")
    return found


def _gzip_of(path: Path, data: bytes) -> bool:
    """Whether the gzip file ``path`` ends with ``data``'s trailer."""
    return gzip_trailer(path) == (zlib_ng.crc32(data), len(data) & 0xFFFFFFFF)


def gzip_trailer(path: Path) -> tuple[int, int] | None:
    """The CRC-32 and length (modulo 2**32) of the data a one-member gzip
    file holds, from its last eight bytes; ``None`` when it is missing or
    too short to be gzip. A file a crash cut short ends elsewhere than at
    its trailer, and a zero-filled one reads zeros there."""
    try:
        with open(path, "rb", buffering=0) as handle:
            if handle.seek(0, os.SEEK_END) < _GZIP_MIN:
                return None
            handle.seek(-8, os.SEEK_END)
            crc, size = struct.unpack("<II", handle.readall())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"cannot read {path}: {e.strerror or e}") from e
    return crc, size


_GZIP_MIN = 18
"""A gzip member's header (10 bytes) and trailer (8)."""


def size_or_none(path: Path) -> int | None:
    """The size of ``path``, or ``None`` when it does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"cannot read {path}: {e.strerror or e}") from e


def boot_id() -> str | None:
    """This boot of the machine (the kernel's; for a container, its host's),
    unique per boot; ``None`` where the system does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except (OSError, ValueError):
        return None


def gzip_path(path: Path) -> Path:
    """The precompressed sibling of ``path``."""
    return path.with_name(path.name + ".gz")


def missing_or_empty(path: Path) -> bool:
    """Whether ``path`` is missing or empty (what a crash can leave of a file
    written without fsync on some file systems)."""
    return not size_or_none(path)


def read_or_none(path: Path) -> bytes | None:
    """The bytes of ``path``, or ``None`` when it does not exist."""
    try:
        with open(path, "rb", buffering=0) as handle:  # one read, no buffer copy
            return handle.readall()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"cannot read {path}: {e.strerror or e}") from e


def differs(path: Path, data: bytes) -> bool:
    """Whether ``path`` does not hold ``data``: a missing file or another size
    is known from ``stat`` alone; only a file of the same size is read."""
    return size_or_none(path) != len(data) or read_or_none(path) != data


def write_if_changed(path: Path, data: bytes, *, with_gzip: bool = True) -> bool:
    """Write ``data`` (and its ``.gz`` sibling) unless the file already holds it.

    Returns whether anything was written. A ``.gz`` sibling whose trailer
    does not record ``data``'s CRC-32 and length (missing, empty, cut short)
    is rewritten even when the main file is unchanged.
    """
    gz_path = gzip_path(path)
    changed = differs(path, data)
    if changed:
        atomic_write(path, data)
    if with_gzip and (changed or not _gzip_of(gz_path, data)):
        atomic_write(gz_path, gzip_bytes(data))
        return True
    return changed


def remove(path: Path) -> bool:
    """Delete ``path`` and its ``.gz`` sibling; whether the main file existed."""
    existed = path.exists()
    for target in (path, gzip_path(path)):
        try:
            target.unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(f"cannot remove {target}: {e.strerror or e}") from e
    return existed
