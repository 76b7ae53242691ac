"""Where the SQL files are: inside the installed package, or beside it in a source tree."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sql_root() -> Path:
    try:
        # An installed wheel (or editable install) maps the top-level sql/ to server.sql.
        return Path(str(files("server.sql")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "sql"


def migrations_dir() -> Path:
    return sql_root() / "migrations"


def queries_dir() -> Path:
    return sql_root() / "queries"
