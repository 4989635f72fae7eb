"""Team work: merge annotators' projects, measure their agreement,
adjudicate their disagreements, and audit labels and models for position and length bias.

Plain Python over the project store: no Qt, no torch. Every function takes an open ``Project``
(except ``merge_projects``, which opens the files itself) and returns plain data: dataclasses, dicts
that ``json.dumps`` accepts (no NaN: an undefined statistic is None), or pandas frames.

Labels, for agreement and disagreement, are each annotator's *current* label of a comparison (the
``current_labels`` table) in one of the categories a, b, tie, both_bad. Skips, labels taken back by an
undo, and adjudications (a decision about the annotators' labels, not one more label) are left out.
Imported labels (annotator ``import:<file>``) count as one more annotator.

A pair's a and b are only the order in which it happens to be stored (an imported pair stores its
chosen response as a), so every statistic here is symmetric in a/b: storing any comparison the other
way round (its choices and left sides mapped) changes no number. Chance agreement therefore counts
every label both ways round (a and b pooled); tie and both_bad stay categories of their own.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.core.store import Project, ProjectError, _hash_int, remove_new_project

#: The label categories that agreement is measured over (skips are no label).
CATEGORIES = ("a", "b", "tie", "both_bad")
#: z for a two-sided 95% interval.
Z95 = 1.959963984540054

_SWAP = {"a": "b", "b": "a"}
#: The mirror of each preference category: the same label of the pair stored the other way round.
PAIR_MIRROR: Mapping[str, str] = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad"}
#: What chance agreement is, in one sentence, for the Data view and ``workbench stats``.
CHANCE_NOTE = (
    "Chance agreement counts every label both ways round (a and b swapped), so it never depends on "
    "which response was stored first; tie and both bad stay categories of their own."
)
#: The Fleiss' κ variant ``fleiss_kappa`` computes, as the reports name it.
FLEISS_VARIANT = (
    "Fleiss' kappa (unequal raters per item: per-item agreement averaged over items with 2+ ratings; "
    "category shares from all their ratings, a/b pooled both ways)"
)


def _swap(side: str | None) -> str | None:
    """The same choice or side seen from a comparison stored the other way round: a <-> b; tie,
    both_bad, skip and None stay."""
    return _SWAP.get(side, side) if side is not None else None


# ============================================================================================ merge
@dataclass
class MergeSummary:
    """What ``merge_projects`` did; all counts are rows added to the target."""

    target: str
    sources: list[str] = field(default_factory=list)
    #: Sources left out because they are the target itself or repeat an earlier source.
    skipped_sources: list[str] = field(default_factory=list)
    created: bool = False
    prompts_added: int = 0
    responses_added: int = 0
    comparisons_added: int = 0
    #: Source comparisons found in the target stored the other way round (b, a): their choices and
    #: left sides were mapped.
    comparisons_flipped: int = 0
    annotators_added: int = 0
    judgments_added: int = 0
    #: Source judgments the target already held (an earlier merge of the same work, or a shared history).
    judgments_present: int = 0
    marks_added: int = 0
    #: Comparisons newly put in the target's test split (they were in a source's).
    split_added: int = 0
    #: rows of work packages (who was assigned which comparison) new to the target
    assignment_items_added: int = 0
    current_labels_changed: int = 0
    #: The source whose guidelines the target took (the target had none), else None.
    guidelines_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for the command line."""
        text = (
            f"merged {len(self.sources)} project{'s' if len(self.sources) != 1 else ''} into {self.target}"
            f"{' (new)' if self.created else ''}: added {self.prompts_added:,} prompts, "
            f"{self.responses_added:,} responses, {self.comparisons_added:,} comparisons, "
            f"{self.judgments_added:,} judgments ({self.judgments_present:,} already there), "
            f"{self.annotators_added:,} annotators, {self.marks_added:,} marks; "
            f"{self.current_labels_changed:,} current labels changed"
        )
        if self.split_added:
            text += f"; {self.split_added:,} comparisons put in the test split"
        if self.comparisons_flipped:
            text += f"; {self.comparisons_flipped:,} comparisons stored the other way round were mapped"
        if self.guidelines_from:
            text += f"; guidelines taken from {self.guidelines_from}"
        if self.skipped_sources:
            text += f"; skipped {', '.join(self.skipped_sources)} (the target itself or listed twice)"
        return text


def merge_projects(sources: Sequence[str | os.PathLike], into: str | os.PathLike) -> MergeSummary:
    """Bring other annotators' projects into ``into`` (created when missing), in ONE transaction.

    Prompts, responses and comparisons are matched by content hash; a comparison that a source stores
    as (b, a) has its choices and left sides mapped onto the target's (a, b). Every judgment keeps its
    annotator, kind, choice, strength, left side, note, flags and times; ``supersedes`` links are
    remapped to the target's ids, new rows are appended in each source's original order. A judgment is
    recognised as already present by a key that needs no provenance table: (comparison, annotator,
    created_at, kind, choice, strength, and its occurrence among rows equal in all of these), so merging
    twice, or merging two projects that share a history, adds nothing twice.

    The current label of an (annotator, comparison) becomes the latest, by ``created_at``, of the
    target's current label and each source's current label. Pair marks (flag, exclude) are merged the
    same way: when a merged mark is older than the target's latest, the latest is re-asserted so that
    it stays in force. The target keeps its guidelines, or takes the first source's when it has none.
    Runs, their scores and the embedding cache stay behind: they belong to the project that made them.

    A source that is missing or not a project raises ``ProjectError`` before the target is touched
    (or created); any failure during the merge rolls the target back entirely.
    """
    if not sources:
        raise ValueError("name at least one project to merge")
    target_path = Path(into)
    summary = MergeSummary(target=str(target_path))
    opened: list[tuple[str, Project]] = []
    target: Project | None = None
    created = was_empty = False
    try:
        # Open (and so check) every source before the target is touched.
        seen: list[Path] = []
        for source in sources:
            path = Path(source)
            if path.is_dir():
                raise ProjectError(f"{path}: a folder, not a Preference Workbench project")
            project = Project.open(path)
            same = [p for p in seen if os.path.samefile(p, path)]
            if same or (target_path.exists() and os.path.samefile(target_path, path)):
                summary.skipped_sources.append(str(path))
                project.close()
                continue
            seen.append(path)
            opened.append((str(path), project))
        if target_path.is_dir():
            raise ProjectError(f"{target_path}: a folder, not a Preference Workbench project")
        was_empty = target_path.is_file() and target_path.stat().st_size == 0
        if target_path.exists() and not was_empty:
            target = Project.open(target_path)
        else:
            # The first source's seed keeps the left/right sides its annotators saw.
            seed = opened[0][1].seed if opened else 0
            target = Project.create(target_path, seed=seed)
            created = True
        summary.created = created
        with target.transaction():
            index = _TargetIndex(target)
            for name, project in opened:
                # One read snapshot per source, so that an app still writing to it cannot tear the copy.
                project._conn.execute("BEGIN")
                try:
                    _merge_one(target, index, name, project, summary)
                finally:
                    project._conn.execute("ROLLBACK")
                summary.sources.append(name)
            _reassert_latest_marks(target, index.touched_marks)
            if not target.guidelines.strip():
                for name, project in opened:
                    if project.guidelines.strip():
                        target.set_meta("guidelines", project.guidelines)
                        summary.guidelines_from = name
                        break
            if summary.comparisons_added or summary.current_labels_changed:
                # Comparisons or labels came back into queue phases: tell other open connections.
                target._bump_queue_epoch()
    except BaseException:
        if target is not None:
            target.close()
            target = None
            if created:  # leave no half-made project behind
                remove_new_project(target_path, was_empty_file=was_empty)
        raise
    finally:
        for _, project in opened:
            project.close()
        if target is not None:
            target.close()
    return summary


class _TargetIndex:
    """What the target holds, read once inside the merge transaction and kept up to date by it."""

    def __init__(self, target: Project):
        conn = target._conn
        self.seed = target.seed
        self.prompts: dict[str, int] = dict(conn.execute("SELECT hash, id FROM prompts"))
        self.responses: dict[str, int] = dict(conn.execute("SELECT hash, id FROM responses"))
        #: comparison hash -> (id, response_a id)
        self.comparisons: dict[str, tuple[int, int]] = {
            h: (cid, ra) for h, cid, ra in conn.execute("SELECT hash, id, response_a FROM comparisons")
        }
        self.annotators: dict[str, int] = dict(conn.execute("SELECT name, id FROM annotators"))
        self.judgment_keys: dict[tuple, int] = {}
        occurrences: Counter = Counter()
        for jid, *base in conn.execute(
            "SELECT id, comparison_id, annotator_id, created_at, kind, choice, strength FROM judgments ORDER BY id"
        ):
            base = tuple(base)
            self.judgment_keys[(base, occurrences[base])] = jid
            occurrences[base] += 1
        #: (annotator id, comparison id) -> (created_at, judgment id, choice) of the current label
        self.current: dict[tuple[int, int], tuple[float, int, str | None]] = {
            (aid, cid): (created, jid, choice)
            for aid, cid, jid, choice, created in conn.execute(
                "SELECT cl.annotator_id, cl.comparison_id, cl.judgment_id, cl.choice, j.created_at"
                " FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            )
        }
        self.mark_keys: set[tuple] = set()
        occurrences = Counter()
        for base in conn.execute(
            "SELECT comparison_id, mark, value, annotator_id, note, created_at FROM comparison_marks ORDER BY id"
        ):
            base = tuple(base)
            self.mark_keys.add((base, occurrences[base]))
            occurrences[base] += 1
        self.touched_marks: set[tuple[int, str]] = set()

    @staticmethod
    def next_id(conn: sqlite3.Connection, table: str) -> int:
        return (conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0) + 1


def _merge_one(target: Project, index: _TargetIndex, name: str, source: Project, summary: MergeSummary) -> None:
    conn, src = target._conn, source._conn

    # Prompts, responses and comparisons: by content hash.
    prompt_map: dict[int, int] = {}
    rows: list[tuple[object, ...]] = []  # the rows to insert into one table after another
    next_id = index.next_id(conn, "prompts")
    for sid, h, text, messages, metadata, origin, created in src.execute(
        "SELECT id, hash, text, messages, metadata, source, created_at FROM prompts ORDER BY id"
    ):
        tid = index.prompts.get(h)
        if tid is None:
            tid = index.prompts[h] = next_id
            next_id += 1
            rows.append((tid, h, text, messages, metadata, origin, created))
        prompt_map[sid] = tid
    conn.executemany(
        "INSERT INTO prompts(id, hash, text, messages, metadata, source, created_at) VALUES (?,?,?,?,?,?,?)", rows
    )
    summary.prompts_added += len(rows)

    response_map: dict[int, int] = {}
    rows = []
    next_id = index.next_id(conn, "responses")
    for sid, h, pid, text, messages, metadata, origin, created in src.execute(
        "SELECT id, hash, prompt_id, text, messages, metadata, source, created_at FROM responses ORDER BY id"
    ):
        tid = index.responses.get(h)
        if tid is None:
            tid = index.responses[h] = next_id
            next_id += 1
            rows.append((tid, prompt_map[pid], h, text, messages, metadata, origin, created))
        response_map[sid] = tid
    conn.executemany(
        "INSERT INTO responses(id, prompt_id, hash, text, messages, metadata, source, created_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        rows,
    )
    summary.responses_added += len(rows)

    comparison_map: dict[int, tuple[int, bool]] = {}  # source id -> (target id, stored the other way round)
    rows = []
    next_id = index.next_id(conn, "comparisons")
    for sid, h, pid, ra, rb, created in src.execute(
        "SELECT id, hash, prompt_id, response_a, response_b, created_at FROM comparisons ORDER BY id"
    ):
        ta, tb = response_map[ra], response_map[rb]
        known = index.comparisons.get(h)
        if known is None:
            tid = next_id
            next_id += 1
            index.comparisons[h] = (tid, ta)
            # The queue's shuffle key comes from the target's seed, as for an import into it.
            rows.append((tid, prompt_map[pid], ta, tb, h, _hash_int(str(index.seed), "order", h), created))
            comparison_map[sid] = (tid, False)
        else:
            flipped = known[1] != ta
            summary.comparisons_flipped += flipped
            comparison_map[sid] = (known[0], flipped)
    conn.executemany(
        "INSERT INTO comparisons(id, prompt_id, response_a, response_b, hash, rand_key, created_at)"
        " VALUES (?,?,?,?,?,?,?)",
        rows,
    )
    summary.comparisons_added += len(rows)

    # Annotators: by name.
    annotator_map: dict[int, int] = {}
    for sid, aname, kind, created in src.execute("SELECT id, name, kind, created_at FROM annotators ORDER BY id"):
        tid = index.annotators.get(aname)
        if tid is None:
            cursor = conn.execute(
                "INSERT INTO annotators(name, kind, created_at) VALUES (?, ?, ?)", (aname, kind, created)
            )
            assert cursor.lastrowid is not None  # an INSERT sets it
            tid = index.annotators[aname] = cursor.lastrowid
            summary.annotators_added += 1
        annotator_map[sid] = tid

    # Judgments, in the source's order, so that every ``supersedes`` points at a row already mapped.
    judgment_map: dict[int, int] = {}
    occurrences: Counter = Counter()
    rows = []
    next_id = index.next_id(conn, "judgments")
    for sid, cid, aid, choice, strength, left, kind, note, flags, supersedes, shown, answered, created in src.execute(
        "SELECT id, comparison_id, annotator_id, choice, strength, left_side, kind, note, flags, supersedes,"
        " shown_at, answered_at, created_at FROM judgments ORDER BY id"
    ):
        tcid, flipped = comparison_map[cid]
        if flipped:
            choice, left = _swap(choice), _swap(left)
        base = (tcid, annotator_map[aid], created, kind, choice, strength)
        key = (base, occurrences[base])
        occurrences[base] += 1
        tid = index.judgment_keys.get(key)
        if tid is not None:
            summary.judgments_present += 1
        else:
            tid = index.judgment_keys[key] = next_id
            next_id += 1
            rows.append(
                (
                    tid,
                    tcid,
                    annotator_map[aid],
                    choice,
                    strength,
                    left,
                    kind,
                    note,
                    flags,
                    judgment_map.get(supersedes) if supersedes is not None else None,
                    shown,
                    answered,
                    created,
                )
            )
        judgment_map[sid] = tid
    conn.executemany(
        "INSERT INTO judgments(id, comparison_id, annotator_id, choice, strength, left_side, kind, note, flags,"
        " supersedes, shown_at, answered_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    summary.judgments_added += len(rows)

    # Current labels: the later of the target's and this source's, by created_at (ties keep the target's).
    changed = []
    for aid, cid, jid, choice, created in src.execute(
        "SELECT cl.annotator_id, cl.comparison_id, cl.judgment_id, cl.choice, j.created_at"
        " FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id ORDER BY cl.judgment_id"
    ):
        tcid, flipped = comparison_map[cid]
        pair = (annotator_map[aid], tcid)
        candidate = (created, judgment_map[jid], _swap(choice) if flipped else choice)
        present = index.current.get(pair)
        if present is None or (candidate[0] > present[0] and candidate[1] != present[1]):
            index.current[pair] = candidate
            changed.append((*pair, candidate[1], candidate[2]))
    conn.executemany(
        "INSERT OR REPLACE INTO current_labels(annotator_id, comparison_id, judgment_id, choice) VALUES (?,?,?,?)",
        changed,
    )
    summary.current_labels_changed += len(changed)

    # Pair marks (flag, exclude), recognised by their content and time like judgments.
    occurrences = Counter()
    rows = []
    for cid, mark, value, aid, note, created in src.execute(
        "SELECT comparison_id, mark, value, annotator_id, note, created_at FROM comparison_marks ORDER BY id"
    ):
        base = (comparison_map[cid][0], mark, value, annotator_map.get(aid) if aid is not None else None, note, created)
        key = (base, occurrences[base])
        occurrences[base] += 1
        if key not in index.mark_keys:
            index.mark_keys.add(key)
            index.touched_marks.add((base[0], mark))
            rows.append(base)
    conn.executemany(
        "INSERT INTO comparison_marks(comparison_id, mark, value, annotator_id, note, created_at) VALUES (?,?,?,?,?,?)",
        rows,
    )
    summary.marks_added += len(rows)

    # Split membership (the test split): a comparison in a source's test split stays evaluation-only in the
    # target; membership is never taken away by a merge (a pair once tested on must not be trained on).
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO comparison_splits(comparison_id, split, created_at) VALUES (?,?,?)",
        [
            (comparison_map[cid][0], split, created)
            for cid, split, created in src.execute("SELECT comparison_id, split, created_at FROM comparison_splits")
        ],
    )
    summary.split_added += conn.total_changes - before
    # Work packages (core/assign.py): who was given which comparison, by assignment id (a content hash).
    conn.executemany(
        "INSERT OR IGNORE INTO assignments(id, design, created_at) VALUES (?,?,?)",
        src.execute("SELECT id, design, created_at FROM assignments ORDER BY id").fetchall(),
    )
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO assignment_items(assignment_id, annotator, comparison_id) VALUES (?,?,?)",
        [
            (aid, name_, comparison_map[cid][0])
            for aid, name_, cid in src.execute("SELECT assignment_id, annotator, comparison_id FROM assignment_items")
        ],
    )
    summary.assignment_items_added += conn.total_changes - before


def _reassert_latest_marks(target: Project, touched: Iterable[tuple[int, str]]) -> None:
    """The store reads a pair's mark as its highest-id row. Merged rows are appended after the
    target's, so where a merged mark is older than the latest one (by created_at), append a copy of
    the latest so that it stays in force."""
    conn = target._conn
    for cid, mark in sorted(touched):
        rows = conn.execute(
            "SELECT id, value, annotator_id, note, created_at FROM comparison_marks"
            " WHERE comparison_id = ? AND mark = ? ORDER BY id",
            (cid, mark),
        ).fetchall()
        latest = max(rows, key=lambda r: (r[4], r[0]))
        if latest[0] != rows[-1][0] and latest[1] != rows[-1][1]:
            conn.execute(
                "INSERT INTO comparison_marks(comparison_id, mark, value, annotator_id, note, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (cid, mark, latest[1], latest[2], latest[3], latest[4]),
            )


# ==================================================================================== agreement
def rating_table(project: Project) -> pd.DataFrame:
    """Every annotator's current label in one of ``CATEGORIES``: columns comparison_id, annotator,
    choice. Adjudications (and adjudicators) are left out: they decide, they do not vote."""
    return pd.read_sql_query(
        "SELECT cl.comparison_id, a.name AS annotator, cl.choice FROM current_labels cl"
        " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators a ON a.id = cl.annotator_id"
        " WHERE cl.choice IN ('a', 'b', 'tie', 'both_bad') AND j.kind != 'adjudication'"
        " AND a.kind != 'adjudicator' ORDER BY cl.comparison_id, a.name",
        project._conn,
    )


def _units(table: pd.DataFrame) -> dict[Any, dict[str, str]]:
    """comparison -> {annotator: choice}."""
    units: dict[Any, dict[str, str]] = defaultdict(dict)
    for cid, annotator, choice in table[["comparison_id", "annotator", "choice"]].itertuples(index=False):
        units[cid][annotator] = choice
    return dict(units)


def pairwise_agreement(units: Iterable[Iterable[Any]]) -> dict[str, Any]:
    """Percent agreement: over the items with two or more labels, the mean share of agreeing pairs of
    labels (an item labelled a, a, b has pairs aa, ab, ab: 1/3). ``None`` marks a missing label.

    Returns {"items": number of such items, "agreement": the mean as a fraction, or None}."""
    shares = []
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        agreeing = sum(n * (n - 1) for n in Counter(values).values())
        shares.append(agreeing / (m * (m - 1)))
    return {"items": len(shares), "agreement": float(np.mean(shares)) if shares else None}


def _pooled(counts: Mapping[Any, float], mirror: Mapping[Any, Any] | None) -> dict[Any, float]:
    """Category counts with every value counted half as itself and half as its ``mirror`` (the same
    label of the item stored the other way round): a and b get equal shares, tie and both_bad keep
    theirs. Without a mirror the counts as they are."""
    if mirror is None:
        return dict(counts)
    out: dict[Any, float] = defaultdict(float)
    for c, n in counts.items():
        out[c] += n / 2
        out[mirror.get(c, c)] += n / 2
    return dict(out)


def cohen_kappa(x: Sequence[Any], y: Sequence[Any], mirror: Mapping[Any, Any] | None = None) -> dict[str, Any]:
    """Cohen's κ of two annotators over the same items: (p_o − p_e) / (1 − p_e), where p_o is the share
    of items they agree on and p_e = Σ_c p_x(c) p_y(c) from each one's own category shares.

    With ``mirror`` (``PAIR_MIRROR`` for preferences) each annotator's shares count every item both
    ways round, so p_e, and κ, do not depend on how the items happen to be oriented (see ``_pooled``).
    κ is None when it is undefined (no items, or p_e = 1)."""
    if len(x) != len(y):
        raise ValueError("the two annotators' label lists differ in length")
    n = len(x)
    if n == 0:
        return {"items": 0, "observed": None, "expected": None, "kappa": None}
    observed = sum(a == b for a, b in zip(x, y, strict=True)) / n
    cx, cy = _pooled(Counter(x), mirror), _pooled(Counter(y), mirror)
    expected = sum(cx[c] * cy.get(c, 0) for c in cx) / (n * n)
    kappa = (observed - expected) / (1 - expected) if 1 - expected > 1e-12 else None
    return {"items": n, "observed": observed, "expected": expected, "kappa": kappa}


def krippendorff_alpha_nominal(units: Iterable[Sequence[Any]], mirror: Mapping[Any, Any] | None = None) -> float | None:
    """Krippendorff's α for nominal data, any number of coders, missing values as None.

    With the coincidence matrix o_ck = Σ_u (number of ordered pairs (c, k) of values in unit u) / (m_u − 1)
    over the units with m_u ≥ 2 values, n_c = Σ_k o_ck and n = Σ_c n_c:
        α = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k.
    With ``mirror`` (``PAIR_MIRROR`` for preferences) the expected disagreement uses marginals n_c that
    count every unit both ways round (``_pooled``); the observed disagreement needs no change, as
    mirroring a whole unit keeps its agreeing and disagreeing pairs. None when undefined (fewer than
    two pairable values, or no expected disagreement)."""
    o: dict[tuple[Any, Any], float] = defaultdict(float)
    for unit in units:
        counts = Counter(v for v in unit if v is not None)
        m = sum(counts.values())
        if m < 2:
            continue
        for c, nc in counts.items():
            for k, nk in counts.items():
                o[(c, k)] += nc * (nk - (c == k)) / (m - 1)
    marginals: dict[Any, float] = defaultdict(float)
    for (c, _), value in o.items():
        marginals[c] += value
    n = sum(marginals.values())
    disagreeing = sum(value for (c, k), value in o.items() if c != k)
    expected = n * n - sum(v * v for v in _pooled(marginals, mirror).values())
    if n < 2 or expected <= 1e-12:
        return None
    return float(1 - (n - 1) * disagreeing / expected)


def fleiss_kappa(units: Iterable[Sequence[Any]], mirror: Mapping[Any, Any] | None = None) -> dict[str, Any]:
    """Fleiss' κ for any number of raters, generalised to items with unequal numbers of raters
    (None marks a missing rating; items with fewer than two ratings are left out):

    - observed P̄: the mean over items of P_i = Σ_c n_ic (n_ic − 1) / (n_i (n_i − 1)), each item's share
      of agreeing rating pairs (Fleiss 1971), every item weighted equally;
    - chance P_e = Σ_c p_c², with p_c the share of c among all these items' ratings, so that an item
      weighs in proportion to its raters; with ``mirror``, shares pooled both ways (``_pooled``).

    With the same number of raters on every item this is Fleiss' κ exactly. Returns {"items",
    "observed", "expected", "kappa"}; κ None when undefined."""
    shares: list[float] = []
    totals: Counter = Counter()
    for unit in units:
        counts = Counter(v for v in unit if v is not None)
        m = sum(counts.values())
        if m < 2:
            continue
        shares.append(sum(k * (k - 1) for k in counts.values()) / (m * (m - 1)))
        totals.update(counts)
    if not shares:
        return {"items": 0, "observed": None, "expected": None, "kappa": None}
    total = sum(totals.values())
    observed = float(np.mean(shares))
    expected = sum((v / total) ** 2 for v in _pooled(totals, mirror).values())
    kappa = (observed - expected) / (1 - expected) if 1 - expected > 1e-12 else None
    return {"items": len(shares), "observed": observed, "expected": expected, "kappa": kappa}


def majority_agreement(units: Mapping[Any, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per annotator: how often their label matches the majority of the OTHER annotators' labels of the
    same item (leave-one-out). Items where the others' vote is tied, or nobody else labelled, are left
    out; ``tied`` counts the tied ones."""
    out: dict[str, dict[str, Any]] = {}
    for labels in units.values():
        for annotator, value in labels.items():
            votes = Counter(v for name, v in labels.items() if name != annotator)
            if not votes:
                continue
            row = out.setdefault(annotator, {"items": 0, "agreed": 0, "tied": 0, "agreement": None})
            ranked = votes.most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                row["tied"] += 1
                continue
            row["items"] += 1
            row["agreed"] += ranked[0][0] == value
    for row in out.values():
        row["agreement"] = row["agreed"] / row["items"] if row["items"] else None
    return dict(sorted(out.items()))


def agreement_from_table(table: pd.DataFrame) -> dict[str, Any]:
    """``agreement_report`` for a table of labels (comparison_id, annotator, choice)."""
    units = _units(table)
    annotators = sorted(table["annotator"].unique().tolist()) if len(table) else []
    pairwise = pairwise_agreement(units[c].values() for c in units)
    kappas = []
    for first, second in combinations(annotators, 2):
        common = [labels for labels in units.values() if first in labels and second in labels]
        if not common:
            continue
        result = cohen_kappa([u[first] for u in common], [u[second] for u in common], mirror=PAIR_MIRROR)
        kappas.append({"annotators": [first, second], **result})
    # Krippendorff's and Fleiss' units: one value per annotator, None where they gave none.
    matrix = [[labels.get(a) for a in annotators] for labels in units.values()]
    fleiss = {**fleiss_kappa(matrix, mirror=PAIR_MIRROR), "variant": FLEISS_VARIANT} if len(annotators) >= 3 else None
    return {
        "annotators": annotators,
        "categories": list(CATEGORIES),
        "chance": CHANCE_NOTE,
        "items_labelled": len(units),
        "items_multiply_labelled": pairwise["items"],
        "pairwise_agreement": pairwise["agreement"],
        "cohen_kappa": kappas,
        "krippendorff_alpha": krippendorff_alpha_nominal(matrix, mirror=PAIR_MIRROR),
        "fleiss_kappa": fleiss,
        "majority_agreement": majority_agreement(units),
    }


def agreement_report(project: Project) -> dict[str, Any]:
    """Agreement among the annotators of a project (JSON-serialisable; fractions in [0, 1]):

    - ``pairwise_agreement``: percent agreement as a fraction, the mean over comparisons with two or
      more labels of the share of agreeing label pairs (``items_multiply_labelled`` of them);
    - ``cohen_kappa``: for each pair of annotators with comparisons in common, κ on those comparisons
      (with ``items``, ``observed`` and ``expected`` agreement);
    - ``krippendorff_alpha``: nominal α over all annotators, missing labels allowed;
    - ``fleiss_kappa``: with three or more annotators, {"items", "observed", "expected", "kappa",
      "variant"} (``fleiss_kappa``, named by ``FLEISS_VARIANT``), else None;
    - ``chance``: ``CHANCE_NOTE``. κ, α and Fleiss' κ take chance with a and b pooled both ways, so
      they do not depend on which response of a pair was stored first;
    - ``majority_agreement``: per annotator, agreement with the leave-one-out majority of the others.
    """
    return agreement_from_table(rating_table(project))


# ================================================================================= adjudication
DISAGREEMENT_COLUMNS = [
    "comparison_id",
    "prompt_id",
    "n_labels",
    "labels",
    "votes",
    "majority",
    "excluded",
    "prompt",
    "response_a",
    "response_b",
]


def disagreements(project: Project) -> pd.DataFrame:
    """Comparisons whose annotators' current labels differ and that no adjudication has settled yet.

    Columns: comparison_id, prompt_id, n_labels, labels ({annotator: choice}), votes ({choice: count}),
    majority (the choice with most votes, None on a tie), excluded (from training), and the texts."""
    rows = project._conn.execute(
        "SELECT cl.comparison_id, a.name, cl.choice, j.kind, a.kind FROM current_labels cl"
        " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators a ON a.id = cl.annotator_id"
        " WHERE cl.choice IN ('a', 'b', 'tie', 'both_bad') ORDER BY cl.comparison_id, a.name"
    ).fetchall()
    labels: dict[int, dict[str, str]] = defaultdict(dict)
    settled: set[int] = set()
    for cid, name, choice, kind, annotator_kind in rows:
        if kind == "adjudication":
            settled.add(cid)
        elif annotator_kind != "adjudicator":
            labels[cid][name] = choice
    out = []
    for cid, by_name in labels.items():
        if cid in settled or len(set(by_name.values())) < 2:
            continue
        votes = Counter(by_name.values())
        ranked = votes.most_common()
        majority = ranked[0][0] if ranked[0][1] > ranked[1][1] else None
        out.append((cid, len(by_name), by_name, dict(sorted(votes.items())), majority))
    if not out:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in DISAGREEMENT_COLUMNS})
    frame = pd.DataFrame(out, columns=["comparison_id", "n_labels", "labels", "votes", "majority"])
    texts = pd.read_sql_query(
        "SELECT c.id AS comparison_id, c.prompt_id, p.text AS prompt, ra.text AS response_a, rb.text AS response_b"
        " FROM comparisons c JOIN prompts p ON p.id = c.prompt_id JOIN responses ra ON ra.id = c.response_a"
        " JOIN responses rb ON rb.id = c.response_b WHERE c.id IN (SELECT value FROM json_each(?))",
        project._conn,
        params=(json.dumps([int(c) for c in frame["comparison_id"]]),),
    )
    frame = frame.merge(texts, on="comparison_id", how="left")
    frame["excluded"] = frame["comparison_id"].isin(project.marked("exclude"))
    # None, not NaN, for "no majority" (pandas would infer a string column with missing values).
    majorities = {row[0]: row[4] for row in out}
    frame["majority"] = pd.Series([majorities[c] for c in frame["comparison_id"]], index=frame.index, dtype=object)
    return frame[DISAGREEMENT_COLUMNS].sort_values("comparison_id").reset_index(drop=True)


def adjudicate(
    project: Project, comparison_id: int, adjudicator: str, choice: str, strength: int | None = None, note: str = ""
) -> int:
    """Settle a comparison: record ``adjudicator``'s decision as a judgment of kind "adjudication",
    which ``resolved_labels()`` and ``training_pairs()`` prefer to the annotators' labels. Deciding again
    appends a new adjudication that supersedes the last one. Returns the judgment's id.

    The store keeps one current label per (annotator, comparison), so an annotator who labelled the
    comparison cannot adjudicate it under the same name (their vote would vanish): use another name,
    e.g. "alice (adjudicator)"."""
    if choice not in CATEGORIES:
        raise ValueError(f"an adjudication is one of {', '.join(CATEGORIES)}, not {choice!r}")
    name = adjudicator.strip()
    if not name:
        raise ValueError("adjudicator name is empty")
    with project.transaction():
        row = project._conn.execute(
            "SELECT cl.choice, j.kind FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            " JOIN annotators a ON a.id = cl.annotator_id WHERE a.name = ? AND cl.comparison_id = ?",
            (name, comparison_id),
        ).fetchone()
        if row is not None and row[0] not in (None, "skip") and row[1] != "adjudication":
            raise ValueError(
                f"{name} labelled comparison {comparison_id} as an annotator; adjudicate under another name "
                f"(e.g. '{name} (adjudicator)') so that the label still counts"
            )
        return project.record_judgment(comparison_id, name, choice, strength=strength, note=note, kind="adjudication")


# ======================================================================================= bias
def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion k/n; None when n is 0."""
    if n <= 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share(k: int, n: int) -> dict[str, Any]:
    """{"n", "k", "share", "ci95"} of k successes in n; share and ci95 None when n is 0."""
    interval = wilson_interval(k, n)
    return {
        "n": int(n),
        "k": int(k),
        "share": k / n if n else None,
        "ci95": [float(interval[0]), float(interval[1])] if interval else None,
    }


def bias_report(project: Project, run_id: int | None = None) -> dict[str, Any]:
    """Position and length bias, with 95% Wilson intervals (JSON-serialisable).

    ``annotators``: per annotator, over their current labels of a or b,
      - ``left``: the share that picked the response shown on the LEFT (labels whose side is unknown,
        such as imported ones, are not counted); 0.5 is unbiased;
      - ``longer``: the share that picked the LONGER response in characters (pairs of equal length are
        left out and counted in ``equal_length``).
    ``model``: for run ``run_id`` (default: the latest run with per-pair scores) at its latest scored
    step, over all scored pairs where the two scores differ: ``longer``, the share where the model
    prefers the longer response; None when no run has scores. A reward model scores each response on
    its own and sees no screen, so it has no position to audit; its preference for the stored a would
    only echo the storage order (imported pairs store the chosen response as a), so it is not reported.

    Every share is relative to the pair (the side shown on the left, the longer response), never to
    the stored a or b: storing a pair the other way round changes nothing.
    """
    conn = project._conn
    annotators: dict[str, dict[str, Any]] = {}
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # left n, left k, long n, long k, equal
    for name, choice, left, len_a, len_b in conn.execute(
        "SELECT a.name, cl.choice, j.left_side, length(ra.text), length(rb.text) FROM current_labels cl"
        " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators a ON a.id = cl.annotator_id"
        " JOIN comparisons c ON c.id = cl.comparison_id JOIN responses ra ON ra.id = c.response_a"
        " JOIN responses rb ON rb.id = c.response_b WHERE cl.choice IN ('a', 'b') ORDER BY a.name"
    ):
        counts = per[name]
        if left in ("a", "b"):
            counts[0] += 1
            counts[1] += choice == left
        if len_a == len_b:
            counts[4] += 1
        else:
            counts[2] += 1
            counts[3] += (choice == "a") == (len_a > len_b)
    for name, (ln, lk, gn, gk, equal) in per.items():
        annotators[name] = {"left": share(lk, ln), "longer": {**share(gk, gn), "equal_length": equal}}
    return {"annotators": annotators, "model": _model_bias(project, run_id)}


def _model_bias(project: Project, run_id: int | None) -> dict[str, Any] | None:
    conn = project._conn
    if run_id is None:
        run_id = conn.execute("SELECT MAX(run_id) FROM pair_scores").fetchone()[0]
        if run_id is None:
            return None
    elif conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise KeyError(f"no run {run_id}")
    step = conn.execute("SELECT MAX(step) FROM pair_scores WHERE run_id = ?", (run_id,)).fetchone()[0]
    if step is None:
        return {
            "run_id": int(run_id),
            "step": None,
            "pairs": 0,
            "score_ties": 0,
            "longer": {**share(0, 0), "equal_length": 0},
        }
    pairs = ties = long_n = long_k = equal = 0
    for chosen, r_chosen, r_rejected, len_a, len_b in conn.execute(
        "SELECT s.chosen, s.r_chosen, s.r_rejected, length(ra.text), length(rb.text) FROM pair_scores s"
        " JOIN comparisons c ON c.id = s.comparison_id JOIN responses ra ON ra.id = c.response_a"
        " JOIN responses rb ON rb.id = c.response_b WHERE s.run_id = ? AND s.step = ?",
        (run_id, step),
    ):
        pairs += 1
        if r_chosen == r_rejected:
            ties += 1
            continue
        preferred = chosen if r_chosen > r_rejected else _swap(chosen)
        if len_a == len_b:
            equal += 1
        else:
            long_n += 1
            long_k += (preferred == "a") == (len_a > len_b)
    return {
        "run_id": int(run_id),
        "step": int(step),
        "pairs": pairs,
        "score_ties": ties,
        "longer": {**share(long_k, long_n), "equal_length": equal},
    }


# ================================================================================ statistics
def team_statistics(project: Project) -> dict[str, Any]:
    """{"agreement": agreement_report, "bias": bias_report, "reliability": reliability_report (annotator
    skills with bootstrap intervals), "assignment": assignment_progress (None when nothing was assigned)}
    for ``workbench stats --json``."""
    from workbench.core.assign import assignment_progress
    from workbench.core.reliability import reliability_report

    return {
        "agreement": agreement_report(project),
        "bias": bias_report(project),
        "reliability": reliability_report(project),
        "assignment": assignment_progress(project),
    }


def format_team_statistics(stats: Mapping[str, Any]) -> str:
    """A short human-readable block of ``team_statistics`` for ``workbench stats``."""

    def num(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def pct(entry: Mapping[str, Any]) -> str:
        if entry["share"] is None:
            return "-"
        lo, hi = entry["ci95"]
        return f"{100 * entry['share']:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}] of {entry['n']:,}"

    agreement, bias = stats["agreement"], stats["bias"]
    lines = [
        (
            f"agreement    {agreement['items_multiply_labelled']:,} comparisons with 2+ labels; pairwise "
            f"{num(agreement['pairwise_agreement'])}, Krippendorff's alpha {num(agreement['krippendorff_alpha'])}"
        ),
    ]
    fleiss = agreement.get("fleiss_kappa")
    if fleiss:
        lines.append(f"  {fleiss['variant']}: {num(fleiss['kappa'])} on {fleiss['items']:,}")
    for row in agreement["cohen_kappa"]:
        lines.append(
            f"  kappa {row['annotators'][0]} / {row['annotators'][1]}: {num(row['kappa'])} on {row['items']:,}"
        )
    for name, row in agreement["majority_agreement"].items():
        lines.append(f"  {name} agrees with the others' majority: {num(row['agreement'])} on {row['items']:,}")
    lines.append(f"  {agreement['chance']}")
    for name, row in bias["annotators"].items():
        lines.append(f"bias {name}: picks left {pct(row['left'])}; picks longer {pct(row['longer'])}")
    model = bias.get("model")
    if model:
        lines.append(f"bias run {model['run_id']}: prefers longer {pct(model['longer'])}")
    reliability = stats.get("reliability")
    if reliability and reliability["fitted"]:
        lines.append(
            f"reliability  {reliability['model']}; {reliability['comparisons_multiply_labelled']:,} comparisons "
            f"with 2+ labels, 95% intervals from {reliability['resamples']} bootstrap resamples"
        )
        for name, row in reliability["annotators"].items():
            interval = f" [{row['ci95'][0]:.2f}-{row['ci95'][1]:.2f}]" if row["ci95"] else ""
            lines.append(f"  {name}: {num(row['skill'], 2)}{interval} on {row['shared_labels']:,} shared labels")
    assignment = stats.get("assignment")
    if assignment:
        for name, row in assignment["annotators"].items():
            lines.append(f"assigned {name}: {row['done']:,} of {row['assigned']:,} done")
    return "\n".join(lines)
