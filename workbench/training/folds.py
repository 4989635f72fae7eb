"""Out-of-fold margins: every labelled pair of a run scored by a head that never saw the pair's prompt.

It owns the K-fold scoring of a run's pairs (DESIGN.md §5, Inspect: in-sample margins hide memorised
wrong labels). The pairs are the run's own (its data snapshot, ``data.pairs_from_snapshot``), split into K
folds by prompt with the run's seed (``data.folds_by_prompt``); for each fold a fresh copy of the run's head
(``model.build_model``: the same initialisation, the same frozen/trainable parts) is trained with the head
mode's loss, optimizer and schedule on the other K-1 folds' cached embeddings, then scores the held-out fold.

A fine-tune run without ``folds`` gets the same head-mode folds on its *backbone's* embeddings (computed and
cached with the head mode's embedding code, ``embed.pooled_batches``, when missing): source "head-folds". A
fine-tune run with ``folds`` K gets K extra fine-tunes (``finetune_folds``): each trains the run's model with
its config on K-1 folds and scores the held-out one (source "finetune-folds"; no run rows, no checkpoints).

The trainer calls ``run_folds`` at the end of every finished run (rank 0) and stores the result; ``workbench
suspects`` calls ``out_of_fold_margins`` for a run that has none. Nothing here writes scores; the caller stores
them (``Project.add_oof_scores``). Deterministic for a seed.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.core.store import Project
from workbench.training import data, distributed, evaluate, prepare
from workbench.training.config import DEFAULT_FOLDS, TrainConfig
from workbench.training.embed import pooled_batches
from workbench.training.events import Event, PhaseProgress
from workbench.training.loss import pair_terms
from workbench.training.model import PairEncoder, build_model, collate_pairs, make_batches, resolve_backbone_path
from workbench.training.prepare import WARMUP_FRACTION, OutOnly, head_batch_size
from workbench.training.run_control import RunControl
from workbench.training.trainer import MAX_GRAD_NORM, lr_at, micro_batches

#: the ``oof_scores.source`` of head-mode folds (on cached embeddings)
SOURCE = "head-folds"
#: the ``oof_scores.source`` of K extra fine-tunes
FINETUNE_SOURCE = "finetune-folds"
OOF_COLUMNS = ["comparison_id", "chosen", "fold", "r_chosen", "r_rejected", "margin"]


@dataclass
class FoldFeatures:
    """What every fold's head trains on: the head's input per unique text and the rows of each pair's sides."""

    X: torch.Tensor
    rows_c: torch.Tensor
    rows_r: torch.Tensor
    head: nn.Module  # a fresh head as the run starts it (copied per fold)
    frozen_dense: bool
    embedded_texts: int  # texts embedded now (not found in the cache)


def head_config(config: TrainConfig) -> TrainConfig:
    """The head-mode settings of the folds: a head run's own; a fine-tune run's with head-mode learning rate
    and epochs (its own are for the backbone) and no LoRA."""
    if config.mode == "head":
        return config
    return config.replace(mode="head", lora=False, learning_rate=None, epochs=None)


def out_of_fold_margins(
    project: Project, run_id: int, config: TrainConfig | None = None, k: int | None = None, device: str = "cpu"
) -> pd.DataFrame:
    """Out-of-fold (r_chosen, r_rejected, margin, fold) of every pair run ``run_id`` trained on, oriented to
    the run's label (``chosen`` is its side, 'a' or 'b'). ``config``: the run's stored config unless given;
    ``k``: ``config.resolved_folds()`` unless given, or 5 when that is 0. ValueError for a user error (fewer
    prompts than folds, a run without a snapshot)."""
    run = project.run(run_id)
    cfg = config if config is not None else TrainConfig.from_dict(run["config"])
    k = k if k is not None else (cfg.resolved_folds() or 5)
    pairs, _ = data.pairs_from_snapshot(project.comparisons_frame(), run["data_snapshot"])
    n_prompts = len(set(pairs.prompt_keys))
    if k < 2 or n_prompts < k:
        raise ValueError(f"run {run_id}: {k} folds need at least {max(k, 2)} prompts (the run has {n_prompts})")
    folds = data.folds_by_prompt(pairs.prompt_keys, k, cfg.seed)
    hcfg = head_config(cfg)
    dev = torch.device(device)
    features = pair_features(project, pairs, hcfg, dev)
    r_c, r_r = head_folds(features, pairs, folds, hcfg, dev)
    return oof_frame(pairs, folds, r_c, r_r)


def oof_frame(pairs: data.Pairs, folds: np.ndarray, r_c: np.ndarray, r_r: np.ndarray) -> pd.DataFrame:
    """``OOF_COLUMNS`` of the pairs: their fold and out-of-fold rewards, oriented to the run's label."""
    return pd.DataFrame(
        {
            "comparison_id": pairs.comparison_ids,
            "chosen": pairs.choices,
            "fold": folds,
            "r_chosen": r_c,
            "r_rejected": r_r,
            "margin": r_c - r_r,
        }
    )[OOF_COLUMNS]


def head_folds(
    features: FoldFeatures, pairs: data.Pairs, folds: np.ndarray, cfg: TrainConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(r_chosen, r_rejected) of every pair from the head trained on the other folds (``cfg``: head mode)."""
    r_c, r_r = np.zeros(len(pairs)), np.zeros(len(pairs))
    for fold in range(int(folds.max()) + 1 if len(folds) else 0):
        held = np.flatnonzero(folds == fold)
        scorer = train_head(features, pairs, np.flatnonzero(folds != fold), cfg, device)
        held_t = torch.as_tensor(held, device=device)
        r_c[held], r_r[held] = evaluate.score_features(
            scorer, features.X, features.rows_c[held_t], features.rows_r[held_t]
        )
    return r_c, r_r


@dataclass
class FoldsResult:
    """What ``run_folds`` made: the scores (``OOF_COLUMNS``), how (source), with how many folds, in how long."""

    scores: pd.DataFrame
    source: str
    k: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The run summary's ``folds`` entry."""
        what = (
            f"{self.k} extra fine-tunes"
            if self.source == FINETUNE_SOURCE
            else f"{self.k} head-mode folds on the backbone's cached embeddings"
        )
        return {
            "k": self.k,
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "pairs": len(self.scores),
            "how": what,
        }


def folds_plan(cfg: TrainConfig) -> tuple[int, str]:
    """(K, source) a finished run of ``cfg`` gets: head mode its ``folds`` (0: none) as head-mode folds; fine-tune
    mode with ``folds`` K, K fine-tunes; without, the head mode's default K as head-mode folds on the backbone's
    cached embeddings."""
    k = cfg.resolved_folds()
    if cfg.mode == "head":
        return k, SOURCE
    if k:
        return k, FINETUNE_SOURCE
    return DEFAULT_FOLDS["head"], SOURCE


def run_folds(
    project: Project,
    run: prepare.RunData,
    *,
    run_id: int,
    device: torch.device,
    control: RunControl,
    features: FoldFeatures | None = None,
) -> Generator[Event, None, FoldsResult | None]:
    """The out-of-fold scores of a finished run (``folds_plan``), with "folds" progress; None when cancelled or
    when the run gets no folds (K 0). ValueError when there are fewer prompts than folds. ``features``: a head
    run's own (its trained pairs' features and its fresh head), so nothing is embedded or loaded again."""
    cfg, pairs = run.config, run.pairs
    k, source = folds_plan(cfg)
    if k == 0:
        return None
    n_prompts = len(set(pairs.prompt_keys))
    if n_prompts < k:
        raise ValueError(f"{k} folds need at least {k} prompts (the run has {n_prompts})")
    t0 = time.perf_counter()
    folds = data.folds_by_prompt(pairs.prompt_keys, k, cfg.seed)
    if source == FINETUNE_SOURCE:
        found = yield from finetune_folds(run, folds, run_id=run_id, device=device, control=control)
        if found is None:
            return None
        r_c, r_r = found
    else:
        hcfg = head_config(cfg)
        yield PhaseProgress(run_id, "folds", 0, k)
        if features is None:
            features = pair_features(project, pairs, hcfg, device)
        r_c, r_r = np.zeros(len(pairs)), np.zeros(len(pairs))
        for fold in range(k):
            if control.cancel_requested:
                return None
            held = np.flatnonzero(folds == fold)
            scorer = train_head(features, pairs, np.flatnonzero(folds != fold), hcfg, device)
            held_t = torch.as_tensor(held, device=device)
            r_c[held], r_r[held] = evaluate.score_features(
                scorer, features.X, features.rows_c[held_t], features.rows_r[held_t]
            )
            yield PhaseProgress(run_id, "folds", fold + 1, k)
    return FoldsResult(oof_frame(pairs, folds, r_c, r_r), source, k, time.perf_counter() - t0)


def finetune_folds(
    run: prepare.RunData, folds: np.ndarray, *, run_id: int, device: torch.device, control: RunControl
) -> Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]:
    """K fine-tunes with the run's config (``prepare.build_run``: the same model, initialisation, optimizer,
    batches, schedule and loss as the trainer's steps), each on the pairs of the other folds, scoring its
    held-out fold; "folds" progress counts their steps. None when cancelled (checked between steps)."""
    cfg, pairs = run.config, run.pairs
    k = int(folds.max()) + 1
    backbone_path = resolve_backbone_path(cfg.backbone)
    epochs = cfg.resolved_epochs()
    total = sum(math.ceil(int(np.count_nonzero(folds != f)) / cfg.batch_size) * epochs for f in range(k))
    done = 0
    yield PhaseProgress(run_id, "folds", 0, total)
    r_c, r_r = np.zeros(len(pairs)), np.zeros(len(pairs))
    for fold in range(k):
        held = folds == fold
        fold_run = prepare.RunData(cfg, pairs, held, {})
        state = prepare.build_run(fold_run, backbone_path, device, distributed.SINGLE)
        prepare.restore(fold_run, state, None, distributed.SINGLE)  # the random state of a new run
        train_idx = fold_run.train_idx
        lengths = [state.pair_lengths[i] for i in train_idx]
        step = 0
        state.scorer.train()
        for epoch in range(state.epochs):
            for batch in make_batches(lengths, state.batch_size, seed=cfg.seed + epoch):
                if control.cancel_requested:
                    return None
                index = [int(train_idx[i]) for i in batch]
                lr = lr_at(step, state.lr, state.warmup, state.total_steps)
                for group in state.optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                width = evaluate.pair_width(state.enc_c.input_ids, state.enc_r.input_ids, index, cfg.max_length)
                for part in micro_batches(index, width, cfg.pass_tokens):
                    b = collate_pairs(
                        [state.enc_c.input_ids[i] for i in part],
                        [state.enc_r.input_ids[i] for i in part],
                        state.tokenizer.pad_token_id,
                        width=width,
                    )
                    r = state.net(b["input_ids"].to(device), b["attention_mask"].to(device)).float()
                    rc, rr = r.chunk(2)
                    terms = pair_terms(rc, rr, state.margins[part], cfg.center_rewards_coefficient, state.target(part))
                    (terms.sum() / len(index)).backward()
                torch.nn.utils.clip_grad_norm_(state.params, MAX_GRAD_NORM)
                state.optimizer.step()
                state.optimizer.zero_grad(set_to_none=True)
                step += 1
                done += 1
                yield PhaseProgress(run_id, "folds", done, total)
        held_idx = np.flatnonzero(held)
        scores = evaluate.score_tokens(
            state.model,
            state.tokenizer.pad_token_id,
            [state.enc_c.input_ids[i] for i in held_idx],
            [state.enc_r.input_ids[i] for i in held_idx],
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=device,
            dist=distributed.SINGLE,
            control=control,
            run_id=run_id,
        )
        found = _quietly(scores)  # its "evaluating" progress would read as the run's evaluation
        if found is None:
            return None
        r_c[held_idx], r_r[held_idx] = found
        del state
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return r_c, r_r


def _quietly(gen: Generator[Event, None, Any]) -> Any:
    """Run an event generator to its end, dropping its events; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def pair_features(project: Project, pairs: data.Pairs, cfg: TrainConfig, device: torch.device) -> FoldFeatures:
    """The head's inputs for both sides of every pair: pooled embeddings from the project's cache (the head
    mode's keys), those missing computed with the backbone and stored, then the frozen pooler when the head
    keeps it fixed (as ``prepare.build_run`` decides)."""
    torch.manual_seed(cfg.seed)
    model, tokenizer = build_model(cfg)
    model.to(device)
    encoder = PairEncoder.for_model(model, tokenizer, cfg.max_length)
    enc_c = data.encode_sides(encoder, pairs.prompts, pairs.chosen)
    enc_r = data.encode_sides(encoder, pairs.prompts, pairs.rejected)
    texts = enc_c.texts + enc_r.texts
    input_ids = enc_c.input_ids + enc_r.input_ids
    key = data.embedding_key(resolve_backbone_path(cfg.backbone), model.pooling, cfg.max_length)
    hashes = [data.text_hash(t) for t in texts]
    unique: dict[str, int] = {}
    for i, h in enumerate(hashes):
        unique.setdefault(h, i)
    vectors = project.cached_embeddings(key, list(unique))
    missing = [h for h in unique if h not in vectors]
    if missing:
        new = embed_texts(model, tokenizer.pad_token_id, [input_ids[unique[h]] for h in missing], device)
        fresh = dict(zip(missing, new))
        project.store_embeddings(key, fresh)
        vectors.update(fresh)
    order = {h: row for row, h in enumerate(unique)}
    H = torch.from_numpy(np.stack([vectors[h] for h in unique])).to(device)
    rows = torch.as_tensor([order[h] for h in hashes], dtype=torch.long, device=device)
    head = model.head
    frozen_dense = head.dense is not None and not head.dense.weight.requires_grad
    if frozen_dense and head.dense is not None:
        with torch.no_grad():
            H = torch.tanh(head.dense(H))
    n = len(pairs)
    return FoldFeatures(H, rows[:n], rows[n:], copy.deepcopy(head).cpu(), frozen_dense, len(missing))


def embed_texts(model: Any, pad_id: int, input_ids: list[list[int]], device: torch.device) -> list[np.ndarray]:
    """Pooled features (``RewardModel.embed``, as head mode caches them) of token sequences: the trainer's
    embedding loop (``embed.pooled_batches``)."""
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(input_ids)
    for batch, pooled in pooled_batches(model, pad_id, input_ids, device):
        for i, v in zip(batch, pooled):
            out[i] = v
    return out


def train_head(
    features: FoldFeatures, pairs: data.Pairs, train_idx: np.ndarray, cfg: TrainConfig, device: torch.device
) -> nn.Module:
    """A fresh head trained as head mode trains it (batch size, epochs, AdamW groups, warmup and decay,
    clipping, the pairwise loss with its margins and centring) on the pairs ``train_idx`` only."""
    head: Any = copy.deepcopy(features.head).to(device)  # a ScoreHead
    scorer: nn.Module = OutOnly(head.out) if features.frozen_dense else head
    named = [(name, p) for name, p in scorer.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
    ]
    lr = cfg.resolved_lr()
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
    params = [p for _, p in named]
    n_train = len(train_idx)
    batch_size = head_batch_size(cfg.batch_size, n_train)
    steps_per_epoch = math.ceil(n_train / batch_size)
    epochs = cfg.resolved_epochs()
    total = steps_per_epoch * epochs
    warmup = round(WARMUP_FRACTION * total)
    margins = torch.tensor([cfg.margin(s) for s in pairs.strengths], dtype=torch.float32, device=device)
    targets = torch.tensor(pairs.target_values(), dtype=torch.float32, device=device)
    X, rows_c, rows_r = features.X, features.rows_c, features.rows_r
    step = 0
    scorer.train()
    for epoch in range(epochs):
        for batch in make_batches([0] * n_train, batch_size, seed=cfg.seed + epoch):
            idx = torch.as_tensor(train_idx[batch], device=device)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, lr, warmup, total)
            r = scorer(torch.cat([X[rows_c[idx]], X[rows_r[idx]]])).float()
            r_c, r_r = r.chunk(2)
            pair_terms(r_c, r_r, margins[idx], cfg.center_rewards_coefficient, targets[idx]).mean().backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
    scorer.eval()
    return scorer
