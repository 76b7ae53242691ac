"""Showing an image from the service in the desktop's viewer (`similar --open`).

The copy lives in a cache folder of the user's own (mode 0700), named after the image's
validated id with the suffix of the type its bytes announce: nothing of the name comes from the
uploader, and bytes of no image type are never handed to the opener. The copy is kept, not
deleted after a delay: openers return at once and viewers (a browser tab above all) read the
file later, so a timed deletion would race them or keep the command waiting. Instead, every
`--open` prunes the copies older than a day and keeps at most the newest KEEP_FILES.
"""

from __future__ import annotations

import os
import re
import stat
import time
import webbrowser
from pathlib import Path

KEEP_SECONDS = 24 * 3600
KEEP_FILES = 20
_OURS = re.compile(r"[0-9a-f-]{36}\.[a-z]{3,4}|\.imagerepo-.*\.part")


class NoViewer(Exception):
    """The cache folder is not usable, or no opener took the file."""


def cache_folder() -> Path:
    """$XDG_CACHE_HOME/imagerepo/opened (~/.cache by default): a real folder of ours, 0700."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "imagerepo" / "opened"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise NoViewer(f"{folder} is not a folder of yours")
    os.chmod(folder, 0o700)
    return folder


def prune(folder: Path, now: float | None = None) -> None:
    """Remove our copies older than KEEP_SECONDS, and all but the newest KEEP_FILES."""
    now = time.time() if now is None else now
    entries = []
    for entry in os.scandir(folder):
        if _OURS.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            entries.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
    entries.sort(reverse=True)
    for rank, (mtime, path) in enumerate(entries):
        if rank >= KEEP_FILES or now - mtime > KEEP_SECONDS:
            Path(path).unlink(missing_ok=True)


def show(path: Path) -> None:
    if not webbrowser.open(path.as_uri()):
        raise NoViewer(f"no viewer opened {path}")
