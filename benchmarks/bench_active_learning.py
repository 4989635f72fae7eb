"""Active learning: does labelling the model-uncertain pairs first beat labelling in random order?

A simulated annotator labels the shared HH-RLHF harmless pairs (``../shared/data/hh-harmless-dev.jsonl.gz``)
in the order the app's queue gives, and a head-mode reward model is retrained every ``--step`` labels:

1. The pairs are imported UNLABELLED (each pair's chosen response placed as A or B by a fixed hash, so that
   neither position means anything); their stored labels are kept aside as the oracle.
2. A fixed validation set is held out by prompt (``--val-fraction`` of the first human turns; those
   comparisons stay in the project unlabelled and are never served). Accuracy is measured on it from the
   scores the trainer writes for unlabelled comparisons at the end of each run (split "unlabelled").
3. Per strategy and seed, a fresh project (created with that seed, so ``order="random"`` is a different
   shuffle per seed) is labelled ``--step`` at a time: ``random`` takes ``next_comparison(order="random")``,
   ``uncertain`` takes ``next_comparison(order="uncertain")`` (smallest |margin| under the latest run first;
   its first batch is the random one, since there is no model yet). Each label is the stored one
   (``record_judgment`` with the true choice). After each batch a head-mode run (linear head on frozen
   MiniLM embeddings, the trainer's defaults) trains on everything labelled so far.
4. The embeddings are computed once (one run over every pair in a scratch project) and copied into each
   simulation's project, so every later run reads them from the cache.

    python benchmarks/bench_active_learning.py [--step 100] [--max-labels 1000] [--seeds 0 1 2]
                                               [--plot docs/active-learning.png]

Prints a table (accuracy mean, standard deviation and range over the seeds per number of labels), writes
the plot, and prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
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

ANNOTATOR = "oracle"
STRATEGIES = ("random", "uncertain")


# ------------------------------------------------------------------------------------------------ data
def build_records(pairs: list[dict]):
    """Unlabelled PairRecords (chosen as A or B by a fixed hash) and the oracle: (prompt, a, b) -> choice."""
    from workbench.core.records import PairRecord, Text

    records, oracle = [], {}
    for pair in pairs:
        chosen_first = stable_unit_hash(pair["prompt"] + pair["chosen"], seed=11) < 0.5
        a, b = (pair["chosen"], pair["rejected"]) if chosen_first else (pair["rejected"], pair["chosen"])
        if a == b:
            continue
        records.append(PairRecord(Text(pair["prompt"]), Text(a), Text(b)))
        oracle[(pair["prompt"], a, b)] = "a" if chosen_first else "b"
    return records, oracle


def comparison_truth(project, oracle: dict) -> dict[int, str]:
    """comparison id -> the stored label, for every comparison of ``project``."""
    truth = {}
    for row in project.comparisons_frame().itertuples(index=False):
        key = (row.prompt, row.response_a, row.response_b)
        if key in oracle:
            truth[int(row.comparison_id)] = oracle[key]
        else:  # stored the other way round (a duplicate pair met earlier the other way)
            flipped = oracle[(row.prompt, row.response_b, row.response_a)]
            truth[int(row.comparison_id)] = "b" if flipped == "a" else "a"
    return truth


def train_head(path: Path, seed: int, epochs: int | None) -> tuple[int, float]:
    """One head-mode run on the project's labels; (run id, seconds)."""
    from workbench.training.config import TrainConfig
    from workbench.training.events import Failed
    from workbench.training.trainer import Trainer

    # The trainer needs a non-empty validation split of its own: 1% of the labelled prompts (at least
    # one) is the least it takes. Accuracy is measured on the held-out set, not on that split.
    config = TrainConfig(mode="head", seed=seed, val_fraction=0.01, threads=1, epochs=epochs)
    trainer = Trainer(path, config)
    t0 = time.perf_counter()
    for event in trainer.events():
        if isinstance(event, Failed):
            raise RuntimeError(f"training failed: {event.message} ({event.hint})")
    return trainer.run_id, time.perf_counter() - t0


def embed_everything(work: Path, records, oracle) -> Path:
    """A scratch project holding every pair labelled; one run there fills its embedding cache."""
    from workbench.core.store import Project

    path = work / "embeddings.wbp"
    with Project.create(path, seed=0) as project:
        project.add_records(records, source="hh-harmless-dev")
        truth = comparison_truth(project, oracle)
        with project.transaction():
            for cid, choice in truth.items():
                project.record_judgment(cid, ANNOTATOR, choice)
    t0 = time.perf_counter()
    train_head(path, seed=0, epochs=1)
    print(f"embedded every text once in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def copy_embeddings(source: Path, target) -> int:
    import numpy as np

    # Our own connection to read the whole cache: the store keeps its connection private.
    with closing(sqlite3.connect(source)) as src:
        by_backbone: dict[str, dict] = {}
        for backbone, text_hash, blob in src.execute("SELECT backbone, text_hash, vector FROM embeddings"):
            by_backbone.setdefault(backbone, {})[text_hash] = np.frombuffer(blob, dtype=np.float32)
    for backbone, vectors in by_backbone.items():
        target.store_embeddings(backbone, vectors)
    return sum(len(v) for v in by_backbone.values())


# ------------------------------------------------------------------------------------------ simulation
def simulate(strategy: str, seed: int, records, oracle, embeddings: Path, work: Path, args) -> dict:
    from workbench.core.store import Project

    path = work / f"{strategy}-{seed}.wbp"
    points, train_s, full_pool = [], [], None
    with Project.create(path, seed=seed) as project:
        project.add_records(records, source="hh-harmless-dev")
        copy_embeddings(embeddings, project)
        truth = comparison_truth(project, oracle)
        frame = project.comparisons_frame()
        prompts = dict(zip(frame["comparison_id"].tolist(), frame["prompt"]))
        val_ids = {
            cid
            for cid, prompt in prompts.items()
            if stable_unit_hash(first_human_turn({"prompt": prompt}), seed=0) < args.val_fraction
        }
        exclude = sorted(val_ids)
        pool = len(truth) - len(val_ids)
        labelled = 0
        t_label = 0.0
        while labelled < min(args.max_labels, pool):
            order = "random" if strategy == "random" or labelled == 0 else "uncertain"
            t0 = time.perf_counter()
            for _ in range(min(args.step, pool - labelled)):
                cid = project.next_comparison(ANNOTATOR, order, exclude=exclude)
                if cid is None:
                    break
                project.record_judgment(cid, ANNOTATOR, truth[cid])
                labelled += 1
            t_label += time.perf_counter() - t0
            run_id, seconds = train_head(path, seed, args.epochs)
            train_s.append(seconds)
            acc = held_out_accuracy(project, run_id, val_ids, truth)
            points.append((labelled, acc))
            print(
                f"  {strategy:9s} seed {seed}  {labelled:5d} labels  val accuracy {acc:.3f}  "
                f"({seconds:.1f} s training)",
                flush=True,
            )
        if strategy == "random" and args.full_pool:
            while (cid := project.next_comparison(ANNOTATOR, "random", exclude=exclude)) is not None:
                project.record_judgment(cid, ANNOTATOR, truth[cid])
                labelled += 1
            run_id, seconds = train_head(path, seed, args.epochs)
            full_pool = (labelled, held_out_accuracy(project, run_id, val_ids, truth))
            print(
                f"  {strategy:9s} seed {seed}  {labelled:5d} labels (the whole pool)  val accuracy {full_pool[1]:.3f}",
                flush=True,
            )
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(path.with_name(path.name + ".checkpoints"), ignore_errors=True)
    return {
        "points": points,
        "val_pairs": len(val_ids),
        "pool": pool,
        "train_s": train_s,
        "label_s": t_label,
        "full_pool": full_pool,
    }


def summarise(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def plot(results: dict, labels: list[int], full_pool: list[tuple[int, float]], out: Path, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"random": "#5f6771", "uncertain": "#3565c8"}
    names = {"random": "random order", "uncertain": "model-uncertain first"}
    fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=110)
    for strategy in STRATEGIES:
        runs = results[strategy]
        for run in runs:  # each seed, thin
            ax.plot(
                [n for n, _ in run["points"]],
                [a for _, a in run["points"]],
                color=colours[strategy],
                alpha=0.25,
                linewidth=0.9,
            )
        means = [statistics.fmean(run["points"][i][1] for run in runs) for i in range(len(labels))]
        ax.plot(
            labels,
            means,
            color=colours[strategy],
            linewidth=2.2,
            marker="o",
            markersize=3.5,
            label=f"{names[strategy]} (mean of {len(runs)} seeds)",
        )
    diffs = [
        statistics.fmean(u["points"][i][1] - r["points"][i][1] for u, r in zip(results["uncertain"], results["random"]))
        for i in range(len(labels))
    ]
    ax.text(
        0.02,
        0.97,
        f"uncertain − random, mean over seeds: {min(diffs):+.3f} to {max(diffs):+.3f}\n"
        f"thin lines: single seeds; one accuracy's binomial SE ≈ {meta['se']:.3f}",
        transform=ax.transAxes,
        fontsize=8,
        va="top",
        color="#5f6771",
    )
    if full_pool:
        mean_full = statistics.fmean(a for _, a in full_pool)
        ax.axhline(
            mean_full,
            color="#c27c0e",
            linestyle="--",
            linewidth=1.2,
            label=f"all {full_pool[0][0]:,} pool labels (mean)",
        )
    ax.axhline(0.5, color="#a3a9b1", linewidth=0.8)
    ax.set_xlabel("labels")
    ax.set_ylabel(f"accuracy on {meta['val_pairs']} held-out pairs")
    ax.set_title("Active learning on HH-RLHF harmless (linear head on frozen MiniLM)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_HH_PATH)
    parser.add_argument("--step", type=int, default=100, help="labels between retrainings")
    parser.add_argument("--max-labels", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--val-fraction", type=float, default=0.25, help="share of first human turns held out")
    parser.add_argument("--epochs", type=int, default=None, help="head epochs (default: the trainer's, 20)")
    parser.add_argument(
        "--no-full-pool", dest="full_pool", action="store_false", help="skip the reference run on every pool label"
    )
    parser.add_argument("--plot", default=str(ROOT / "docs" / "active-learning.png"))
    parser.add_argument("--workdir", default=None, help="keep the projects here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each simulation's project")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pairs (a quick check)")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-al-"))
    work.mkdir(parents=True, exist_ok=True)
    pairs = load_hh_pairs(args.data, limit=args.limit)
    records, oracle = build_records(pairs)
    print(f"{len(records):,} pairs; projects in {work}", flush=True)
    with quiet():
        embeddings = embed_everything(work, records, oracle)
        results: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
        for seed in args.seeds:
            for strategy in STRATEGIES:
                results[strategy].append(simulate(strategy, seed, records, oracle, embeddings, work, args))

    labels = [n for n, _ in results["random"][0]["points"]]
    meta = {"val_pairs": results["random"][0]["val_pairs"], "pool": results["random"][0]["pool"]}
    meta["se"] = math.sqrt(0.57 * 0.43 / meta["val_pairs"])
    full_pool = [run["full_pool"] for run in results["random"] if run["full_pool"]]
    plot(results, labels, full_pool, Path(args.plot), meta)

    print()
    print(
        f"held-out pairs {meta['val_pairs']}, pool {meta['pool']:,}, seeds {args.seeds}, "
        f"retrained every {args.step} labels"
    )
    print(
        f"{'labels':>7}  {'random mean (sd) [min-max]':>30}  {'uncertain mean (sd) [min-max]':>30}  "
        f"{'paired diff (sd)':>16}  {'seeds uncertain better':>22}"
    )
    table = {}
    for i, n in enumerate(labels):
        row = {}
        for strategy in STRATEGIES:
            row[strategy] = summarise([run["points"][i][1] for run in results[strategy]])
        diffs = [u["points"][i][1] - r["points"][i][1] for u, r in zip(results["uncertain"], results["random"])]
        row["diff_mean"] = statistics.fmean(diffs)
        row["diff_sd"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        row["uncertain_better"] = sum(d > 0 for d in diffs)
        table[n] = row
        cell = lambda s: f"{s['mean']:.3f} ({s['sd']:.3f}) [{s['min']:.3f}-{s['max']:.3f}]"  # noqa: E731
        paired = f"{row['diff_mean']:+.3f} ({row['diff_sd']:.3f})"
        print(
            f"{n:>7}  {cell(row['random']):>30}  {cell(row['uncertain']):>30}  {paired:>16}  "
            f"{row['uncertain_better']:>16} of {len(diffs)}"
        )
    if full_pool:
        accs = [a for _, a in full_pool]
        print(
            f"all {full_pool[0][0]:,} pool labels: {statistics.fmean(accs):.3f} "
            f"(sd {statistics.stdev(accs) if len(accs) > 1 else 0:.3f})"
        )
    print(f"binomial standard error of one accuracy on {meta['val_pairs']} pairs near 0.57: {meta['se']:.3f}")
    train_s = [s for runs in results.values() for run in runs for s in run["train_s"]]
    print(
        f"plot: {args.plot}; {len(train_s)} runs, median {statistics.median(train_s):.1f} s each; "
        f"total {time.perf_counter() - t_start:.0f} s"
    )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "benchmark": "active_learning",
        "data": str(args.data),
        "pairs": len(records),
        "val_pairs": meta["val_pairs"],
        "pool": meta["pool"],
        "step": args.step,
        "seeds": args.seeds,
        "labels": labels,
        "accuracy": {
            s: {
                "mean": [round(table[n][s]["mean"], 4) for n in labels],
                "sd": [round(table[n][s]["sd"], 4) for n in labels],
                "per_seed": [[round(a, 4) for _, a in run["points"]] for run in results[s]],
            }
            for s in STRATEGIES
        },
        "uncertain_minus_random": [round(table[n]["diff_mean"], 4) for n in labels],
        "uncertain_minus_random_sd": [round(table[n]["diff_sd"], 4) for n in labels],
        "full_pool": {"labels": full_pool[0][0], "accuracy": [round(a, 4) for _, a in full_pool]}
        if full_pool
        else None,
        "median_train_s": round(statistics.median(train_s), 2),
        "total_s": round(time.perf_counter() - t_start, 1),
        "plot": str(args.plot),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
