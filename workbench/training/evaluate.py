"""Evaluation: the model's rewards for pairs without gradients, and the metrics of a split.

It owns what a run computes to judge its model (TRL's metrics under ``no_grad``): ``score_tokens`` (fine-tune
mode: token sequences in length-sorted batches, split across ranks, with progress events and cancellation),
``score_features`` (head mode: cached features), ``split_metrics`` (loss, accuracy, margin, ... of a split)
and ``check_finite`` (diverged rewards stop the run). The trainer decides when to evaluate and stores the
results; nothing here writes to the project.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from workbench.training import distributed
from workbench.training.events import Event, PhaseProgress
from workbench.training.loss import pairwise_loss
from workbench.training.model import batch_width, collate_pairs, make_batches
from workbench.training.prepare import RunFailure
from workbench.training.run_control import RunControl


def pair_width(a_ids: list[list[int]], b_ids: list[list[int]], index: list[int], max_length: int) -> int:
    """Padded width of the pairs ``index`` of token sequences ``a_ids`` and ``b_ids``. A training step
    computes it on the global batch, so that every rank pads its shard as one process pads the whole
    batch: same shapes, the same step to float noise."""
    longest = max(max(len(a_ids[i]), len(b_ids[i])) for i in index)
    return batch_width(longest, max_length)


def score_tokens(model: nn.Module, pad_id: int, a_ids: list[list[int]], b_ids: list[list[int]], *,
                 batch_size: int, max_length: int, device: torch.device, dist: distributed.DistInfo,
                 control: RunControl, run_id: int | None) -> Iterator[Event]:
    """Fine-tune mode: (r_a, r_b) as float64 numpy arrays for token sequences, in length-sorted batches split
    across ranks, with "evaluating" progress; None when cancelled (one process only)."""
    lengths = [max(len(a), len(b)) for a, b in zip(a_ids, b_ids)]
    batches = make_batches(lengths, max(2 * batch_size, 16), shuffle=False)
    mine = batches[dist.rank::dist.world_size]
    out_a, out_b = np.zeros(len(a_ids)), np.zeros(len(a_ids))
    model.eval()
    try:
        yield PhaseProgress(run_id, "evaluating", 0, len(batches))
        for k, batch in enumerate(mine):
            if not dist.enabled and control.cancel_requested:
                return None
            b = collate_pairs([a_ids[i] for i in batch], [b_ids[i] for i in batch], pad_id,
                              width=pair_width(a_ids, b_ids, batch, max_length))
            with torch.no_grad():
                r = model(b["input_ids"].to(device), b["attention_mask"].to(device))
            ra, rb = numpy_rewards(r).reshape(2, -1)
            out_a[batch], out_b[batch] = ra, rb
            yield PhaseProgress(run_id, "evaluating", min(len(batches), (k + 1) * dist.world_size), len(batches))
    finally:
        model.train()
    if dist.enabled:
        for part, (pa, pb) in zip(batches_by_rank(batches, dist.world_size),
                                  distributed.all_gather_objects((out_a, out_b), dist)):
            out_a[part], out_b[part] = pa[part], pb[part]
        yield PhaseProgress(run_id, "evaluating", len(batches), len(batches))
    return out_a, out_b


def score_features(scorer: nn.Module, X: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Head mode: (r_a, r_b) of the feature rows ``rows_a`` and ``rows_b`` of ``X``."""
    with torch.no_grad():
        return numpy_rewards(scorer(X[rows_a])), numpy_rewards(scorer(X[rows_b]))


def split_metrics(r_c: np.ndarray, r_r: np.ndarray, idx: np.ndarray, margins: torch.Tensor,
                  center_rewards_coefficient: float) -> dict[str, float]:
    """Loss, accuracy, margin and reward statistics of the pairs ``idx`` (the loss is the training loss)."""
    _, metrics = pairwise_loss(torch.from_numpy(r_c[idx]), torch.from_numpy(r_r[idx]),
                               margins[torch.as_tensor(idx)].cpu().double(), center_rewards_coefficient)
    return metrics


def check_finite(r_c: np.ndarray, r_r: np.ndarray, step: int, lr: float) -> None:
    """Infinite or NaN rewards: the training diverged, and the run stops with a hint."""
    if not (np.isfinite(r_c).all() and np.isfinite(r_r).all()):
        raise RunFailure(
            f"the rewards became infinite or NaN at step {step}: training diverged (learning rate "
            f"{lr:g})", "lower the learning rate (e.g. 10x smaller) and start a new run")


def numpy_rewards(rewards: torch.Tensor) -> np.ndarray:
    """Rewards as float64 numpy (converted on the host: some devices have no float64)."""
    return rewards.detach().float().cpu().numpy().astype(np.float64)


def batches_by_rank(batches: list[list[int]], world: int) -> list[list[int]]:
    """The pair indices each rank scored when rank r took batches r, r + world, ..."""
    return [[i for b in batches[r::world] for i in b] for r in range(world)]
