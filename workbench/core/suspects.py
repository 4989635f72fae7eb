"""Suspect labels: per labelled pair, the probability that its label is wrong and a cartography category.

It owns the rule that answers "is it the label or the model?" (DESIGN.md §5, Inspect), as plain pandas and
numpy (no torch, no Qt: the GUI imports it). The out-of-fold scores come from ``training/folds.py``; the
training dynamics from the run's own training steps (``Project.pair_dynamics``; runs made before those were
recorded fall back to their evaluations); the votes and reviews from the project.

Everything is oriented to the label (m = r_label - r_other; a vote agrees with the label or not), so the
stored order of a and b, which reveals imported labels, changes nothing.

How the sources combine (log-odds that the label is wrong, from a symmetric prior of 0):

1. **The model.** Its evidence e for each label is a logit (``label_evidence``): the out-of-fold margin
   always (a model that never saw the pair). A head-mode run trains a linear head on a frozen backbone, which
   barely memorises, so its in-sample margin (fitted on all the data, not (K-1)/K of it) and the training
   dynamics' confidence (data cartography: mislabelled pairs stay at low confidence) are good evidence too:
   e is then the mean of the three, each divided by its root mean square (logit of the confidence). A
   fine-tune (or LoRA) run moves the backbone and memorises wrong labels, so there the in-sample margin and
   the dynamics would vouch for exactly the labels in question: only the out-of-fold margin counts.
   Each pair is a two-class problem relative to itself: the labelled side is better (class 1) or not (class
   0); it is entered twice, as itself and mirrored (-e, class 0), so both classes are alike and
   orientation-free. ``q`` is e calibrated on that mirrored problem by isotonic regression, interpolated
   linearly between the centres of its steps (continuous and strictly increasing between them, so the order
   of the pairs is that of their evidence, never an arbitrary order within a step) and odd-symmetric.
   cleanlab's confident joint (``count.estimate_joint``) on it estimates ε, the share of wrong labels (capped
   by the anchor estimate: the mean of the isotonic steps' q over the pairs whose evidence is most against
   their labels, which is ε itself where only flips reach); cleanlab ranks the labels
   (``rank.get_label_quality_scores``, the ``label_quality`` column) and flags issues
   (``filter.find_label_issues``, ``cleanlab_issue``).
   If a flipped label's evidence is distributed as the negative of a correct one's (exact for the folds,
   which are blind to the label; nearly so in head mode, where little is memorised), the density of e is
   f(e) = (1-ε) g(e) + ε g(-e), so with ρ = f(-e)/f(e) = (1-q)/q:
   P(flipped | e) = ε((1-ε)ρ - ε) / (1-2ε), clipped to [0.001, 0.999]. Its log-odds minus logit(ε) is the
   model's likelihood ratio log g(-e)/g(e), which does not depend on how many people labelled the pair.
2. **Votes.** Every annotator's current a/b vote on the pair (ties and both-bad say nothing about the order)
   adds ±w(strength)·logit(r): + against the label, - for it. r, the annotator's reliability, is their
   leave-one-out agreement with the others' majority (``team.majority_agreement``), shrunk towards 1-ε with
   10 pseudo-items and clipped to [0.5, 0.99]; 1-ε when they never overlapped with anyone. w (strength 1-4:
   0.5, 0.75, 1, 1.25; none: 1) is an assumption, not fitted: "negligibly better" says less than "much better".
   With one annotator of reliability 1-ε this gives back step 1 exactly.
3. **Adjudication** is a vote of reliability 0.99 (near certainty), strength weight 1, and replaces the
   annotators' votes (the adjudicator decided having seen them: they are not independent evidence again).

p_label_wrong = σ(model likelihood ratio + votes). ``tests/core/test_suspects.py`` checks it on synthetic
flips: of the pairs given about p, about p are flipped. The suspects table is sorted by p_label_wrong, its ties
(the clipped ends, equal votes) by the evidence. ``benchmarks/bench_label_noise.py`` measures the ranking on
real (HH-RLHF) and synthetic flips.

Categories, after dataset cartography (Swayamdipta et al. 2020: confidence = mean probability of the label
across evaluations, variability = its standard deviation): **ambiguous** (variability ≥ 0.2, or annotators
split on a/b without an adjudication); **likely mislabelled** (p_label_wrong ≥ 0.5 with a negative
out-of-fold margin: hard to learn, or learned in sample only by memorising); **hard to learn** (confidence
below 0.5); **easy** otherwise. Without dynamics, confidence is σ(in-sample margin), or σ(out-of-fold margin).
Dynamics need at least ``MIN_DYNAMICS_POINTS`` points per pair (a fine-tune run of two epochs has two): with
fewer, confidence and variability are NaN, ``dynamics_points`` says how many there were and the reason says
"too few points", and the category is made as if there were none.

Closing the loop: ``Project.review_label`` records a review (keep, flip, tie, both_bad, exclude); the table
says the latest review of each pair (``review``), ``include_reviewed=False`` leaves reviewed pairs out (the
queue), and ``compare_suspects`` shows what became of run A's suspects in run B.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

#: categories, worst first
CATEGORIES = ("likely mislabelled", "ambiguous", "hard to learn", "easy")
STRENGTH_WEIGHT: dict[int | None, float] = {1: 0.5, 2: 0.75, 3: 1.0, 4: 1.25, None: 1.0}
ADJUDICATION_RELIABILITY = 0.99
PRIOR_ITEMS = 10.0
RELIABILITY_RANGE = (0.5, 0.99)
P_CLIP = (0.001, 0.999)
#: the anchor estimate of ε averages q over the lowest max(ANCHOR_MIN, ANCHOR_SHARE * n) margins
ANCHOR_MIN, ANCHOR_SHARE = 20, 0.02
VARIABILITY_HIGH = 0.2
#: fewer points per pair than this and its dynamics are not used ("too few points")
MIN_DYNAMICS_POINTS = 5
CONFIDENCE_LOW = 0.5
#: the columns of a suspects table (``suspects_for_run``), in order
COLUMNS = [
    "comparison_id",
    "prompt",
    "chosen",
    "rejected",
    "label",
    "annotator",
    "in_sample_margin",
    "oof_margin",
    "p_label_wrong",
    "category",
    "confidence",
    "variability",
    "label_quality",
    "reason",
    "oof_source",
    "dynamics_points",
    "review",
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float))))


def _logit(p: float | np.ndarray) -> Any:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def label_evidence(pairs: pd.DataFrame, frozen_backbone: bool) -> np.ndarray:
    """The model's evidence for each label, a logit (positive: the label's side is better): the out-of-fold
    margin always; with a frozen backbone (head mode) also the in-sample margin and the logit of the
    training-dynamics confidence. Each is divided by its root mean square (its sd on the mirrored problem, so
    a flipped label still negates it) and a pair's evidence is the mean of those it has (NaN ones are left
    out). Oriented to the label, so the stored order of a and b changes nothing."""
    sources = [pairs["oof_margin"].to_numpy(dtype=float)]
    if frozen_backbone:
        sources.append(pairs["in_sample_margin"].to_numpy(dtype=float))
        sources.append(_logit(pairs["confidence"].to_numpy(dtype=float)))
    scaled = []
    for x in sources:
        finite = np.isfinite(x)
        if not finite.any():
            continue
        rms = float(np.sqrt(np.mean(x[finite] ** 2)))
        scaled.append(np.where(finite, x / rms if rms > 0 else 0.0, np.nan))
    stack = np.stack(scaled)
    count = np.isfinite(stack).sum(axis=0)
    return np.asarray(np.where(count > 0, np.nansum(stack, axis=0) / np.maximum(count, 1), 0.0))


def calibrated_probability(evidence: np.ndarray, interpolate: bool = True) -> np.ndarray:
    """q = P(the labelled side is better | e) for evidence logits e (margins): isotonic regression on the
    mirrored two-class problem (each e with class 1 and -e with class 0), made continuous and strictly
    increasing between its steps by interpolating linearly between the steps' centres (the mean e of each
    step; flat beyond the outermost centres), and exactly odd-symmetric. A step function would tie whole
    blocks of pairs and leave their order arbitrary; the interpolation keeps the calibration and orders them
    by their evidence. ``interpolate=False``: the steps themselves (the estimate of ε uses them: they are
    frequencies, where the interpolation's outermost centres are isotonic's least stable steps)."""
    from sklearn.isotonic import IsotonicRegression

    e = np.asarray(evidence, dtype=float)
    x = np.concatenate([e, -e])
    y = np.concatenate([np.ones(len(e)), np.zeros(len(e))])
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(x, y)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], fitted[order]
    # a step: a run of equal fitted values; its centre is the mean of its x
    starts = np.flatnonzero(np.r_[True, np.diff(ys) != 0])
    sizes = np.diff(np.r_[starts, len(xs)])
    centres = np.add.reduceat(xs, starts) / sizes
    values = ys[starts]

    def h(v: np.ndarray) -> np.ndarray:
        if interpolate:
            return np.asarray(np.interp(v, centres, values))
        # the step of each v: the last step starting at or below it (the first one below all)
        return np.asarray(values[np.clip(np.searchsorted(xs[starts], v, side="right") - 1, 0, len(starts) - 1)])

    q = 0.5 * (h(e) + 1.0 - h(-e))
    return np.clip(q, 1e-6, 1 - 1e-6)


def preload() -> None:
    """Import the libraries ``model_evidence`` uses (cleanlab, scikit-learn, SciPy: seconds), ahead of the
    first call; the GUI does it in a background thread at start-up (``ui.app.preload_in_background``)."""
    import cleanlab.count
    import cleanlab.filter
    import cleanlab.rank  # noqa: F401


def model_evidence(margins: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """(p_model, ε, label_quality, cleanlab_issue) of evidence logits oriented to the labels (``label_evidence``;
    step 1 of the module's rule)."""
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    q = calibrated_probability(margins)
    n = len(q)
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    probs = np.concatenate([np.stack([1 - q, q], axis=1), np.stack([q, 1 - q], axis=1)])
    joint = estimate_joint(labels, probs)
    # The anchor estimate: where the margin is most against the label, the calibrated q is the flip rate
    # itself (f(m) = ε g(-m) there). cleanlab's confident joint counts the undecided pairs near m = 0 as
    # issues too and overestimates ε by a few points on synthetic flips, so the smaller of the two is used.
    steps = calibrated_probability(margins, interpolate=False)
    anchor = float(np.mean(np.sort(steps)[: max(ANCHOR_MIN, math.ceil(ANCHOR_SHARE * n))]))
    eps = float(np.clip(min(joint[0, 1] + joint[1, 0], anchor), 1e-3, 0.45))
    quality = get_label_quality_scores(labels, probs)[:n]
    # One process: by default it forks a worker pool, and a fork of the GUI process (a large, threaded
    # process) holds its GIL while the pages are copied (and forking beside Qt's threads is unsafe).
    issues = find_label_issues(labels, probs, n_jobs=1)
    issue = issues[:n] | issues[n:]
    rho = (1 - q) / q
    p = eps * ((1 - eps) * rho - eps) / (1 - 2 * eps)
    return np.clip(p, *P_CLIP), eps, np.asarray(quality, dtype=float), np.asarray(issue, dtype=bool)


def reliabilities(votes: pd.DataFrame, eps: float) -> dict[str, float]:
    """Each annotator's reliability r: leave-one-out agreement with the others' majority, shrunk towards 1-ε
    (``PRIOR_ITEMS`` pseudo-items) and clipped to ``RELIABILITY_RANGE``."""
    from workbench.core.team import majority_agreement

    units: dict[Any, dict[str, str]] = defaultdict(dict)
    for cid, annotator, choice, adj in votes[["comparison_id", "annotator", "choice", "adjudication"]].itertuples(
        index=False
    ):
        if not adj:
            units[cid][annotator] = choice
    out = {}
    for name, row in majority_agreement(units).items():
        r = (row["agreed"] + PRIOR_ITEMS * (1 - eps)) / (row["items"] + PRIOR_ITEMS)
        out[name] = float(np.clip(r, *RELIABILITY_RANGE))
    return out


def score_suspects(
    pairs: pd.DataFrame, votes: pd.DataFrame | None = None, frozen_backbone: bool = False
) -> pd.DataFrame:
    """``pairs`` (comparison_id, label 'a'/'b', oof_margin; optional in_sample_margin, confidence,
    variability) with p_label_wrong, category, reason, label_quality, cleanlab_issue, evidence and p_model
    added. ``votes``: comparison_id, annotator, choice, strength, adjudication (bool); None: no votes known, as
    if each label came from one annotator of average reliability. ``frozen_backbone``: the run trained a head
    on a frozen backbone (head mode), so its in-sample margin and training dynamics count as evidence too
    (``label_evidence``); otherwise only the out-of-fold margin does."""
    out = pairs.copy().reset_index(drop=True)
    for col in ("in_sample_margin", "confidence", "variability"):
        if col not in out:
            out[col] = np.nan
    m = out["oof_margin"].to_numpy(dtype=float)
    if len(out) == 0:
        for col in ("evidence", "p_model", "p_label_wrong", "label_quality"):
            out[col] = pd.Series(dtype=float)
        out["cleanlab_issue"] = pd.Series(dtype=bool)
        out["category"] = out["reason"] = pd.Series(dtype=object)
        return out
    out["evidence"] = label_evidence(out, frozen_backbone)
    p_model, eps, quality, issue = model_evidence(out["evidence"].to_numpy(dtype=float))
    logodds = _logit(p_model) - _logit(eps)
    out["p_model"], out["label_quality"], out["cleanlab_issue"] = p_model, quality, issue
    labels = dict(zip(out["comparison_id"], out["label"]))
    against: Counter = Counter()
    voters: Counter = Counter()
    adjudicated: set = set()
    evidence: defaultdict[Any, float] = defaultdict(float)
    if votes is None or votes.empty:
        evidence.update({cid: -_logit(1 - eps) for cid in labels})
        voters.update({cid: 1 for cid in labels})
    else:
        votes = votes[votes["choice"].isin(["a", "b"]) & votes["comparison_id"].isin(list(labels))]
        rel = reliabilities(votes, eps)
        # The adjudicator decided having seen the votes: theirs is the word, the votes are not counted again.
        adjudicated = set(votes.loc[votes["adjudication"].astype(bool), "comparison_id"])
        for cid, annotator, choice, strength, adj in votes[
            ["comparison_id", "annotator", "choice", "strength", "adjudication"]
        ].itertuples(index=False):
            if adj:
                r, w = ADJUDICATION_RELIABILITY, 1.0
            else:
                voters[cid] += 1
                against[cid] += choice != labels[cid]
                if cid in adjudicated:
                    continue
                r = rel.get(annotator, 1 - eps)
                w = STRENGTH_WEIGHT.get(None if strength is None or pd.isna(strength) else int(strength), 1.0)
            sign = 1.0 if choice != labels[cid] else -1.0
            evidence[cid] += sign * w * float(_logit(r))
    total = logodds + np.array([evidence.get(c, 0.0) for c in out["comparison_id"]])
    out["p_label_wrong"] = _sigmoid(total)
    conf = out["confidence"].to_numpy(dtype=float)
    fallback = np.where(
        np.isfinite(out["in_sample_margin"].to_numpy(dtype=float)),
        _sigmoid(out["in_sample_margin"].to_numpy(dtype=float)),
        _sigmoid(m),
    )
    out["confidence_used"] = np.where(np.isfinite(conf), conf, fallback)
    cats, reasons = [], []
    for row, cid in zip(out.itertuples(index=False), out["comparison_id"]):
        split = 0 < against[cid] < voters[cid] and cid not in adjudicated
        cat, why = _category(row, split)
        cats.append(cat)
        reasons.append(why + _vote_text(against[cid], voters[cid], cid in adjudicated) + _points_text(row))
    out["category"], out["reason"] = cats, reasons
    return out


def _category(row: Any, split: bool) -> tuple[str, str]:
    m, p, conf, var = row.oof_margin, row.p_label_wrong, row.confidence_used, row.variability
    odds = f"out-of-fold margin {m:+.2f}, p(label wrong) {p:.2f}"
    if p >= 0.5 and m < 0:
        memorised = conf >= CONFIDENCE_LOW
        return "likely mislabelled", (
            f"{odds}; learned in sample only (confidence {conf:.2f}): memorised"
            if memorised
            else f"{odds}; hard to learn (confidence {conf:.2f})"
        )
    if split:
        return "ambiguous", f"{odds}; annotators split"
    if np.isfinite(var) and var >= VARIABILITY_HIGH:
        return "ambiguous", f"{odds}; the model changed its mind in training (variability {var:.2f})"
    if conf < CONFIDENCE_LOW:
        return "hard to learn", f"{odds}; low confidence {conf:.2f}"
    return "easy", f"{odds}; confidence {conf:.2f}"


def _points_text(row: Any) -> str:
    n = getattr(row, "dynamics_points", 0)
    if n is None or not np.isfinite(n) or not 0 < n < MIN_DYNAMICS_POINTS:
        return ""
    return f"; training dynamics: too few points ({int(n)} < {MIN_DYNAMICS_POINTS}), not used"


def _vote_text(against: int, voters: int, adjudicated: bool) -> str:
    parts = []
    if voters > 1:
        parts.append(f"{against} of {voters} annotators against the label")
    if adjudicated:
        parts.append("adjudicated")
    return "; " + "; ".join(parts) if parts else ""


def training_dynamics(history: pd.DataFrame) -> pd.DataFrame:
    """Per comparison, from a run's scores at every evaluation (``Project.pair_score_history``, margins oriented
    to the run's label; the fallback for runs made before the training steps' dynamics were stored): n_points,
    confidence (mean σ(margin)) and variability (its standard deviation), both NaN with fewer than
    ``MIN_DYNAMICS_POINTS`` points."""
    if history.empty:
        return _usable_dynamics(
            pd.DataFrame({"comparison_id": [], "n_points": [], "confidence": [], "variability": []})
        )
    p = history.assign(p=_sigmoid(history["margin"].to_numpy(dtype=float)))
    grouped = p.groupby("comparison_id")["p"]
    out = pd.DataFrame({"n_points": grouped.size(), "confidence": grouped.mean(), "variability": grouped.std(ddof=0)})
    return _usable_dynamics(out.reset_index())


def _usable_dynamics(frame: pd.DataFrame) -> pd.DataFrame:
    """comparison_id, dynamics_points, confidence, variability: NaN where there are too few points."""
    n = frame["n_points"].to_numpy(dtype=np.int64) if len(frame) else np.zeros(0, dtype=np.int64)
    few = n < MIN_DYNAMICS_POINTS
    return pd.DataFrame(
        {
            "comparison_id": frame["comparison_id"].to_numpy(dtype=np.int64),
            "dynamics_points": n,
            "confidence": np.where(few, np.nan, frame["confidence"].to_numpy(dtype=float)),
            "variability": np.where(few, np.nan, frame["variability"].to_numpy(dtype=float)),
        }
    )


def run_dynamics(project: Any, run_id: int) -> pd.DataFrame:
    """A run's dynamics per pair (comparison_id, dynamics_points, confidence, variability): stored from its
    training steps, or for an older run from its evaluations."""
    stored = project.pair_dynamics(run_id)
    if not stored.empty:
        return _usable_dynamics(stored)
    return training_dynamics(project.pair_score_history(run_id))


def too_few_points(table: pd.DataFrame) -> int:
    """How many pairs of a suspects table have dynamics with too few points to use (0 < n < the minimum)."""
    n = table["dynamics_points"].to_numpy(dtype=float)
    return int(np.count_nonzero((n > 0) & (n < MIN_DYNAMICS_POINTS)))


def suspects_for_run(project: Any, run_id: int, include_reviewed: bool = True) -> pd.DataFrame:
    """The suspects table of a run (``COLUMNS``), most suspect first: its labelled pairs with their label, its
    annotator, the in-sample margin (latest evaluation) and the out-of-fold one (stored by
    ``Project.add_oof_scores``), the dynamics (``run_dynamics``), the votes now in the project and the latest
    review of each pair (``review``, "" when none). ``include_reviewed=False`` leaves reviewed pairs out (the
    queue: a kept label has been confirmed). ValueError when the run has no out-of-fold scores."""
    oof = project.oof_scores(run_id)
    if oof.empty:
        raise ValueError(f"run {run_id} has no out-of-fold scores; compute them first (workbench suspects does)")
    run = project.run(run_id)
    snapshot = run["data_snapshot"]
    label_of = dict(zip(snapshot.get("comparison_ids", []), snapshot.get("choices", "")))
    judgment_of = dict(zip(snapshot.get("comparison_ids", []), snapshot.get("judgment_ids", [])))
    names = project.judgment_annotators([int(j) for j in judgment_of.values()])
    pairs = pd.DataFrame(
        {
            "comparison_id": oof["comparison_id"].astype("int64"),
            "label": [label_of.get(int(c), ch) for c, ch in zip(oof["comparison_id"], oof["chosen"])],
            "oof_margin": oof["margin"].astype(float),
            "oof_source": oof["source"],
        }
    )
    pairs["annotator"] = [names.get(int(judgment_of.get(int(c), -1)), "") for c in pairs["comparison_id"]]
    scores = project.pair_scores(run_id)
    in_sample = dict(zip(scores["comparison_id"], scores["margin"])) if not scores.empty else {}
    pairs["in_sample_margin"] = [in_sample.get(int(c), math.nan) for c in pairs["comparison_id"]]
    pairs = pairs.merge(run_dynamics(project, run_id), on="comparison_id", how="left")
    pairs["dynamics_points"] = pairs["dynamics_points"].fillna(0).astype("int64")
    frozen = (run.get("mode") or run["config"].get("mode")) == "head" and not run["config"].get("lora")
    scored = score_suspects(pairs, project_votes(project), frozen_backbone=frozen)
    reviewed = project.reviewed()
    scored["review"] = [reviewed.get(int(c), "") for c in scored["comparison_id"]]
    if not include_reviewed:
        scored = scored[scored["review"] == ""].reset_index(drop=True)
    texts = project.comparisons_frame(scored["comparison_id"].tolist()).set_index("comparison_id")
    a_wins = scored["label"].to_numpy() == "a"
    rows = texts.loc[scored["comparison_id"]]
    scored["prompt"] = rows["prompt"].to_numpy()
    scored["chosen"] = np.where(a_wins, rows["response_a"].to_numpy(), rows["response_b"].to_numpy())
    scored["rejected"] = np.where(a_wins, rows["response_b"].to_numpy(), rows["response_a"].to_numpy())
    # ties of p_label_wrong (its clipped ends; equal votes) are ordered by the evidence, least for the label first
    order = scored.sort_values(
        ["p_label_wrong", "evidence", "comparison_id"], ascending=[False, True, True], kind="stable"
    )
    return order[COLUMNS].reset_index(drop=True)


#: the columns of ``compare_suspects``, in order
COMPARE_COLUMNS = [
    "comparison_id",
    "prompt",
    "label_a",
    "label_b",
    "category_a",
    "category_b",
    "p_label_wrong_a",
    "p_label_wrong_b",
    "oof_margin_a",
    "oof_margin_b",
    "review",
    "label_flipped",
    "category_changed",
    "change",
]


def is_suspect(table: pd.DataFrame) -> pd.Series:
    """The suspects of a suspects table: any category but "easy", or p_label_wrong of 0.5 or more."""
    return (table["category"] != "easy") | (table["p_label_wrong"] >= 0.5)


def compare_suspects(project: Any, run_a: int, run_b: int) -> pd.DataFrame:
    """What became of run A's suspects (``is_suspect``) in run B (``COMPARE_COLUMNS``), most suspect in A
    first: the stored side each run trained as the label ('a'/'b'; None where B did not train on the pair),
    each run's category, p_label_wrong and out-of-fold margin, the pair's latest review, and ``change``:
    "label flipped" (B trained on the other side), "left training" (B did not train on it: excluded, tie,
    both bad, or split), "now <category>" (same label, another category) or "unchanged". Both runs need
    out-of-fold scores (ValueError otherwise)."""
    a = suspects_for_run(project, run_a)
    b = suspects_for_run(project, run_b).set_index("comparison_id")
    a = a[is_suspect(a)].reset_index(drop=True)
    in_b = a["comparison_id"].isin(b.index).to_numpy()

    def from_b(col: str) -> list:
        return [b.at[c, col] if ok else None for c, ok in zip(a["comparison_id"], in_b)]

    label_b, category_b = from_b("label"), from_b("category")
    out = pd.DataFrame(
        {
            "comparison_id": a["comparison_id"].astype("int64"),
            "prompt": a["prompt"],
            "label_a": a["label"],
            "label_b": pd.Series(label_b, dtype=object),
            "category_a": a["category"],
            "category_b": pd.Series(category_b, dtype=object),
            "p_label_wrong_a": a["p_label_wrong"].astype(float),
            "p_label_wrong_b": pd.Series([math.nan if v is None else v for v in from_b("p_label_wrong")], dtype=float),
            "oof_margin_a": a["oof_margin"].astype(float),
            "oof_margin_b": pd.Series([math.nan if v is None else v for v in from_b("oof_margin")], dtype=float),
            "review": a["review"],
        }
    )
    out["label_flipped"] = in_b & (out["label_a"].to_numpy() != out["label_b"].to_numpy())
    out["category_changed"] = in_b & (out["category_a"].to_numpy() != out["category_b"].to_numpy())
    out["change"] = [
        "left training" if not ok else "label flipped" if flipped else f"now {cat_b}" if changed else "unchanged"
        for ok, flipped, changed, cat_b in zip(in_b, out["label_flipped"], out["category_changed"], out["category_b"])
    ]
    return out[COMPARE_COLUMNS]


def project_votes(project: Any) -> pd.DataFrame:
    """Every current label of the project as a vote: comparison_id, annotator, choice, strength, adjudication."""
    labels = project.labels()
    return pd.DataFrame(
        {
            "comparison_id": labels["comparison_id"].astype("int64"),
            "annotator": labels["annotator"],
            "choice": labels["choice"],
            "strength": [None if pd.isna(s) else int(s) for s in labels["strength"]],
            "adjudication": (labels["kind"] == "adjudication") | (labels["annotator_kind"] == "adjudicator"),
        }
    )


def latest_finished_run(runs: pd.DataFrame) -> int:
    """The newest finished run of ``Project.runs()``; ValueError when there is none."""
    done = runs[runs["status"] == "finished"]
    if done.empty:
        raise ValueError("the project has no finished run; train one first (workbench train) or pass --run")
    return int(done["id"].max())


def as_mapping(frame: pd.DataFrame) -> Mapping[str, Any]:
    """Columns of a frame as lists (for ``write_table``), NaN as None."""
    return {c: [None if isinstance(v, float) and math.isnan(v) else v for v in frame[c].tolist()] for c in frame}
