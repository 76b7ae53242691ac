"""What the client prints: tables on a terminal, and a progress line that is redrawn on a
terminal and written as plain periodic lines elsewhere (a log, a pipe)."""

from __future__ import annotations

import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

TTY_INTERVAL = 0.2
LOG_INTERVAL = 5.0
# An ETA from the first few requests is noise (one slow first answer said 31 minutes for a
# 30-second job): none until this much time has passed and this share is done.
ETA_AFTER_SECONDS = 3.0
ETA_AFTER_SHARE = 0.05


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError


def duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@dataclass
class Progress:
    """Files and bytes done of a total, with rate and ETA."""

    files: int
    bytes: int
    out: TextIO = field(default_factory=lambda: sys.stderr)
    files_done: int = 0
    bytes_done: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _width: int = 0
    _shown: tuple[int, int] | None = None  # (files, bytes) of the last line written

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.bytes_done / elapsed
        share = self.bytes_done / self.bytes if self.bytes else 1.0
        settled = elapsed >= ETA_AFTER_SECONDS and share >= ETA_AFTER_SHARE
        left = (self.bytes - self.bytes_done) / rate if rate > 0 and settled else float("inf")
        if self.bytes_done >= self.bytes:
            left = 0.0
        bar = "#" * round(share * 24) + "-" * (24 - round(share * 24))
        return (f"[{bar}] {self.files_done}/{self.files} files, "
                f"{human_bytes(self.bytes_done)}/{human_bytes(self.bytes)}, "
                f"{human_bytes(rate)}/s, {self.files_done / elapsed:.1f} files/s, "
                f"ETA {duration(left)}")

    def advance(self, files: int, size: int) -> None:
        self.files_done += files
        self.bytes_done += size
        self.show()

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        tty = self.out.isatty()
        if not force and now - self._last < (TTY_INTERVAL if tty else LOG_INTERVAL):
            return
        self._last = now
        text = self.line()
        if tty:  # pad over a longer previous line
            self.out.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.out.write(text + "\n")
        self._shown = (self.files_done, self.bytes_done)
        self.out.flush()

    def finish(self) -> None:
        """The last state, once (a log already holding it gets no copy), and the line ended
        so that what follows starts on its own."""
        if self._shown != (self.files_done, self.bytes_done):
            self.show(force=True)
        if self.out.isatty() and self._shown is not None:
            self.out.write("\n")
            self.out.flush()


def table(rows: Sequence[Sequence[object]], headers: Sequence[str], out: TextIO) -> None:
    """Columns as wide as their widest cell; text is cut at 60 characters."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _cell(value: object) -> str:
    return printable("" if value is None else str(value), 60)


def printable(text: str, limit: int) -> str:
    """Text from the service as one line that is safe on a terminal: line breaks and tabs
    become spaces (they would break a table), other control and format characters (terminal
    escapes, bidirectional overrides) become U+FFFD; cut at `limit` characters."""
    text = " ".join(text.split())
    text = "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"
