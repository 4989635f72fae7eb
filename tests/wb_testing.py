"""Helpers shared by the test folders (importable as ``wb_testing``: tests/ is on sys.path via its conftest).

Tests that look inside a project file open their own SQLite connection: the store's is private.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any


def _path(project_or_path: Any) -> str:
    return os.fspath(getattr(project_or_path, "path", project_or_path))


def db_dump(project_or_path: Any) -> str:
    """The whole database, every table, as SQL text: "unchanged" means byte for byte."""
    with contextlib.closing(sqlite3.connect(_path(project_or_path))) as conn:
        return "\n".join(conn.iterdump())


def sql(project_or_path: Any, query: str, *params: Any) -> list[tuple]:
    """Rows of a read-only query on the project file, on a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(_path(project_or_path))) as conn:
        return [tuple(row) for row in conn.execute(query, params)]
