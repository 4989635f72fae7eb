"""Work packages: a project's comparisons split among annotators, with overlap for agreement.

``assign_work`` writes one project file per annotator holding only that person's comparisons (prompts,
responses, comparisons and guidelines; no judgments, marks or runs, so nobody sees another's labels or a
model's scores), and a manifest (``manifest.json``). The assignment is recorded in the project assigned
from and in each file (the ``assignments`` and ``assignment_items`` tables), so that after ``merge`` the
project knows who was given what: ``assignment_progress`` counts each annotator's labels against it, and
``my_batch`` gives the Label view its "your batch: 120 of 300".

Designs (every pair of annotators shares comparisons, so that κ can be measured for each pair):

- ``per_item=N``: every comparison goes to N annotators. The comparisons, shuffled with the seed, are dealt
  round the groups of N annotators in turn, so each annotator gets the same load within one, and each pair
  shares the same number of comparisons within one.
- ``overlap=F``: a fraction F of the comparisons goes to two annotators (dealt round the pairs in turn), the
  rest to one (each to whoever has the least so far).

Each file gets its own seed (from the project's and the annotator's name), so the left/right sides and the
random queue order differ between annotators: one annotator's position bias does not line up with another's.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.records import content_hash
from workbench.core.store import Project, _hash_int, remove_new_project

#: Comparisons a pair of annotators should share: with 50, Cohen's κ has a 95% interval of about ±0.2
#: (observed agreement 0.8 against chance 0.5: SE ≈ √(0.8·0.2/50)/0.5 ≈ 0.11). Fewer draws a warning.
MIN_SHARED = 50
MANIFEST = "manifest.json"
#: meta key of an annotator's file: whose batch it is
ASSIGNED_TO = "assigned_to"


@dataclass
class AssignmentSummary:
    """What ``assign_work`` wrote."""

    assignment_id: str
    project: str
    design: dict[str, Any]
    out_dir: str
    files: dict[str, str] = field(default_factory=dict)
    #: comparisons per annotator
    counts: dict[str, int] = field(default_factory=dict)
    #: comparisons shared by each pair of annotators: [{"annotators": [a, b], "comparisons": n}]
    shared: list[dict[str, Any]] = field(default_factory=list)
    comparisons: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Lines for the command line (the warnings apart: the command prints them on stderr)."""
        out = [
            f"assigned {self.comparisons:,} comparisons of {self.project} to {len(self.files)} annotators "
            f"({describe(self.design)}) in {self.out_dir}:"
        ]
        for name, path in self.files.items():
            out.append(f"  {name}: {self.counts[name]:,} comparisons -> {Path(path).name}")
        pairs = [row["comparisons"] for row in self.shared]
        if pairs:
            out.append(
                f"  every pair of annotators shares {min(pairs):,} to {max(pairs):,} comparisons "
                f"(agreement wants {MIN_SHARED}+ per pair)"
            )
        return out


def describe(design: dict[str, Any]) -> str:
    if design.get("per_item") is not None:
        return f"{design['per_item']} annotator(s) per comparison"
    return f"{100 * design['overlap']:g}% of comparisons to two annotators, the rest to one"


def check_design(annotators: Sequence[str], overlap: float | None, per_item: int | None) -> list[str]:
    """The annotators' names, cleaned; ValueError naming what is wrong with the design."""
    names = [a.strip() for a in annotators if a.strip()]
    if len(names) != len(annotators):
        raise ValueError("an annotator name is empty (give names separated by commas, e.g. alice,bob,carol)")
    repeated = [n for n, c in Counter(names).items() if c > 1]
    if repeated:
        raise ValueError(f"annotator {repeated[0]!r} is named twice")
    if (overlap is None) == (per_item is None):
        raise ValueError("give exactly one of --overlap F (a fraction to two annotators) or --per-item N")
    if overlap is not None:
        if not (math.isfinite(overlap) and 0 < overlap <= 1):
            raise ValueError(f"--overlap must be a fraction above 0 and at most 1, got {overlap!r}")
        if len(names) < 2:
            raise ValueError("overlap needs at least two annotators")
    if per_item is not None and not 1 <= per_item <= len(names):
        raise ValueError(f"--per-item must be from 1 to the number of annotators ({len(names)}), got {per_item!r}")
    return names


def design_packages(
    comparison_ids: Sequence[int],
    annotators: Sequence[str],
    *,
    overlap: float | None = None,
    per_item: int | None = None,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Which comparisons each annotator gets (sorted ids), by the designs of the module docstring."""
    names = check_design(annotators, overlap, per_item)
    rng = np.random.default_rng(seed)
    items = [int(c) for c in rng.permutation(np.asarray(sorted(comparison_ids), dtype=np.int64))]
    k = len(names)
    out: dict[str, list[int]] = {n: [] for n in names}
    if per_item is not None:
        groups = _groups(k, per_item, rng)
        for i, cid in enumerate(items):
            for a in groups[i % len(groups)]:
                out[names[a]].append(cid)
    else:
        assert overlap is not None
        n_double = round(overlap * len(items))
        groups = _groups(k, 2, rng)
        load = [0] * k
        for i, cid in enumerate(items[:n_double]):
            for a in groups[i % len(groups)]:
                out[names[a]].append(cid)
                load[a] += 1
        start = int(rng.integers(k))
        for cid in items[n_double:]:
            a = min(range(k), key=lambda j: (load[j], (j - start) % k))
            out[names[a]].append(cid)
            load[a] += 1
    return {n: sorted(v) for n, v in out.items()}


def _groups(k: int, size: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """The groups of ``size`` annotators in a seeded order, each once (or, when there are too many to list,
    many random groups)."""
    if math.comb(k, size) <= 100_000:
        groups = list(combinations(range(k), size))
        return [groups[i] for i in rng.permutation(len(groups))]
    return [tuple(sorted(rng.choice(k, size, replace=False).tolist())) for _ in range(100_000)]


def shared_counts(packages: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Comparisons shared by each pair of annotators."""
    sets = {n: set(v) for n, v in packages.items()}
    return [{"annotators": [a, b], "comparisons": len(sets[a] & sets[b])} for a, b in combinations(list(packages), 2)]


def design_warnings(packages: dict[str, list[int]], shared: list[dict[str, Any]]) -> list[str]:
    warnings = []
    if len(packages) < 2:
        warnings.append("one annotator: no agreement can be measured")
    few = [row for row in shared if row["comparisons"] < MIN_SHARED]
    for row in few[:5]:
        a, b = row["annotators"]
        warnings.append(
            f"{a} and {b} share only {row['comparisons']} comparisons; agreement (kappa) needs about {MIN_SHARED} "
            "per pair for an interval of +-0.2: raise --overlap or --per-item"
        )
    if len(few) > 5:
        warnings.append(f"... and {len(few) - 5} more pairs of annotators share fewer than {MIN_SHARED}")
    return warnings


def _file_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "annotator"
    stem, i = base, 2
    while stem.lower() in taken:
        stem, i = f"{base}-{i}", i + 1
    taken.add(stem.lower())
    return f"{stem}.wbp"


def assign_work(
    project_path: str | os.PathLike,
    annotators: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    overlap: float | None = None,
    per_item: int | None = None,
    seed: int = 0,
    with_scores: bool = False,
) -> AssignmentSummary:
    """Split the comparisons of ``project_path`` (excluded pairs left out) into one project file per
    annotator in ``out_dir`` plus ``manifest.json``, and record the assignment in the project. Refuses (and
    writes nothing) when a file it would write exists already or the design is invalid.

    ``with_scores`` also copies the latest scored run's rewards of each file's comparisons (as r_a and r_b,
    so that no label shows through which side a score calls "chosen"), for the Label view's score hint and
    the model-driven queue orders; without it an annotator sees no model at all."""
    names = check_design(annotators, overlap, per_item)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    taken: set[str] = set()
    files = {n: out / _file_name(n, taken) for n in names}
    existing = [p for p in [*files.values(), out / MANIFEST] if p.exists()]
    if existing:
        raise ValueError(f"{existing[0]} exists already; choose another --out folder or remove it")
    with Project.open(project_path) as project:
        project.check_writable()
        excluded = project.marked("exclude")
        rows = project._conn.execute("SELECT id, hash FROM comparisons ORDER BY id").fetchall()
        hashes = {cid: h for cid, h in rows if cid not in excluded}
        if not hashes:
            raise ValueError(f"{project.path.name} has no comparisons to assign (import some first)")
        design = {
            "overlap": overlap,
            "per_item": per_item,
            "seed": seed,
            "annotators": names,
            "with_scores": with_scores,
        }
        packages = design_packages(list(hashes), names, overlap=overlap, per_item=per_item, seed=seed)
        by_hash = {n: sorted(hashes[c] for c in v) for n, v in packages.items()}
        assignment_id = content_hash("assignment", json.dumps({"design": design, "items": by_hash}, sort_keys=True))[
            :16
        ]
        shared = shared_counts(packages)
        summary = AssignmentSummary(
            assignment_id=assignment_id,
            project=project.path.name,
            design=design,
            out_dir=str(out),
            files={n: str(p) for n, p in files.items()},
            counts={n: len(v) for n, v in packages.items()},
            shared=shared,
            comparisons=len(hashes),
            warnings=design_warnings(packages, shared),
        )
        now = time.time()
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        try:
            for name, path in files.items():
                written.append(path)  # before the write, so that a half-written file is removed too
                _write_package(project, path, name, packages[name], assignment_id, design, now, with_scores)
            manifest = {
                **summary.as_dict(),
                "created_at": now,
                "min_shared_recommended": MIN_SHARED,
                "comparison_hashes": by_hash,
            }
            (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
            written.append(out / MANIFEST)
            with project.transaction() as conn:
                _record(conn, assignment_id, design, now, packages)
        except BaseException:
            for path in written:
                remove_new_project(path)
            raise
    return summary


def _record(conn: Any, assignment_id: str, design: dict[str, Any], now: float, packages: dict[str, list[int]]) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO assignments(id, design, created_at) VALUES (?, ?, ?)",
        (assignment_id, json.dumps(design), now),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO assignment_items(assignment_id, annotator, comparison_id) VALUES (?, ?, ?)",
        [(assignment_id, name, cid) for name, ids in packages.items() for cid in ids],
    )


def _write_package(
    source: Project,
    path: Path,
    annotator: str,
    comparison_ids: list[int],
    assignment_id: str,
    design: dict[str, Any],
    now: float,
    with_scores: bool = False,
) -> None:
    """One annotator's project: their comparisons with prompts and responses, the guidelines, the
    assignment (and, ``with_scores``, a model's rewards); nothing anyone labelled."""
    seed = _hash_int(str(source.seed), "assign", annotator) % (2**31)
    src = source._conn
    ids = json.dumps(comparison_ids)
    comparisons = src.execute(
        "SELECT id, prompt_id, response_a, response_b, hash, created_at FROM comparisons"
        " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        (ids,),
    ).fetchall()
    prompt_ids = json.dumps(sorted({r[1] for r in comparisons}))
    response_ids = json.dumps(sorted({r[2] for r in comparisons} | {r[3] for r in comparisons}))
    target = Project.create(path, name=f"{source.name} - {annotator}", seed=seed)
    try:
        with target.transaction() as conn:
            conn.executemany(
                "INSERT INTO prompts(id, hash, text, messages, metadata, source, created_at) VALUES (?,?,?,?,?,?,?)",
                src.execute(
                    "SELECT id, hash, text, messages, metadata, source, created_at FROM prompts"
                    " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (prompt_ids,),
                ).fetchall(),
            )
            conn.executemany(
                "INSERT INTO responses(id, prompt_id, hash, text, messages, metadata, source, created_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                src.execute(
                    "SELECT id, prompt_id, hash, text, messages, metadata, source, created_at FROM responses"
                    " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (response_ids,),
                ).fetchall(),
            )
            conn.executemany(
                "INSERT INTO comparisons(id, prompt_id, response_a, response_b, hash, rand_key, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                [(c, p, a, b, h, _hash_int(str(seed), "order", h), t) for c, p, a, b, h, t in comparisons],
            )
            if source.guidelines.strip():
                target._set_meta("guidelines", source.guidelines)
            target._set_meta(ASSIGNED_TO, annotator)
            _record(conn, assignment_id, design, now, {annotator: comparison_ids})
            if with_scores:
                _copy_scores(src, conn, ids)
    finally:
        target.close()


def _copy_scores(src: Any, conn: Any, ids_json: str) -> None:
    """The latest scored run (its row, without its data snapshot) and its rewards of these comparisons at its
    latest step, oriented as stored (chosen = a) so that they tell nothing about anyone's label."""
    run = src.execute("SELECT MAX(run_id) FROM pair_scores").fetchone()[0]
    if run is None:
        return
    conn.execute(
        "INSERT INTO runs(id, created_at, mode, backbone, config, status, message, finished_at) VALUES (?,?,?,?,?,?,?,?)",
        src.execute(
            "SELECT id, created_at, mode, backbone, config, status, message, finished_at FROM runs WHERE id = ?", (run,)
        ).fetchone(),
    )
    conn.executemany(
        "INSERT INTO pair_scores(run_id, step, comparison_id, split, chosen, r_chosen, r_rejected)"
        " VALUES (?, ?, ?, 'unlabelled', 'a', ?, ?)",
        [
            (run_id, step, cid, r_c if chosen == "a" else r_r, r_r if chosen == "a" else r_c)
            for run_id, step, cid, chosen, r_c, r_r in src.execute(
                "SELECT run_id, step, comparison_id, chosen, r_chosen, r_rejected FROM pair_scores"
                " WHERE run_id = ? AND step = (SELECT MAX(step) FROM pair_scores WHERE run_id = ?)"
                " AND comparison_id IN (SELECT value FROM json_each(?))",
                (run, run, ids_json),
            )
        ],
    )


# ------------------------------------------------------------------------------------ progress
def assignment_progress(project: Project) -> dict[str, Any] | None:
    """The latest assignment of the project and each annotator's progress on it: {"assignment_id",
    "design", "annotators": {name: {"assigned", "done"}}}; ``done`` counts the assigned comparisons the
    annotator has a current label for (skips are not done). None when nothing was assigned."""
    row = project._conn.execute("SELECT id, design FROM assignments ORDER BY created_at DESC, id LIMIT 1").fetchone()
    if row is None:
        return None
    annotators = {
        name: {"assigned": int(assigned), "done": int(done or 0)}
        for name, assigned, done in project._conn.execute(
            "SELECT ai.annotator, COUNT(*), SUM(cl.choice IS NOT NULL AND cl.choice != 'skip')"
            " FROM assignment_items ai LEFT JOIN annotators an ON an.name = ai.annotator"
            " LEFT JOIN current_labels cl ON cl.annotator_id = an.id AND cl.comparison_id = ai.comparison_id"
            " WHERE ai.assignment_id = ? GROUP BY ai.annotator ORDER BY ai.annotator",
            (row[0],),
        )
    }
    return {"assignment_id": row[0], "design": json.loads(row[1]), "annotators": annotators}


def my_batch(project: Project, annotator: str) -> tuple[int, int] | None:
    """(done, assigned) of ``annotator`` in the project's latest assignment that gives them work; None when
    none does."""
    row = project._conn.execute(
        "SELECT ai.assignment_id FROM assignment_items ai JOIN assignments a ON a.id = ai.assignment_id"
        " WHERE ai.annotator = ? ORDER BY a.created_at DESC LIMIT 1",
        (annotator,),
    ).fetchone()
    if row is None:
        return None
    assigned, done = project._conn.execute(
        "SELECT COUNT(*), SUM(cl.choice IS NOT NULL AND cl.choice != 'skip') FROM assignment_items ai"
        " LEFT JOIN annotators an ON an.name = ai.annotator"
        " LEFT JOIN current_labels cl ON cl.annotator_id = an.id AND cl.comparison_id = ai.comparison_id"
        " WHERE ai.assignment_id = ? AND ai.annotator = ?",
        (row[0], annotator),
    ).fetchone()
    return int(done or 0), int(assigned)


def assigned_to(project: Project) -> str | None:
    """Whose batch this file is (set in each annotator's file by ``assign_work``)."""
    return project.get_meta(ASSIGNED_TO)
