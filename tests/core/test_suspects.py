"""The suspect-label rule on given margins and votes (no torch): symmetry in a/b, votes, categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.core.suspects import score_suspects, too_few_points, training_dynamics


def _pairs(n: int = 400, flip: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Out-of-fold margins as a blind model gives them: |N(2, 1.5)| towards the truth, negated when flipped."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < flip
    s = rng.normal(2.0, 1.5, n)
    label = np.where(rng.random(n) < 0.5, "a", "b")
    return pd.DataFrame(
        {"comparison_id": np.arange(1, n + 1), "label": label, "oof_margin": np.where(flipped, -s, s)}
    ), flipped


def _swap(frame: pd.DataFrame, columns: list[str], which: np.ndarray) -> pd.DataFrame:
    out = frame.copy()
    for col in columns:
        out[col] = [({"a": "b", "b": "a"}.get(v, v) if w else v) for v, w in zip(out[col], which)]
    return out


def test_random_ab_swaps_change_nothing():
    pairs, _ = _pairs()
    rng = np.random.default_rng(1)
    votes = pd.DataFrame(
        {
            "comparison_id": np.repeat(pairs["comparison_id"], 2),
            "annotator": ["ann", "bob"] * len(pairs),
            "choice": [c if rng.random() < 0.8 else {"a": "b", "b": "a"}[c] for c in np.repeat(pairs["label"], 2)],
            "strength": rng.integers(1, 5, 2 * len(pairs)),
            "adjudication": False,
        }
    )
    base = score_suspects(pairs, votes)
    swap_of = dict(zip(pairs["comparison_id"], rng.random(len(pairs)) < 0.5))
    swapped = score_suspects(
        _swap(pairs, ["label"], np.array([swap_of[c] for c in pairs["comparison_id"]])),
        _swap(votes, ["choice"], np.array([swap_of[c] for c in votes["comparison_id"]])),
    )
    for col in ("p_label_wrong", "label_quality", "cleanlab_issue", "category", "reason"):
        assert base[col].tolist() == swapped[col].tolist(), col


def test_head_mode_evidence_is_symmetric_and_fine_tune_uses_the_folds_only():
    """A frozen backbone adds the in-sample margin and the dynamics' confidence to the evidence; a/b swaps still
    change nothing, and without a frozen backbone (fine-tune: memorised labels) they are ignored."""
    pairs, flipped = _pairs()
    rng = np.random.default_rng(2)
    # in sample: memorised a little (flips pulled towards their label), confidence from the same margin
    pairs["in_sample_margin"] = pairs["oof_margin"] + np.where(flipped, 1.0, 0.0) + rng.normal(0, 0.5, len(pairs))
    pairs["confidence"] = 1 / (1 + np.exp(-pairs["in_sample_margin"]))
    swap = rng.random(len(pairs)) < 0.5
    head = score_suspects(pairs, frozen_backbone=True)
    assert (
        head["p_label_wrong"].tolist()
        == score_suspects(_swap(pairs, ["label"], swap), frozen_backbone=True)["p_label_wrong"].tolist()
    )
    tuned = score_suspects(pairs)
    folds_only = score_suspects(pairs.drop(columns=["in_sample_margin", "confidence"]), frozen_backbone=True)
    assert np.allclose(tuned["p_label_wrong"], folds_only["p_label_wrong"])
    assert not np.allclose(head["p_label_wrong"], tuned["p_label_wrong"])
    assert len(np.unique(head["p_label_wrong"])) > len(pairs) // 2  # continuous: no blocks of ties
    assert head.loc[flipped, "p_label_wrong"].mean() > head.loc[~flipped, "p_label_wrong"].mean() + 0.3


def test_model_evidence_is_calibrated_on_flips_and_ranks_them_first():
    pairs, flipped = _pairs(n=3000)
    out = score_suspects(pairs)
    p = out["p_label_wrong"].to_numpy()
    for lo, hi in [(0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.0)]:
        inside = (p >= lo) & (p < hi) if hi < 1 else p >= lo
        if inside.sum() >= 50:
            assert abs(flipped[inside].mean() - p[inside].mean()) < 0.1, (lo, hi)
    assert abs(p.mean() - flipped.mean()) < 0.03
    assert out.loc[flipped, "cleanlab_issue"].mean() > 0.6 and out.loc[~flipped, "cleanlab_issue"].mean() < 0.1


def test_votes_and_adjudication_move_the_probability():
    pairs = pd.DataFrame({"comparison_id": [1, 2, 3, 4], "label": ["a", "b", "a", "a"], "oof_margin": [0.0] * 4})
    pairs = pd.concat([pairs, _pairs(200)[0].assign(comparison_id=lambda f: f["comparison_id"] + 10)])
    votes = pd.DataFrame(
        [
            (1, "ann", "a", 3, False),
            (1, "bob", "a", 3, False),  # both agree with the label
            (2, "ann", "b", 3, False),
            (2, "bob", "a", 3, False),  # split
            (3, "ann", "b", 4, False),
            (3, "bob", "b", 4, False),
            (3, "judge", "a", None, True),  # adjudicated
            (4, "ann", "b", 3, False),
            (4, "bob", "b", 3, False),  # both against
        ],
        columns=["comparison_id", "annotator", "choice", "strength", "adjudication"],
    )
    out = score_suspects(pairs, votes).set_index("comparison_id")
    p = out["p_label_wrong"]
    assert p[1] < p[2] < p[4] and p[3] < 0.1 and p[4] > 0.5
    assert out.loc[2, "category"] == "ambiguous" and "annotators split" in out.loc[2, "reason"]
    assert "adjudicated" in out.loc[3, "reason"] and out.loc[3, "category"] != "ambiguous"


def test_categories_follow_cartography():
    pairs = pd.DataFrame(
        {
            "comparison_id": [1, 2, 3, 4, 5],
            "label": ["a"] * 5,
            "oof_margin": [4.0, -4.0, -4.0, 0.2, 0.3],
            "in_sample_margin": [4.0, 3.0, -2.0, 0.1, 0.2],
            "confidence": [0.95, 0.9, 0.2, 0.3, 0.55],
            "variability": [0.02, 0.05, 0.03, 0.05, 0.3],
        }
    )
    pairs = pd.concat([pairs, _pairs(300)[0].assign(comparison_id=lambda f: f["comparison_id"] + 10)])
    out = score_suspects(pairs).set_index("comparison_id")
    assert out.loc[1, "category"] == "easy"
    assert out.loc[2, "category"] == "likely mislabelled" and "memorised" in out.loc[2, "reason"]
    assert out.loc[3, "category"] == "likely mislabelled" and "hard to learn" in out.loc[3, "reason"]
    assert out.loc[4, "category"] == "hard to learn"
    assert out.loc[5, "category"] == "ambiguous" and "variability" in out.loc[5, "reason"]


def test_training_dynamics_mean_and_spread_of_the_label_probability():
    history = pd.DataFrame(
        {"comparison_id": [1] * 6 + [2], "step": [*range(1, 7), 1], "margin": [0.0, 100.0] * 3 + [3.0]}
    )
    dyn = training_dynamics(history).set_index("comparison_id")
    assert dyn.loc[1, "confidence"] == pytest.approx(0.75) and dyn.loc[1, "variability"] == pytest.approx(0.25)
    assert dyn.loc[1, "dynamics_points"] == 6 and dyn.loc[2, "dynamics_points"] == 1
    assert np.isnan(dyn.loc[2, "variability"]) and np.isnan(dyn.loc[2, "confidence"])  # too few points


def test_too_few_points_are_reported_not_used():
    """Two points per pair (a fine-tune run of two epochs): no dynamics-based category, and the reason says so."""
    pairs = pd.DataFrame(
        {
            "comparison_id": [1, 2],
            "label": ["a", "a"],
            "oof_margin": [0.3, 0.3],
            "in_sample_margin": [2.0, 2.0],
            "confidence": [np.nan, 0.55],
            "variability": [np.nan, 0.3],
            "dynamics_points": [2, 20],
        }
    )
    pairs = pd.concat([pairs, _pairs(300)[0].assign(comparison_id=lambda f: f["comparison_id"] + 10)])
    out = score_suspects(pairs).set_index("comparison_id")
    assert out.loc[1, "category"] == "easy" and "too few points (2 < 5)" in out.loc[1, "reason"]
    assert out.loc[2, "category"] == "ambiguous" and "too few" not in out.loc[2, "reason"]
    assert too_few_points(out.reset_index().fillna({"dynamics_points": 0})) == 1
