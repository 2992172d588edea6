"""A one-line progress bar on stderr (redrawn in place on a terminal, printed once at the end otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``update()`` once per item; ``close()`` prints the final line."""

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, width: int = 24) -> None:
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stderr
        self.done, self.start, self.last_draw = 0, time.perf_counter(), 0.0
        self.live = self.stream.isatty()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            filled = round(self.width * min(self.done / self.total, 1.0))
            bar = "#" * filled + "." * (self.width - filled)
            return f"{self.label} [{bar}] {self.done}/{self.total} {rate:.1f}/s {elapsed:.1f}s"
        return f"{self.label} {self.done} {rate:.1f}/s {elapsed:.1f}s"

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if self.live and (now - self.last_draw > 0.1 or self.done == self.total):
            self.stream.write("\r" + self.line())
            self.stream.flush()
            self.last_draw = now

    def message(self, text: str) -> None:
        """Print a line to stdout above the bar (the bar is cleared first and redrawn on the next update)."""
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
        print(text, flush=True)

    def close(self) -> None:
        self.stream.write(("\r" if self.live else "") + self.line() + "\n")
        self.stream.flush()
