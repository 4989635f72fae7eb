"""The pairwise (Bradley-Terry) reward loss and its batch metrics.

The same formula as TRL's RewardTrainer, so a run here and a run on the exported TRL dataset are
comparable: -log σ(r_c - r_r - m) (with a soft target p, the cross-entropy -[p log σ(Δ) + (1 - p) log σ(-Δ)],
which is the same at p = 1), plus the optional centring penalty η · mean((r_c + r_r)²) from
Eisenstein et al. 2023 that keeps rewards near zero without changing their order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_terms(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float = 0.0,
    target: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The loss of each pair, -[p log σ(Δ) + (1 - p) log σ(-Δ)] + η (r_c + r_r)² with Δ = r_c - r_r - m;
    their mean is the batch's loss. ``target`` p is P(chosen is better) (per pair or one number): None or 1
    is the hard label, -log σ(Δ); a posterior label or a tie (½) gives a soft target.

    Per pair, so that a batch split into micro-batches sums to the same loss (the trainer's steps), and
    without metrics, so that nothing synchronises with the device."""
    diff = r_chosen - r_rejected
    logits = diff if margin is None else diff - torch.as_tensor(margin, dtype=diff.dtype, device=diff.device)
    terms = -F.logsigmoid(logits)
    if target is not None:
        p = torch.as_tensor(target, dtype=logits.dtype, device=logits.device)
        terms = p * terms - (1 - p) * F.logsigmoid(-logits)
    if center_coef:
        terms = terms + center_coef * (r_chosen + r_rejected) ** 2
    return terms


def pairwise_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float = 0.0,
    target: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the loss to backpropagate and plain-float metrics for this batch.

    ``margin`` is per pair (shape [B]) or one number; None means no margin. Accuracy is strict
    (r_c > r_r): an untrained model that scores both sides the same is 0% accurate, not 50%, and
    ``ties`` says how many pairs that was. The metrics are computed without grad and synchronise
    with the device (``.item()``), so call this at log time or accept one sync per step.
    """
    if r_chosen.shape != r_rejected.shape or r_chosen.dim() != 1:
        raise ValueError(
            f"rewards must be two 1-D tensors of equal length, got {tuple(r_chosen.shape)} "
            f"and {tuple(r_rejected.shape)}"
        )
    diff = r_chosen - r_rejected
    loss = pair_terms(r_chosen, r_rejected, margin, center_coef, target).mean()

    with torch.no_grad():
        d = diff.detach().float()
        metrics = {
            "loss": float(loss.detach()),
            "accuracy": float((d > 0).float().mean()),
            "ties": float((d == 0).sum()),
            "margin": float(d.mean()),
            "chosen_mean": float(r_chosen.detach().float().mean()),
            "rejected_mean": float(r_rejected.detach().float().mean()),
            "n": float(d.numel()),
        }
    return loss, metrics
