"""Opening a project written by an older schema: forward migrations, with the derived tables rebuilt."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from workbench.core import store
from workbench.core.records import Text
from workbench.core.schema import MIGRATIONS, SCHEMA_VERSION
from workbench.core.store import (
    Project,
    ProjectError,
    comparison_hash,
    prompt_hash,
    response_hash,
)

ANN, BOB = 1, 2


def build_old_project(path, version: int = 1) -> None:
    """A project as the app of schema ``version`` wrote it, through plain SQL (no Project code)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for script in MIGRATIONS[:version]:
        for statement in store._split_sql(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("name", "old"), ("seed", "4"), ("guidelines", "Be kind.")])
    conn.executemany(
        "INSERT INTO annotators(id, name, kind, created_at) VALUES (?, ?, 'human', 0)", [(ANN, "ann"), (BOB, "bob")]
    )
    for p in range(1, 4):
        ph = prompt_hash(Text(f"prompt {p}"))
        conn.execute(
            "INSERT INTO prompts(id, hash, text, metadata, created_at) VALUES (?, ?, ?, ?, 0)",
            (p, ph, f"prompt {p}", json.dumps({"n": p})),
        )
        hashes = []
        for side in "ab":
            rid = 2 * p - (side == "a")
            hashes.append(response_hash(ph, Text(f"answer {side}{p}")))
            conn.execute(
                "INSERT INTO responses(id, prompt_id, hash, text, created_at) VALUES (?, ?, ?, ?, 0)",
                (rid, p, hashes[-1], f"answer {side}{p}"),
            )
        conn.execute(
            "INSERT INTO comparisons(id, prompt_id, response_a, response_b, hash, rand_key, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 0)",
            (p, p, 2 * p - 1, 2 * p, comparison_hash(*hashes), 100 - p),
        )
    judgments = [
        # id, comparison, annotator, choice, strength, kind, supersedes
        (1, 1, ANN, "a", 3, "label", None),
        (2, 1, ANN, "b", None, "relabel", 1),  # supersedes 1
        (3, 2, ANN, "tie", None, "label", None),
        (4, 1, BOB, "a", 2, "label", None),
        (5, 3, ANN, "a", None, "label", None),
        (6, 3, ANN, None, None, "undo", 5),  # 5 undone: comparison 3 open again
    ]
    conn.executemany(
        "INSERT INTO judgments(id, comparison_id, annotator_id, choice, strength, kind, supersedes, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        judgments,
    )
    if version >= 2:
        conn.execute(
            "INSERT INTO current_labels SELECT annotator_id, comparison_id, MAX(id), NULL FROM judgments"
            " GROUP BY annotator_id, comparison_id"
        )
        conn.execute("UPDATE current_labels SET choice = (SELECT choice FROM judgments WHERE id = judgment_id)")
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_old_project_migrates_and_works(tmp_path, version):
    path = tmp_path / "old.wbp"
    build_old_project(path, version)
    with Project.open(path) as p:
        assert p.schema_version == SCHEMA_VERSION
        assert p.integrity_check() == "ok"
        with closing(sqlite3.connect(path)) as conn:  # the test's own connection: the store keeps its private
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            current = conn.execute(
                "SELECT annotator_id, comparison_id, judgment_id, choice FROM current_labels ORDER BY 1, 2"
            ).fetchall()
        assert [tuple(r) for r in current] == [
            (ANN, 1, 2, "b"),
            (ANN, 2, 3, "tie"),
            (ANN, 3, 6, None),
            (BOB, 1, 4, "a"),
        ]
        # Data intact.
        assert p.counts() == {
            "prompts": 3,
            "responses": 6,
            "comparisons": 3,
            "judgments": 6,
            "annotators": 2,
            "runs": 0,
        }
        assert p.name == "old" and p.seed == 4 and p.guidelines == "Be kind."
        c = p.comparison(2)
        assert (c.prompt.text, c.response_a.text, c.response_b.text) == ("prompt 2", "answer a2", "answer b2")
        assert len(p.judgment_log()) == 6
        labels = p.labels()
        assert list(zip(labels["annotator"], labels["comparison_id"], labels["choice"])) == [
            ("ann", 1, "b"),
            ("ann", 2, "tie"),
            ("bob", 1, "a"),
        ]
        assert p.resolved_labels().set_index("comparison_id")["n_labels"].to_dict() == {1: 2, 2: 1}

        # The queue: 3 is open again (its label was undone) and nobody else labelled it.
        assert p.next_comparison("ann") == 3
        assert p.next_comparison("bob") == 3
        p.record_judgment(3, "bob", "skip")
        assert p.next_comparison("bob") == 2
        # Re-importing the same texts maps onto the old rows.
        from workbench.core.records import PairRecord

        again = p.add_records([PairRecord(Text("prompt 1"), Text("answer b1"), Text("answer a1"), choice="a")], "x")
        assert again.comparisons_added == 0 and again.duplicates == 1
        assert p.current_judgment(1, "import:x").choice == "b"

        # Undo walks back through ann's history: the tie on 2, then the relabel on 1 (back to "a", strength 3),
        # then that first label itself.
        assert p.undo_last("ann").id == 3
        assert p.undo_last("ann").id == 2
        restored = p.current_judgment(1, "ann")
        assert (restored.kind, restored.choice, restored.strength) == ("undo", "a", 3)
        assert p.undo_last("ann").id == 1
        assert p.undo_last("ann") is None
        assert p.current_judgment(1, "ann") is None
        assert p.next_comparison("ann") == 2  # nobody's label on 2 any more
        new = p.record_judgment(2, "ann", "b")
        undo_row = p.judgment(p.judgment(new).supersedes)
        assert (undo_row.kind, undo_row.supersedes) == ("undo", 3)
    with Project.open(path) as p:  # a second open finds nothing to do
        assert p.schema_version == SCHEMA_VERSION and p.counts()["judgments"] == 12


def test_failed_migration_leaves_the_file_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "old.wbp"
    build_old_project(path, 1)
    monkeypatch.setattr(store, "MIGRATIONS", [*MIGRATIONS, "CREATE TABLE extra (x INTEGER);\nCREATE TABLE (;"])
    monkeypatch.setattr(store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(ProjectError, match="could not upgrade the project from schema 1"):
        Project.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "current_labels" not in tables and "extra" not in tables
    conn.close()


def test_split_sql_keeps_statements_whole():
    script = (
        "CREATE TABLE a (x TEXT DEFAULT 'a;b');\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
        "  UPDATE a SET x = 'c;d';\nEND;\n  \n"
    )
    assert store._split_sql(script) == [
        "CREATE TABLE a (x TEXT DEFAULT 'a;b');",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 'c;d';\nEND;",
    ]
    assert sum(len(store._split_sql(m)) for m in MIGRATIONS) > 20
