"""Head mode's features: pooled backbone embeddings of texts, through the project's embedding cache.

It owns how a head-mode run gets the head's input: every distinct text is looked up in the project's cache
(``Project.cached_embeddings``, keyed by backbone folder, pooling and max_length: ``cache_key``); the missing
ones are computed once in length-sorted batches (split across ranks), stored (``Project.store_embeddings``,
rank 0 only) and counted (``Embedding``). ``embed_sides`` gives the feature matrix of two sides (a pair's
chosen and rejected, or a comparison's a and b) and each side's rows in it; a head whose hidden layer is
frozen gets tanh(dense(h)) once here instead of at every step. ``embed_texts`` is also how a finished head
run scores comparisons on demand (``evaluate.score_cached``), so runs, folds and scoring share the vectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.core.store import Project
from workbench.training import data, distributed
from workbench.training.events import Event, PhaseProgress
from workbench.training.model import make_batches, pad_batch
from workbench.training.prepare import RunState
from workbench.training.run_control import RunControl

EMBED_BATCH = 32
#: computed vectors are stored in the cache every this many (a cancelled run keeps what it computed)
STORE_EVERY = 512


@dataclass
class Embedding:
    """A run's key in the project's embedding cache, and what embedding has cost it (its summary says)."""

    key: str
    embedded_texts: int = 0  # computed now
    cached_texts: int = 0  # found in the cache
    seconds: float = 0.0


@dataclass(frozen=True)
class Features:
    """The head's input, one row per distinct text, and the row of each side's text."""

    X: torch.Tensor
    rows_a: torch.Tensor
    rows_b: torch.Tensor


def cache_key(state: RunState, max_length: int) -> str:
    """Which model, how it pools, how long its inputs are: vectors made otherwise are never reused."""
    return data.embedding_key(state.backbone_path, state.model.pooling, max_length)


def embed_sides(
    project: Project,
    embedding: Embedding,
    state: RunState,
    a: data.EncodedSides,
    b: data.EncodedSides,
    *,
    device: torch.device,
    dist: distributed.DistInfo,
    control: RunControl,
    run_id: int,
) -> Generator[Event, None, Features | None]:
    """Features of the texts of sides ``a`` and ``b`` (as many texts each); None when cancelled."""
    found = yield from embed_texts(
        project,
        embedding,
        state.model,
        state.tokenizer.pad_token_id,
        a.texts + b.texts,
        a.input_ids + b.input_ids,
        device=device,
        dist=dist,
        control=control,
        run_id=run_id,
    )
    if found is None:
        return None
    H, rows = found
    n = len(a.texts)
    return Features(
        head_input(state, H), torch.as_tensor(rows[:n], device=device), torch.as_tensor(rows[n:], device=device)
    )


def head_input(state: RunState, H: torch.Tensor) -> torch.Tensor:
    """What the scorer reads: the pooled features, or tanh(dense(h)) when the head's hidden layer is frozen."""
    if not state.frozen_dense:
        return H
    with torch.no_grad():
        return torch.tanh(state.model.head.dense(H))


def pooled_batches(
    model: Any, pad_id: int, input_ids: list[list[int]], device: torch.device, order: list[int] | None = None
) -> Iterator[tuple[list[int], np.ndarray]]:
    """The pooled features (``RewardModel.embed``, what the cache holds) of token sequences, ``EMBED_BATCH``
    at a time in ``order`` (default: length-sorted): (indices into ``input_ids``, float32 rows). The one
    embedding loop of head mode and of the out-of-fold heads (``folds.py``); the model is left in eval mode."""
    if order is None:
        order = [i for b in make_batches([len(s) for s in input_ids], EMBED_BATCH, shuffle=False) for i in b]
    model.eval()
    for s in range(0, len(order), EMBED_BATCH):
        chunk = order[s : s + EMBED_BATCH]
        ids, mask = pad_batch([input_ids[i] for i in chunk], pad_id)
        with torch.inference_mode():
            pooled = model.embed(ids.to(device), mask.to(device)).float().cpu().numpy()
        yield chunk, pooled


def embed_texts(
    project: Project,
    embedding: Embedding,
    model: Any,
    pad_id: int,
    texts: list[str],
    input_ids: Sequence[list[int]] | Callable[[list[int]], list[list[int]]],
    *,
    device: torch.device,
    dist: distributed.DistInfo,
    control: RunControl,
    run_id: int,
) -> Generator[Event, None, tuple[torch.Tensor, np.ndarray] | None]:
    """(unique feature matrix on the device, row of each text) or None when cancelled.

    ``input_ids`` are the token ids of each text, or a function from text indices to their token ids: then
    only the texts missing from the cache are tokenised (on-demand scoring, ``evaluate.score_missing``,
    where most texts are usually cached and tokenising them all would cost more than the head)."""
    key = embedding.key
    hashes = [data.text_hash(t) for t in texts]
    unique: dict[str, int] = {}
    first: list[int] = []
    for i, h in enumerate(hashes):
        if h not in unique:
            unique[h] = len(first)
            first.append(i)
    vectors = project.cached_embeddings(key, list(unique))
    missing = [h for h in unique if h not in vectors]
    embedding.cached_texts += len(unique) - len(missing)
    embedding.embedded_texts += len(missing)
    t0 = time.perf_counter()
    if missing:
        mine = missing[dist.rank :: dist.world_size]
        done = 0
        pending: dict[str, np.ndarray] = {}
        new: dict[str, np.ndarray] = {}
        yield PhaseProgress(run_id, "embedding", 0, len(missing))
        todo = [first[unique[h]] for h in mine]
        ids = input_ids(todo) if callable(input_ids) else [input_ids[i] for i in todo]
        batches = pooled_batches(model, pad_id, ids, device)
        while True:
            if not dist.enabled and control.cancel_requested:
                if pending and dist.is_main:
                    project.store_embeddings(key, pending)  # keep what was computed
                model.train()
                return None
            found = next(batches, None)
            if found is None:
                break
            chunk = [mine[i] for i in found[0]]
            for h, v in zip(chunk, found[1]):
                pending[h] = new[h] = v
            done += len(chunk)
            if not dist.enabled and (len(pending) >= STORE_EVERY or done == len(mine)):
                if dist.is_main:
                    project.store_embeddings(key, pending)
                pending = {}
            yield PhaseProgress(run_id, "embedding", min(len(missing), done * dist.world_size), len(missing))
        model.train()
        if dist.enabled:
            merged: dict[str, np.ndarray] = {}
            for part in distributed.all_gather_objects(new, dist):
                merged.update(part)
            if dist.is_main:
                project.store_embeddings(key, merged)
            new = merged
            yield PhaseProgress(run_id, "embedding", len(missing), len(missing))
        vectors.update(new)
    embedding.seconds += time.perf_counter() - t0
    H = (
        torch.from_numpy(np.stack([vectors[h] for h in unique])).to(device)
        if unique
        else torch.zeros((0, model.config.get_text_config().hidden_size), device=device)
    )
    rows = np.array([unique[h] for h in hashes], dtype=np.int64)
    return H, rows
