"""Progress of long work: a live line on a terminal, plain periodic lines in logs."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total: int, label: str, stream=None, log_interval_s: float = 30.0,
                 start: int = 0):
        """`start`: the steps already done (a resumed run), which this process did not do."""
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.interval = 0.5 if self.live else log_interval_s
        self.last_print = 0.0
        self.rate_mark = (time.monotonic(), start)
        self.rate = 0.0
        self.note = ""

    def update(self, done: int, note: str | None = None, force: bool = False) -> None:
        if note is not None:
            self.note = note
        now = time.monotonic()
        if not force and now - self.last_print < self.interval:
            return
        t0, d0 = self.rate_mark
        if now - t0 > 1.0 and done > d0:
            self.rate = (done - d0) / (now - t0)
            self.rate_mark = (now, done)
        eta = (self.total - done) / self.rate if self.rate else float("nan")
        line = (f"[{self.label}] step {done:,}/{self.total:,} ({100 * done / self.total:.1f}%)"
                f" | {self.rate:,.0f} steps/s | ETA {format_duration(eta) if self.rate else '?'}"
                + (f" | {self.note}" if self.note else ""))
        if self.live:
            self.stream.write("\r" + line[:160].ljust(160))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last_print = now

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
