"""Evaluation figures of a reward model on labelled pairs, from its margins alone (no torch, no plotting).

Every figure here takes the margins m = r(chosen) - r(rejected) of a set of pairs and what is known about
the pairs (their prompt, texts, source, annotator, strength, subset), so that a run's stored scores, an
exported folder's scores of a file, or two runs side by side all go through the same code:

- ``accuracy`` counts a pair right only when m > 0 strictly (ties are wrong and counted apart); ``loss`` is
  the Bradley-Terry loss -log sigma(m);
- intervals are percentile bootstraps that resample *prompts*, not pairs (pairs of one prompt are not
  independent: a model that misreads a prompt gets all its pairs wrong), with a fixed seed;
- ``mcnemar`` is the exact (binomial) McNemar test on the pairs two models disagree on (scipy's
  ``binomtest``), and ``paired_bootstrap`` the interval of the accuracy difference, both on the same pairs;
- calibration reads sigma(m / T) as the probability that the chosen response is preferred; the reliability
  diagram and the expected calibration error (ECE) use the symmetric form: confidence max(p, 1 - p) against
  the share of pairs whose preferred side was right (which side was stored first says nothing);
  ``fit_temperature`` is the 1-D minimisation of the NLL of sigma(m / T) on validation pairs;
- length control: accuracy in bins of the length difference (chosen minus rejected, in characters), with the
  "always prefer the longer response" baseline of the same pairs beside it;
- slices by any column (RewardBench's ``subset`` with its section scores, source file, annotator, strength,
  prompt length).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: the bootstrap's fixed seed and replicates (2,000 keeps the 95% percentile ends within about 0.005 of
#: their limit for a few hundred prompts, and costs milliseconds)
BOOTSTRAP_SEED = 0
BOOTSTRAP_REPS = 2000
#: bins of the reliability diagram over confidence [0.5, 1]
CALIBRATION_BINS = 10
#: edges of the length-difference bins, in characters (chosen minus rejected)
LENGTH_EDGES = (-np.inf, -500.0, -200.0, -50.0, 50.0, 200.0, 500.0, np.inf)

#: RewardBench (Lambert et al. 2024): its subsets by section and the example counts its section scores are
#: weighted by (``rewardbench/constants.py``; math-prm is up-weighted to count as much as the code subsets)
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "Safety": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
REWARDBENCH_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154,
    "xstest-should-respond": 250,
    "donotanswer": 136,
    **{f"hep-{lang}": 164 for lang in ("cpp", "go", "java", "js", "python", "rust")},
}


# ------------------------------------------------------------------------------------------ basics
def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def pair_losses(margins: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """-log sigma(m / T) per pair, computed stably (logaddexp)."""
    return np.logaddexp(0.0, -np.asarray(margins, dtype=np.float64) / temperature)


def _group_index(groups: Sequence[Any]) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(pd.Series(list(groups), dtype=object), use_na_sentinel=False)
    return np.asarray(codes), len(uniques)


def _bootstrap_ratio(
    num: np.ndarray, den: np.ndarray, groups: Sequence[Any], reps: int, seed: int
) -> tuple[float, float] | None:
    """95% percentile interval of sum(num) / sum(den) when whole groups are resampled with replacement."""
    codes, g = _group_index(groups)
    if g < 2:
        return None
    gnum = np.bincount(codes, weights=num, minlength=g)
    gden = np.bincount(codes, weights=den, minlength=g)
    rng = np.random.default_rng(seed)
    stats = []
    chunk = max(1, min(reps, 4_000_000 // g))  # bounded memory: a (chunk, groups) count matrix at a time
    done = 0
    while done < reps:
        n = min(chunk, reps - done)
        counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n).astype(np.float64)
        d = counts @ gden
        stats.append(np.divide(counts @ gnum, d, out=np.full(n, np.nan), where=d > 0))
        done += n
    values = np.concatenate(stats)
    values = values[np.isfinite(values)]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def summary(
    margins: np.ndarray,
    groups: Sequence[Any],
    *,
    temperature: float = 1.0,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """n, accuracy (strict) and its interval, ties, loss and its interval, mean margin of a set of pairs;
    ``groups`` (one per pair, e.g. the prompt id) is what the bootstrap resamples."""
    m = np.asarray(margins, dtype=np.float64)
    n = len(m)
    if n == 0:
        return {"n": 0, "accuracy": None, "accuracy_ci": None, "ties": 0, "loss": None, "loss_ci": None}
    right = (m > 0).astype(np.float64)
    losses = pair_losses(m, temperature)
    ones = np.ones(n)
    return {
        "n": n,
        "n_prompts": len(set(groups)),
        "correct": int(right.sum()),
        "accuracy": float(right.mean()),
        "accuracy_ci": _bootstrap_ratio(right, ones, groups, reps, seed),
        "ties": int(np.count_nonzero(m == 0)),
        "loss": float(losses.mean()),
        "loss_ci": _bootstrap_ratio(losses, ones, groups, reps, seed),
        "mean_margin": float(m.mean()),
    }


# ------------------------------------------------------------------------------------------ calibration
def reliability(margins: np.ndarray, temperature: float = 1.0, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """The reliability diagram and ECE of sigma(m / T): per confidence bin over [0.5, 1], the pairs, their
    mean confidence max(p, 1 - p) and the share where the side the model prefers is the chosen one. A tie
    (m = 0, confidence 0.5) counts as wrong, as in the accuracy."""
    m = np.asarray(margins, dtype=np.float64)
    p = sigmoid(m / temperature)
    conf = np.maximum(p, 1.0 - p)
    right = (m > 0).astype(np.float64)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        sel = which == b
        k = int(sel.sum())
        c: float | None = None
        a: float | None = None
        if k:
            c, a = float(conf[sel].mean()), float(right[sel].mean())
            ece += k / max(len(m), 1) * abs(a - c)
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": k, "confidence": c, "accuracy": a})
    return {"temperature": float(temperature), "bins": rows, "ece": float(ece) if len(m) else None}


def fit_temperature(margins: np.ndarray, bounds: tuple[float, float] = (1e-2, 1e2)) -> float:
    """The T > 0 minimising the mean of -log sigma(m / T) (bounded 1-D search over log T; scipy). Margins
    that are all of one sign push T to a bound: no finite T is best there, and the bound is returned."""
    from scipy.optimize import minimize_scalar

    m = np.asarray(margins, dtype=np.float64)
    if len(m) == 0 or not np.any(m):
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    result = minimize_scalar(
        lambda log_t: float(pair_losses(m, float(np.exp(log_t))).mean()), bounds=(lo, hi), method="bounded"
    )
    return float(np.exp(result.x))


def calibration_summary(val_margins: np.ndarray) -> dict[str, Any]:
    """What a run stores when it ends: the temperature fitted on its validation margins and the ECE and NLL
    of those pairs before and after (``eval`` only reads it)."""
    m = np.asarray(val_margins, dtype=np.float64)
    t = fit_temperature(m)
    return {
        "temperature": t,
        "n": len(m),
        "val_ece": reliability(m)["ece"],
        "val_ece_scaled": reliability(m, t)["ece"],
        "val_nll": float(pair_losses(m).mean()) if len(m) else None,
        "val_nll_scaled": float(pair_losses(m, t).mean()) if len(m) else None,
    }


# ------------------------------------------------------------------------------------------ length control
def length_control(margins: np.ndarray, len_chosen: np.ndarray, len_rejected: np.ndarray) -> dict[str, Any]:
    """Accuracy in bins of len(chosen) - len(rejected) (characters) with the "longer wins" baseline of the
    same pairs (a tie in length counts as wrong for it), and how often the model prefers the longer one."""
    m = np.asarray(margins, dtype=np.float64)
    d = np.asarray(len_chosen, dtype=np.float64) - np.asarray(len_rejected, dtype=np.float64)
    right = m > 0
    longer_right = d > 0
    rows = []
    for lo, hi in zip(LENGTH_EDGES[:-1], LENGTH_EDGES[1:]):
        sel = (d >= lo) & (d < hi)
        k = int(sel.sum())
        rows.append(
            {
                "lo": None if np.isinf(lo) else float(lo),
                "hi": None if np.isinf(hi) else float(hi),
                "n": k,
                "accuracy": float(right[sel].mean()) if k else None,
                "longer_baseline": float(longer_right[sel].mean()) if k else None,
            }
        )
    differ = d != 0
    # The model prefers the chosen side when m > 0; the chosen side is the longer one when d > 0.
    model_longer = (m > 0) == (d > 0)
    decided = differ & (m != 0)
    return {
        "bins": rows,
        "longer_baseline_accuracy": float(longer_right.mean()) if len(d) else None,
        "model_prefers_longer": float(model_longer[decided].mean()) if decided.any() else None,
        "n_length_differs": int(differ.sum()),
    }


# ------------------------------------------------------------------------------------------ slices
def prompt_length_bins(lengths: np.ndarray, k: int = 4) -> list[str]:
    """Prompt lengths as labels of ``k`` quantile bins ("0-120 chars", ...)."""
    x = np.asarray(lengths, dtype=np.float64)
    if len(x) == 0:
        return []
    edges = np.unique(np.quantile(x, np.linspace(0, 1, k + 1)))
    if len(edges) < 2:
        return [f"{int(x[0])} chars"] * len(x)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    names = [f"{int(edges[i])}-{int(edges[i + 1])} chars" for i in range(len(edges) - 1)]
    return [names[i] for i in which]


def slice_table(
    margins: np.ndarray,
    keys: Sequence[Any],
    groups: Sequence[Any],
    *,
    reps: int = 1000,
    seed: int = BOOTSTRAP_SEED,
    by_size: bool = True,
) -> list[dict[str, Any]]:
    """Per value of ``keys``: n, accuracy with its prompt-bootstrap interval, ties and loss; largest first, or
    (``by_size`` False) in the values' natural order."""
    m = np.asarray(margins, dtype=np.float64)
    frame = pd.DataFrame({"key": [("(none)" if _missing(k) else str(k)) for k in keys], "g": list(groups)})
    out = []
    for key, idx in frame.groupby("key", sort=True).indices.items():
        s = summary(m[idx], frame["g"].to_numpy()[idx], reps=reps, seed=seed)
        out.append({"slice": key, **{k: s[k] for k in ("n", "accuracy", "accuracy_ci", "ties", "loss")}})
    if by_size:
        out.sort(key=lambda r: (-r["n"], r["slice"]))
    else:  # in the order of the values, numbers as numbers ("38-95 chars" before "325-666 chars")
        out.sort(key=lambda r: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", r["slice"])])
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def rewardbench_sections(subsets: list[dict[str, Any]]) -> dict[str, float] | None:
    """RewardBench's section scores from per-subset accuracies (rows of ``slice_table`` over ``subset``):
    each section is the mean of its subsets' accuracies weighted by RewardBench's example counts, over the
    subsets present. None when no subset of RewardBench is present."""
    acc = {r["slice"]: r["accuracy"] for r in subsets if r["accuracy"] is not None}
    out: dict[str, float] = {}
    for section, names in REWARDBENCH_SECTIONS.items():
        present = [s for s in names if s in acc]
        if present:
            w = np.array([REWARDBENCH_COUNTS[s] for s in present], dtype=np.float64)
            out[section] = float(np.dot(w, [acc[s] for s in present]) / w.sum())
    if not out:
        return None
    out["Score"] = float(np.mean(list(out.values())))
    return out


# ------------------------------------------------------------------------------------------ two models
def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test on paired outcomes: b = pairs only A gets right, c = pairs only B gets right;
    the two-sided binomial p-value of b among b + c discordant pairs (scipy's ``binomtest``; 1.0 when they
    never disagree)."""
    from scipy.stats import binomtest

    a, b_ = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    only_a, only_b = int(np.count_nonzero(a & ~b_)), int(np.count_nonzero(~a & b_))
    n = only_a + only_b
    p = float(binomtest(only_a, n, 0.5).pvalue) if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "discordant": n, "p_value": p}


def paired_bootstrap(
    right_a: np.ndarray,
    right_b: np.ndarray,
    groups: Sequence[Any],
    *,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """accuracy(A) - accuracy(B) on the same pairs and its 95% interval, resampling prompts (both models'
    outcomes of a resampled prompt go together: the interval is of the paired difference)."""
    a = np.asarray(right_a, dtype=np.float64)
    b = np.asarray(right_b, dtype=np.float64)
    diff = a - b
    return {
        "difference": float(diff.mean()) if len(diff) else None,
        "difference_ci": _bootstrap_ratio(diff, np.ones(len(diff)), groups, reps, seed) if len(diff) else None,
    }


# ------------------------------------------------------------------------------------------ everything
def evaluate_pairs(
    pairs: pd.DataFrame,
    *,
    temperature: float | None = None,
    slices: Sequence[str] = ("subset", "source", "annotator", "strength", "prompt_length"),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every figure of one model on ``pairs`` (one row per pair): ``margin`` (r_chosen - r_rejected),
    ``group`` (the prompt, for the bootstrap), ``chosen``/``rejected`` texts (their lengths) and ``prompt``
    (its length), plus optional slicing columns (``subset``, ``source``, ``annotator``, ``strength``).
    ``temperature`` is the run's (fitted on its validation pairs); calibration is reported at T = 1 and at it.
    """
    say = progress or (lambda message: None)
    m = pairs["margin"].to_numpy(dtype=np.float64)
    groups = pairs["group"].tolist()
    t = 1.0 if temperature is None else float(temperature)
    say("accuracy and loss")
    out: dict[str, Any] = {"overall": summary(m, groups, temperature=1.0)}
    say("calibration")
    out["calibration"] = {
        "raw": reliability(m),
        "scaled": reliability(m, t) if temperature is not None else None,
        "temperature": temperature,
        "loss_scaled": float(pair_losses(m, t).mean()) if temperature is not None and len(m) else None,
    }
    say("length control")
    out["length"] = length_control(m, pairs["chosen"].str.len().to_numpy(), pairs["rejected"].str.len().to_numpy())
    say("slices")
    out["slices"] = {}
    for name in slices:
        if name == "prompt_length":
            keys: list[Any] = prompt_length_bins(pairs["prompt"].str.len().to_numpy())
        elif name in pairs.columns:
            keys = [None if _missing(v) else v for v in pairs[name].tolist()]
            if all(k is None for k in keys):
                continue
            if name == "strength":
                keys = ["unset" if k is None else str(int(k)) for k in keys]
        else:
            continue
        out["slices"][name] = slice_table(m, keys, groups, by_size=name not in ("prompt_length", "strength"))
    if "subset" in out["slices"]:
        out["rewardbench"] = rewardbench_sections(out["slices"]["subset"])
    return out


def compare(
    margins_a: np.ndarray, margins_b: np.ndarray, groups: Sequence[Any], comparison_ids: Sequence[int]
) -> dict[str, Any]:
    """Model A against model B on the same pairs: both accuracies, McNemar's test, the paired bootstrap
    interval of the difference and the pairs that flipped (right for one, wrong for the other)."""
    ra, rb = np.asarray(margins_a) > 0, np.asarray(margins_b) > 0
    ids = np.asarray(comparison_ids)
    return {
        "n": len(ra),
        "accuracy_a": float(ra.mean()) if len(ra) else None,
        "accuracy_b": float(rb.mean()) if len(rb) else None,
        "mcnemar": mcnemar(ra, rb),
        **paired_bootstrap(ra, rb, groups),
        "flipped_to_right": [int(i) for i in ids[ra & ~rb]],
        "flipped_to_wrong": [int(i) for i in ids[~ra & rb]],
    }
