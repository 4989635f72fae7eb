"""Out-of-fold margins: every labelled pair of a run scored by a head that never saw the pair's prompt.

It owns the K-fold scoring of a run's pairs (DESIGN.md §5, Inspect: in-sample margins hide memorised
wrong labels). The pairs are the run's own (its data snapshot, ``data.pairs_from_snapshot``), split into K
folds by prompt with the run's seed (``data.folds_by_prompt``); for each fold a fresh copy of the run's head
(``model.build_model``: the same initialisation, the same frozen/trainable parts) is trained with the head
mode's loss, optimizer and schedule on the other K-1 folds' cached embeddings, then scores the held-out fold.

A fine-tune run gets the same head-mode folds on its *backbone's* embeddings (computed and cached here with
the head mode's embedding code when missing): source "head-folds", not K extra fine-tunes. Nothing here
writes scores; the caller stores them (``Project.add_oof_scores``). Deterministic for a seed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.core.store import Project
from workbench.training import data, evaluate
from workbench.training.config import TrainConfig
from workbench.training.embed import EMBED_BATCH
from workbench.training.loss import pair_terms
from workbench.training.model import PairEncoder, build_model, make_batches, pad_batch, resolve_backbone_path
from workbench.training.prepare import WARMUP_FRACTION, OutOnly, head_batch_size
from workbench.training.trainer import MAX_GRAD_NORM, lr_at

#: the ``oof_scores.source`` of scores made here
SOURCE = "head-folds"
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
    r_c, r_r = np.zeros(len(pairs)), np.zeros(len(pairs))
    for fold in range(k):
        held = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        scorer = train_head(features, pairs, train, hcfg, dev)
        held_t = torch.as_tensor(held, device=dev)
        r_c[held], r_r[held] = evaluate.score_features(
            scorer, features.X, features.rows_c[held_t], features.rows_r[held_t]
        )
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
    """Pooled features (``RewardModel.embed``, as head mode caches them) of token sequences, in length-sorted
    batches of the trainer's embedding batch size."""
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(input_ids)
    model.eval()
    for batch in make_batches([len(s) for s in input_ids], EMBED_BATCH, shuffle=False):
        ids, mask = pad_batch([input_ids[i] for i in batch], pad_id)
        with torch.inference_mode():
            pooled = model.embed(ids.to(device), mask.to(device)).float().cpu().numpy()
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
            pair_terms(r_c, r_r, margins[idx], cfg.center_rewards_coefficient).mean().backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
    scorer.eval()
    return scorer
