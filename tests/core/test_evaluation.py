"""The evaluation figures (core/evaluation.py) on constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.core import evaluation as ev


def test_mcnemar_on_a_constructed_case_matches_the_exact_binomial():
    # 50 pairs both get right, 10 only A, 2 only B, 8 both wrong.
    a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 8, dtype=bool)
    b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 8, dtype=bool)
    out = ev.mcnemar(a, b)
    assert (out["only_a"], out["only_b"], out["discordant"]) == (10, 2, 12)
    # two-sided exact p: 2 * P(X >= 10), X ~ Binomial(12, 1/2) = 2 * (66 + 12 + 1) / 4096
    assert out["p_value"] == pytest.approx(2 * (66 + 12 + 1) / 4096, rel=1e-9)
    assert ev.mcnemar(a, a)["p_value"] == 1.0 and ev.mcnemar(a, a)["discordant"] == 0


def test_paired_comparison_reports_the_flipped_pairs_and_a_difference_interval():
    rng = np.random.default_rng(1)
    n = 400
    m_b = rng.normal(0.2, 1, n)
    m_a = m_b.copy()
    m_a[:60] = np.abs(m_a[:60]) + 0.1  # A fixes some pairs
    out = ev.compare(m_a, m_b, groups=np.arange(n) // 2, comparison_ids=np.arange(n) + 100)
    fixed = set((np.flatnonzero((m_a > 0) & ~(m_b > 0)) + 100).tolist())
    assert set(out["flipped_to_right"]) == fixed and out["flipped_to_wrong"] == []
    assert out["difference"] == pytest.approx(len(fixed) / n)
    lo, hi = out["difference_ci"]
    assert 0 < lo < out["difference"] < hi
    assert out["mcnemar"]["p_value"] < 1e-6


def _calibrated(n: int, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Margins of a model whose sigma(z) is the true preference probability, reported as ``scale * z``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    chosen_is_a = rng.random(n) < ev.sigmoid(z)
    return np.where(chosen_is_a, z, -z) * scale


def test_a_perfectly_calibrated_set_has_ece_near_zero_and_temperature_near_one():
    m = _calibrated(200_000)
    rel = ev.reliability(m)
    assert rel["ece"] < 0.005
    assert sum(b["n"] for b in rel["bins"]) == len(m)
    assert ev.fit_temperature(m) == pytest.approx(1.0, abs=0.03)


def test_temperature_scaling_repairs_an_overconfident_model():
    m = _calibrated(100_000, scale=3.0)
    assert ev.reliability(m)["ece"] > 0.05
    t = ev.fit_temperature(m)
    assert t == pytest.approx(3.0, rel=0.05)
    assert ev.reliability(m, t)["ece"] < 0.01
    cal = ev.calibration_summary(m)
    assert cal["val_ece_scaled"] < cal["val_ece"] and cal["val_nll_scaled"] < cal["val_nll"]


def test_accuracy_is_strict_and_the_bootstrap_resamples_prompts():
    m = np.array([1.0, 0.0, -1.0, 2.0])
    s = ev.summary(m, groups=[0, 1, 2, 3])
    assert s["accuracy"] == 0.5 and s["ties"] == 1 and s["correct"] == 2
    assert s["loss"] == pytest.approx(np.mean(np.logaddexp(0, -m)))
    # 100 prompts, each with 4 pairs that share the outcome: the interval by prompt is that of 100 units,
    # wider than if the 400 pairs were independent.
    outcome = np.repeat(np.r_[np.ones(60), -np.ones(40)], 4)
    by_prompt = ev.summary(outcome, groups=np.repeat(np.arange(100), 4))["accuracy_ci"]
    by_pair = ev.summary(outcome, groups=np.arange(400))["accuracy_ci"]
    assert by_prompt[1] - by_prompt[0] > 1.5 * (by_pair[1] - by_pair[0])
    assert by_prompt[0] < 0.6 < by_prompt[1]
    assert ev.summary(outcome, groups=np.repeat(np.arange(100), 4))["accuracy_ci"] == by_prompt  # fixed seed


def test_length_control_puts_the_longer_wins_baseline_beside_each_bin():
    # chosen longer by 300 chars in 10 pairs (model right in 6), shorter by 300 in 10 (model right in 2)
    m = np.r_[np.ones(6), -np.ones(4), np.ones(2), -np.ones(8)]
    len_c = np.r_[np.full(10, 400), np.full(10, 100)]
    len_r = np.r_[np.full(10, 100), np.full(10, 400)]
    out = ev.length_control(m, len_c, len_r)
    by = {(b["lo"], b["hi"]): b for b in out["bins"]}
    assert by[(200.0, 500.0)] == {"lo": 200.0, "hi": 500.0, "n": 10, "accuracy": 0.6, "longer_baseline": 1.0}
    assert by[(-500.0, -200.0)]["accuracy"] == 0.2 and by[(-500.0, -200.0)]["longer_baseline"] == 0.0
    assert out["longer_baseline_accuracy"] == 0.5
    # the model prefers the longer one where it is right on long-chosen or wrong on short-chosen pairs
    assert out["model_prefers_longer"] == pytest.approx((6 + 8) / 20)


def test_slices_and_rewardbench_sections_weight_subsets_by_its_counts():
    rows = []
    for subset, n, right in (("alpacaeval-easy", 10, 9), ("mt-bench-easy", 10, 5), ("donotanswer", 4, 1), ("x", 2, 2)):
        rows += [(subset, 1.0 if i < right else -1.0) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["subset", "margin"])
    table = ev.slice_table(frame["margin"].to_numpy(), frame["subset"].tolist(), groups=list(range(len(frame))))
    acc = {r["slice"]: r["accuracy"] for r in table}
    assert acc == {"alpacaeval-easy": 0.9, "mt-bench-easy": 0.5, "donotanswer": 0.25, "x": 1.0}
    sections = ev.rewardbench_sections(table)
    assert sections is not None
    assert sections["Chat"] == pytest.approx((100 * 0.9 + 28 * 0.5) / 128)
    assert sections["Safety"] == pytest.approx(0.25)
    assert "Reasoning" not in sections and sections["Score"] == pytest.approx((sections["Chat"] + 0.25) / 2)
    assert ev.rewardbench_sections([{"slice": "x", "accuracy": 1.0}]) is None


def test_evaluate_pairs_reports_every_part():
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "margin": rng.normal(0.5, 1, n),
            "group": np.arange(n) // 3,
            "prompt": ["p" * (10 + i) for i in range(n)],
            "chosen": ["c" * int(x) for x in rng.integers(1, 600, n)],
            "rejected": ["r" * int(x) for x in rng.integers(1, 600, n)],
            "subset": ["a", "b"] * (n // 2),
            "source": ["f.jsonl"] * n,
            "annotator": [None] * n,
            "strength": [3] * n,
        }
    )
    out = ev.evaluate_pairs(frame, temperature=2.0)
    assert out["overall"]["n"] == n and out["overall"]["n_prompts"] == 20
    assert set(out["slices"]) == {"subset", "source", "strength", "prompt_length"}  # annotator all missing
    assert out["calibration"]["scaled"]["temperature"] == 2.0
    assert sum(b["n"] for b in out["length"]["bins"]) == n
    assert math.isclose(out["overall"]["accuracy"], float(np.mean(frame["margin"] > 0)))
