"""A project with known label flips on synthetic, linearly separable embeddings (for the suspects tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.training import data, prepare
from workbench.training.config import TrainConfig
from workbench.training.model import PairEncoder, build_model, resolve_backbone_path


def flipped_project(
    path: Path,
    backbone: str,
    n_prompts: int = 300,
    per_prompt: int = 2,
    flip: float = 0.2,
    seed: int = 0,
    swap_ab: np.ndarray | None = None,
) -> tuple[TrainConfig, int, dict[int, bool]]:
    """Responses with a latent quality u; the better one wins, then a share ``flip`` of the labels is flipped.
    Each text's cached embedding is (3u, 31 noise dims), so the head mode sees a linearly separable rule.
    ``swap_ab``: per pair, store response b first (the label follows). Returns (config, run id, flipped by id)."""
    rng = np.random.default_rng(seed)
    config = TrainConfig(backbone=backbone, max_length=32, seed=seed)
    records, flips, vectors = [], [], {}
    for i in range(n_prompts):
        prompt = f"prompt {i}"
        for j in range(per_prompt):
            k = len(records)
            ua, ub = rng.normal(size=2)
            ta, tb = f"answer {j}a to {i}", f"answer {j}b to {i}"
            vectors[(prompt, ta)] = np.concatenate([[3 * ua], rng.normal(size=31)]).astype(np.float32)
            vectors[(prompt, tb)] = np.concatenate([[3 * ub], rng.normal(size=31)]).astype(np.float32)
            flipped = bool(rng.random() < flip)
            choice = "a" if (ua > ub) != flipped else "b"
            if swap_ab is not None and swap_ab[k]:
                ta, tb, choice = tb, ta, "b" if choice == "a" else "a"
            records.append(PairRecord(Text(prompt), Text(ta), Text(tb), choice=choice))
            flips.append(flipped)
    with Project.create(path) as project:
        project.add_records(records, source="flips.jsonl")
        model, tokenizer = build_model(config)
        encoder = PairEncoder.for_model(model, tokenizer, config.max_length)
        key = data.embedding_key(resolve_backbone_path(backbone), model.pooling, config.max_length)
        frame = project.comparisons_frame()
        texts = data.encode_sides(
            encoder, list(frame["prompt"]) * 2, list(frame["response_a"]) + list(frame["response_b"])
        ).texts
        pairs_of = list(zip(list(frame["prompt"]) * 2, list(frame["response_a"]) + list(frame["response_b"])))
        project.store_embeddings(key, {data.text_hash(t): vectors[pt] for t, pt in zip(texts, pairs_of)})
        run = prepare.labelled_data(project, config)
        run_id = project.create_run("head", backbone, config.to_dict(), run.snapshot)
        project.update_run(run_id, status="finished")
        by_id = dict(zip(frame["comparison_id"].tolist(), flips))
    return config, run_id, by_id
