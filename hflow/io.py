"""Atomic, durable file writes: every file hflow writes appears whole or not at all.

A write goes to a temporary file beside the target (`.hflow-<name>.<random>.tmp`, created
new, never through a link), is flushed to disk (fsync), then renamed over the target (a link
planted there is replaced, not followed), and the directory entry is flushed too. An
interrupted write leaves only the temporary file, which `remove_stale_temp_files` deletes when
the run starts again: files of that name only, nothing else of the directory. OS errors name
the path and, for a full disk, the free space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hflow import HflowError

_UMASK = os.umask(0)
os.umask(_UMASK)
TEMP_PREFIX = ".hflow-"
_TEMP_NAME = re.compile(r"\.hflow-.+\.[A-Za-z0-9_]{8}\.tmp")  # what mkstemp makes of it


def make_dir(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HflowError(f"cannot create directory {path}: {err.strerror}") from None
    return path


def _os_error(path: Path, err: OSError) -> HflowError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(path.parent).free / 2**20
        return HflowError(f"writing {path} failed: no space left on device ({free:,.0f} MiB "
                          f"free on its filesystem); the previous files are intact")
    return HflowError(f"writing {path} failed: {err.strerror or err}")


def _fsync(path: str | Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp",
                                   dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _os_error(path, err) from None
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    except OSError as err:
        raise _os_error(path, err) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Deletes what interrupted writes left in `directory` (call it holding the run's lock)."""
    directory = Path(directory)
    stale = sorted(p for p in directory.glob(f"{TEMP_PREFIX}*.tmp")
                   if _TEMP_NAME.fullmatch(p.name) and not p.is_dir()) \
        if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
