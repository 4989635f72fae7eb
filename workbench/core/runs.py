"""Training runs in a project: runs, their metrics by step, per-pair scores (in-sample at each evaluation, and
out-of-fold), and the embedding cache.

``RunStore`` is a mixin of ``Project`` (core/store.py), which owns the connection and transactions; the
trainer and the views call these methods on the project. A new set of pair scores tells the label queue
(core/queue.py) to re-read its model orders.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd


class RunStore:
    """The run methods of ``Project``; they read and write through ``self._conn`` and ``self.transaction``."""

    # Provided by ``Project`` (core/store.py) and ``LabelQueue`` (core/queue.py), the classes it is mixed with.
    _conn: sqlite3.Connection
    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _clock(self) -> float: ...
        def _bump_scores_epoch(self) -> None: ...

    def create_run(self, mode: str, backbone: str, config: dict, data_snapshot: dict | None = None) -> int:
        with self.transaction():
            cursor = self._conn.execute(
                "INSERT INTO runs(created_at, mode, backbone, config, status, data_snapshot) VALUES (?,?,?,?,?,?)",
                (self._clock(), mode, backbone, json.dumps(config), "running", json.dumps(data_snapshot or {})),
            )
            assert cursor.lastrowid is not None  # an INSERT sets it
            return cursor.lastrowid

    def update_run(
        self, run_id: int, status: str | None = None, message: str | None = None, summary: dict | None = None
    ) -> None:
        sets: list[str] = []
        args: list[str | float] = []
        if status is not None:
            sets.append("status = ?")
            args.append(status)
            if status in ("finished", "failed", "cancelled", "stopped"):
                sets.append("finished_at = ?")
                args.append(self._clock())
        if message is not None:
            sets.append("message = ?")
            args.append(message)
        if summary is not None:
            sets.append("summary = ?")
            args.append(json.dumps(summary))
        if not sets:
            return
        with self.transaction():
            self._conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def run(self, run_id: int) -> dict[str, Any]:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id}")
        out = dict(row)
        for key in ("config", "data_snapshot", "summary"):
            out[key] = json.loads(out[key])
        return out

    def runs(self) -> pd.DataFrame:
        df = pd.read_sql_query(
            "SELECT id, created_at, mode, backbone, status, message, summary, finished_at FROM runs ORDER BY id",
            self._conn,
        )
        df["summary"] = [json.loads(s) for s in df["summary"]]
        return df

    def add_metrics(
        self, run_id: int, step: int, split: str, metrics: dict[str, float], epoch: float | None = None
    ) -> None:
        now = self._clock()
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO run_metrics(run_id, step, epoch, split, name, value, created_at) VALUES (?,?,?,?,?,?,?)",
                [(run_id, step, epoch, split, name, float(value), now) for name, value in metrics.items()],
            )

    def truncate_run(self, run_id: int, after_step: int) -> None:
        """Forget the metrics and pair scores a run wrote after ``after_step``: a run resumed from its last
        checkpoint rewrites them, so that its stored curve is one curve."""
        with self.transaction():
            self._conn.execute("DELETE FROM run_metrics WHERE run_id = ? AND step > ?", (run_id, after_step))
            self._conn.execute("DELETE FROM pair_scores WHERE run_id = ? AND step > ?", (run_id, after_step))

    def run_metrics(self, run_id: int) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT step, epoch, split, name, value FROM run_metrics WHERE run_id = ? ORDER BY step, rowid",
            self._conn,
            params=(run_id,),
        )

    def add_pair_scores(self, run_id: int, step: int, rows: Iterable[tuple[int, str, str, float, float]]) -> None:
        """Store per-pair scores: rows of (comparison_id, split, chosen side 'a'/'b', r_chosen, r_rejected)."""
        with self.transaction():
            self._bump_scores_epoch()  # the model orders re-read their lists
            self._conn.executemany(
                "INSERT OR REPLACE INTO pair_scores(run_id, step, comparison_id, split, chosen, r_chosen, r_rejected)"
                " VALUES (?,?,?,?,?,?,?)",
                [(run_id, step, int(c), s, ch, float(rc), float(rr)) for c, s, ch, rc, rr in rows],
            )

    def pair_scores(self, run_id: int, step: int | None = None) -> pd.DataFrame:
        """Per-pair scores of a run at ``step`` (default: its latest evaluation), margin included."""
        if step is None:
            step = self._conn.execute("SELECT MAX(step) FROM pair_scores WHERE run_id = ?", (run_id,)).fetchone()[0]
        return pd.read_sql_query(
            "SELECT comparison_id, split, chosen, r_chosen, r_rejected, r_chosen - r_rejected AS margin"
            " FROM pair_scores WHERE run_id = ? AND step = ? ORDER BY comparison_id",
            self._conn,
            params=(run_id, step if step is not None else -1),
        )

    def has_pair_scores(self) -> bool:
        """Whether any run has scored pairs (the model-driven queue orders need some)."""
        return self._conn.execute("SELECT 1 FROM pair_scores LIMIT 1").fetchone() is not None

    def scored_run_ids(self) -> set[int]:
        """The runs that have per-pair scores."""
        return {r[0] for r in self._conn.execute("SELECT DISTINCT run_id FROM pair_scores")}

    def latest_pair_scores(self, comparison_id: int) -> dict | None:
        """The rewards of a comparison's responses a and b at the latest evaluation of the newest run with
        scores: {run_id, step, r_a, r_b}, or None when that run did not score the comparison."""
        row = self._conn.execute(
            "SELECT s.run_id, s.step, s.chosen, s.r_chosen, s.r_rejected FROM pair_scores s"
            " WHERE s.run_id = (SELECT MAX(run_id) FROM pair_scores)"
            " AND s.step = (SELECT MAX(step) FROM pair_scores WHERE run_id = s.run_id) AND s.comparison_id = ?",
            (comparison_id,),
        ).fetchone()
        if row is None:
            return None
        run_id, step, chosen, r_c, r_r = row
        r_a, r_b = (r_c, r_r) if chosen == "a" else (r_r, r_c)
        return {"run_id": int(run_id), "step": int(step), "r_a": float(r_a), "r_b": float(r_b)}

    def last_scored_step(self, run_id: int) -> int | None:
        """The step of a run's latest evaluation (where its per-pair scores are read), or None when it has none."""
        row = self._conn.execute("SELECT MAX(step) FROM pair_scores WHERE run_id = ?", (run_id,)).fetchone()
        return None if row[0] is None else int(row[0])

    def _unscored_sql(self, what: str) -> str:
        # An index probe per comparison on pair_scores' key (run_id, step, comparison_id).
        return (
            f"SELECT {what} FROM comparisons c WHERE NOT EXISTS (SELECT 1 FROM pair_scores s"
            " WHERE s.run_id = ? AND s.step = ? AND s.comparison_id = c.id)"
        )

    def unscored_count(self, run_id: int) -> int:
        """How many comparisons have no score of run ``run_id`` at its latest evaluation: the comparisons it did
        not train on (a run scores those only when asked, ``evaluate.score_missing``) and any imported after it.
        0 for a run without scores."""
        step = self.last_scored_step(run_id)
        if step is None:
            return 0
        return int(self._conn.execute(self._unscored_sql("COUNT(*)"), (run_id, step)).fetchone()[0])

    def unscored_comparison_ids(self, run_id: int) -> list[int]:
        """The comparisons ``unscored_count`` counts, by id."""
        step = self.last_scored_step(run_id)
        if step is None:
            return []
        return [r[0] for r in self._conn.execute(self._unscored_sql("c.id") + " ORDER BY c.id", (run_id, step))]

    def pair_score_history(self, run_id: int) -> pd.DataFrame:
        """A run's scores of its labelled pairs at every evaluation (the training dynamics of each pair):
        comparison_id, step, chosen, r_chosen, r_rejected, margin; unlabelled comparisons left out."""
        return pd.read_sql_query(
            "SELECT comparison_id, step, chosen, r_chosen, r_rejected, r_chosen - r_rejected AS margin"
            " FROM pair_scores WHERE run_id = ? AND split != 'unlabelled' ORDER BY comparison_id, step",
            self._conn,
            params=(run_id,),
        )

    # ------------------------------------------------------- out-of-fold scores
    #: how out-of-fold scores can be made (``oof_scores.source``)
    OOF_SOURCES = ("head-folds", "finetune-folds")

    def add_oof_scores(self, run_id: int, rows: Iterable[tuple[int, str, int, float, float]], source: str) -> None:
        """Store a run's out-of-fold scores, rows of (comparison_id, chosen side 'a'/'b', fold, r_chosen,
        r_rejected), replacing any the run had (one set per run; the in-sample ``pair_scores`` are untouched)."""
        if source not in self.OOF_SOURCES:
            raise ValueError(f"source must be one of {', '.join(self.OOF_SOURCES)}, not {source!r}")
        now = self._clock()
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"no run {run_id}")
            self._conn.execute("DELETE FROM oof_scores WHERE run_id = ?", (run_id,))
            self._conn.executemany(
                "INSERT INTO oof_scores(run_id, comparison_id, chosen, fold, r_chosen, r_rejected, source, created_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [(run_id, int(c), ch, int(f), float(rc), float(rr), source, now) for c, ch, f, rc, rr in rows],
            )

    def oof_scores(self, run_id: int) -> pd.DataFrame:
        """A run's out-of-fold scores: comparison_id, chosen, fold, r_chosen, r_rejected, margin (r_chosen -
        r_rejected, oriented to the run's label), source; empty when none were computed."""
        return pd.read_sql_query(
            "SELECT comparison_id, chosen, fold, r_chosen, r_rejected, r_chosen - r_rejected AS margin, source"
            " FROM oof_scores WHERE run_id = ? ORDER BY comparison_id",
            self._conn,
            params=(run_id,),
        )

    # ------------------------------------------------------- training dynamics
    def add_pair_dynamics(self, run_id: int, rows: Iterable[tuple[int, int, float, float]]) -> None:
        """Store a run's training dynamics, rows of (comparison_id, n_points, confidence, variability): per
        training pair, how many training steps computed its margin, and the mean and the (population) standard
        deviation of p(label) = σ(r_label - r_other) over them. Replaces any the run had (one set per run)."""
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise KeyError(f"no run {run_id}")
            self._conn.execute("DELETE FROM pair_dynamics WHERE run_id = ?", (run_id,))
            self._conn.executemany(
                "INSERT INTO pair_dynamics(run_id, comparison_id, n_points, confidence, variability)"
                " VALUES (?,?,?,?,?)",
                [(run_id, int(c), int(n), float(m), float(v)) for c, n, m, v in rows],
            )

    def pair_dynamics(self, run_id: int) -> pd.DataFrame:
        """A run's stored training dynamics: comparison_id, n_points, confidence, variability; empty for a run
        made before they were recorded (``core.suspects`` then falls back to its evaluations)."""
        df = pd.read_sql_query(
            "SELECT comparison_id, n_points, confidence, variability FROM pair_dynamics WHERE run_id = ?"
            " ORDER BY comparison_id",
            self._conn,
            params=(run_id,),
        )
        return df.astype({"comparison_id": "int64", "n_points": "int64", "confidence": float, "variability": float})

    # ------------------------------------------------------- embedding cache
    def cached_embeddings(self, backbone: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(text_hashes), 900):
            chunk = list(text_hashes[start : start + 900])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE backbone = ? AND text_hash IN ({marks})",
                (backbone, *chunk),
            )
            for h, blob in rows:
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def embedding_keys(self) -> list[str]:
        """The ``backbone`` keys the embedding cache holds vectors under (the Inspect error map looks for the run's)."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT backbone FROM embeddings ORDER BY backbone")]

    def store_embeddings(self, backbone: str, vectors: dict[str, np.ndarray]) -> None:
        with self.transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings(backbone, text_hash, vector) VALUES (?,?,?)",
                [(backbone, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
            )
