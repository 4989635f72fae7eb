"""Annotator reliability: are simulated annotators of known accuracy recovered, and does training on the
posterior labels pay?

On the shared HH-RLHF harmless pairs (``../shared/data/hh-harmless-dev.jsonl.gz``), for each seed:

1. Every pair is stored in a random a/b order (a fresh project, unlabelled on import); ~25% of the prompts
   (``--test-fraction``, by first human turn) are held out: never labelled, scored by each run at its end,
   which gives the held-out accuracy against the dataset's labels (the "truth" here).
2. The other comparisons are assigned with ``core.assign.design_packages`` (default ``--per-item 2``: every
   comparison to two annotators, every pair of annotators sharing the same number) to five simulated
   annotators: accuracies 0.9, 0.8, 0.75 and 0.55 (the probability of naming the truly better response), and
   one who picks the response shown on the LEFT 80% of the time whatever it says (true accuracy 0.5). Each
   annotator sees sides at random, as their own file's seed would show them. Why five: with two labels per
   comparison only the products (2 s_i - 1)(2 s_j - 1) are identified (core/reliability.py), so two good
   annotators beside two near-coins cannot be told apart; a third good one makes each skill identifiable.
3. ``core.reliability.reliability_report`` estimates each skill with its 95% bootstrap interval: reported
   against the truth (the nominal accuracy, and the share of that annotator's labels that were in fact right),
   whether the ranking is right, and whether the intervals cover the truth.
4. Head-mode runs (linear head on frozen MiniLM embeddings, the trainer's defaults, no folds) train on the
   same judgments with ``labels`` = posterior (soft targets), majority (a 1-1 split is left out), latest
   (one annotator's label per comparison, i.e. no aggregation), and, for reference, the true labels.

Embeddings are computed once (as ``bench_label_noise.py`` does, sharing its ``--embed-cache``) and stored into
each project, so no run embeds a text.

    python benchmarks/bench_annotators.py [--seeds 0 1 2] [--per-item 2 | --overlap 0.5] [--limit N]

Prints a table and one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT, ROOT / "benchmarks"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from bench_label_noise import Embedder, build_project, hh_items, hh_vectors  # noqa: E402
from common import DEFAULT_HH_PATH, held_out_accuracy, quiet, stable_unit_hash  # noqa: E402

#: name -> probability of naming the truly better response; None: picks the left side 80% of the time
ANNOTATORS = {"ann90": 0.9, "ann80": 0.8, "ann75": 0.75, "ann55": 0.55, "left80": None}
LEFT_RATE = 0.8
MODES = ("posterior", "majority", "latest", "truth")


def label(project, truth: dict[int, str], train_ids: list[int], args, seed: int) -> dict[str, dict[str, int]]:
    """Record the simulated annotators' judgments (one transaction). Returns per annotator {n, right}."""
    import numpy as np

    from workbench.core.assign import design_packages

    rng = np.random.default_rng(1000 + seed)
    packages = design_packages(train_ids, list(ANNOTATORS), overlap=args.overlap, per_item=args.per_item, seed=seed)
    tally = {name: {"n": 0, "right": 0} for name in ANNOTATORS}
    # in a random order, so that "latest" is a random one of each comparison's labels
    work = [(name, cid) for name, ids in packages.items() for cid in ids]
    order = rng.permutation(len(work))
    with project.transaction():
        for name, cid in (work[i] for i in order):
            accuracy = ANNOTATORS[name]
            good = truth[cid]
            bad = "b" if good == "a" else "a"
            left = "a" if rng.random() < 0.5 else "b"  # the side this annotator's file shows on the left
            if accuracy is None:
                choice = left if rng.random() < LEFT_RATE else ("b" if left == "a" else "a")
            else:
                choice = good if rng.random() < accuracy else bad
            project.record_judgment(cid, name, choice, left=left)
            tally[name]["n"] += 1
            tally[name]["right"] += choice == good
    return tally


def train(path: Path, seed: int, labels: str) -> int:
    from workbench.training.config import TrainConfig
    from workbench.training.events import Failed
    from workbench.training.trainer import Trainer

    config = TrainConfig(mode="head", seed=seed, val_fraction=0.01, threads=1, folds=0, labels=labels)  # type: ignore[arg-type]
    trainer = Trainer(path, config)
    for event in trainer.events():
        if isinstance(event, Failed):
            raise RuntimeError(f"training failed: {event.message} ({event.hint})")
    assert trainer.run_id is not None
    return trainer.run_id


def trial(items: list[dict], vectors: dict, key: str, seed: int, work: Path, args) -> dict:
    from workbench.core.reliability import posteriors, reliability_report
    from workbench.core.store import Project

    t0 = time.perf_counter()
    path = work / f"annotators-{seed}.wbp"
    project, truth, index = build_project(path, items, vectors, key, seed=seed, ab_seed=seed)
    held_out = {cid for cid, i in index.items() if stable_unit_hash(items[i]["group"], seed) < args.test_fraction}
    train_ids = sorted(set(truth) - held_out)
    tally = label(project, truth, train_ids, args, seed)
    t1 = time.perf_counter()
    report = reliability_report(project)
    seconds_reliability = time.perf_counter() - t1
    post = posteriors(project)
    label_accuracy = {
        "posterior": float(((post["p_a"] >= 0.5) == [truth[int(c)] == "a" for c in post["comparison_id"]]).mean())
    }
    for mode in ("majority", "latest"):
        pairs = project.training_pairs(labels=mode)
        label_accuracy[mode] = float(
            sum(truth[int(c)] == ch for c, ch in zip(pairs["comparison_id"], pairs["choice"])) / len(pairs)
        )
        label_accuracy[f"{mode}_pairs"] = len(pairs)
    project.close()

    accuracy = {}
    for mode in MODES:
        run_path = work / f"annotators-{seed}-{mode}.wbp"
        run_path.write_bytes(path.read_bytes())
        if mode == "truth":  # the same comparisons, labelled right by one oracle
            with Project.open(run_path) as p, p.transaction():
                for cid in train_ids:
                    p.record_judgment(cid, "oracle", truth[cid], kind="adjudication")
        run_id = train(run_path, seed, "adjudicated" if mode == "truth" else mode)
        with Project.open(run_path) as p:
            accuracy[mode] = held_out_accuracy(p, run_id, held_out, truth)
    rows = report["annotators"]
    skills = {n: rows[n]["skill"] for n in ANNOTATORS}
    true_nominal = {n: (0.5 if a is None else a) for n, a in ANNOTATORS.items()}
    realised = {n: tally[n]["right"] / tally[n]["n"] for n in ANNOTATORS}
    order_true = sorted(ANNOTATORS, key=lambda n: -true_nominal[n])
    return {
        "seed": seed,
        "pairs": len(train_ids),
        "held_out": len(held_out),
        "shared_per_pair": report["comparisons_multiply_labelled"],
        "skills": skills,
        "ci95": {n: rows[n]["ci95"] for n in ANNOTATORS},
        "realised": realised,
        "covers_nominal": {n: rows[n]["ci95"][0] <= true_nominal[n] <= rows[n]["ci95"][1] for n in ANNOTATORS},
        "ranking_right": sorted(ANNOTATORS, key=lambda n: -skills[n])[:4] == order_true[:4],
        "label_accuracy": label_accuracy,
        "held_out_accuracy": accuracy,
        "seconds_reliability": seconds_reliability,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_HH_PATH)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    design = parser.add_mutually_exclusive_group()
    design.add_argument("--per-item", type=int, default=None)
    design.add_argument("--overlap", type=float, default=None)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N HH pairs (a smoke test)")
    parser.add_argument("--embed-cache", default=str(Path(tempfile.gettempdir()) / "bench-label-noise-hh.npz"))
    args = parser.parse_args(argv)
    if args.per_item is None and args.overlap is None:
        args.per_item = 2

    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    trials = []
    with tempfile.TemporaryDirectory(prefix="bench-annotators-") as tmp, quiet():
        embedder = Embedder()
        items = hh_items(args.data, args.limit)
        vectors = hh_vectors(embedder, items, Path(args.embed_cache))
        for seed in args.seeds:
            trials.append(trial(items, vectors, embedder.key, seed, Path(tmp), args))
            t = trials[-1]
            print(
                f"seed {seed}: skills "
                + ", ".join(
                    f"{n} {t['skills'][n]:.2f} [{t['ci95'][n][0]:.2f}-{t['ci95'][n][1]:.2f}]" for n in ANNOTATORS
                )
                + "; held-out "
                + ", ".join(f"{m} {t['held_out_accuracy'][m]:.3f}" for m in MODES),
                flush=True,
            )

    def mean_sd(values: list[float]) -> list[float]:
        return [round(statistics.mean(values), 4), round(statistics.stdev(values) if len(values) > 1 else 0.0, 4)]

    summary = {
        "benchmark": "annotators",
        "data": str(args.data),
        "design": {"per_item": args.per_item, "overlap": args.overlap},
        "seeds": args.seeds,
        "pairs_labelled": trials[0]["pairs"],
        "held_out": trials[0]["held_out"],
        "comparisons_multiply_labelled": trials[0]["shared_per_pair"],
        "annotators": {
            n: {
                "true": 0.5 if a is None else a,
                "realised": mean_sd([t["realised"][n] for t in trials]),
                "skill": mean_sd([t["skills"][n] for t in trials]),
                "ci95_width": mean_sd([t["ci95"][n][1] - t["ci95"][n][0] for t in trials]),
                "covered": sum(t["covers_nominal"][n] for t in trials),
            }
            for n, a in ANNOTATORS.items()
        },
        "ranking_right": sum(t["ranking_right"] for t in trials),
        "label_accuracy": {
            m: mean_sd([t["label_accuracy"][m] for t in trials]) for m in ("posterior", "majority", "latest")
        },
        "majority_pairs": mean_sd([t["label_accuracy"]["majority_pairs"] for t in trials]),
        "held_out_accuracy": {m: mean_sd([t["held_out_accuracy"][m] for t in trials]) for m in MODES},
        "posterior_minus_majority": mean_sd(
            [t["held_out_accuracy"]["posterior"] - t["held_out_accuracy"]["majority"] for t in trials]
        ),
        "posterior_minus_latest": mean_sd(
            [t["held_out_accuracy"]["posterior"] - t["held_out_accuracy"]["latest"] for t in trials]
        ),
        "seconds_reliability": mean_sd([t["seconds_reliability"] for t in trials]),
        "seconds_total": round(time.perf_counter() - t_start, 1),
    }
    n = len(trials)
    print(f"\n{'annotator':<8} {'true':>5} {'realised':>9} {'estimated':>10} {'95% width':>10} {'covers':>7}")
    for name, row in summary["annotators"].items():
        print(
            f"{name:<8} {row['true']:>5.2f} {row['realised'][0]:>9.3f} {row['skill'][0]:>6.3f}±{row['skill'][1]:.2f}"
            f" {row['ci95_width'][0]:>10.2f} {row['covered']:>4}/{n}"
        )
    print(f"ranking of the four real annotators right in {summary['ranking_right']}/{n} seeds")
    print("labels vs truth: " + ", ".join(f"{m} {v[0]:.3f}" for m, v in summary["label_accuracy"].items()))
    print(
        "held-out accuracy: " + ", ".join(f"{m} {v[0]:.3f}±{v[1]:.3f}" for m, v in summary["held_out_accuracy"].items())
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
