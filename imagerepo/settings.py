"""Where the client keeps the server URL and the API key: one JSON file in the user's config
directory, readable by the user alone; IMAGEREPO_URL and IMAGEREPO_KEY override it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imagerepo" / "config.json"


@dataclass(frozen=True, slots=True)
class Settings:
    url: str
    key: str | None


def load() -> Settings:
    stored: dict[str, str] = {}
    path = config_path()
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise SystemExit(f"imagerepo: cannot read {path}: {exc}") from None
    url = os.environ.get("IMAGEREPO_URL") or stored.get("url") or DEFAULT_URL
    key = os.environ.get("IMAGEREPO_KEY") or stored.get("key")
    return Settings(url.rstrip("/"), key or None)


def save(url: str, key: str) -> Path:
    """Write the file with mode 0600 from its creation (never readable by others, not even
    for a moment), in a folder of mode 0700."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url.rstrip("/"), "key": key}, out)
    os.chmod(temporary, 0o600)  # an older file of another mode: the replace keeps this one
    os.replace(temporary, path)
    return path
