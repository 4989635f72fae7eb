"""The reward-model trainer: a generator of plain events, paused, resumed and cancelled between steps.

    trainer = Trainer("p.wbp", TrainConfig(mode="head"))
    for event in trainer.events():      # RunStarted, PhaseProgress, StepMetrics, Evaluation, ...
        ...                             # another thread may call trainer.pause() / resume() / cancel()

It owns the step loop and the run's record in the project; ``_run`` reads top to bottom the way a run
goes (nanoGPT's directness, TRL's loss and metrics):

1. data (``prepare.labelled_data``): ``Project.training_pairs()`` (ties, both-bad, skips and excluded pairs
   are already out), split by prompt with the seed, checked, then recorded as the run's data snapshot
   (judgment ids, choices, split) in a new run row;
2. model (``prepare.build_run``, ``prepare.restore``): backbone + scalar head (``model.py``), LoRA when
   asked, PairEncoder with left truncation (over-length pairs are kept and counted), the optimizer;
3. head mode only (``embed.py``): pooled embeddings of every text, read from the project's cache or computed
   once and stored there; the head then trains on those tensors (milliseconds per step);
4. steps: chosen and rejected in one batch, -log σ(r_c - r_r - m) (+ centring), AdamW, linear warmup
   then linear decay, gradient clipping at 1.0; batches bucketed by length, in an order derived from
   seed + epoch; metrics accumulate on the device and are read (``.tolist()``) only at log points;
5. evaluation (``evaluate.evaluate`` scores, records and emits it) every ``eval_every`` steps (0: each
   epoch) and at the end: train and validation metrics and per-pair scores (the comparisons that are not
   training pairs are scored later, when a queue or view asks: ``evaluate.score_missing``). At an
   epoch's end a fine-tune (dropout off) keeps the training pairs' rewards from that epoch's own passes
   (``EpochRewards``, in-sample margins as TRL logs them) and scores only the rest: the evaluation after the
   steps then costs a validation pass, not a second pass over the training split (``rescore_train`` asks for
   it); each distinct text is scored once;
6. checkpoints (``checkpoint.py``) at each epoch's end, on pause and on cancel; ``resume_run`` continues
   a run from its last one on the same curve;
7. at the end of a finished run: the training dynamics of every training pair (``PairDynamics``: p(label)
   from the margins the steps computed for the loss, aggregated online, no extra forward pass), then its
   out-of-fold scores (``folds.run_folds``: "folds" progress, cancellable), both stored in the project.

The trainer opens its own ``Project`` inside ``events()`` (so it can run in a worker thread), and under
``torchrun`` only rank 0 writes to it (see ``distributed.py``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from workbench.core.store import Project, ProjectError
from workbench.training import checkpoint, distributed, embed, evaluate, prepare, threads
from workbench.training.config import TrainConfig
from workbench.training.evaluate import batches_by_rank  # noqa: F401 - used by tests/training/test_distributed.py
from workbench.training.events import (
    CheckpointSaved,
    Event,
    Failed,
    Finished,
    Paused,
    PhaseProgress,
    Resumed,
    RunStarted,
    StepMetrics,
)
from workbench.training.loss import pair_terms
from workbench.training.model import collate_pairs, make_batches
from workbench.training.prepare import RunFailure, check_start, head_batch_size  # noqa: F401 - head_batch_size: API
from workbench.training.run_control import RunControl

_log = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0
#: the split name of the per-step (logged) training metrics in ``run_metrics``
STEP_SPLIT = "train_step"
#: buffered step metrics are written at evaluations and checkpoints, or after this many seconds
METRICS_FLUSH_S = 2.0
#: accumulated per step: loss, correct, ties, margin sum, chosen sum, rejected sum, pairs, grad norm
_ACC = ("loss", "correct", "ties", "margin", "chosen", "rejected", "n", "grad_norm")


def warm_up_torch() -> None:
    """Pay torch's one-time optimizer import (about 2 s) now, e.g. at start-up in a process without a GUI."""
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    p.sum().backward()
    opt.step()


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Learning rate for the 0-based optimizer step ``step``: linear warmup, then linear decay to 0."""
    if step < warmup:
        return base * (step + 1) / (warmup + 1)
    return base * max(0.0, (total - step) / max(1, total - warmup))


class PairDynamics:
    """Per pair, the count, mean and M2 (Welford) of p(label) = σ(r_label − r_other) at the training steps that
    saw it, from the margins the step computed for its loss (data cartography, Swayamdipta et al. 2020: the
    mean is the pair's confidence, the standard deviation its variability). Kept on the device: no sync."""

    def __init__(self, n_pairs: int, device: torch.device, dtype: torch.dtype):
        self.count = torch.zeros(n_pairs, dtype=dtype, device=device)
        self.mean = torch.zeros(n_pairs, dtype=dtype, device=device)
        self.m2 = torch.zeros(n_pairs, dtype=dtype, device=device)

    def add(self, index: list[int], margins: torch.Tensor) -> None:
        """One point for each pair of ``index`` (distinct), whose margins r_label - r_other are ``margins``."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.count.device)
        p = torch.sigmoid(margins.detach().to(self.count.dtype))
        count = self.count[idx] + 1
        delta = p - self.mean[idx]
        mean = self.mean[idx] + delta / count
        self.m2[idx] += delta * (p - mean)
        self.mean[idx] = mean
        self.count[idx] = count

    def state(self) -> dict[str, list[float]]:
        """For a checkpoint (JSON)."""
        return {k: getattr(self, k).double().cpu().tolist() for k in ("count", "mean", "m2")}

    def load(self, state: dict[str, list[float]]) -> None:
        for k in ("count", "mean", "m2"):
            t = getattr(self, k)
            if len(state.get(k, [])) == len(t):
                t.copy_(torch.tensor(state[k], dtype=t.dtype))

    def merged(self, dist: distributed.DistInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_points, confidence, variability) per pair over every rank (Chan et al.'s parallel combination);
        a collective under torchrun."""
        count = distributed.all_reduce_sum(self.count.clone(), dist)
        total = distributed.all_reduce_sum(self.count * self.mean, dist)
        mean = total / count.clamp(min=1)
        m2 = distributed.all_reduce_sum(self.m2 + self.count * (self.mean - mean) ** 2, dist)
        var = m2 / count.clamp(min=1)
        return (
            count.round().long().cpu().numpy(),
            mean.double().cpu().numpy(),
            var.clamp(min=0).sqrt().double().cpu().numpy(),
        )


class EpochRewards:
    """Per training pair, (r_chosen, r_rejected) from the last training pass that saw it and that pass's epoch,
    kept on the device without a sync. At an epoch's end they are the training split's in-sample rewards, so
    the evaluation scores only the other pairs (``evaluate.evaluate``'s ``in_sample``)."""

    def __init__(self, n_pairs: int, device: torch.device, dtype: torch.dtype):
        self.r = torch.zeros(2, n_pairs, dtype=dtype, device=device)
        self.epoch = torch.full((n_pairs,), -1, dtype=torch.long, device=device)

    def add(self, index: list[int], epoch: int, r_c: torch.Tensor, r_r: torch.Tensor) -> None:
        idx = torch.as_tensor(index, dtype=torch.long, device=self.epoch.device)
        self.r[:, idx] = torch.stack([r_c.detach(), r_r.detach()]).to(self.r.dtype)
        self.epoch[idx] = epoch

    def state(self) -> dict[str, list]:
        """For a checkpoint (JSON), so that a resumed run keeps the in-sample rewards of its epoch so far."""
        return {"r": self.r.double().cpu().tolist(), "epoch": self.epoch.cpu().tolist()}

    def load(self, state: dict[str, list]) -> None:
        if len(state.get("epoch", [])) == self.epoch.numel():
            self.r.copy_(torch.tensor(state["r"], dtype=self.r.dtype))
            self.epoch.copy_(torch.tensor(state["epoch"], dtype=torch.long))

    def of_epoch(self, epoch: int, dist: distributed.DistInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pair indices, r_chosen, r_rejected) of the pairs passed in ``epoch`` on any rank (a collective)."""
        seen = (self.epoch == epoch).to(self.r.dtype)
        merged = distributed.all_reduce_sum(torch.cat([seen[None], self.r * seen]), dist).double().cpu().numpy()
        idx = np.flatnonzero(merged[0] > 0.5)
        return idx, merged[1, idx], merged[2, idx]


class Trainer:
    """Trains a reward model on a project's labels; ``events()`` runs it. Thread-safe controls."""

    def __init__(
        self,
        project_path: str | Path,
        config: TrainConfig,
        resume_run: int | None = None,
        *,
        log_every: int | None = None,
        control: RunControl | None = None,
    ):
        self.project_path = Path(project_path)
        self.config = config
        self.resume_run = resume_run
        #: pause, resume and cancel requests (``pause()`` etc. below are shortcuts to it)
        self.control = control if control is not None else RunControl(resume_run)
        if resume_run is not None:
            self.control.run_id = resume_run
        self._log_every_asked = log_every
        self._started = False

    @property
    def run_id(self) -> int | None:
        """The run being trained; set once ``events()`` has created (or reopened) it."""
        return self.control.run_id

    @run_id.setter
    def run_id(self, value: int | None) -> None:
        self.control.run_id = value

    @property
    def _id(self) -> int:
        """The run's id, inside ``_run`` once its row exists (created or reopened in step 1)."""
        if self.run_id is None:
            raise RuntimeError("the run has no row yet")
        return self.run_id

    # ----------------------------------------------------------------- controls (any thread)
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def cancel(self) -> None:
        self.control.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self.control.cancel_requested

    @property
    def pause_requested(self) -> bool:
        return self.control.pause_requested

    # ----------------------------------------------------------------- the run
    def events(self) -> Iterator[Event]:
        """Run the training and yield its events: ``RunStarted`` first (unless the run cannot start,
        when ``Failed`` comes alone), ``Finished`` or ``Failed`` last."""
        if self._started:
            raise RuntimeError("Trainer.events() runs once; make a new Trainer for another run")
        self._started = True
        if self.config.threads > 0:  # auto: measured once the model is built (``_choose_threads``)
            torch.set_num_threads(self.config.threads)  # per thread: this one runs the steps
        try:
            self._project = Project.open(self.project_path)
        except ProjectError as exc:
            yield Failed(None, str(exc), "choose an existing project file (or create one by importing data)")
            return
        self._dist = distributed.SINGLE
        self._main = True  # until distributed.setup says which rank this is
        self._ready = False  # training state exists, so a checkpoint can be written
        self._over = False  # the last event (Finished or Failed) has been produced
        try:
            yield from self._run()
        except RunFailure as f:
            self._mark(status="failed", message=f.message)
            self._over = True
            yield Failed(self.run_id, f.message, f.hint)
        except GeneratorExit:
            # The consumer stopped iterating (e.g. the window closed): keep a resumable state. (Closing
            # after the last event, Finished or Failed, changes nothing.)
            if not self._over:
                self._abandon("stopped by the caller")
            raise
        except KeyboardInterrupt:
            self._mark(status="cancelled", message="interrupted; resume from the last checkpoint")
            raise
        except BaseException as exc:  # run_control.run_to_events turns it into Failed (out of memory: a hint)
            self._mark(status="failed", message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            try:
                self._project.close()
            except Exception:  # noqa: BLE001 - e.g. closed from another thread by garbage collection
                _log.debug("could not close the trainer's project connection", exc_info=True)
            distributed.teardown(self._dist)

    def _run(self) -> Iterator[Event]:
        self._t_session = time.perf_counter()
        self._paused_s = 0.0
        # A user error found now (setting, device, backbone folder) leaves no run behind. A resumed run is
        # checked again with its own config once that is read.
        self._start = check_start(self.config, backbone=self.resume_run is None)
        self._dist = distributed.setup(self._start.device_type)
        self._device = torch.device(distributed.device_for(self._dist, self._start.device_type))
        self._main = self._dist.is_main
        self._metric_rows: list[tuple[int, float, dict[str, float]]] = []
        self._embedding: embed.Embedding | None = None  # head mode: the embedding cache and what it cost
        self._features: embed.Features | None = None  # head mode: the pairs' features
        self._scores: evaluate.PairScores | None = None  # the last evaluation's, reused at the same step
        self._last_flush = time.perf_counter()
        self._log_every = (
            self._log_every_asked if self._log_every_asked is not None else (1 if self._device.type == "cpu" else 10)
        )  # .item() is a sync point on a GPU

        # 1. the labels; for a new run every check that needs only them and the config comes before its run row
        project = self._project
        if self.resume_run is None:
            self.data = prepare.labelled_data(project, self.config)
            self.run_id = self._create_run()
            backbone_path = self._start.backbone_path
        else:
            self.data = prepare.resumed_data(project, self.config, self.resume_run)
            backbone_path = check_start(self.data.config).backbone_path  # the run's own backbone
            if self.data.checkpoint is None:
                raise RuntimeError("resumed_data returns the run's checkpoint")
            if self._main:
                project.truncate_run(self.resume_run, self.data.checkpoint.step)
                changed = ", ".join(f"{k}={v}" for k, v in self.data.resumed_with.items())
                project.update_run(
                    self.resume_run, status="running", message=f"resumed with {changed}" if changed else ""
                )
        self.cfg = self.data.config
        # 2. the model, the tokenised pairs, the optimizer; a resumed run's state from its checkpoint
        self.state = prepare.build_run(self.data, backbone_path, self._device, self._dist)
        self._p = prepare.restore(self.data, self.state, self.run_id, self._dist)
        self.resumed_from = self._p.step
        self._threads = self._choose_threads()
        # float64 sums (MPS has no float64: float32 there)
        self._acc = torch.zeros(
            len(_ACC), dtype=torch.float32 if self._device.type == "mps" else torch.float64, device=self._device
        )
        self._acc_steps = self._acc_n = 0
        self._dynamics = PairDynamics(len(self.data.pairs), self._device, self._acc.dtype)
        if self.data.checkpoint is not None and self._main:  # rank 0's checkpoint holds the points so far
            self._dynamics.load(self.data.checkpoint.state.get("dynamics", {}))
        # Fine-tuning without dropout: a training pass computes the rewards an evaluation pass would (of the
        # model at that step), so an epoch's end reuses them for the training split instead of a second pass.
        self._epoch_rewards = (
            EpochRewards(len(self.data.pairs), self._device, self._acc.dtype)
            if self.cfg.mode == "finetune" and not self.cfg.dropout and not self.cfg.rescore_train
            else None
        )
        if self._epoch_rewards is not None and self.data.checkpoint is not None and self._main:
            self._epoch_rewards.load(self.data.checkpoint.state.get("epoch_rewards", {}))
        self._in_sample_pairs = 0  # training pairs whose final scores came from the last epoch's passes
        # Head mode: the head as the run starts it, for the out-of-fold heads (a resumed run rebuilds it).
        self._initial_head = (
            copy.deepcopy(self.state.model.head).cpu() if self.resume_run is None and self.cfg.mode == "head" else None
        )
        self._folds_summary: dict[str, Any] | None = None
        self._ready = True
        cfg, p = self.cfg, self._p
        yield RunStarted(
            self._id,
            cfg.to_dict(),
            self.data.n_train,
            self.data.n_val,
            self.state.n_overlong,
            self.state.total_steps,
            resumed_from_step=p.step,
            details=self._details(),
        )
        # 3. head mode: the pairs' features, from the project's cache or computed (and cached) now
        if cfg.mode == "head":
            self._embedding = embed.Embedding(embed.cache_key(self.state, cfg.max_length))
            self._features = yield from embed.embed_sides(
                project,
                self._embedding,
                self.state,
                self.state.enc_c,
                self.state.enc_r,
                device=self._device,
                dist=self._dist,
                control=self.control,
                run_id=self._id,
            )
            if self._features is None:
                yield from self._stop("cancelled")
                return
        self._phase_start = time.perf_counter()
        status = yield from self._train()
        yield from self._stop(status)

    def _create_run(self) -> int:
        """The new run's row, created by rank 0 and its id shared with the other ranks."""
        cfg, dist = self.config, self._dist
        run_id = None
        if self._main:
            try:
                run_id = self._project.create_run(cfg.mode, cfg.backbone, cfg.to_dict(), self.data.snapshot)
            finally:
                if dist.enabled and run_id is None:
                    distributed.broadcast_object(None, dist)  # let the other ranks stop too
        run_id = distributed.broadcast_object(run_id, dist)
        if run_id is None:
            raise RunFailure("rank 0 could not create the run in the project", "see rank 0's error")
        return run_id

    def _details(self) -> dict[str, Any]:
        return {
            "learning_rate": self.state.lr,
            "head_learning_rate": self.state.head_lr,
            "epochs": self.state.epochs,
            "batch_size": self.state.batch_size,
            "steps_per_epoch": self.state.steps_per_epoch,
            "warmup_steps": self.state.warmup,
            "device": str(self._device),
            "world_size": self._dist.world_size,
            "backbone_path": self.state.backbone_path,
            "log_every": self._log_every,
            "threads": self._threads.as_dict(),
            "threads_note": self._threads.describe(),
            "autocast": str(self.state.autocast).removeprefix("torch.") if self.state.autocast else None,
            "gradient_checkpointing": bool(self.cfg.gradient_checkpointing and self.cfg.mode == "finetune"),
            "tf32": self._device.type == "cuda",
            "lora_target_modules": self.state.model.lora_targets if self.cfg.lora else [],
        }

    def _choose_threads(self) -> threads.ThreadChoice:
        """The CPU threads of this run: the setting, or (auto) the fastest of a short probe of this run's own
        step on this machine, cached for later runs (``threads.py``). The probe changes no weight and no
        random state: gradients are dropped and the generators restored."""
        cfg = self.config  # a resumed run may change threads: the setting given now
        kind = "finetune" if self.cfg.mode == "finetune" else "score"
        if cfg.threads == 0 and self._dist.enabled:  # ranks share the machine's cores; no rank probes alone
            choice = threads.ThreadChoice(max(1, threads.physical_cores() // self._dist.world_size), "default")
            torch.set_num_threads(choice.threads)
            return choice
        step = self._probe_step(kind) if cfg.threads == 0 else None
        choice = threads.choose_threads(cfg.threads, kind, step)
        torch.set_num_threads(choice.threads)
        return choice

    def _probe_step(self, kind: str) -> Callable[[], None] | None:
        """One representative unit of this run's work for the thread probe: a training step's forward and
        backward passes on a batch of median length ("finetune"), or a forward pass over such a batch's texts
        (head mode, whose time goes to embedding). None when there is nothing to measure."""
        if self._device.type != "cpu" or not self.data.n_train or self.state.model is None:
            return None
        train = sorted((int(i) for i in self.data.train_idx), key=lambda i: self.state.pair_lengths[i])
        mid = max(0, len(train) // 2 - self.cfg.batch_size // 2)
        batch = train[mid : mid + self.cfg.batch_size]
        width = evaluate.pair_width(self.state.enc_c.input_ids, self.state.enc_r.input_ids, batch, self.cfg.max_length)
        if width <= 0:
            return None

        def finetune_step() -> None:
            with torch.random.fork_rng(devices=[]):
                for part in micro_batches(batch, width, self.cfg.pass_tokens):
                    r_c, r_r = self._rewards(part, self.state.scorer, width)
                    pair_terms(r_c, r_r, self.state.margins[part], self.cfg.center_rewards_coefficient).sum().backward()
            self.state.optimizer.zero_grad(set_to_none=True)

        def score_step() -> None:
            b = collate_pairs(
                [self.state.enc_c.input_ids[i] for i in batch],
                [self.state.enc_r.input_ids[i] for i in batch],
                self.state.tokenizer.pad_token_id,
                width=width,
            )
            with torch.no_grad():
                self.state.model(b["input_ids"].to(self._device), b["attention_mask"].to(self._device))

        return finetune_step if kind == "finetune" else score_step

    # ----------------------------------------------------------------- 4. steps
    def _train(self) -> Generator[Event, None, str]:
        """Run the remaining steps; returns 'finished' or 'cancelled'."""
        p, spe = self._p, self.state.steps_per_epoch
        yield PhaseProgress(self._id, "training", p.step, self.state.total_steps)
        while p.step < self.state.total_steps:
            epoch, done_in_epoch = divmod(p.step, spe)
            # The epoch's order depends on seed + epoch only, so a resumed run skips exactly the batches done.
            batches = make_batches(self.pair_lengths_train, self.state.batch_size, seed=self.cfg.seed + epoch)
            for batch in batches[done_in_epoch:]:
                if (yield from self._boundary()):
                    return "cancelled"
                t0 = time.perf_counter()
                self._step([int(self.data.train_idx[i]) for i in batch])
                p.step += 1
                p.pairs_trained += len(batch)
                if p.step % self._log_every == 0 or p.step % spe == 0:
                    yield from self._log()
                p.train_s += time.perf_counter() - t0
                end_of_epoch = p.step % spe == 0
                every = self.cfg.eval_every
                if (every and p.step % every == 0) or (not every and end_of_epoch):
                    if not (yield from self._evaluate()):
                        return "cancelled"
                if end_of_epoch:
                    yield from self._checkpoint()
        if p.last_eval_step != p.step:
            if not (yield from self._evaluate()):
                return "cancelled"
        return "finished"

    @property
    def pair_lengths_train(self) -> list[int]:
        if not hasattr(self, "_lengths_train"):
            # Head mode: all features are the same size, so only the seeded shuffle matters.
            self._lengths_train = (
                [self.state.pair_lengths[i] for i in self.data.train_idx]
                if self.cfg.mode == "finetune"
                else [0] * self.data.n_train
            )
        return self._lengths_train

    def _boundary(self) -> Generator[Event, None, bool]:
        """Between two steps: wait while paused; True when the run must stop (on every rank at once)."""
        p = self._p
        if self.control.pause_requested and not self.control.cancel_requested:
            t0 = time.perf_counter()
            if self._acc_steps and not self._dist.enabled:
                yield from self._log()  # checks the loss before the weights are saved
            if self._main:
                self._flush_metrics()
                yield from self._checkpoint()
                self._project.update_run(self._id, status="paused")
            yield Paused(self._id, p.step)
            self.control.wait_while_paused()
            self._paused_s += time.perf_counter() - t0
            if not self.control.cancel_requested:
                if self._main:
                    self._project.update_run(self._id, status="running")
                yield Resumed(self._id, p.step)
        if self._dist.enabled and p.step % self._log_every:
            return False  # ranks agree on stopping at log points only: the flag's all-reduce is a sync point
        return distributed.any_rank(self.control.cancel_requested, self._dist, str(self._device))

    def _rewards(self, index: list[int], net: nn.Module, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_chosen, r_rejected) of the pairs ``index``: one forward over 2B rows, split in two."""
        if self._features is not None:  # head mode
            f = self._features
            idx = torch.as_tensor(index, device=self._device)
            r = net(torch.cat([f.X[f.rows_a[idx]], f.X[f.rows_b[idx]]]))
        else:
            batch = collate_pairs(
                [self.state.enc_c.input_ids[i] for i in index],
                [self.state.enc_r.input_ids[i] for i in index],
                self.state.tokenizer.pad_token_id,
                width=width,
            )
            ids, mask = batch["input_ids"], batch["attention_mask"]
            if self._device.type == "cuda":  # page-locked: the copy runs asynchronously, overlapping the GPU
                ids, mask = ids.pin_memory(), mask.pin_memory()
            with self._autocast():
                r = net(ids.to(self._device, non_blocking=True), mask.to(self._device, non_blocking=True))
        return r.float().chunk(2)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16/fp16 autocast of a fine-tune's forward passes where the run's precision asks for it."""
        dtype = self.state.autocast
        return torch.autocast(self._device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def _step(self, batch: list[int]) -> None:
        """One optimizer step on a global batch; this rank computes its share of it."""
        n_global = len(batch)
        mine = distributed.shard(batch, self._dist)
        weight = float(self._dist.world_size) / n_global  # DDP averages over ranks: this makes it a global mean
        if not mine:  # more ranks than pairs: join the collective with a zero-weight pair
            mine, weight = batch[:1], 0.0
        self._lr_now = lr_at(self._p.step, self.state.lr, self.state.warmup, self.state.total_steps)
        for group in self.state.optimizer.param_groups:
            group["lr"] = self._lr_now * group["lr_scale"]
        self.state.scorer.train()
        width = (
            None
            if self.cfg.mode == "head"
            else evaluate.pair_width(self.state.enc_c.input_ids, self.state.enc_r.input_ids, batch, self.cfg.max_length)
        )
        w = 1.0 if weight else 0.0
        parts = micro_batches(mine, width, self.cfg.pass_tokens)
        for k, part in enumerate(parts):
            # Under DDP the gradients are all-reduced once, in the last pass; the others only accumulate.
            ddp = self.state.net if isinstance(self.state.net, DistributedDataParallel) else None
            with contextlib.nullcontext() if k == len(parts) - 1 or ddp is None else ddp.no_sync():
                r_c, r_r = self._rewards(part, self.state.net, width)
                terms = pair_terms(
                    r_c, r_r, self.state.margins[part], self.cfg.center_rewards_coefficient, self.state.target(part)
                )
                loss = terms.sum() * weight  # per-pair terms: the passes sum to the batch's loss
                (self.state.scaler.scale(loss) if self.state.scaler is not None else loss).backward()
            with torch.no_grad():  # accumulated on the device; read at the next log point only
                d = (r_c - r_r).detach()
                if weight:
                    self._dynamics.add(part, d)  # chosen is the label's side: p(label) = σ(d)
                    if self._epoch_rewards is not None:
                        self._epoch_rewards.add(part, self._p.step // self.state.steps_per_epoch, r_c, r_r)
                self._acc += (
                    torch.stack(
                        [
                            x.to(self._acc.dtype)
                            for x in (
                                terms.detach().sum() / n_global,
                                (d > 0).sum(),
                                (d == 0).sum(),
                                d.sum(),
                                r_c.detach().sum(),
                                r_r.detach().sum(),
                                d.new_zeros(()),
                                d.new_zeros(()),
                            )
                        ]
                    )
                    * w
                )
        scaler = self.state.scaler
        if scaler is not None:
            scaler.unscale_(self.state.optimizer)  # clip the true gradients
        grad_norm = torch.nn.utils.clip_grad_norm_(self.state.params, MAX_GRAD_NORM)
        if scaler is not None:
            scaler.step(self.state.optimizer)  # skips the step when fp16 overflowed, and lowers the scale
            scaler.update()
        else:
            self.state.optimizer.step()
        self.state.optimizer.zero_grad(set_to_none=True)
        self._acc[_ACC.index("grad_norm")] += grad_norm.detach().to(self._acc.dtype) / self._dist.world_size * w
        self._acc_steps += 1
        self._acc_n += len(mine) if weight else 0  # counted on the host: no copy to the device

    def _log(self) -> Iterator[Event]:
        """A log point: read the accumulated metrics (summed over ranks), check them, emit them."""
        p = self._p
        acc = self._acc.clone()
        acc[_ACC.index("n")] = self._acc_n
        acc = distributed.all_reduce_sum(acc, self._dist).tolist()  # the one sync point of a log interval
        steps = max(1, self._acc_steps)
        self._acc.zero_()
        self._acc_steps = self._acc_n = 0
        v = dict(zip(_ACC, acc))
        n = max(1.0, v["n"])
        metrics = {
            "loss": v["loss"] / steps,
            "accuracy": v["correct"] / n,
            "ties": v["ties"],
            "margin": v["margin"] / n,
            "chosen_mean": v["chosen"] / n,
            "rejected_mean": v["rejected"] / n,
            "grad_norm": v["grad_norm"] / steps,
            "learning_rate": self._lr_now,
        }
        if not all(math.isfinite(x) for x in (metrics["loss"], metrics["margin"], metrics["chosen_mean"])):
            raise RunFailure(
                f"the loss became {metrics['loss']} at step {p.step}: training diverged (learning rate "
                f"{self.state.lr:g})",
                "lower the learning rate (e.g. 10x smaller) and start a new run",
            )
        epoch = p.step / self.state.steps_per_epoch
        if self._main:
            self._metric_rows.append((p.step, epoch, metrics))
            if time.perf_counter() - self._last_flush > METRICS_FLUSH_S:
                self._flush_metrics()
        yield StepMetrics(self._id, p.step, epoch, self.state.total_steps, metrics, self._elapsed())

    def _flush_metrics(self) -> None:
        """Write the buffered step metrics in one transaction (one per step would be slow)."""
        if self._metric_rows and self._main:
            with self._project.transaction():
                for step, epoch, metrics in self._metric_rows:
                    self._project.add_metrics(self._id, step, STEP_SPLIT, metrics, epoch)
            self._metric_rows = []
        self._last_flush = time.perf_counter()

    # ----------------------------------------------------------------- 5. evaluation
    def _evaluate(self) -> Generator[Event, None, bool]:
        """Score every labelled pair, store and emit them
        (``evaluate.evaluate``). Returns False when cancelled before the scores were complete."""
        p, spe = self._p, self.state.steps_per_epoch
        in_sample = None
        if self._epoch_rewards is not None and p.step % spe == 0 and p.step > 0 and p.last_eval_step != p.step:
            in_sample = self._epoch_rewards.of_epoch(p.step // spe - 1, self._dist)
            self._in_sample_pairs = len(in_sample[0])
        scores = yield from evaluate.evaluate(
            self._project,
            self.data,
            self.state,
            self._p,
            self._scores,
            features=self._features,
            flush=self._flush_metrics,
            run_id=self._id,
            device=self._device,
            dist=self._dist,
            control=self.control,
            in_sample=in_sample,
        )
        if scores is None:
            return False
        self._scores = scores
        return True

    # ----------------------------------------------------------------- 6. checkpoints and the end
    def _checkpoint(self) -> Iterator[Event]:
        p = self._p
        if not self._main or p.last_ckpt_step == p.step:
            return
        self._flush_metrics()
        state = {
            "run_id": self.run_id,
            "steps_per_epoch": self.state.steps_per_epoch,
            "total_steps": self.state.total_steps,
            "epoch": p.step / self.state.steps_per_epoch,
            "batch_size": self.state.batch_size,
            "config": self.cfg.to_dict(),
            "snapshot": self.data.snapshot,
            "elapsed_s": self._elapsed(),
            "train_s": p.train_s,
            "pairs_trained": p.pairs_trained,
            "last_eval_step": p.last_eval_step,
            "train_metrics": p.train_metrics,
            "val_metrics": p.val_metrics,
            "dynamics": self._dynamics.state(),
            # rank 0's passes only: under torchrun a resumed run scores the other ranks' pairs afresh
            "epoch_rewards": self._epoch_rewards.state() if self._epoch_rewards is not None else {},
        }
        path = checkpoint.save(
            self._project.checkpoint_dir(self._id),
            p.step,
            checkpoint.trainable_state(self.state.model),
            self.state.optimizer,
            state,
        )
        p.last_ckpt_step = p.step
        yield CheckpointSaved(self._id, p.step, str(path))

    def _stop(self, status: str) -> Iterator[Event]:
        """Finish ('finished') or stop ('cancelled'): log what is pending, checkpoint, store the summary."""
        if self._acc_steps:
            yield from self._log()
        yield from self._checkpoint()
        if status == "finished":
            n, confidence, variability = self._dynamics.merged(self._dist)  # on every rank
            if self._main:
                ids = self.data.pairs.comparison_ids
                seen = np.flatnonzero(n > 0)
                self._project.add_pair_dynamics(self._id, zip(ids[seen], n[seen], confidence[seen], variability[seen]))
                self._calibrate()
                yield from self._folds()
        summary = self._summary(status)
        if self._main:
            self._flush_metrics()
            self._project.update_run(
                self._id,
                status=status,
                summary=summary,
                message="" if status == "finished" else f"cancelled at step {self._p.step}",
            )
        distributed.barrier(self._dist)
        self._over = True
        yield Finished(self._id, status, summary)

    def _calibrate(self) -> None:
        """Issue 13: the temperature T of sigma(margin / T), fitted on the final validation margins (a 1-D NLL
        minimisation, ``core.evaluation``), with the validation ECE before and after; into the run's summary,
        so that ``workbench eval`` and the export only read it."""
        from workbench.core.evaluation import calibration_summary

        scores = self._scores
        if scores is None:
            return
        val = scores.split == "val"
        self._calibration = calibration_summary(scores.r_chosen[val] - scores.r_rejected[val])

    def _folds(self) -> Iterator[Event]:
        """Rank 0, once the run has finished: its out-of-fold scores (``folds.run_folds``), stored; their
        summary (k, source, seconds) goes into the run's. Skipped when a stop was asked for; a stop asked for
        during the folds leaves the run finished without them. A fold failure (too few prompts) is said in the
        summary and never fails the finished run."""
        from workbench.training import folds

        k, source = folds.folds_plan(self.cfg)
        if k == 0:
            self._folds_summary = {"k": 0, "skipped": "folds is 0"}
            return
        if self.control.cancel_requested:
            self._folds_summary = {"k": k, "source": source, "skipped": "stopped before the out-of-fold scores"}
            return
        features = None
        if self.cfg.mode == "head" and self._features is not None and self._initial_head is not None:
            f = self._features
            features = folds.FoldFeatures(f.X, f.rows_a, f.rows_b, self._initial_head, self.state.frozen_dense, 0)
        elif self.cfg.mode == "finetune":
            self.state.release()  # the trained model is saved; the folds load their own
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
        try:
            result = yield from folds.run_folds(
                self._project,
                self.data,
                run_id=self._id,
                device=self._device,
                control=self.control,
                features=features,
            )
        except ValueError as exc:
            self._folds_summary = {"k": k, "source": source, "skipped": str(exc)}
            return
        if result is None:
            self._folds_summary = {"k": k, "source": source, "skipped": "stopped during the out-of-fold scores"}
            return
        oof = result.scores
        self._project.add_oof_scores(
            self._id,
            zip(oof["comparison_id"], oof["chosen"], oof["fold"], oof["r_chosen"], oof["r_rejected"]),
            result.source,
        )
        self._folds_summary = result.summary()

    def _abandon(self, message: str) -> None:
        """The generator was closed mid-run: checkpoint if the state is whole, mark the run cancelled."""
        if not self._main or self.run_id is None:
            return
        try:
            if self._ready:
                for _ in self._checkpoint():
                    pass
            self._flush_metrics()
            self._project.update_run(
                self.run_id,
                status="cancelled",
                message=message,
                summary=self._summary("cancelled") if self._ready else None,
            )
        except Exception:  # noqa: BLE001 - best effort while the caller is going away
            _log.warning("could not keep run %s resumable", self.run_id, exc_info=True)

    def _mark(self, status: str, message: str) -> None:
        if self._main and self.run_id is not None:
            try:
                self._flush_metrics()
                self._project.update_run(self.run_id, status=status, message=message)
            except Exception:  # noqa: BLE001 - never hide the error being reported
                _log.warning("could not mark run %s %s", self.run_id, status, exc_info=True)

    def _elapsed(self) -> float:
        """Seconds this run has taken, earlier sessions included, pauses not."""
        return self._p.elapsed_s + time.perf_counter() - self._t_session - self._paused_s

    def _summary(self, status: str) -> dict[str, Any]:
        p = self._p
        val, train = p.val_metrics, p.train_metrics
        elapsed = self._elapsed()
        emb = self._embedding
        return {
            "status": status,
            "val_accuracy": val.get("accuracy"),
            "val_loss": val.get("loss"),
            "val_ties": val.get("ties"),
            "train_accuracy": train.get("accuracy"),
            "train_loss": train.get("loss"),
            "n_train": self.data.n_train,
            "n_val": self.data.n_val,
            "n_overlong": self.state.n_overlong,
            "n_unlabelled_scored": 0,  # scored on demand since issue 16 (evaluate.score_missing), not at the end
            "steps": p.step,
            "total_steps": self.state.total_steps,
            "epochs": self.state.epochs,
            "batch_size": self.state.batch_size,
            "learning_rate": self.state.lr,
            "time_s": round(elapsed, 3),
            "train_s": round(p.train_s, 3),
            "training_phase_s": round(time.perf_counter() - self._phase_start, 3)
            if hasattr(self, "_phase_start")
            else None,
            "pairs_per_s": round(p.pairs_trained / p.train_s, 2) if p.train_s > 0 else None,
            "embedded_texts": emb.embedded_texts if emb else 0,
            "cached_texts": emb.cached_texts if emb else 0,
            "embed_s": round(emb.seconds if emb else 0.0, 3),
            "resumed_from_step": self.resumed_from,
            "resumed_with": self.data.resumed_with,
            "device": str(self._device),
            "world_size": self._dist.world_size,
            "folds": getattr(self, "_folds_summary", None),
            "calibration": getattr(self, "_calibration", None),
            # training pairs whose last scores are the last epoch's in-sample rewards (no second pass)
            "train_scores_from_passes": getattr(self, "_in_sample_pairs", 0),
            "threads": self._threads.threads if hasattr(self, "_threads") else None,
            "threads_note": self._threads.describe() if hasattr(self, "_threads") else None,
        }


def micro_batches(index: list[int], width: int | None, pass_tokens: int) -> list[list[int]]:
    """``index`` (pairs) in equal parts of at most ``pass_tokens`` padded tokens each, a pair being two texts
    of ``width`` tokens; ``width`` None (head mode) or ``pass_tokens`` 0: one part.

    Activations are most of a fine-tuning step's memory. A batch of 8 pairs at 256 tokens goes through in
    two passes of 4: on a CPU that costs about nothing (2,048 tokens keep the matrix kernels busy), and the
    step's peak holds half the activations."""
    tokens = 2 * len(index) * (width or 0)
    if width is None or pass_tokens <= 0 or tokens <= pass_tokens or len(index) <= 1:
        return [index]
    n = min(len(index), -(-tokens // pass_tokens))
    size = -(-len(index) // n)
    return [index[i : i + size] for i in range(0, len(index), size)]
