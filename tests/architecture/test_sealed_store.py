"""The store is sealed: SQL lives only in workbench/core; the UI, the trainer and the CLI ask Project by name.

A view that runs SQL, or re-implements a rule of the store, is how a desktop app rots (docs/architecture.md#layers). This
reads the sources with ``ast`` and fails on a query outside core: a call of ``execute``/``executemany``/
``executescript``/``read_sql*``, a ``sqlite3`` connection (its exception classes may still be caught), the
store's connection (``.conn``/``._conn``), or a string constant that reads as SQL (upper-case keywords, as all
of our SQL is written, so that prose such as "Select a file from the list" passes).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "workbench"
OUTSIDE_CORE = sorted([*(ROOT / "ui").rglob("*.py"), *(ROOT / "training").rglob("*.py"), ROOT / "cli.py"])

SQL = re.compile(
    r"\bSELECT\b[\s\S]+?\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\bPRAGMA\s+\w+|\bCREATE\s+(TABLE|INDEX|VIEW|TRIGGER)\b",
)
QUERY_CALLS = {"execute", "executemany", "executescript", "read_sql", "read_sql_query", "read_sql_table"}
CONNECTIONS = {"conn", "_conn"}


def sql_uses(source: str) -> list[str]:
    """What in ``source`` runs or holds SQL, as 'line: what' strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = getattr(node, "lineno", "?")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{where}: SQL text {node.value[:60]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in QUERY_CALLS:
            found.append(f"{where}: .{node.attr}(...)")
        elif isinstance(node, ast.Attribute) and node.attr in CONNECTIONS:
            found.append(f"{where}: the store's connection .{node.attr}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sqlite3"
            and not node.attr.endswith("Error")
        ):
            found.append(f"{where}: sqlite3.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            found.append(f"{where}: from sqlite3 import ...")
    return found


@pytest.mark.parametrize("path", OUTSIDE_CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sql_outside_core(path):
    uses = sql_uses(path.read_text(encoding="utf-8"))
    assert not uses, f"{path.relative_to(ROOT.parent)} runs SQL; add a named Project method in core: {uses}"


def test_the_scan_finds_what_it_forbids():
    """Each kind of leak is caught, and ordinary text and error handling are not."""
    leaks = [
        'rows = project.conn.execute("SELECT id FROM comparisons").fetchall()',
        "project._conn.executemany(q, rows)",
        'q = "INSERT OR REPLACE INTO judgments VALUES (?)"',
        'q = "UPDATE runs SET status = ?"',
        'q = "DELETE FROM pair_scores"',
        "import pandas as pd\ndf = pd.read_sql_query(q, c)",
        "import sqlite3\nc = sqlite3.connect(path)",
        "from sqlite3 import connect",
    ]
    for source in leaks:
        assert sql_uses(source), source
    clean = (
        'import sqlite3\ntry:\n    project.record_judgment(1, "me", "a")\nexcept sqlite3.Error as exc:\n'
        '    msg = f"Select a file from the list ({exc})"\n'
        'label = "Delete the selected run? Update from the latest checkpoint."'
    )
    assert sql_uses(clean) == []
    assert len(OUTSIDE_CORE) > 10 and ROOT / "cli.py" in OUTSIDE_CORE
