"""The trainer's events: plain data (floats, numpy arrays), never tensors, so any consumer (the CLI's
progress bar, the GUI worker's signals, a test) can hold them without touching the live model. When each
comes: docs/architecture.md#the-trainers-events."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RunStarted:
    run_id: int
    config: dict
    n_train: int
    n_val: int
    #: pairs whose response alone did not fit max_length: trained with the response cut, and reported.
    n_overlong: int
    total_steps: int
    resumed_from_step: int = 0
    #: what the run resolved: learning_rate, epochs, batch_size (head mode may raise it), steps_per_epoch,
    #: warmup_steps, device, world_size, backbone_path.
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PhaseProgress:
    """Progress inside a phase: "embedding" (head mode), "training" or "evaluating"."""

    run_id: int
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class StepMetrics:
    run_id: int
    step: int
    epoch: float
    total_steps: int
    #: loss, accuracy, ties, margin, chosen, rejected (train batch), plus learning_rate.
    metrics: dict[str, float]
    elapsed_s: float


@dataclass(frozen=True)
class Evaluation:
    """Per-pair scores at one evaluation; ``split`` holds "train" / "val" / "unlabelled" per pair."""

    run_id: int
    step: int
    epoch: float
    train: dict[str, float]
    val: dict[str, float]
    comparison_ids: np.ndarray
    split: np.ndarray
    r_chosen: np.ndarray
    r_rejected: np.ndarray

    @property
    def margins(self) -> np.ndarray:
        return self.r_chosen - self.r_rejected


@dataclass(frozen=True)
class CheckpointSaved:
    run_id: int
    step: int
    path: str


@dataclass(frozen=True)
class Paused:
    run_id: int
    step: int


@dataclass(frozen=True)
class Resumed:
    run_id: int
    step: int


@dataclass(frozen=True)
class Finished:
    run_id: int
    #: "finished" or "cancelled" (stopped by the user at a step boundary, checkpoint saved).
    status: str
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    run_id: int | None
    message: str
    #: what the user can do about it, shown under the message.
    hint: str = ""


Event = RunStarted | PhaseProgress | StepMetrics | Evaluation | CheckpointSaved | Paused | Resumed | Finished | Failed
