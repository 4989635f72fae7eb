"""Attribution of a reward to a response's sentences: how fast and how faithful each method is.

On the shared HH-RLHF harmless pairs with the bundled MiniLM: a head-mode run (linear head on frozen MiniLM,
the trainer's defaults, max_length 256) is trained on ``--train`` labelled pairs, then its model (as the
training process loads it for the "attribute" job) attributes held-out pairs with each method of
``workbench.training.attribution.METHODS``:

* Speed: the time of one "attribute" job's work for a pair (both responses' rewards and attributions) for
  the pair of median total length and for a pair whose inputs fill max_length (256 tokens), median of
  ``--repeats``, after one warm-up.
* Faithfulness at the sentence level, against the ground truth of deleting each sentence's text and
  re-scoring (leave-one-sentence-out, Δ_k = r(x) - r(x without sentence k)), over the responses of
  ``--pairs`` held-out pairs that have 3 or more sentences:
  - ``spearman``: mean rank correlation of the method's sentence scores with Δ;
  - ``top1_drop``: mean reward drop when the sentence the method ranks highest is deleted, against
    ``random_drop`` (a random sentence's mean drop) and ``oracle_drop`` (the best possible: max Δ);
  - for IG, ``completeness``: mean |Σ token scores - (r(x) - r(baseline))| / |r(x) - r(baseline)|.

    python benchmarks/bench_attribution.py [--pairs 12] [--train 96] [--repeats 3]

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

from common import load_hh_pairs, quiet  # noqa: E402


def train_run(path: Path, pairs: list[dict]) -> int:
    """A project of ``pairs`` (labelled) and one head-mode run on them; its id."""
    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project
    from workbench.training.config import TrainConfig
    from workbench.training.events import Failed
    from workbench.training.model import bundled_minilm_path
    from workbench.training.trainer import Trainer

    records = [
        PairRecord(Text(p["prompt"]), Text(p["chosen"]), Text(p["rejected"]), choice="a", annotator="hh") for p in pairs
    ]
    with Project.create(path, seed=0) as project:
        project.add_records(records, source="hh-harmless-dev")
    config = TrainConfig(backbone=bundled_minilm_path(), mode="head", max_length=256, val_fraction=0.1, epochs=3)
    trainer = Trainer(path, config)
    for event in trainer.events():
        if isinstance(event, Failed):
            raise RuntimeError(f"training failed: {event.message} ({event.hint})")
    assert trainer.run_id is not None
    return trainer.run_id


def _rank(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _rank(a), _rank(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else 0.0


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=12, help="held-out pairs for faithfulness")
    parser.add_argument("--train", type=int, default=96, help="labelled pairs for the head-mode run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    with quiet():
        import torch

        from workbench.training import offline_environment

        offline_environment()
        from workbench.training.attribution import METHODS, Attributor, split_sentences
        from workbench.training.server import _load_scorer

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_hh_pairs(limit=args.train + 200)
    train, held = pairs[: args.train], pairs[args.train :]
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "hh.wbp"
        t0 = time.perf_counter()
        with quiet():
            run = train_run(path, train)
        train_s = time.perf_counter() - t0
        attributor = Attributor(_load_scorer({"project": str(path), "run": run}))
    enc = attributor.encoder
    print(f"head-mode run {run} on {len(train)} HH pairs in {train_s:.0f} s; torch threads {torch.get_num_threads()}")

    # -------------------------------------------------------------- speed
    def length(p: dict) -> int:
        return sum(len(e.input_ids) for e in enc.encode_many([p["prompt"]] * 2, [p["chosen"], p["rejected"]]))

    lengths = sorted((length(p), i) for i, p in enumerate(held))
    median_pair = held[lengths[len(lengths) // 2][1]]
    full = [i for n, i in lengths if n >= 2 * enc.max_length]
    long_pair = held[full[0] if full else lengths[-1][1]]
    speed: dict[str, dict[str, float]] = {}
    sizes = {"median": length(median_pair), "256": length(long_pair)}
    print(f"\npair timings (both responses, median of {args.repeats}); input tokens per pair: {sizes}")
    print(f"{'method':<10} {'median pair':>12} {'256-token pair':>15}")
    for method in METHODS:
        speed[method] = {
            name: timed(
                lambda p=pair, m=method: attributor.pair(p["prompt"], p["chosen"], p["rejected"], m), args.repeats
            )
            for name, pair in (("median", median_pair), ("256", long_pair))
        }
        print(f"{method:<10} {speed[method]['median']:>11.3f}s {speed[method]['256']:>14.3f}s")
    speed["rewards_only"] = {
        name: timed(lambda p=pair: attributor.pair(p["prompt"], p["chosen"], p["rejected"], None), args.repeats)
        for name, pair in (("median", median_pair), ("256", long_pair))
    }
    print(f"{'(what-if)':<10} {speed['rewards_only']['median']:>11.3f}s {speed['rewards_only']['256']:>14.3f}s")

    # -------------------------------------------------------------- faithfulness
    responses = []
    for p in held:
        for side in ("chosen", "rejected"):
            if len(split_sentences(p[side])) >= 3:
                responses.append((p["prompt"], p[side]))
        if len(responses) >= 2 * args.pairs:
            break
    stats: dict[str, dict[str, list[float]]] = {
        m: {"spearman": [], "top1_drop": [], "completeness": []} for m in METHODS
    }
    random_drop, oracle_drop = [], []
    for prompt, text in responses:
        spans = split_sentences(text)
        variants = [(prompt, text)] + [(prompt, text[:s] + text[e:]) for s, e in spans]
        scores = attributor.rewards(variants)
        delta = [scores[0] - x for x in scores[1:]]
        random_drop.append(statistics.fmean(delta))
        oracle_drop.append(max(delta))
        for method in METHODS:
            got = attributor.attribute(prompt, text, method)
            sent = [v for *_, v in got["sentences"]]
            stats[method]["spearman"].append(spearman(sent, delta))
            stats[method]["top1_drop"].append(delta[max(range(len(sent)), key=sent.__getitem__)])
            if method == "ig":
                change = got["reward"] - got["baseline_reward"]
                total = sum(v for *_, v in got["tokens"])
                if abs(change) > 1e-6:
                    stats[method]["completeness"].append(abs(total - change) / abs(change))
    faith = {m: {k: round(statistics.fmean(v), 4) for k, v in s.items() if v} for m, s in stats.items()}
    print(f"\nfaithfulness over {len(responses)} held-out responses of 3+ sentences (ground truth: delete a sentence)")
    print(
        f"random sentence's drop {statistics.fmean(random_drop):+.4f}; best possible {statistics.fmean(oracle_drop):+.4f}"
    )
    print(f"{'method':<10} {'spearman':>9} {'top1 drop':>10} {'completeness err':>17}")
    for m in METHODS:
        comp = faith[m].get("completeness")
        print(
            f"{m:<10} {faith[m]['spearman']:>9.3f} {faith[m]['top1_drop']:>+10.4f} {'' if comp is None else f'{comp:.3f}':>17}"
        )
    print(
        json.dumps(
            {
                "benchmark": "attribution",
                "model": "bundled MiniLM, head-mode run",
                "train_pairs": len(train),
                "responses": len(responses),
                "pair_tokens": sizes,
                "seconds": {m: {k: round(v, 4) for k, v in s.items()} for m, s in speed.items()},
                "faithfulness": faith,
                "random_drop": round(statistics.fmean(random_drop), 4),
                "oracle_drop": round(statistics.fmean(oracle_drop), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
