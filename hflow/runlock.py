"""One process per run: an advisory file lock on each directory a run writes.

`flock` locks belong to the open file, so the kernel releases them when the process ends,
however it ends: a lock left by a crash is never stale. The lock file holds the holder's pid
and host, for the message the second process prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from hflow import HflowError
from hflow.io import make_dir

LOCK_NAME = ".hflow.lock"


class RunLockedError(HflowError):
    pass


class RunLock:
    def __init__(self, directories: list[str | Path]):
        self.directories = [Path(d) for d in directories]
        self.fds: list[int] = []

    def __enter__(self) -> RunLock:
        try:
            for directory in self.directories:
                make_dir(directory)
                try:
                    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as err:  # e.g. a read-only filesystem or directory
                    raise HflowError(f"cannot write in {directory} ({err.strerror}); a run "
                                     f"needs its --out and --state-dir writable") from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise RunLockedError(
                        f"{directory} is in use by another hflow process ({holder}); wait for "
                        f"it to finish or stop it, or use another --out / --state-dir") from None
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode())
                self.fds.append(fd)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for fd in self.fds:
            os.close(fd)  # releases the lock
        self.fds = []
