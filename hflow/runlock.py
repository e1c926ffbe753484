"""One process per run: a `filelock` lock on each directory a run writes.

On Unix the lock is `flock` on the open lock file, so the kernel releases it when the process
ends, however it ends: a lock left by a crash is never stale. Who holds it (pid and host) is
written beside it after acquiring, for the message a second process prints; it is written as
every hflow file is (hflow.io), so a link planted in its place is replaced, never followed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout

from hflow import HflowError
from hflow.io import make_dir, write_text

LOCK_NAME = ".hflow.lock"
HOLDER_NAME = ".hflow.lock.holder"


class RunLockedError(HflowError):
    pass


class RunLock:
    def __init__(self, directories: list[str | Path]):
        self.directories = [Path(d) for d in directories]
        self.locks: list[FileLock] = []

    def __enter__(self) -> RunLock:
        try:
            for directory in self.directories:
                lock = FileLock(directory / LOCK_NAME, timeout=0)
                try:
                    make_dir(directory)
                    lock.acquire()
                    write_text(directory / HOLDER_NAME,
                               f"pid {os.getpid()} on host {socket.gethostname()}")
                except Timeout:
                    try:
                        holder = (directory / HOLDER_NAME).read_text().strip() or "unknown"
                    except OSError:
                        holder = "unknown"
                    raise RunLockedError(
                        f"{directory} is in use by another hflow process ({holder}); wait for "
                        f"it to finish or stop it, or use another --out / --state-dir") from None
                except OSError as err:  # e.g. a read-only filesystem or directory
                    raise HflowError(f"cannot write in {directory} ({err.strerror}); a run "
                                     f"needs its --out and --state-dir writable") from None
                self.locks.append(lock)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for lock in self.locks:
            lock.release()
        self.locks = []
