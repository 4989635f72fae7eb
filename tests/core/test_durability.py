"""No judgment is lost (docs/architecture.md#the-project-file): not when the process is killed at any moment, not when two
processes write to one project at once. Each writer is a real subprocess using the store."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project

ROOT = Path(__file__).resolve().parents[2]
N_COMPARISONS = 25

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL"), pytest.mark.slow]  # processes killed

# Records judgments in a loop and prints each id once record_judgment has returned. Comparisons cycle, so
# most judgments supersede an earlier one; every seventh step is an undo. With a go-file it waits for it
# first (so that two writers start together); with a count it stops after that many judgments. A short
# pause between judgments (people do not label at 3,000 per second) lets the two writers interleave: without
# one, a writer that commits and at once begins again keeps the lock, and the other waits (safely) for its end.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from workbench.core.store import Project

    path, annotator, count, go, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    project = Project.open(path)
    project.annotator_id(annotator)
    print("ready", flush=True)
    while go != "-" and not os.path.exists(go):
        time.sleep(0.001)
    i = 0
    while count == 0 or i < count:
        if i % 7 == 6:
            project.undo_last(annotator)
        else:
            cid = project.next_comparison(annotator, "random") or (i % {n}) + 1
            jid = project.record_judgment(cid, annotator, "ab"[i % 2], strength=1 + i % 4, note=str(i))
            print(jid, flush=True)
        if pause:
            time.sleep(pause)
        i += 1
    """
).format(n=N_COMPARISONS)


@pytest.fixture
def project_path(tmp_path):
    path = tmp_path / "durable.wbp"
    with Project.create(path) as p:
        p.add_records(
            [PairRecord(Text(f"prompt {i}"), Text(f"a {i}"), Text(f"b {i}")) for i in range(N_COMPARISONS)], "f"
        )
    return path


def start_writer(tmp_path: Path, path: Path, annotator: str, count: int = 0, go: str = "-", pause: float = 0.0):
    out = tmp_path / f"{annotator}-{time.monotonic_ns()}.out"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(out, "wb") as fh:  # the child writes straight to the file: what it printed survives the kill
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), annotator, str(count), go, str(pause)],
            stdout=fh,
            stderr=subprocess.PIPE,
            env=env,
        )
    return proc, out


def printed_ids(out: Path) -> list[int]:
    """The ids on complete lines (a line cut by the kill carries no promise)."""
    text = out.read_text()
    lines = text.split("\n")[:-1]
    return [int(line) for line in lines if line and line != "ready"]


def wait_for_output(proc, out: Path, lines: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while out.read_text().count("\n") < lines:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "writer did not start"
        time.sleep(0.01)


def assert_consistent(path: Path, expected_ids: list[int]) -> None:
    with Project.open(path) as p:
        assert p.integrity_check() == "ok"
    with closing(sqlite3.connect(path)) as conn:  # the test's own connection: the store keeps its private
        stored = {r[0] for r in conn.execute("SELECT id FROM judgments")}
        missing = set(expected_ids) - stored
        assert not missing, f"{len(missing)} acknowledged judgments lost, e.g. {sorted(missing)[:5]}"
        # The derived table agrees with the history: the latest row per (annotator, comparison) is current.
        mismatched = conn.execute(
            "SELECT COUNT(*) FROM (SELECT annotator_id, comparison_id, MAX(id) AS latest FROM judgments"
            " GROUP BY 1, 2) h LEFT JOIN current_labels cl USING (annotator_id, comparison_id)"
            " WHERE cl.judgment_id IS NOT h.latest"
        ).fetchone()[0]
        assert mismatched == 0
        assert (
            conn.execute("SELECT COUNT(*) FROM current_labels").fetchone()[0]
            == conn.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT annotator_id, comparison_id FROM judgments)"
            ).fetchone()[0]
        )
        # Every row's supersedes names an earlier row of the same annotator and comparison.
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM judgments j JOIN judgments s ON s.id = j.supersedes"
                " WHERE s.id >= j.id OR s.annotator_id != j.annotator_id OR s.comparison_id != j.comparison_id"
            ).fetchone()[0]
            == 0
        )


@pytest.mark.slow
def test_killed_writer_loses_no_acknowledged_judgment(tmp_path, project_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    acknowledged: list[int] = []
    for round_ in range(5):
        proc, out = start_writer(tmp_path, project_path, "ann")
        wait_for_output(proc, out, 2)  # "ready" and the first id: it is writing now
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        ids = printed_ids(out)
        assert ids, f"round {round_} (seed {seed}): nothing written"
        acknowledged += ids
        assert_consistent(project_path, acknowledged)
    with Project.open(project_path) as p:
        assert p.counts()["judgments"] >= len(acknowledged)
        # The project keeps working after the kills: undo and judge again.
        assert p.undo_last("ann") is not None
        p.record_judgment(1, "ann", "tie")


@pytest.mark.parametrize("annotators", [("ann", "bob"), ("ann", "ann")], ids=["two-annotators", "same-annotator"])
def test_two_processes_writing_at_once_lose_nothing(tmp_path, project_path, annotators):
    count = 300
    go = tmp_path / "go"
    writers = [start_writer(tmp_path, project_path, name, count, str(go), pause=0.001) for name in annotators]
    for proc, out in writers:
        wait_for_output(proc, out, 1)
    go.touch()
    ids, spans = [], []
    for proc, out in writers:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
        proc.stderr.close()
        got = printed_ids(out)
        assert len(got) == count - count // 7
        ids += got
        spans.append((min(got), max(got)))
    assert len(set(ids)) == len(ids)
    (lo1, hi1), (lo2, hi2) = spans
    assert lo1 < hi2 and lo2 < hi1, f"the writers did not overlap: {spans}"
    assert_consistent(project_path, ids)
    with Project.open(project_path) as p:
        undos = 2 * (count // 7)
        assert p.counts()["judgments"] == len(ids) + undos
    with closing(sqlite3.connect(project_path)) as conn:
        per_annotator = dict(
            conn.execute(
                "SELECT a.name, COUNT(*) FROM judgments j JOIN annotators a ON a.id = j.annotator_id GROUP BY a.name"
            )
        )
        assert sum(per_annotator.values()) == len(ids) + undos
        assert set(per_annotator) == set(annotators)


# Another process writes to the project and closes it, while this process has it open twice.
_WRITE_AND_CLOSE = textwrap.dedent(
    """
    import sys
    import numpy as np
    from workbench.core.store import Project

    for round in range(3):
        with Project.open(sys.argv[1]) as p:
            p.store_embeddings("k", {f"h{round}-{i}": np.ones(384, dtype=np.float32) for i in range(500)})
    """
)


def test_opening_a_project_twice_keeps_its_locks_for_another_process(tmp_path):
    """A second open in a process that has the project open (the window and a task's thread) must not
    touch the file through a descriptor of its own: closing it would drop the first connection's locks,
    and another process's last close would then delete the WAL under it ("database disk image is
    malformed"; judgments written after that land in a deleted file)."""
    path = tmp_path / "p.wbp"
    with Project.create(path) as p:
        p.add_records([PairRecord(Text(f"prompt {i}"), Text(f"good {i}"), Text(f"bad {i}")) for i in range(5)], "f")
    first = Project.open(path)
    try:
        before = len(first.comparisons_frame())
        Project.open(path).close()
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run([sys.executable, "-c", _WRITE_AND_CLOSE, str(path)], check=True, env=env, timeout=120)
        assert Path(f"{path}-wal").exists()  # this process's connection still counts as a reader
        with Project.open(path) as again:
            assert len(again.cached_embeddings("k", [f"h2-{i}" for i in range(500)])) == 500
        assert len(first.comparisons_frame()) == before
        assert len(first.cached_embeddings("k", [f"h0-{i}" for i in range(500)])) == 500
    finally:
        first.close()
