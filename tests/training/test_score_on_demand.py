"""Head-mode on-demand scoring (issue 16, item 3): ``evaluate.score_missing`` of a head run reads each text's
pooled features from the project's embedding cache and runs the backbone only on texts no run or scoring has
embedded, with the bundled MiniLM on a real project file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import collect
from wb_testing import make_synthetic_project

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.training import data
from workbench.training.config import TrainConfig
from workbench.training.evaluate import score_missing
from workbench.training.events import Finished
from workbench.training.model import PairEncoder, bundled_minilm_path, load_tokenizer
from workbench.training.run_control import RunControl
from workbench.training.trainer import Trainer

CFG = TrainConfig(mode="head", epochs=3, learning_rate=1e-2)


def head_run(path, cfg: TrainConfig = CFG) -> Finished:
    done = collect(Trainer(path, cfg))[-1]
    assert isinstance(done, Finished), done
    return done


def texts_of(frame, cfg: TrainConfig = CFG) -> list[str]:
    """The exact strings head mode embeds for both sides of ``frame``'s comparisons."""
    encoder = PairEncoder(load_tokenizer(bundled_minilm_path()), cfg.max_length)
    return [
        encoder.text(p, r)[0] for side in ("response_a", "response_b") for p, r in zip(frame["prompt"], frame[side])
    ]


def cached(path, texts: list[str], cfg: TrainConfig = CFG) -> set[str]:
    """Which of ``texts`` the cache holds under MiniLM's head-mode key."""
    key = data.embedding_key(bundled_minilm_path(), "first_token", cfg.max_length)
    with Project.open(path) as p:
        found = p.cached_embeddings(key, [data.text_hash(t) for t in texts])
    return {t for t in texts if data.text_hash(t) in found}


def unlabelled_scores(path, run_id: int):
    with Project.open(path) as p:
        scores = p.pair_scores(run_id)
        u = scores[scores["split"] == "unlabelled"].sort_values("comparison_id")
        return u, p.comparisons_frame(u["comparison_id"].tolist())


def full_model(path, run_id: int, frame) -> tuple[np.ndarray, np.ndarray]:
    """(r_a, r_b) from the run's whole model on tokens (``scoring.Scorer``, the path of ``workbench score``)."""
    from workbench.training.server import _load_scorer

    scorer = _load_scorer({"project": str(path), "run": run_id})
    prompts = frame["prompt"].tolist()
    got = scorer.score(prompts + prompts, frame["response_a"].tolist() + frame["response_b"].tolist())
    return got[: len(frame)], got[len(frame) :]


def assert_as_full_model(path, run_id: int, u, frame) -> None:
    r_a, r_b = full_model(path, run_id, frame)
    tol = 1e-5 * max(1.0, float(np.abs(np.r_[r_a, r_b]).max()))  # 1e-5 of the scores' scale, as the export's check
    assert np.abs(u["r_chosen"].to_numpy() - r_a).max() <= tol
    assert np.abs(u["r_rejected"].to_numpy() - r_b).max() <= tol
    assert np.abs(np.r_[r_a, r_b]).max() > 1e-3  # a trained head, not all-zero rewards


@pytest.mark.slow
def test_head_scores_on_demand_come_from_the_cache_and_equal_the_full_model(tmp_path):
    path = make_synthetic_project(tmp_path / "h.wbp", n_prompts=8, per_prompt=2, unlabelled=1)
    first = head_run(path)
    assert first.summary["embedded_texts"] == 32  # the 16 training pairs' texts
    with Project.open(path) as p:
        frame = p.comparisons_frame(p.unscored_comparison_ids(first.run_id))
    texts = texts_of(frame)
    assert len(frame) == 8 and len(set(texts)) == 16 and not cached(path, texts)

    # (a) the first scoring embeds the unlabelled texts, caches them, and gives the full model's scores
    counts = []
    assert score_missing(path, first.run_id, embedding_counts=counts.append) == 8
    assert (counts[0].embedded_texts, counts[0].cached_texts) == (16, 0)
    assert cached(path, texts) == set(texts)
    u, frame = unlabelled_scores(path, first.run_id)
    assert_as_full_model(path, first.run_id, u, frame)

    # (b) another head run on that backbone finds every text cached: its training and its scoring embed nothing
    second = head_run(path, CFG.replace(seed=1))
    assert second.summary["embedded_texts"] == 0
    # The scores are read from the cache, not recomputed: a vector changed there is what the head reads.
    key = data.embedding_key(bundled_minilm_path(), "first_token", CFG.max_length)
    doctored = texts[0]  # side a of the first unlabelled comparison
    with Project.open(path) as p:
        p.store_embeddings(key, {data.text_hash(doctored): np.zeros(384, dtype=np.float32)})
    counts.clear()
    assert score_missing(path, second.run_id, embedding_counts=counts.append) == 8
    assert (counts[0].embedded_texts, counts[0].cached_texts) == (0, 16)
    u, frame = unlabelled_scores(path, second.run_id)
    from workbench.training.export import load_run_model

    model = load_run_model(path, second.run_id)[0]
    with torch.no_grad():
        at_zero = float(model.head(torch.zeros(1, 384))[0])
    assert u["r_chosen"].iloc[0] == pytest.approx(at_zero, abs=1e-6)
    assert_as_full_model(path, second.run_id, u.iloc[1:], frame.iloc[1:])

    # a comparison imported after the run: its two new texts are embedded, cached, and scored as the full model
    late = PairRecord(Text("A question asked later?"), Text("A careful later answer."), Text("No."))
    with Project.open(path) as p:
        p.add_records([late], "late")
        new = p.comparisons_frame(p.unscored_comparison_ids(second.run_id))
    assert len(new) == 1 and not cached(path, texts_of(new))
    counts.clear()
    assert score_missing(path, second.run_id, embedding_counts=counts.append) == 1
    assert (counts[0].embedded_texts, counts[0].cached_texts) == (2, 0)
    assert cached(path, texts_of(new)) == set(texts_of(new))
    u, frame = unlabelled_scores(path, second.run_id)
    last = u["comparison_id"] == new["comparison_id"].iloc[0]
    assert_as_full_model(path, second.run_id, u[last], frame[frame["comparison_id"] == new["comparison_id"].iloc[0]])


def test_a_cancelled_head_scoring_writes_no_score_and_keeps_its_embeddings(tmp_path):
    path = make_synthetic_project(tmp_path / "c.wbp", n_prompts=8, per_prompt=2, unlabelled=3)
    run_id = head_run(path).run_id
    with Project.open(path) as p:
        frame = p.comparisons_frame(p.unscored_comparison_ids(run_id))
    texts = texts_of(frame)
    assert len(frame) == 24 and len(set(texts)) == 48  # more than one embedding batch (32)

    control = RunControl()
    seen = []

    def cancel_after_the_first_batch(done: int, total: int) -> None:
        seen.append((done, total))
        if done > 0:
            control.cancel()

    assert score_missing(path, run_id, control=control, progress=cancel_after_the_first_batch) is None
    assert seen == [(0, 48), (32, 48)]
    with Project.open(path) as p:
        assert p.unscored_count(run_id) == 24  # no score is written
    assert len(cached(path, texts)) == 32  # the batch computed before the cancel stays in the cache

    control = RunControl()
    control.cancel()  # cancelled before it starts: nothing is embedded or written
    assert score_missing(path, run_id, control=control) is None
    assert len(cached(path, texts)) == 32
    with Project.open(path) as p:
        assert p.unscored_count(run_id) == 24

    counts = []  # the next call embeds only the rest
    assert score_missing(path, run_id, embedding_counts=counts.append) == 24
    assert (counts[0].embedded_texts, counts[0].cached_texts) == (16, 32)
    with Project.open(path) as p:
        assert p.unscored_count(run_id) == 0
