"""Evaluation: the model's rewards for pairs without gradients, the metrics of each split, and their record.

It owns what a run does to judge its model (TRL's metrics under ``no_grad``). ``evaluate`` is one evaluation
step: score every labelled pair (``score_pairs``), check the rewards are finite, compute the train and
validation metrics (``split_metrics``), write them and the per-pair scores through the project's named
methods (rank 0 only), and emit the per-pair margins as one ``Evaluation`` event. Scoring is
``score_tokens`` in fine-tune mode (token sequences in length-sorted batches, split across ranks, with
progress events and cancellation) and ``score_features`` in head mode (cached features, ``embed.py``). The
trainer decides when to evaluate.

The comparisons a run did not train on ("unlabelled": no label, ties, excluded, the test split, anything
imported later) are scored on demand, not at the end of every run: ``score_missing`` scores, with a finished
run's final model, those it has no score for yet and stores them at its last evaluation's step, when the
"model-uncertain first" queue, the score hint or ``workbench assign --with-scores`` asks for them; a head
run through the embedding cache (``score_cached``: only texts no run or scoring has embedded yet cost a
backbone pass), a fine-tune on tokens.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.core.store import Project
from workbench.training import data, distributed
from workbench.training.config import TrainConfig
from workbench.training.embed import Embedding, Features, embed_texts
from workbench.training.events import Evaluation, Event, PhaseProgress
from workbench.training.loss import pairwise_loss
from workbench.training.model import batch_width, make_batches, pad_batch
from workbench.training.prepare import Progress, RunData, RunFailure, RunState
from workbench.training.run_control import RunControl


@dataclass(frozen=True)
class PairScores:
    """The rewards of the labelled pairs at one evaluation, in the order of ``comparison_ids``."""

    comparison_ids: np.ndarray
    split: np.ndarray  # "train" or "val"
    r_chosen: np.ndarray
    r_rejected: np.ndarray


def evaluate(
    project: Project,
    run: RunData,
    state: RunState,
    p: Progress,
    labelled: PairScores | None,
    *,
    features: Features | None,
    flush: Callable[[], None],
    run_id: int,
    device: torch.device,
    dist: distributed.DistInfo,
    control: RunControl,
    in_sample: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Generator[Event, None, PairScores | None]:
    """One evaluation at step ``p.step``: score, record (once per step: ``p.last_eval_step``) and emit it.

    ``in_sample`` is (pair indices, r_chosen, r_rejected) of training pairs whose rewards are taken from the
    epoch's own training passes instead of a new pass (the trainer gives them at an epoch's end, dropout off):
    in-sample margins, each from the model as it was at that pair's step, as TRL's logged training metrics
    are. Every other pair (validation, and training pairs that epoch did not pass, e.g. before a resume)
    is scored afresh.

    ``labelled`` is the previous evaluation's scores, reused when it was at this step. ``flush`` writes the
    buffered step metrics in the same transaction as the evaluation's. Head mode passes ``features`` (the
    pairs'). Returns the labelled pairs' scores, or None when cancelled before they were complete."""
    cfg, pairs = run.config, run.pairs
    if p.last_eval_step != p.step or labelled is None:
        r_c, r_r = np.zeros(len(pairs)), np.zeros(len(pairs))
        fresh = np.ones(len(pairs), dtype=bool)
        if in_sample is not None:
            idx, in_c, in_r = in_sample
            r_c[idx], r_r[idx], fresh[idx] = in_c, in_r, False
        todo = np.flatnonzero(fresh).tolist()
        scores = yield from score_pairs(
            state, cfg, features, todo, run_id=run_id, device=device, dist=dist, control=control
        )
        if scores is None:
            return None
        r_c[todo], r_r[todo] = scores
        check_finite(r_c, r_r, p.step, state.lr)
        train, val = (
            split_metrics(r_c, r_r, idx, state.margins, cfg.center_rewards_coefficient, state.targets)
            for idx in (run.train_idx, run.val_idx)
        )
        split = np.where(run.is_val, "val", "train")
        if dist.is_main and p.last_eval_step != p.step:
            with project.transaction():
                flush()
                project.add_metrics(run_id, p.step, "train", train, p.step / state.steps_per_epoch)
                project.add_metrics(run_id, p.step, "val", val, p.step / state.steps_per_epoch)
                project.add_pair_scores(
                    run_id,
                    p.step,
                    zip(pairs.comparison_ids.tolist(), split.tolist(), pairs.choices, r_c.tolist(), r_r.tolist()),
                )
        p.last_eval_step, p.train_metrics, p.val_metrics = p.step, train, val
        labelled = PairScores(pairs.comparison_ids, split, r_c, r_r)
    cids, split, r_c, r_r = labelled.comparison_ids, labelled.split, labelled.r_chosen, labelled.r_rejected
    yield Evaluation(
        run_id,
        p.step,
        p.step / state.steps_per_epoch,
        dict(p.train_metrics),
        dict(p.val_metrics),
        np.asarray(cids),
        np.asarray(split),
        np.asarray(r_c),
        np.asarray(r_r),
    )
    return labelled


def score_pairs(
    state: RunState,
    cfg: TrainConfig,
    features: Features | None,
    index: list[int],
    *,
    run_id: int,
    device: torch.device,
    dist: distributed.DistInfo,
    control: RunControl,
) -> Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]:
    """(r_chosen, r_rejected) as float64 numpy arrays for labelled pairs ``index``, or None when cancelled:
    from the pairs' ``features`` in head mode, from their tokens otherwise."""
    if features is not None:
        yield PhaseProgress(run_id, "evaluating", 0, len(index))
        idx = torch.as_tensor(index, dtype=torch.long, device=device)
        r_c, r_r = score_features(state.scorer, features.X, features.rows_a[idx], features.rows_b[idx])
        yield PhaseProgress(run_id, "evaluating", len(index), len(index))
        return r_c, r_r
    return (
        yield from score_tokens(
            state.model,
            state.tokenizer.pad_token_id,
            [state.enc_c.input_ids[i] for i in index],
            [state.enc_r.input_ids[i] for i in index],
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=device,
            dist=dist,
            control=control,
            run_id=run_id,
        )
    )


class ScoreMissingError(ValueError):
    """The comparisons cannot be scored with that run; the message says why and what to do."""


def score_missing(
    project_path: str | os.PathLike,
    run_id: int,
    *,
    control: RunControl | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: str | None = None,
    comparison_ids: Sequence[int] | None = None,
    embedding_counts: Callable[[Embedding], None] | None = None,
) -> int | None:
    """Score, with finished run ``run_id``'s final model, every comparison of the project that has no score
    of that run at its last evaluation (the ones it did not train on, and any imported after it ended), and
    store them there (split "unlabelled", r_chosen = r_a). Returns how many were written (0: nothing was
    missing, so a second call writes nothing), or None when ``control`` cancelled it (no score is written;
    in head mode the embeddings computed before the cancel stay in the project's cache, for the next call).

    The model is the run's latest checkpoint (``export.load_run_model``, as ``workbench score`` loads it). A
    fine-tune scores the tokens of prompt + response (``score_tokens``, each distinct text once,
    length-sorted batches). A head run's backbone is frozen, so each distinct text's pooled features come
    from the project's embedding cache under the key the run trained with (texts embedded by a run, its
    folds or an earlier scoring cost nothing), only the missing ones are tokenised and embedded (and
    cached), and the trained head gives the rewards (``score_cached``). Either way the scores are those a
    fresh pass gives. ``progress(done, total)`` counts batches (fine-tune) or texts embedded (head mode);
    ``comparison_ids`` limits the scoring to those (``workbench eval`` on the test split);
    ``embedding_counts`` receives a head run's cache counts (texts found, texts embedded, seconds)."""
    from workbench.training.device import resolve_device
    from workbench.training.export import RunExportError, load_run_model
    from workbench.training.model import PairEncoder, resolve_backbone_path

    with Project.open(project_path) as project:
        try:
            run = project.run(run_id)
        except KeyError:
            raise ScoreMissingError(f"there is no run {run_id} in {project.path.name}") from None
        if run["status"] != "finished":
            raise ScoreMissingError(
                f"run {run_id} is {run['status']}, not finished: only a finished run's model scores comparisons"
            )
        step = project.last_scored_step(run_id)
        ids = project.unscored_comparison_ids(run_id)
        if comparison_ids is not None:
            wanted = {int(c) for c in comparison_ids}
            ids = [c for c in ids if c in wanted]
        if step is None or not ids:
            return 0
        unl = data.unlabelled_from_frame(project.comparisons_frame(ids), [])
    try:
        model, tokenizer, config, _ = load_run_model(project_path, run_id)
        if device is None:
            try:
                device = resolve_device(config)
            except ValueError:
                device = "cpu"  # the run's explicit device is gone (another machine): score on the CPU
        model.to(device)
    except RunExportError as exc:
        raise ScoreMissingError(str(exc)) from None
    control = control or RunControl()
    encoder = PairEncoder.for_model(model, tokenizer, config.max_length)

    def drive(scoring: Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]) -> Any:
        while True:
            try:
                event = next(scoring)
            except StopIteration as stop:
                return stop.value
            if progress is not None and isinstance(event, PhaseProgress):
                progress(event.done, event.total)

    if config.mode == "head":
        embedding = Embedding(
            data.embedding_key(resolve_backbone_path(config.backbone), model.pooling, config.max_length)
        )
        with Project.open(project_path) as project:
            scores = drive(
                score_cached(
                    project,
                    embedding,
                    model,
                    encoder,
                    unl.prompts,
                    unl.response_a,
                    unl.response_b,
                    device=torch.device(device),
                    control=control,
                    run_id=run_id,
                )
            )
        if embedding_counts is not None:
            embedding_counts(embedding)
    else:
        scores = drive(
            score_comparison_tokens(
                model, encoder, config, unl, device=torch.device(device), control=control, run_id=run_id
            )
        )
    if scores is None or control.cancel_requested:
        return None
    r_a, r_b = scores
    n = len(unl.comparison_ids)
    with Project.open(project_path) as project:
        project.add_pair_scores(
            run_id, step, zip(unl.comparison_ids.tolist(), ["unlabelled"] * n, ["a"] * n, r_a.tolist(), r_b.tolist())
        )
    return n


def score_comparison_tokens(
    model: nn.Module,
    encoder: Any,
    config: TrainConfig,
    unl: data.Unlabelled,
    *,
    device: torch.device,
    control: RunControl,
    run_id: int,
) -> Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]:
    """(r_a, r_b) of comparisons ``unl`` from the whole model on the tokens of prompt + response
    (``score_tokens``): a fine-tune's on-demand scoring, and the path a head run's took before the cache."""
    enc_a = data.encode_sides(encoder, unl.prompts, unl.response_a)
    enc_b = data.encode_sides(encoder, unl.prompts, unl.response_b)
    return (
        yield from score_tokens(
            model,
            encoder.pad_token_id,
            enc_a.input_ids,
            enc_b.input_ids,
            batch_size=config.batch_size,
            max_length=config.max_length,
            device=device,
            dist=distributed.DistInfo(),
            control=control,
            run_id=run_id,
        )
    )


def score_cached(
    project: Project,
    embedding: Embedding,
    model: Any,
    encoder: Any,
    prompts: Sequence[data.Text],
    responses_a: Sequence[data.Text],
    responses_b: Sequence[data.Text],
    *,
    device: torch.device,
    control: RunControl,
    run_id: int,
) -> Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]:
    """Head mode: (r_a, r_b) of (prompt, response) texts as float64 numpy arrays, or None when cancelled.

    Each distinct text's pooled features come from the cache under ``embedding.key`` or, when missing, from
    the backbone (``embed.embed_texts``: tokenised and embedded only then, stored in the cache, with
    "embedding" progress); the model's trained head (its frozen pooler included) maps them to rewards, as
    its forward pass on the tokens does."""
    both = list(prompts) + list(prompts)
    responses = list(responses_a) + list(responses_b)
    texts = [encoder.text(p, r)[0] for p, r in zip(both, responses)]

    def tokenise(index: list[int]) -> list[list[int]]:
        return data.encode_sides(encoder, [both[i] for i in index], [responses[i] for i in index]).input_ids

    found = yield from embed_texts(
        project,
        embedding,
        model,
        encoder.pad_token_id,
        texts,
        tokenise,
        device=device,
        dist=distributed.SINGLE,
        control=control,
        run_id=run_id,
    )
    model.eval()  # embed_texts leaves a training model in train mode
    if found is None:
        return None
    H, rows = found
    n = len(prompts)
    row_t = torch.as_tensor(rows, dtype=torch.long, device=device)
    return score_features(model.head, H, row_t[:n], row_t[n:])


def pair_width(a_ids: list[list[int]], b_ids: list[list[int]], index: list[int], max_length: int) -> int:
    """Padded width of the pairs ``index`` of token sequences ``a_ids`` and ``b_ids``. A training step
    computes it on the global batch, so that every rank pads its shard as one process pads the whole
    batch: same shapes, the same step to float noise."""
    longest = max(max(len(a_ids[i]), len(b_ids[i])) for i in index)
    return batch_width(longest, max_length)


def score_tokens(
    model: nn.Module,
    pad_id: int,
    a_ids: list[list[int]],
    b_ids: list[list[int]],
    *,
    batch_size: int,
    max_length: int,
    device: torch.device,
    dist: distributed.DistInfo,
    control: RunControl,
    run_id: int,
) -> Generator[Event, None, tuple[np.ndarray, np.ndarray] | None]:
    """Fine-tune mode: (r_a, r_b) as float64 numpy arrays for token sequences, each distinct sequence scored
    once, in length-sorted batches of texts split across ranks, with "evaluating" progress; None when
    cancelled (one process only)."""
    # Each distinct token sequence is scored once (a response shared by two comparisons, a pair listed twice),
    # and texts, not pairs, are batched by length: a batch pads to its own longest text, not to the longer
    # side of each pair. The reward of a text does not depend on what it is batched with (to float noise).
    index: dict[tuple[int, ...], int] = {}
    rows_a = np.array([index.setdefault(tuple(s), len(index)) for s in a_ids], dtype=np.int64)
    rows_b = np.array([index.setdefault(tuple(s), len(index)) for s in b_ids], dtype=np.int64)
    texts = list(index)
    batches = make_batches([len(t) for t in texts], 2 * max(2 * batch_size, 16), shuffle=False)
    mine = batches[dist.rank :: dist.world_size]
    out = np.zeros(len(texts))
    model.eval()
    try:
        yield PhaseProgress(run_id, "evaluating", 0, len(batches))
        for k, batch in enumerate(mine):
            if not dist.enabled and control.cancel_requested:
                return None
            longest = max(len(texts[i]) for i in batch)
            ids, mask = pad_batch([texts[i] for i in batch], pad_id, width=batch_width(longest, max_length))
            with torch.no_grad():
                r = model(ids.to(device), mask.to(device))
            out[batch] = numpy_rewards(r)
            yield PhaseProgress(run_id, "evaluating", min(len(batches), (k + 1) * dist.world_size), len(batches))
    finally:
        model.train()
    if dist.enabled:
        for part, theirs in zip(batches_by_rank(batches, dist.world_size), distributed.all_gather_objects(out, dist)):
            out[part] = theirs[part]
        yield PhaseProgress(run_id, "evaluating", len(batches), len(batches))
    return out[rows_a], out[rows_b]


def score_features(
    scorer: nn.Module, X: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Head mode: (r_a, r_b) of the feature rows ``rows_a`` and ``rows_b`` of ``X``."""
    with torch.no_grad():
        return numpy_rewards(scorer(X[rows_a])), numpy_rewards(scorer(X[rows_b]))


def split_metrics(
    r_c: np.ndarray,
    r_r: np.ndarray,
    idx: np.ndarray,
    margins: torch.Tensor,
    center_rewards_coefficient: float,
    targets: torch.Tensor | None = None,
) -> dict[str, float]:
    """Loss, accuracy, margin and reward statistics of the pairs ``idx`` (the loss is the training loss, soft
    targets included; accuracy counts the more likely side as the label)."""
    _, metrics = pairwise_loss(
        torch.from_numpy(r_c[idx]),
        torch.from_numpy(r_r[idx]),
        margins[torch.as_tensor(idx)].cpu().double(),
        center_rewards_coefficient,
        None if targets is None else targets[torch.as_tensor(idx)].cpu().double(),
    )
    return metrics


def check_finite(r_c: np.ndarray, r_r: np.ndarray, step: int, lr: float) -> None:
    """Infinite or NaN rewards: the training diverged, and the run stops with a hint."""
    if not (np.isfinite(r_c).all() and np.isfinite(r_r).all()):
        raise RunFailure(
            f"the rewards became infinite or NaN at step {step}: training diverged (learning rate {lr:g})",
            "lower the learning rate (e.g. 10x smaller) and start a new run",
        )


def numpy_rewards(rewards: torch.Tensor) -> np.ndarray:
    """Rewards as float64 numpy (converted on the host: some devices have no float64)."""
    return rewards.detach().float().cpu().numpy().astype(np.float64)


def batches_by_rank(batches: list[list[int]], world: int) -> list[list[int]]:
    """The pair indices each rank scored when rank r took batches r, r + world, ..."""
    return [[i for b in batches[r::world] for i in b] for r in range(world)]
