"""A process killed (SIGKILL) in the middle of a bulk write leaves the project exactly as it was.

Import and merge are one transaction each; these tests kill the writer half-way through that transaction,
after thousands of rows went into it, and compare a dump of the whole database before and after.
Labelling and training under SIGKILL are covered in test_durability.py and tests/training/test_resume.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from wb_testing import db_dump, sql

from workbench.core.formats import import_file
from workbench.core.store import Project

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"), pytest.mark.slow]


def _pairs(path: Path, n: int, tag: str) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"prompt": f"{tag} prompt {i}", "chosen": f"good {tag} {i}", "rejected": f"bad {tag} {i}"})
                + "\n"
            )
    return path


def _run_and_kill(code: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    return result


@pytest.fixture
def labelled(tmp_path) -> Path:
    path = tmp_path / "team.wbp"
    with Project.create(path) as project:
        import_file(project, _pairs(tmp_path / "first.jsonl", 50, "first"))
        project.record_judgment(1, "ann", "b", strength=2, left="a")
    return path


def test_an_import_killed_half_way_changes_nothing(tmp_path, labelled):
    before = db_dump(labelled)
    big = _pairs(tmp_path / "big.jsonl", 4000, "big")
    _run_and_kill(f"""
        import os, signal
        from workbench.core.formats import import_records, read_records
        from workbench.core.store import Project

        def progress(done, total):
            if done >= 0.75 * total:  # the storing half runs from 50% to 100%: three thousand rows are in
                os.kill(os.getpid(), signal.SIGKILL)

        records, info = read_records({str(big)!r}, "auto")
        project = Project.open({str(labelled)!r})
        import_records(project, records, info, None, progress)
    """)
    assert db_dump(labelled) == before
    assert sql(labelled, "PRAGMA integrity_check") == [("ok",)]
    with Project.open(labelled) as project:  # and the next import goes through
        assert import_file(project, big).comparisons_added == 4000


def test_a_merge_killed_before_it_commits_changes_nothing(tmp_path, labelled):
    source = tmp_path / "alice.wbp"
    with Project.create(source) as project:
        import_file(project, _pairs(tmp_path / "second.jsonl", 3000, "second"))
        for cid in range(1, 200):
            project.record_judgment(cid, "alice", "a", strength=3, left="b")
    before = db_dump(labelled)
    _run_and_kill(f"""
        import os, signal
        from workbench.core import team

        def die(*args, **kwargs):  # the last step inside the merge's transaction: every row is written
            os.kill(os.getpid(), signal.SIGKILL)

        team._reassert_latest_marks = die
        team.merge_projects([{str(source)!r}], {str(labelled)!r})
    """)
    assert db_dump(labelled) == before
    assert sql(labelled, "PRAGMA integrity_check") == [("ok",)]
