"""Preparing a run, as plain functions, in the order the trainer calls them:

1. ``check_start``: settings, device and backbone folder;
2. ``labelled_data`` (a new run) or ``resumed_data`` (a run to continue): the labels, split by prompt with
   the seed, and the checks that need only the labels and the config (enough pairs, both splits non-empty);
3. ``build_run``: the backbone and its head, the tokenised pairs, the batch plan, the optimizer (``RunState``);
4. ``restore``: a resumed run's weights, optimizer, progress and random state (``Progress``).

Steps 1 and 2 run before the project gets a run row, so that a user error (a missing backbone folder, an
invalid setting, a device that is not there, too few labels, an empty validation split) leaves no run behind.
Nothing here writes to the project. The GUI never imports this module (it runs in the training process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.core.store import Project
from workbench.training import checkpoint, data, distributed
from workbench.training.config import TrainConfig
from workbench.training.model import BackboneError, PairEncoder, build_model

WARMUP_FRACTION = 0.06
#: the least learning rate of the head when the backbone is fine-tuned: the head starts at zero, and the
#: backbone gets gradient only through the head's weights, which at 5e-5 grow by about 5e-5 a step
#: (measured on 600 HH pairs, 60 steps: the loss stayed at 0.6931 with 5e-5 for all, 0.6907 with this).
FINETUNE_HEAD_LR = 1e-3
#: head mode trains on cached tensors, where a step of 8 pairs is all Python overhead: it takes at
#: least ``batch_size`` and about 16 steps per epoch, at most this many pairs per step.
HEAD_MAX_BATCH = 512
HEAD_STEPS_PER_EPOCH = 16
#: the settings a resumed run may change (where it runs, not what it trains); everything else is the run's
RESUME_OVERRIDES = ("threads", "device")


class RunFailure(Exception):
    """Stops a run with a message for the user and a hint of what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class StartCheck:
    """What a run can start with: its device type and its backbone's folder."""

    device_type: str
    backbone_path: str


def check_start(config: TrainConfig, backbone: bool = True) -> StartCheck:
    """Validate ``config`` and find its device and (``backbone``) its backbone folder, or raise RunFailure.
    A resumed run checks its backbone later, with its stored config ("" here)."""
    from workbench.training.device import autocast_dtype, resolve_device
    from workbench.training.model import BackboneError, resolve_backbone_path

    try:
        config.validate()
    except ValueError as exc:
        raise RunFailure(f"invalid setting: {exc}", "correct the setting and start again") from None
    try:
        device_type = resolve_device(config)
    except ValueError as exc:
        raise RunFailure(str(exc), "set device to 'auto' or 'cpu'") from None
    try:
        autocast_dtype(config.precision, device_type)
    except ValueError as exc:
        raise RunFailure(str(exc), "set precision to 'auto'") from None
    if not backbone:
        return StartCheck(device_type, "")
    try:
        path = resolve_backbone_path(config.backbone)
    except BackboneError as exc:
        raise RunFailure(str(exc), "choose another backbone (a local Hugging Face model folder) or 'minilm'") from None
    return StartCheck(device_type, path)


def head_batch_size(batch_size: int, n_train: int) -> int:
    """Pairs per step in head mode: ``batch_size`` at least, about 16 steps per epoch, 512 at most."""
    return max(batch_size, min(HEAD_MAX_BATCH, math.ceil(n_train / HEAD_STEPS_PER_EPOCH)))


# ----------------------------------------------------------------- 2. the labels
@dataclass
class RunData:
    """What a run trains on: its config in force, its pairs and their split, its data snapshot; a resumed
    run also its checkpoint and the settings it changed."""

    config: TrainConfig
    pairs: data.Pairs
    is_val: np.ndarray
    snapshot: dict[str, Any]
    checkpoint: checkpoint.Checkpoint | None = None
    resumed_with: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.train_idx = np.flatnonzero(~self.is_val)
        self.val_idx = np.flatnonzero(self.is_val)
        self.n_train, self.n_val = len(self.train_idx), len(self.val_idx)


def labelled_data(project: Project, config: TrainConfig) -> RunData:
    """A new run's data: ``Project.training_pairs()`` with the config's ``labels`` and ``ties`` (both-bad,
    skips and excluded pairs are already out; ties too unless ``ties`` is half), split by prompt with the
    seed, checked. The snapshot records the label source and the soft targets."""
    pairs = data.pairs_from_frame(project.training_pairs(labels=config.labels, ties=config.ties))
    is_val = data.split_by_prompt(pairs.prompt_keys, config.val_fraction, config.seed)
    snapshot = data.make_snapshot(pairs, is_val, excluded=len(project.marked("exclude")))
    snapshot["labels"], snapshot["ties"] = config.labels, config.ties
    check_pairs(pairs, is_val, config)
    return RunData(config, pairs, is_val, snapshot)


def resumed_data(project: Project, config: TrainConfig, run_id: int) -> RunData:
    """Run ``run_id``'s data (its snapshot), its latest checkpoint, and the config in force: the one the run
    stored, with only where it runs (``RESUME_OVERRIDES``) taken from ``config``."""
    try:
        run = project.run(run_id)
    except KeyError:
        raise RunFailure(
            f"there is no run {run_id} in {project.path.name}",
            "list the runs and pick one that was cancelled or stopped",
        ) from None
    if run["status"] == "finished":
        raise RunFailure(f"run {run_id} has already finished", "start a new run instead")
    path = checkpoint.latest(project.checkpoint_dir(run_id))
    if path is None:
        raise RunFailure(
            f"run {run_id} has no checkpoint to resume from (it stopped before its first epoch ended)",
            "start a new run",
        )
    try:
        ckpt = checkpoint.load(path)
    except checkpoint.CheckpointError as exc:
        raise RunFailure(str(exc), "start a new run") from None
    stored = TrainConfig.from_dict(run["config"])
    resumed_with = {
        name: getattr(config, name) for name in RESUME_OVERRIDES if getattr(config, name) != getattr(stored, name)
    }
    snapshot = run["data_snapshot"]
    try:
        pairs, is_val = data.pairs_from_snapshot(project.comparisons_frame(), snapshot)
    except data.DataError as exc:
        raise RunFailure(str(exc), exc.hint) from None
    cfg = stored.replace(**resumed_with)
    check_pairs(pairs, is_val, cfg)
    return RunData(cfg, pairs, is_val, snapshot, ckpt, resumed_with)


def check_pairs(pairs: data.Pairs, is_val: np.ndarray, config: TrainConfig) -> None:
    """Raise RunFailure unless there are enough pairs and both splits have some."""
    if len(pairs) < data.MIN_PAIRS:
        more = data.MIN_PAIRS - len(pairs)
        raise RunFailure(
            f"only {len(pairs)} pair(s) can be trained on; a run needs at least {data.MIN_PAIRS}",
            f"label at least {more} more pair(s) with a preference (A or B); ties, both-bad, skipped and "
            "excluded pairs are not trained on",
        )
    n_val = int(np.count_nonzero(is_val))
    if n_val == 0 or n_val == len(pairs):
        side = "validation" if n_val == 0 else "training"
        hint = (
            "set val_fraction above 0"
            if config.val_fraction == 0
            else "label pairs for at least two different prompts (the split keeps each prompt on one side)"
        )
        raise RunFailure(
            f"the {side} split is empty ({len(pairs)} pairs from {len(set(pairs.prompt_keys))} prompt(s))", hint
        )


# ----------------------------------------------------------------- 3. model, tokens, batches, optimizer
class OutOnly(nn.Module):
    """The head's output layer alone, for a head whose hidden layer is frozen (precomputed once)."""

    def __init__(self, out: nn.Linear):
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x).squeeze(-1)


@dataclass
class RunState:
    """What ``build_run`` makes: the model and what a step needs besides the data."""

    backbone_path: str
    model: Any
    tokenizer: Any
    encoder: PairEncoder
    enc_c: data.EncodedSides  # chosen side of every pair, tokenised (prompt + response, left-truncated)
    enc_r: data.EncodedSides  # rejected side
    n_overlong: int
    pair_lengths: list[int]
    margins: torch.Tensor
    batch_size: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup: int
    lr: float
    head_lr: float
    frozen_dense: bool
    scorer: nn.Module  # what a step trains: the whole model, the head, or its output layer
    net: nn.Module  # ``scorer``, wrapped for DDP when distributed
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    #: the forward passes' autocast dtype (None: fp32), and fp16's gradient scaler
    autocast: torch.dtype | None = None
    scaler: Any = None
    #: P(chosen is better) per pair (soft targets of the loss), or None: every label is hard
    targets: torch.Tensor | None = None

    def target(self, index: Any) -> torch.Tensor | None:
        """The soft targets of the pairs ``index``, or None when every label is hard."""
        return None if self.targets is None else self.targets[index]

    def release(self) -> None:
        """Drop the model, its optimizer and the tensors of a step (a finished run whose checkpoint is saved),
        so that what runs next (fine-tune folds) has the memory; the plan's numbers stay."""
        self.model = None
        self.scorer = self.net = nn.Identity()
        self.optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
        self.params = []


def build_run(run: RunData, backbone_path: str, device: torch.device, dist: distributed.DistInfo) -> RunState:
    """Load the backbone with its head, tokenise the pairs, plan the batches and make the optimizer."""
    cfg = run.config
    torch.manual_seed(cfg.seed)  # the same initialisation (LoRA adapters too) on every rank and rerun
    try:
        model, tokenizer = build_model(cfg)
    except BackboneError as exc:
        raise RunFailure(str(exc), "choose another backbone (a local Hugging Face model folder) or 'minilm'") from None
    model.to(device)
    if cfg.gradient_checkpointing and cfg.mode == "finetune":
        model.enable_gradient_checkpointing()
    try:
        encoder = PairEncoder.for_model(model, tokenizer, cfg.max_length)
    except ValueError as exc:
        raise RunFailure(str(exc), "lower max_length") from None

    pairs = run.pairs
    enc_c = data.encode_sides(encoder, pairs.prompts, pairs.chosen)
    enc_r = data.encode_sides(encoder, pairs.prompts, pairs.rejected)
    n_overlong = int(np.count_nonzero(enc_c.overlong | enc_r.overlong))
    pair_lengths = [max(a, b) for a, b in zip(enc_c.lengths, enc_r.lengths)]
    margins = torch.tensor([cfg.margin(s) for s in pairs.strengths], dtype=torch.float32, device=device)

    batch_size = cfg.batch_size if cfg.mode == "finetune" else head_batch_size(cfg.batch_size, run.n_train)
    steps_per_epoch = math.ceil(run.n_train / batch_size)
    epochs = cfg.resolved_epochs()
    total_steps = steps_per_epoch * epochs
    lr = cfg.resolved_lr()

    # What a step trains: the whole model on tokens, or (head mode) the head on cached features. A
    # head whose hidden layer is frozen (the 'linear' head on an encoder's pooler) is the output layer
    # on tanh(dense(h0)), computed once instead of at every step.
    head = model.head
    frozen_dense = cfg.mode == "head" and head.dense is not None and not head.dense.weight.requires_grad
    scorer: nn.Module = model if cfg.mode == "finetune" else (OutOnly(head.out) if frozen_dense else head)
    net = distributed.wrap(scorer, dist, str(device))

    # AdamW: decay on matrices only; in fine-tuning the freshly (zero-) initialised head gets at least
    # FINETUNE_HEAD_LR, since the backbone receives gradient only through the head's weights.
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head_scale = max(1.0, FINETUNE_HEAD_LR / lr) if cfg.mode == "finetune" else 1.0
    groups = [
        {
            "params": [p for n, p in named if p.ndim >= 2 and not n.startswith("head.")],
            "weight_decay": cfg.weight_decay,
            "lr_scale": 1.0,
        },
        {
            "params": [p for n, p in named if p.ndim < 2 and not n.startswith("head.")],
            "weight_decay": 0.0,
            "lr_scale": 1.0,
        },
        {
            "params": [p for n, p in named if p.ndim >= 2 and n.startswith("head.")],
            "weight_decay": cfg.weight_decay,
            "lr_scale": head_scale,
        },
        {
            "params": [p for n, p in named if p.ndim < 2 and n.startswith("head.")],
            "weight_decay": 0.0,
            "lr_scale": head_scale,
        },
    ]
    # The fused kernel (one pass over each tensor for all of Adam's updates) instead of the foreach default:
    # measured on MiniLM's 22.7M parameters on one CPU thread, its step took 0.09-0.12 s against 0.28-0.6 s.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, fused=fused)
    from workbench.training.device import autocast_dtype, configure

    configure(device.type)
    autocast = autocast_dtype(cfg.precision, device.type) if cfg.mode == "finetune" else None
    # fp16 overflows where bf16 does not: its loss is scaled up and its gradients unscaled before clipping
    scaler = torch.amp.GradScaler(device.type) if autocast is torch.float16 else None
    return RunState(
        backbone_path=backbone_path,
        model=model,
        tokenizer=tokenizer,
        encoder=encoder,
        enc_c=enc_c,
        enc_r=enc_r,
        n_overlong=n_overlong,
        pair_lengths=pair_lengths,
        margins=margins,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        total_steps=total_steps,
        warmup=round(WARMUP_FRACTION * total_steps),
        lr=lr,
        head_lr=lr * head_scale,
        frozen_dense=frozen_dense,
        scorer=scorer,
        net=net,
        optimizer=optimizer,
        params=[p for _, p in named],
        targets=None if pairs.targets is None else torch.tensor(pairs.targets, dtype=torch.float32, device=device),
        autocast=autocast,
        scaler=scaler,
    )


# ----------------------------------------------------------------- 4. where the run stands
@dataclass
class Progress:
    """What a checkpoint must restore besides tensors."""

    step: int = 0
    elapsed_s: float = 0.0
    train_s: float = 0.0
    pairs_trained: int = 0
    last_eval_step: int = -1
    last_ckpt_step: int = -1
    train_metrics: dict = field(default_factory=dict)
    val_metrics: dict = field(default_factory=dict)


def restore(run: RunData, state: RunState, run_id: int | None, dist: distributed.DistInfo) -> Progress:
    """A resumed run's weights, optimizer, progress and random state from its checkpoint; a new run's
    random state. Last before the steps: nothing after this may draw random numbers."""
    p = Progress()
    ckpt = run.checkpoint
    if ckpt is None:
        # Dropout differs per rank (different data anyway); rank 0 of a DDP run matches a 1-process run.
        torch.manual_seed(run.config.seed + 1_000_003 * dist.rank)
        return p
    try:
        checkpoint.load_trainable_state(state.model, ckpt.model)
        state.optimizer.load_state_dict(ckpt.optimizer)
    except (checkpoint.CheckpointError, ValueError, KeyError) as exc:
        raise RunFailure(f"the checkpoint of run {run_id} does not fit: {exc}", "start a new run") from None
    s = ckpt.state
    if s.get("steps_per_epoch") != state.steps_per_epoch or s.get("total_steps") != state.total_steps:
        raise RunFailure(f"run {run_id}'s data no longer matches its checkpoint", "start a new run")
    for name in (
        "step",
        "elapsed_s",
        "train_s",
        "pairs_trained",
        "last_eval_step",
        "train_metrics",
        "val_metrics",
    ):
        setattr(p, name, s.get(name, getattr(p, name)))
    p.last_ckpt_step = p.step
    checkpoint.set_rng_state(ckpt.state["rng"])
    return p
