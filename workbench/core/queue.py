"""The label queue of a project: which comparison an annotator judges next (docs/architecture.md#the-label-session).

Owns the queue orders and their phases (next_comparison), the per-connection memos that keep a call fast on
100,000 comparisons (cursors, the empty-phase memo and the epoch tokens other connections write, the sorted
lists of the model orders) and queue_position. ``LabelQueue`` is a mixin of ``Project`` (core/store.py), which
owns the connection and the writes that reopen phases; nothing else uses it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

ORDERS = ("new", "random", "prompt", "uncertain", "disagree")
_ORDER_KEYS = {"new": ("id",), "random": ("rand_key", "id"), "prompt": ("prompt_id", "id")}
_QUEUE_EPOCH = "queue_epoch"
_SKIP_EPOCH = "skip_epoch:"
_SCORES_EPOCH = "scores_epoch"


class LabelQueue:
    """The queue methods of ``Project``; they read ``self._conn`` and the meta table through it."""

    # Provided by ``Project`` (core/store.py), the class it is mixed into.
    _conn: sqlite3.Connection
    if TYPE_CHECKING:

        def annotator_id(self, name: str, kind: str = "human") -> int: ...
        def get_meta(self, key: str, default: str | None = None) -> str | None: ...
        def _set_meta(self, key: str, value: str) -> None: ...

    def _init_queue(self) -> None:
        # Per (annotator, order, phase name): the key of the last comparison handed out. Answered ones are
        # skipped by the query itself, so a cursor only saves re-scanning the finished prefix.
        self._cursors: dict[tuple[int, str, str], tuple] = {}
        # ((annotator, order, phase), exclude) found empty by a full scan, so that the end of a phase is not
        # scanned again on every call (with 100,000 comparisons a scan takes tens of ms). Only a write that
        # can put a comparison back into a phase ends it: new comparisons, an undo, a skip. Such writes
        # change an epoch token in meta (``queue_epoch``; ``skip_epoch:<annotator id>`` for a skip that
        # reopens only that annotator's skipped phase), which other connections notice
        # (_notice_other_writers). Plain labels only take comparisons out of phases: the memo stays.
        self._exhausted: set[tuple] = set()
        self._data_version: int | None = None
        self._epochs: dict[str, str] | None = None
        # The model orders: comparison ids of one (order, run, step) sorted best first, read once (with the
        # scores token they were read under), and per (annotator, order, run, step) the position before
        # which every pair is answered. Positions are forgotten with the empty-phase memo.
        self._model_queues: dict[tuple[str, int, int], tuple[str | None, list[int]]] = {}
        self._model_positions: dict[tuple[int, str, int, int], int] = {}

    def next_comparison(self, annotator: str, order: str = "new", exclude: Sequence[int] = ()) -> int | None:
        """The id of the next comparison ``annotator`` should judge, or None when all are done.

        Phases, in turn: (for ``new``) comparisons nobody has labelled; comparisons this annotator has not
        answered, in the order's sequence (``new``: as imported; ``random``: a fixed shuffle from the
        project's seed; ``prompt``: grouped by prompt); then the ones this annotator skipped, the longest
        skipped first, so that skipping one again sends it to the back. ``uncertain`` and ``disagree``
        order by the latest run's per-pair scores and fall back to ``new`` for pairs it did not score.
        A comparison stays the answer until it is judged (or listed in ``exclude``).
        """
        if order not in ORDERS:
            raise ValueError(f"unknown queue order {order!r}; expected one of {', '.join(ORDERS)}")
        aid = self.annotator_id(annotator)
        if order in ("uncertain", "disagree"):
            found = self._next_by_model(aid, order, exclude)
            return found if found is not None else self.next_comparison(annotator, "new", exclude)
        mine_open = (
            f"NOT EXISTS (SELECT 1 FROM current_labels cl WHERE cl.annotator_id = {aid}"
            " AND cl.comparison_id = c.id AND cl.choice IS NOT NULL)"
        )
        nobody = (
            "NOT EXISTS (SELECT 1 FROM current_labels cl WHERE cl.comparison_id = c.id"
            " AND cl.choice IS NOT NULL AND cl.choice != 'skip')"
        )
        phases: list[tuple[str, str | None]] = [("nobody", f"{nobody} AND {mine_open}")] if order == "new" else []
        phases += [("open", mine_open), ("skipped", None)]
        keys = _ORDER_KEYS[order]
        columns = ", ".join(f"c.{k}" for k in keys)
        placeholders = ", ".join("?" for _ in keys)
        excluded = tuple(sorted({int(i) for i in exclude}))
        ids = ",".join(map(str, excluded))
        self._notice_other_writers()
        for phase, condition in phases:
            cursor_key = (aid, order, phase)
            if (cursor_key, excluded) in self._exhausted:
                continue
            if condition is None:  # skipped: an index probe on (annotator, choice, judgment)
                row = self._conn.execute(
                    "SELECT comparison_id FROM current_labels WHERE annotator_id = ? AND choice = 'skip'"
                    + (f" AND comparison_id NOT IN ({ids})" if excluded else "")
                    + " ORDER BY judgment_id LIMIT 1",
                    (aid,),
                ).fetchone()
                if row is not None:
                    return row[0]
                self._exhausted.add((cursor_key, excluded))
                continue
            condition += f" AND c.id NOT IN ({ids})" if excluded else ""
            start = self._cursors.get(cursor_key)
            # From the cursor to the end, then from the start up to the cursor: one pass at most. Answered
            # comparisons fail the condition, so the cursor only saves re-reading the finished prefix.
            bounds = [("", ())] if start is None else [(">=", start), ("<", start)]
            for op, bound in bounds:
                where = f"({columns}) {op} ({placeholders}) AND {condition}" if op else condition
                row = self._conn.execute(
                    f"SELECT {columns} FROM comparisons c WHERE {where} ORDER BY {columns} LIMIT 1", bound
                ).fetchone()
                if row is not None:
                    self._cursors[cursor_key] = tuple(row)
                    return row[-1]
            self._exhausted.add((cursor_key, excluded))
        return None

    def _notice_other_writers(self) -> None:
        """Drop what the empty-phase memo no longer knows for sure after other connections' commits
        (``PRAGMA data_version`` changes on any commit by another connection; the epochs say whether it
        reopened anything, and for whom)."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        epochs = dict(
            self._conn.execute(
                "SELECT key, value FROM meta WHERE key = ? OR (key > ? AND key < ?)",
                (_QUEUE_EPOCH, _SKIP_EPOCH, _SKIP_EPOCH[:-1] + ";"),  # ";" sorts right after ":"
            ).fetchall()
        )
        known = self._epochs
        if known is None or epochs.get(_QUEUE_EPOCH) != known.get(_QUEUE_EPOCH):
            self._forget_all_memos()
        else:
            changed = {int(k[len(_SKIP_EPOCH) :]) for k, v in epochs.items() if known.get(k) != v}
            self._forget_exhausted(lambda aid, phase: phase == "skipped" and aid in changed)
        self._epochs = epochs

    def _bump_queue_epoch(self, skipped_by: int | None = None) -> None:
        """Inside a write that can put comparisons back into a queue phase: tell other connections.

        ``skipped_by``: the write only adds to that annotator's skipped phase. The token is random rather
        than a counter so that one from a rolled-back transaction is never mistaken for a later one.
        When this connection had not yet seen an earlier change of the same token, it drops its memo.
        """
        key = _QUEUE_EPOCH if skipped_by is None else f"{_SKIP_EPOCH}{skipped_by}"
        before = self.get_meta(key)
        after = os.urandom(8).hex()
        self._set_meta(key, after)
        if self._epochs is None or self._epochs.get(key) != before:
            self._forget_all_memos()
            self._epochs = self._data_version = None  # re-read all at the next look
        else:
            self._epochs[key] = after

    def _forget_all_memos(self) -> None:
        self._exhausted.clear()
        self._model_positions.clear()

    def _forget_exhausted(self, reopened: Callable[[int, str], bool]) -> None:
        """Drop the empty-phase memos whose (annotator id, phase name) ``reopened`` says may have reopened."""
        self._exhausted = {k for k in self._exhausted if not reopened(k[0][0], k[0][2])}

    def _next_by_model(self, aid: int, order: str, exclude: Sequence[int]) -> int | None:
        """``uncertain``: pairs this annotator has not answered, smallest |margin| under the latest scored
        run first. ``disagree``: labelled pairs the model ranks the other way, most negative margin first,
        until this annotator has looked at them again after that run.

        The sorted list is read once per (run, step) and walked from a per-annotator position, in growing
        chunks with one query each: a full sort per call cost 20-30 ms at 100,000 scored pairs.
        """
        latest = self._latest_scored_run()
        if latest is None:
            return None
        step = self._conn.execute("SELECT MAX(step) FROM pair_scores WHERE run_id = ?", (latest,)).fetchone()[0]
        self._notice_other_writers()
        queue = self._model_queue(order, latest, step)
        answered_sql = (
            "SELECT cl.comparison_id FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            " WHERE cl.annotator_id = ? AND cl.comparison_id IN (SELECT value FROM json_each(?))"
            " AND cl.choice IS NOT NULL"
        )
        extra: tuple = ()
        if order == "disagree":  # looked at again after the run
            answered_sql += " AND j.created_at > ?"
            extra = (self._conn.execute("SELECT created_at FROM runs WHERE id = ?", (latest,)).fetchone()[0],)
        excluded = {int(i) for i in exclude}
        position_key = (aid, order, latest, step)
        position = self._model_positions.get(position_key, 0)
        advancing, found = True, None
        start, size = position, 8
        while found is None and start < len(queue):
            chunk = queue[start : start + size]
            answered = {r[0] for r in self._conn.execute(answered_sql, (aid, json.dumps(chunk), *extra))}
            for offset, cid in enumerate(chunk):
                if cid in answered:
                    if advancing:
                        position = start + offset + 1
                elif cid in excluded:
                    advancing = False
                else:
                    found = cid
                    break
            start, size = start + len(chunk), min(size * 4, 4096)
        self._model_positions[position_key] = position
        return found

    def model_queue_run(self) -> int | None:
        """The run whose per-pair scores order the model queues (``uncertain``, ``disagree``), or None."""
        return self._latest_scored_run()

    def _latest_scored_run(self) -> int | None:
        """The run whose scores order the model queues: the latest finished one (a run still in progress
        has scored only some pairs at its latest step), else the latest with any scores."""
        row = self._conn.execute(
            "SELECT MAX(r.id) FROM runs r WHERE r.status = 'finished'"
            " AND EXISTS (SELECT 1 FROM pair_scores s WHERE s.run_id = r.id)"
        ).fetchone()
        if row[0] is not None:
            return row[0]
        return self._conn.execute("SELECT MAX(run_id) FROM pair_scores").fetchone()[0]

    def _model_queue(self, order: str, run_id: int, step: int) -> list[int]:
        token = self.get_meta(_SCORES_EPOCH)
        cached = self._model_queues.get((order, run_id, step))
        if cached is not None and cached[0] == token:
            return cached[1]
        if order == "uncertain":
            where, key = "", "ABS(r_chosen - r_rejected)"
        else:
            where, key = " AND split != 'unlabelled' AND r_chosen - r_rejected <= 0", "r_chosen - r_rejected"
        ids = [
            r[0]
            for r in self._conn.execute(
                f"SELECT comparison_id FROM pair_scores WHERE run_id = ? AND step = ?{where} ORDER BY {key}, comparison_id",
                (run_id, step),
            )
        ]
        self._model_queues = {k: v for k, v in self._model_queues.items() if k[0] != order}  # keep one per order
        self._model_queues[(order, run_id, step)] = (token, ids)
        self._model_positions = {k: v for k, v in self._model_positions.items() if k[1:] != (order, run_id, step)}
        return ids

    def queue_position(self, annotator: str) -> tuple[int, int]:
        """(answered, total) for ``annotator``; skips do not count as answered."""
        aid = self.annotator_id(annotator)
        done = self._conn.execute(
            "SELECT COUNT(*) FROM current_labels WHERE annotator_id = ? AND choice IS NOT NULL AND choice != 'skip'",
            (aid,),
        ).fetchone()[0]
        total = self._conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0]
        return done, total

    def _bump_scores_epoch(self) -> None:
        """Inside a write of new pair scores: the model orders re-read their sorted lists."""
        self._set_meta(_SCORES_EPOCH, os.urandom(8).hex())
