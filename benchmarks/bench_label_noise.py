"""Label noise: do the suspects find flipped labels, and does correcting them pay?

On the shared HH-RLHF harmless pairs (``../shared/data/hh-harmless-dev.jsonl.gz``) and on a clean synthetic
set made here, for each flip rate (10, 20, 30%) and seed:

1. Every pair is stored in a random a/b order (a fresh project per seed, pairs unlabelled on import), and a
   test split of ~25% of the prompts (``--test-fraction``, by first human turn) is held out: those
   comparisons stay unlabelled, are never flipped and never trained on; the trainer scores them at the end of
   each run (split "unlabelled"), which gives the held-out accuracy against the true labels.
2. Every other pair is labelled by one annotator with its true label, except a random p% whose label is
   flipped (recorded as the ground truth of the ranking).
3. A head-mode run (linear head on frozen MiniLM embeddings, the trainer's defaults) trains on the noisy
   labels; its out-of-fold margins (``training/folds.py``, 5 head folds split by prompt) are stored unless the
   trainer stored them; ``core.suspects.suspects_for_run`` ranks the labelled pairs.
4. Four rankings of the flips are scored, AUROC (``sklearn.metrics.roc_auc_score``) and precision at k
   (k = the number of flips): (a) the suspects' order (``p_label_wrong``, ties
   broken by the model's evidence, as the app lists them), (b) the in-sample margin, most negative
   first (the order before suspects), (c) the out-of-fold margin alone, (d) random.
5. Payoff: the top-k suspects are corrected (set to their true label, as a reviewer would; a pair whose label
   was right stays as it is) and the model retrained; separately, k random labelled pairs are corrected and
   the model retrained. The gain in held-out accuracy over the noisy run is reported for each, and the
   difference of the two gains with its spread across seeds.
6. The ceiling (the oracle): every flipped label corrected, and, as the baseline of every gain, the noisy labels
   unchanged, each retrained exactly as the two arms are (same seed, same held-out prompts, only labels
   differ): the headroom, oracle minus noisy, is the most any correction of k = #flips pairs can gain. Where
   the headroom is itself within its spread across seeds, no ranking can show a payoff outside it.

All accuracy differences are paired: within a seed every arm is scored on the same held-out pairs, so the
spread is that of the per-seed differences (and the standard error of their mean is shown beside it).

Embeddings are computed once: HH texts with the head mode's own code (``folds.embed_texts`` on
``PairEncoder`` input, keyed as the head mode keys its cache), cached on disk between invocations
(``--embed-cache``), and stored into each project with ``Project.store_embeddings`` so that no run embeds a
text. The synthetic set needs no MiniLM pass: its "embeddings" are drawn (scaled like the HH ones) with a
planted linear preference, and its true label is the side the planted direction prefers (clean labels).

    python benchmarks/bench_label_noise.py [--quick] [--seeds 0 1 2 3 4] [--rates 0.1 0.2 0.3]
                                           [--datasets hh synthetic] [--plot docs/label-noise.png]
                                           [--test-fraction 0.25] [--no-oracle] [--embed-cache FILE]

Prints a table (mean ± sd over seeds), writes the plot, and prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT, ROOT / "benchmarks"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from common import (  # noqa: E402
    DEFAULT_HH_PATH,
    first_human_turn,
    held_out_accuracy,
    load_hh_pairs,
    quiet,
    stable_unit_hash,
)

ANNOTATOR = "bench"
METHODS = ("suspects", "in_sample", "oof_margin", "random", "blend", "p_only", "oof10")
#: candidate changes measured beside the four rankings of the issue (diagnostics, not targets)
DIAGNOSTICS = ("blend", "p_only", "oof10")
METHOD_NAMES = {
    "suspects": "suspects p(label wrong)",
    "in_sample": "in-sample margin (today)",
    "oof_margin": "out-of-fold margin alone",
    "random": "random",
    "blend": "in-sample + out-of-fold margin (diagnostic)",
    "p_only": "p(label wrong) alone, its ties as they fall (diagnostic)",
    "oof10": "out-of-fold margin of 10 folds (diagnostic)",
}
FOLDS = 5


# ------------------------------------------------------------------------------------------------ data
def hh_items(path: str, limit: int | None) -> list[dict]:
    """HH pairs as items {prompt, chosen, rejected, group}, deduplicated (same prompt and responses)."""
    seen, items = set(), []
    for pair in load_hh_pairs(path, limit=limit):
        key = (pair["prompt"], *sorted((pair["chosen"], pair["rejected"])))
        if pair["chosen"] == pair["rejected"] or key in seen:
            continue
        seen.add(key)
        items.append({**pair, "group": first_human_turn(pair)})
    return items


def synthetic_items(n: int) -> list[dict]:
    """A synthetic set of n pairs: unique prompts and responses (their vectors are drawn, not embedded)."""
    return [
        {
            "prompt": f"Human: synthetic request number {i}?\n\nAssistant:",
            "chosen": f" synthetic answer {i} (first)",
            "rejected": f" synthetic answer {i} (second)",
            "group": f"synthetic {i}",
        }
        for i in range(n)
    ]


class Embedder:
    """The head mode's cache key and text hashes of (prompt, response) sides, and their pooled MiniLM vectors."""

    def __init__(self, seed: int = 0):
        import torch

        from workbench.training import data
        from workbench.training.config import TrainConfig
        from workbench.training.model import PairEncoder, build_model, resolve_backbone_path

        self.cfg = TrainConfig(mode="head", seed=seed, threads=1)
        torch.manual_seed(seed)
        self.model, self.tokenizer = build_model(self.cfg)
        self.encoder = PairEncoder.for_model(self.model, self.tokenizer, self.cfg.max_length)
        self.key = data.embedding_key(resolve_backbone_path(self.cfg.backbone), self.model.pooling, self.cfg.max_length)
        self.data = data

    def hashes(self, prompts: list, responses: list) -> list[str]:
        sides = self.data.encode_sides(self.encoder, prompts, responses)
        return [self.data.text_hash(t) for t in sides.texts]

    def embed(self, prompts: list, responses: list) -> dict:
        import torch

        from workbench.training.folds import embed_texts

        sides = self.data.encode_sides(self.encoder, prompts, responses)
        hashes = [self.data.text_hash(t) for t in sides.texts]
        vectors = embed_texts(self.model, self.tokenizer.pad_token_id, sides.input_ids, torch.device("cpu"))
        return dict(zip(hashes, vectors))


def side_lists(items: list[dict]) -> tuple[list, list]:
    prompts = [it["prompt"] for it in items] * 2
    responses = [it["chosen"] for it in items] + [it["rejected"] for it in items]
    return prompts, responses


def hh_vectors(embedder: Embedder, items: list[dict], cache: Path) -> dict:
    """hash -> vector for both sides of every HH item, from ``cache`` (an .npz) when it holds them all."""
    import numpy as np

    prompts, responses = side_lists(items)
    hashes = embedder.hashes(prompts, responses)
    stored: dict = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            if str(npz["key"]) == embedder.key:
                stored = dict(zip(npz["hashes"].tolist(), npz["vectors"]))
    todo = {}
    for h, p, r in zip(hashes, prompts, responses):
        if h not in stored:
            todo.setdefault(h, (p, r))
    if todo:
        t0 = time.perf_counter()
        stored.update(embedder.embed([p for p, _ in todo.values()], [r for _, r in todo.values()]))
        print(f"embedded {len(todo):,} texts once in {time.perf_counter() - t0:.0f} s", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            key=np.array(embedder.key),
            hashes=np.array(list(stored)),
            vectors=np.stack(list(stored.values())).astype(np.float32),
        )
    else:
        print(f"embeddings of {len(set(hashes)):,} texts read from {cache}", flush=True)
    return {h: np.asarray(stored[h], dtype=np.float32) for h in hashes}


def synthetic_vectors(embedder: Embedder, items: list[dict], reference: dict, gap: float, seed: int = 12) -> dict:
    """Drawn side vectors with a planted preference: each dimension like the HH embeddings' (mean, sd); the
    chosen side is the one whose noise projects higher on a random unit direction w, by a margin that varies
    per pair (some pairs are near ties, as in real data). Clean labels; a linear head can learn them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ref = np.stack(list(reference.values())) if reference else None
    dim = ref.shape[1] if ref is not None else 384
    mean = ref.mean(axis=0) if ref is not None else np.zeros(dim)
    sd = ref.std(axis=0) if ref is not None else np.full(dim, 0.05)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    n = len(items)
    z_c, z_r = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    # Make the chosen side the one w prefers (swap where it is not): the labels are clean by construction.
    swap = (z_c - z_r) @ w < 0
    z_c[swap], z_r[swap] = z_r[swap].copy(), z_c[swap].copy()
    # Widen every pair's gap along w by ``gap`` (in per-dimension sds): a clean set a linear head learns well.
    z_c += 0.5 * gap * w
    z_r -= 0.5 * gap * w
    prompts, responses = side_lists(items)
    hashes = embedder.hashes(prompts, responses)
    z = np.concatenate([z_c, z_r])
    x = (mean + sd * z).astype(np.float32)
    return dict(zip(hashes, x))


def build_project(path: Path, items: list[dict], vectors: dict, key: str, seed: int, ab_seed: int):
    """A fresh project of every item, unlabelled, each stored in a random a/b order; the embeddings stored.
    Returns (project, {comparison_id: true choice}, {comparison_id: item index})."""
    import numpy as np

    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project

    rng = np.random.default_rng(ab_seed)
    chosen_first = rng.random(len(items)) < 0.5
    records, truth_of_key = [], {}
    for i, (it, first) in enumerate(zip(items, chosen_first)):
        a, b = (it["chosen"], it["rejected"]) if first else (it["rejected"], it["chosen"])
        records.append(PairRecord(Text(it["prompt"]), Text(a), Text(b)))
        truth_of_key[(it["prompt"], a, b)] = ("a" if first else "b", i)
    project = Project.create(path, seed=seed)
    project.add_records(records, source="bench-label-noise")
    project.store_embeddings(key, vectors)
    truth, index = {}, {}
    for row in project.comparisons_frame().itertuples(index=False):
        choice, i = truth_of_key[(row.prompt, row.response_a, row.response_b)]
        truth[int(row.comparison_id)] = choice
        index[int(row.comparison_id)] = i
    return project, truth, index


# ------------------------------------------------------------------------------------------- training
def train(path: Path, seed: int, folds: int | None) -> int:
    """One head-mode run on the project's current labels; its run id. ``folds=0``: no out-of-fold scores."""
    from workbench.training.config import TrainConfig
    from workbench.training.events import Failed
    from workbench.training.trainer import Trainer

    # The trainer needs a validation split of its own: 1% of the labelled prompts is the least it takes.
    config = TrainConfig(mode="head", seed=seed, val_fraction=0.01, threads=1, folds=folds)
    trainer = Trainer(path, config)
    for event in trainer.events():
        if isinstance(event, Failed):
            raise RuntimeError(f"training failed: {event.message} ({event.hint})")
    return trainer.run_id


def ensure_oof(project, run_id: int) -> str:
    """Out-of-fold scores of the run: the trainer's when it stored them, else computed here and stored."""
    if not project.oof_scores(run_id).empty:
        return "trainer"
    from workbench.training.folds import SOURCE, out_of_fold_margins

    oof = out_of_fold_margins(project, run_id, None, FOLDS)
    project.add_oof_scores(
        run_id, zip(oof["comparison_id"], oof["chosen"], oof["fold"], oof["r_chosen"], oof["r_rejected"]), SOURCE
    )
    return "benchmark"


def oof_margins_k(project, run_id: int, k: int, cids):
    """Out-of-fold margins of the run's pairs with k folds (not stored), in the order of ``cids``."""
    import numpy as np

    from workbench.training.folds import out_of_fold_margins

    oof = out_of_fold_margins(project, run_id, None, k)
    margin = dict(zip(oof["comparison_id"].astype(int), oof["margin"].astype(float)))
    return np.array([margin[int(c)] for c in cids])


def precision_at_k(scores, flipped, k: int) -> float:
    import numpy as np

    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return float(np.asarray(flipped)[order[:k]].mean()) if k else float("nan")


# ------------------------------------------------------------------------------------------ one trial
def trial(dataset: str, items: list[dict], vectors: dict, key: str, rate: float, seed: int, work: Path, args) -> dict:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from workbench.core.suspects import suspects_for_run

    t0 = time.perf_counter()
    tag = f"{dataset}-{int(round(rate * 100))}-{seed}"
    path = work / f"{tag}.wbp"
    rng = np.random.default_rng([seed, int(round(rate * 1000)), 7 if dataset == "hh" else 8])
    project, truth, index = build_project(path, items, vectors, key, seed, ab_seed=seed * 1009 + 17)
    try:
        test_ids = {c for c, i in index.items() if stable_unit_hash(items[i]["group"], seed) < args.test_fraction}
        train_ids = sorted(c for c in truth if c not in test_ids)
        n_flip = int(round(rate * len(train_ids)))
        flipped = set(rng.choice(train_ids, size=n_flip, replace=False).tolist())
        other = {"a": "b", "b": "a"}
        noisy = {c: other[truth[c]] if c in flipped else truth[c] for c in train_ids}
        with project.transaction():
            for c in train_ids:
                project.record_judgment(c, ANNOTATOR, noisy[c])
        run_id = train(path, seed, folds=None)
        acc_noisy = held_out_accuracy(project, run_id, test_ids, truth)
        oof_from = ensure_oof(project, run_id)
        table = suspects_for_run(project, run_id)
        cids = table["comparison_id"].astype(int).to_numpy()
        y = np.array([c in flipped for c in cids], dtype=int)
        k = int(y.sum())  # the flips among the run's pairs (all of them: every training pair is in the run)
        # The suspects' ranking is the table's order, as the app lists it: p_label_wrong, its ties (the clipped
        # ends) broken by the model's evidence.
        app_rank = -np.arange(len(cids), dtype=float)  # the table comes sorted, most suspect first
        ranks = {
            "suspects": app_rank,
            "in_sample": -table["in_sample_margin"].to_numpy(dtype=float),
            "oof_margin": -table["oof_margin"].to_numpy(dtype=float),
            "random": rng.random(len(cids)),
            # a diagnostic, not a target: the sum of the two margins (a candidate change to the ranking)
            "blend": -(table["in_sample_margin"].to_numpy(dtype=float) + table["oof_margin"].to_numpy(dtype=float)),
            # p_label_wrong alone: where it ties (its clipped ends), the order is arbitrary (half credit)
            "p_only": table["p_label_wrong"].to_numpy(dtype=float),
            "oof10": -oof_margins_k(project, run_id, 10, cids),
        }
        auroc = {m: float(roc_auc_score(y, s)) for m, s in ranks.items()}
        auroc_app_order = float(roc_auc_score(y, app_rank))
        distinct = len(np.unique(ranks["p_only"]))
        prec = {m: precision_at_k(s, y, k) for m, s in ranks.items()}

        # Payoff: correct the top-k suspects, or k random pairs, and retrain (same seed; labels only differ).
        # Every arm, the noisy baseline included, is retrained the same way (no folds), so that the labels are
        # the only difference between the arms of a seed.
        def corrected(chosen_ids) -> float:
            with project.transaction():
                for c in chosen_ids:
                    if noisy[c] != truth[c]:
                        project.record_judgment(c, ANNOTATOR, truth[c])
            rid = train(path, seed, folds=0)
            with project.transaction():
                for c in chosen_ids:
                    if noisy[c] != truth[c]:
                        project.record_judgment(c, ANNOTATOR, noisy[c])
            return held_out_accuracy(project, rid, test_ids, truth)

        order = np.argsort(-ranks["suspects"], kind="stable")
        top = [int(c) for c in cids[order[:k]]]
        rand = [int(c) for c in rng.choice(cids, size=k, replace=False)]
        acc_base = corrected([])  # the noisy labels unchanged
        acc_suspects = corrected(top)
        acc_random = corrected(rand)
        acc_oracle = corrected(sorted(flipped)) if args.oracle else None  # every flip corrected: the ceiling
    finally:
        project.close()
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            shutil.rmtree(path.with_name(path.name + ".checkpoints"), ignore_errors=True)
    out = {
        "dataset": dataset,
        "rate": rate,
        "seed": seed,
        "train_pairs": len(train_ids),
        "test_pairs": len(test_ids),
        "flips": k,
        "auroc": auroc,
        "precision_at_k": prec,
        "acc_noisy": acc_noisy,
        "acc_base": acc_base,
        "acc_suspects": acc_suspects,
        "acc_random": acc_random,
        "acc_oracle": acc_oracle,
        "flips_fixed_suspects": sum(c in flipped for c in top),
        "flips_fixed_random": sum(c in flipped for c in rand),
        "auroc_suspects_app_order": auroc_app_order,
        "p_distinct_values": distinct,
        "oof_from": oof_from,
        "seconds": time.perf_counter() - t0,
    }
    print(
        f"  {dataset:9s} {rate:4.0%} seed {seed}: AUROC "
        + " ".join(f"{m} {auroc[m]:.3f}" for m in METHODS)
        + f" (app order {auroc_app_order:.3f}, {distinct} distinct p)"
        + f" | P@{k} suspects {prec['suspects']:.3f} | test acc noisy {acc_noisy:.3f} (retrained {acc_base:.3f}), "
        f"top-k fixed {acc_suspects:.3f} ({out['flips_fixed_suspects']} flips), "
        f"random-k fixed {acc_random:.3f} ({out['flips_fixed_random']} flips)"
        + (f", all flips fixed {acc_oracle:.3f}" if acc_oracle is not None else "")
        + f"  [{out['seconds']:.0f} s]",
        flush=True,
    )
    return out


# ------------------------------------------------------------------------------------------- summary
def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def standard_error(ms: tuple[float, float], n: int) -> float:
    """The standard error of a mean of n paired differences (their sd / sqrt(n))."""
    return ms[1] / n**0.5 if n > 1 else 0.0


def summarise(trials: list[dict], datasets: list[str], rates: list[float]) -> dict:
    summary: dict = {}
    for ds in datasets:
        summary[ds] = {}
        for rate in rates:
            rows = [t for t in trials if t["dataset"] == ds and t["rate"] == rate]
            if not rows:
                continue
            gain_s = [t["acc_suspects"] - t["acc_base"] for t in rows]
            gain_r = [t["acc_random"] - t["acc_base"] for t in rows]
            diff = [s - r for s, r in zip(gain_s, gain_r)]
            cell = {
                "seeds": len(rows),
                "flips": mean_sd([t["flips"] for t in rows])[0],
                "auroc": {m: mean_sd([t["auroc"][m] for t in rows]) for m in METHODS},
                "precision_at_k": {m: mean_sd([t["precision_at_k"][m] for t in rows]) for m in METHODS},
                "acc_noisy": mean_sd([t["acc_noisy"] for t in rows]),
                "acc_base": mean_sd([t["acc_base"] for t in rows]),
                "base_equals_noisy_run": sum(abs(t["acc_base"] - t["acc_noisy"]) < 1e-12 for t in rows),
                "test_pairs": mean_sd([t["test_pairs"] for t in rows])[0],
                "gain_suspects": mean_sd(gain_s),
                "gain_random": mean_sd(gain_r),
                "gain_difference": mean_sd(diff),
                "difference_positive": sum(d > 0 for d in diff),
            }
            cell["se_difference"] = standard_error(cell["gain_difference"], len(rows))
            if rows[0]["acc_oracle"] is not None:
                # the headroom: every flip corrected minus the noisy labels, paired within each seed
                headroom = [t["acc_oracle"] - t["acc_base"] for t in rows]
                cell["headroom"] = mean_sd(headroom)
                cell["se_headroom"] = standard_error(cell["headroom"], len(rows))
                cell["headroom_positive"] = sum(h > 0 for h in headroom)
                # the target's test (mean minus one sd above zero) applied to the ceiling itself
                cell["headroom_outside_spread"] = bool(cell["headroom"][0] - cell["headroom"][1] > 0)
            # targets: suspects above in-sample and random, not below the out-of-fold margin alone (means);
            # the payoff difference outside the seeds' spread (mean minus one sd above zero).
            a = {m: cell["auroc"][m][0] for m in METHODS}
            cell["above_in_sample"] = bool(a["suspects"] > a["in_sample"])
            cell["above_random"] = bool(a["suspects"] > a["random"])
            cell["not_below_oof"] = bool(a["suspects"] >= a["oof_margin"])
            cell["not_below_oof_within_sd"] = bool(a["suspects"] >= a["oof_margin"] - cell["auroc"]["oof_margin"][1])
            cell["target_auroc"] = cell["above_in_sample"] and cell["above_random"] and cell["not_below_oof"]
            cell["target_payoff"] = bool(cell["gain_difference"][0] - cell["gain_difference"][1] > 0)
            summary[ds][rate] = cell
    return summary


def print_table(summary: dict) -> None:
    fmt = lambda ms: f"{ms[0]:.3f}±{ms[1]:.3f}"  # noqa: E731
    for ds, cells in summary.items():
        print()
        print(f"{ds}: AUROC of the flips (mean±sd over seeds) and precision at k (k = flips)")
        main = [m for m in METHODS if m not in DIAGNOSTICS]
        print(f"{'flips':>6} {'k':>5}  " + "  ".join(f"{m:>23}" for m in main) + "  target (>in-sample >random >=oof)")
        for rate, c in cells.items():
            marks = " ".join("yes" if c[t] else "NO" for t in ("above_in_sample", "above_random", "not_below_oof")) + (
                " (>=oof-sd)" if c["not_below_oof_within_sd"] and not c["not_below_oof"] else ""
            )
            print(
                f"{rate:>6.0%} {c['flips']:>5.0f}  "
                + "  ".join(f"{fmt(c['auroc'][m]):>11} {fmt(c['precision_at_k'][m]):>11}" for m in main)
                + f"  {'met' if c['target_auroc'] else 'MISSED'}: {marks}"
            )
        print(f"{ds}: diagnostics (candidate rankings), AUROC and precision at k")
        print(f"{'flips':>6} {'k':>5}  " + "  ".join(f"{m:>23}" for m in DIAGNOSTICS))
        for rate, c in cells.items():
            print(
                f"{rate:>6.0%} {c['flips']:>5.0f}  "
                + "  ".join(f"{fmt(c['auroc'][m]):>11} {fmt(c['precision_at_k'][m]):>11}" for m in DIAGNOSTICS)
            )
        first = next(iter(cells.values()))
        print(
            f"{ds}: held-out accuracy after correcting pairs and retraining (gain over the noisy labels retrained "
            f"the same way; mean±sd over seeds, paired; {first['test_pairs']:.0f} held-out pairs)"
        )
        print(
            f"{'flips':>6} {'noisy acc':>12} {'top-k suspects':>15} {'k random':>12} {'difference':>12} "
            f"{'(se)':>6} {'seeds >0':>8}"
            + (f" {'all flips (ceiling)':>20} {'(se)':>6} {'seeds >0':>8}" if "headroom" in first else "")
        )
        for rate, c in cells.items():
            print(
                f"{rate:>6.0%} {fmt(c['acc_base']):>12} {fmt(c['gain_suspects']):>15} {fmt(c['gain_random']):>12} "
                f"{fmt(c['gain_difference']):>12} {c['se_difference']:>6.3f} {c['difference_positive']:>4} of "
                f"{c['seeds']}"
                + (
                    f" {fmt(c['headroom']):>20} {c['se_headroom']:>6.3f} {c['headroom_positive']:>4} of {c['seeds']}"
                    if "headroom" in c
                    else ""
                )
                + f"  payoff {'met' if c['target_payoff'] else 'MISSED'}"
                + (
                    f"; ceiling {'outside' if c['headroom_outside_spread'] else 'WITHIN'} its spread"
                    if "headroom" in c
                    else ""
                )
            )
        print(
            f"{ds}: the noisy run (with out-of-fold folds) and its retrain without folds scored the same on "
            + ", ".join(f"{c['base_equals_noisy_run']} of {c['seeds']}" for c in cells.values())
            + " seeds"
        )


def plot(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "suspects": "#3565c8",
        "in_sample": "#c27c0e",
        "oof_margin": "#2e8b57",
        "random": "#8a9099",
        "blend": "#9b59b6",
    }
    datasets = list(summary)
    fig, axes = plt.subplots(1, len(datasets) + 1, figsize=(4.2 * (len(datasets) + 1), 4.0), dpi=110)
    for ax, ds in zip(axes, datasets):
        rates = list(summary[ds])
        x = [100 * r for r in rates]
        for j, m in enumerate(METHODS[:4]):
            means = [summary[ds][r]["auroc"][m][0] for r in rates]
            sds = [summary[ds][r]["auroc"][m][1] for r in rates]
            xs = [v + (j - 1.5) * 0.6 for v in x]
            ax.errorbar(
                xs, means, yerr=sds, color=colours[m], marker="o", ms=4, capsize=3, lw=1.6, label=METHOD_NAMES[m]
            )
        ax.axhline(0.5, color="#c9cdd2", lw=0.8)
        seeds = summary[ds][rates[0]]["seeds"]
        ax.set_title(f"{'HH-RLHF harmless' if ds == 'hh' else 'clean synthetic'}: finding flips ({seeds} seeds)")
        ax.set_xlabel("labels flipped (%)")
        ax.set_ylabel("AUROC of the ranking against the flips")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7.5, loc="lower left")
    ax = axes[-1]
    arms = [("gain_suspects", "#3565c8", "top-k suspects"), ("gain_random", "#8a9099", "k random")]
    if all("headroom" in c for cells in summary.values() for c in cells.values()):
        arms.append(("headroom", "#2e8b57", "all flips (ceiling)"))
    width = 0.8 / (len(arms) * len(datasets))
    labels_done = set()
    for d, ds in enumerate(datasets):
        rates = list(summary[ds])
        for s, (what, colour, arm) in enumerate(arms):
            pos = [i + (len(arms) * d + s) * width - 0.4 + width / 2 for i in range(len(rates))]
            vals = [summary[ds][r][what][0] * 100 for r in rates]
            errs = [summary[ds][r][what][1] * 100 for r in rates]
            name = f"{'HH' if ds == 'hh' else 'synthetic'}: {arm} corrected"
            ax.bar(
                pos,
                vals,
                width,
                yerr=errs,
                capsize=2,
                color=colour,
                alpha=1.0 if d == 0 else 0.55,
                hatch="" if d == 0 else "//",
                edgecolor="white",
                label=name if name not in labels_done else None,
            )
            labels_done.add(name)
    ax.set_xticks(range(len(rates)))
    ax.set_xticklabels([f"{r:.0%}" for r in rates])
    ax.set_xlabel("labels flipped")
    ax.set_ylabel("held-out accuracy gain after retraining (points)")
    ax.set_title("Payoff: correct k = #flips pairs or all flips")
    ax.axhline(0, color="#5f6771", lw=0.8)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7.5, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_HH_PATH)
    parser.add_argument("--quick", action="store_true", help="3 seeds (0 1 2) instead of 5")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--datasets", nargs="+", choices=["hh", "synthetic"], default=["hh", "synthetic"])
    parser.add_argument("--synthetic-pairs", type=int, default=1800)
    parser.add_argument(
        "--synthetic-gap", type=float, default=2.0, help="planted gap of a synthetic pair along its direction (sds)"
    )
    parser.add_argument("--test-fraction", type=float, default=0.25, help="share of prompts held out for testing")
    parser.add_argument(
        "--no-oracle",
        dest="oracle",
        action="store_false",
        help="skip the ceiling: a retrain with every flipped label corrected",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N HH pairs (a smoke test)")
    parser.add_argument("--embed-cache", default=str(Path(tempfile.gettempdir()) / "bench-label-noise-hh.npz"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "label-noise.png"))
    parser.add_argument("--workdir", default=None, help="projects go here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each trial's project")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else ([0, 1, 2] if args.quick else [0, 1, 2, 3, 4])

    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-noise-"))
    work.mkdir(parents=True, exist_ok=True)
    trials: list[dict] = []
    with quiet():
        embedder = Embedder()
        hh = hh_items(args.data, args.limit)
        hh_vec = hh_vectors(embedder, hh, Path(args.embed_cache))
        sets = {}
        if "hh" in args.datasets:
            sets["hh"] = (hh, hh_vec)
        if "synthetic" in args.datasets:
            syn = synthetic_items(args.synthetic_pairs)
            sets["synthetic"] = (syn, synthetic_vectors(embedder, syn, hh_vec, args.synthetic_gap))
        print(
            ", ".join(f"{ds}: {len(it):,} pairs" for ds, (it, _) in sets.items()) + f"; seeds {seeds}; work {work}",
            flush=True,
        )
        for ds, (items, vectors) in sets.items():
            for rate in args.rates:
                for seed in seeds:
                    trials.append(trial(ds, items, vectors, embedder.key, rate, seed, work, args))
    summary = summarise(trials, list(sets), args.rates)
    print_table(summary)
    plot(summary, Path(args.plot))
    total = time.perf_counter() - t_start
    print(f"plot: {args.plot}; {len(trials)} trials, median {statistics.median(t['seconds'] for t in trials):.0f} s; ")
    print(f"total {total:.0f} s; out-of-fold scores from: {sorted({t['oof_from'] for t in trials})}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    r4 = lambda ms: [round(ms[0], 4), round(ms[1], 4)]  # noqa: E731
    out = {
        "benchmark": "label_noise",
        "data": str(args.data),
        "seeds": seeds,
        "rates": args.rates,
        "test_fraction": args.test_fraction,
        "results": {
            ds: {
                f"{rate:g}": {
                    "flips": round(c["flips"], 1),
                    "auroc": {m: r4(c["auroc"][m]) for m in METHODS},
                    "precision_at_k": {m: r4(c["precision_at_k"][m]) for m in METHODS},
                    "acc_noisy": r4(c["acc_noisy"]),
                    "acc_base": r4(c["acc_base"]),
                    "test_pairs": c["test_pairs"],
                    "gain_suspects": r4(c["gain_suspects"]),
                    "gain_random": r4(c["gain_random"]),
                    "gain_difference": r4(c["gain_difference"]),
                    "se_difference": round(c["se_difference"], 4),
                    **(
                        {
                            "headroom": r4(c["headroom"]),
                            "se_headroom": round(c["se_headroom"], 4),
                            "headroom_positive": c["headroom_positive"],
                            "headroom_outside_spread": c["headroom_outside_spread"],
                        }
                        if "headroom" in c
                        else {}
                    ),
                    "target_auroc": c["target_auroc"],
                    **{
                        t: c[t] for t in ("above_in_sample", "above_random", "not_below_oof", "not_below_oof_within_sd")
                    },
                    "target_payoff": c["target_payoff"],
                }
                for rate, c in cells.items()
            }
            for ds, cells in summary.items()
        },
        "per_trial": [
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in t.items()
                if k not in ("auroc", "precision_at_k")
            }
            | {"auroc": {m: round(v, 4) for m, v in t["auroc"].items()}}
            for t in trials
        ],
        "total_s": round(total, 1),
        "plot": str(args.plot),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
