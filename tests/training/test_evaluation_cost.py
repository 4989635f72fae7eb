"""What the end of a fine-tune scores: each distinct text once, training pairs from the last epoch's passes,
and every score it does compute equal to a fresh pass of the final model (1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import collect
from wb_testing import make_synthetic_project

from workbench.core.store import Project
from workbench.training import checkpoint, distributed
from workbench.training.config import TrainConfig
from workbench.training.evaluate import score_tokens
from workbench.training.events import Finished
from workbench.training.model import PairEncoder, build_reward_model, collate_pairs
from workbench.training.run_control import RunControl
from workbench.training.trainer import Trainer

pytestmark = pytest.mark.slow  # real fine-tunes of a tiny transformer


def _fresh(model, encoder, pad_id, prompt, chosen, rejected) -> tuple[float, float]:
    """The rewards of one pair from a pass of its own (no batching with other pairs)."""
    c, r = (encoder.encode(prompt, side).input_ids for side in (chosen, rejected))
    batch = collate_pairs([c], [r], pad_id)
    with torch.no_grad():
        r_c, r_r = model(batch["input_ids"], batch["attention_mask"]).tolist()
    return r_c, r_r


def _drain(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


class CountingModel(torch.nn.Module):
    """Wraps a model and counts the texts (rows) it scores."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, ids, mask):
        self.rows += ids.shape[0]
        return self.model(ids, mask)


def test_each_distinct_text_is_scored_once_and_scores_as_alone(tiny_bert_dir):
    model, tokenizer = build_reward_model(tiny_bert_dir, seed=1)
    torch.nn.init.normal_(model.head.out.weight, std=0.5)  # non-zero rewards
    model.eval()
    encoder = PairEncoder(tokenizer, 64)
    prompts = ["Q1: how?", "Q2: why not?", "Q1: how?", "Q3: " + "long " * 40]
    a_txt = ["Because.", "It depends on many things.", "Because.", "Yes."]
    b_txt = ["No idea.", "No idea.", "I do not know at all.", "No."]
    a = [e.input_ids for e in encoder.encode_many(prompts, a_txt)]
    b = [e.input_ids for e in encoder.encode_many(prompts, b_txt)]
    counting = CountingModel(model)
    r_a, r_b = _drain(
        score_tokens(
            counting,
            tokenizer.pad_token_id,
            a,
            b,
            batch_size=2,
            max_length=64,
            device=torch.device("cpu"),
            dist=distributed.SINGLE,
            control=RunControl(),
            run_id=1,
        )
    )
    model.eval()  # score_tokens leaves the model in training mode, as the trainer needs it
    assert counting.rows == len({tuple(s) for s in a + b}) == 7  # 8 texts, one of them twice
    for i, (p, x, y) in enumerate(zip(prompts, a_txt, b_txt)):
        want = _fresh(model, encoder, tokenizer.pad_token_id, p, x, y)
        assert abs(r_a[i] - want[0]) < 1e-5 and abs(r_b[i] - want[1]) < 1e-5


def test_the_end_of_a_finetune_takes_training_margins_from_the_last_epoch(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "e.wbp")
    cfg = dict(backbone=tiny_bert_dir, mode="finetune", learning_rate=5e-3, epochs=2, folds=0)
    done = collect(Trainer(path, TrainConfig(**cfg)))[-1]
    assert isinstance(done, Finished) and done.status == "finished"
    assert done.summary["train_scores_from_passes"] == done.summary["n_train"]
    exact = collect(Trainer(path, TrainConfig(**cfg, rescore_train=True)))[-1]
    assert exact.summary["train_scores_from_passes"] == 0

    with Project.open(path) as p:
        pairs = p.training_pairs().set_index("comparison_id")
        stored = {r: p.pair_scores(r).set_index("comparison_id") for r in (done.run_id, exact.run_id)}
        dirs = {r: p.checkpoint_dir(r) for r in (done.run_id, exact.run_id)}
    for run_id, splits in ((done.run_id, ("val",)), (exact.run_id, ("train", "val"))):
        model, tokenizer, config = checkpoint.load_trained_model(dirs[run_id])
        encoder = PairEncoder(tokenizer, config.max_length)
        scores = stored[run_id]
        checked = 0
        for cid, row in scores[scores["split"].isin(splits)].iterrows():
            pr = pairs.loc[cid]
            want = _fresh(model, encoder, tokenizer.pad_token_id, pr["prompt"], pr["chosen"], pr["rejected"])
            assert abs(row["r_chosen"] - want[0]) < 1e-5 and abs(row["r_rejected"] - want[1]) < 1e-5
            checked += 1
        assert checked == (len(scores) if run_id == exact.run_id else done.summary["n_val"])
    # The two runs trained the same weights; only where the training split's scores came from differs.
    a, b = stored[done.run_id], stored[exact.run_id]
    train = a.index[a["split"] == "train"]
    assert np.allclose(a.loc[train, "r_chosen"], b.loc[train, "r_chosen"], atol=0.5)  # near: one epoch's drift
    assert not np.allclose(a.loc[train, "r_chosen"], b.loc[train, "r_chosen"], atol=1e-6)
