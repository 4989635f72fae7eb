"""What every finished run stores besides its model: out-of-fold scores (head folds, or K fine-tunes) and the
training dynamics of its training pairs, taken from the margins its steps computed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from wb_testing import make_labelled_project

from workbench.core import suspects
from workbench.core.store import Project
from workbench.training import data, distributed, folds, prepare
from workbench.training.config import TrainConfig
from workbench.training.events import Finished, PhaseProgress
from workbench.training.run_control import RunControl
from workbench.training.trainer import PairDynamics, Trainer

pytestmark = pytest.mark.slow  # real training runs with folds


def _train(path, config: TrainConfig) -> tuple[int, Finished, list]:
    events = list(Trainer(path, config).events())
    done = events[-1]
    assert isinstance(done, Finished) and done.status == "finished", done
    return done.run_id, done, events


def test_pair_dynamics_are_welford_mean_and_spread_of_p_label():
    rng = np.random.default_rng(0)
    dyn = PairDynamics(4, torch.device("cpu"), torch.float64)
    points: dict[int, list[float]] = {i: [] for i in range(4)}
    for _ in range(7):
        index = [int(i) for i in rng.permutation(4)[:3]]
        m = rng.normal(size=3) * 3
        dyn.add(index, torch.tensor(m))
        for i, v in zip(index, m):
            points[i].append(1 / (1 + math.exp(-v)))
    n, conf, var = dyn.merged(distributed.SINGLE)
    for i in range(4):
        assert n[i] == len(points[i])
        assert conf[i] == pytest.approx(np.mean(points[i])) and var[i] == pytest.approx(np.std(points[i]))
    again = PairDynamics(4, torch.device("cpu"), torch.float64)
    again.load(dyn.state())
    assert np.allclose(again.merged(distributed.SINGLE)[2], var)


def test_head_run_stores_out_of_fold_scores_and_dynamics(tmp_path, tiny_bert_dir):
    path = make_labelled_project(tmp_path / "p.wbp", n_prompts=12, per_prompt=3, noise_every=5)
    config = TrainConfig(backbone=tiny_bert_dir, max_length=48, epochs=6, seed=3)
    run_id, done, events = _train(path, config)
    assert any(isinstance(e, PhaseProgress) and e.phase == "folds" for e in events)
    folds_summary = done.summary["folds"]
    assert folds_summary["k"] == 5 and folds_summary["source"] == "head-folds" and folds_summary["seconds"] >= 0
    with Project.open(path) as project:
        snapshot = project.run(run_id)["data_snapshot"]
        oof = project.oof_scores(run_id)
        assert sorted(oof["comparison_id"]) == sorted(snapshot["comparison_ids"])
        assert set(oof["source"]) == {"head-folds"} and np.isfinite(oof["margin"]).all()
        # the same as the folds computed afresh from the stored run (same heads, same features)
        fresh = folds.out_of_fold_margins(project, run_id, k=5)
        assert np.allclose(fresh["margin"], oof.sort_values("comparison_id")["margin"], atol=1e-5)
        dyn = project.pair_dynamics(run_id)
        val = set(snapshot["val_comparison_ids"])
        train = set(snapshot["comparison_ids"]) - val
        assert set(dyn["comparison_id"]) == train  # validation pairs are never trained on
        assert (dyn["n_points"] == 6).all()  # one point per epoch
        assert ((dyn["confidence"] > 0) & (dyn["confidence"] < 1) & (dyn["variability"] >= 0)).all()
        table = suspects.suspects_for_run(project, run_id)
        assert (table.loc[table["comparison_id"].isin(train), "dynamics_points"] == 6).all()
        assert suspects.too_few_points(table) == 0 and not table["reason"].str.contains("too few").any()


def test_dynamics_do_not_depend_on_which_response_is_stored_first(tmp_path, tiny_bert_dir):
    """The same labels with a and b stored the other way round: the same dynamics, pair by pair."""
    config = TrainConfig(backbone=tiny_bert_dir, max_length=48, epochs=5, seed=1, folds=0)
    frames = []
    for name, swap in (("a.wbp", False), ("b.wbp", True)):
        src = make_labelled_project(tmp_path / f"src-{name}", n_prompts=8, per_prompt=2)
        with Project.open(src) as p:
            pairs = p.training_pairs()
        from workbench.core.records import PairRecord, Text

        records = [
            PairRecord(Text(r.prompt), Text(r.rejected), Text(r.chosen), choice="b")
            if swap
            else PairRecord(Text(r.prompt), Text(r.chosen), Text(r.rejected), choice="a")
            for r in pairs.itertuples(index=False)
        ]
        with Project.create(tmp_path / name) as p:
            p.add_records(records, source="x.jsonl")
        run_id, done, _ = _train(tmp_path / name, config)
        assert done.summary["folds"] == {"k": 0, "skipped": "folds is 0"}
        with Project.open(tmp_path / name) as p:
            dyn = p.pair_dynamics(run_id)
            assert p.oof_scores(run_id).empty
            texts = p.training_pairs().set_index("comparison_id")
            dyn["key"] = [(texts.at[c, "prompt"], texts.at[c, "chosen"]) for c in dyn["comparison_id"]]
        frames.append(dyn.sort_values("key").reset_index(drop=True))
    a, b = frames
    assert a["key"].tolist() == b["key"].tolist() and len(a) > 0
    assert np.allclose(a["confidence"], b["confidence"], atol=1e-6)
    assert np.allclose(a["variability"], b["variability"], atol=1e-6)


@pytest.mark.slow
def test_finetune_run_without_folds_gets_head_folds_and_too_few_points(tmp_path, tiny_bert_dir):
    path = make_labelled_project(tmp_path / "f.wbp", n_prompts=10, per_prompt=2)
    config = TrainConfig(mode="finetune", backbone=tiny_bert_dir, max_length=48, learning_rate=5e-3)
    run_id, done, _ = _train(path, config)  # 2 epochs: 2 points per pair
    assert done.summary["folds"]["source"] == "head-folds" and done.summary["folds"]["k"] == 5
    assert "head-mode folds" in done.summary["folds"]["how"]
    with Project.open(path) as project:
        assert set(project.oof_scores(run_id)["source"]) == {"head-folds"}
        assert (project.pair_dynamics(run_id)["n_points"] == 2).all()
        table = suspects.suspects_for_run(project, run_id)
        trained = table["dynamics_points"] > 0
        assert trained.any() and (table.loc[trained, "dynamics_points"] == 2).all()
        assert table["confidence"].isna().all() and table["variability"].isna().all()
        assert suspects.too_few_points(table) == int(trained.sum())
        assert table.loc[trained, "reason"].str.contains("too few points").all()


@pytest.mark.slow
def test_finetune_folds_train_k_finetunes(tmp_path, tiny_bert_dir):
    path = make_labelled_project(tmp_path / "f.wbp", n_prompts=8, per_prompt=2)
    config = TrainConfig(mode="finetune", backbone=tiny_bert_dir, max_length=48, learning_rate=5e-3, folds=2)
    run_id, done, events = _train(path, config)
    assert done.summary["folds"]["source"] == "finetune-folds" and done.summary["folds"]["k"] == 2
    progress = [e for e in events if isinstance(e, PhaseProgress) and e.phase == "folds"]
    assert progress[-1].done == progress[-1].total > 0
    with Project.open(path) as project:
        oof = project.oof_scores(run_id)
        assert set(oof["source"]) == {"finetune-folds"} and set(oof["fold"]) == {0, 1} and len(oof) == 16


@pytest.mark.slow
def test_no_finetune_fold_is_scored_by_a_model_that_saw_its_prompt(tmp_path, tiny_bert_dir):
    """Flip every label of fold 0: fold 0's rewards (per response) do not move, the other fold's do."""
    path = make_labelled_project(tmp_path / "f.wbp", n_prompts=8, per_prompt=2)
    config = TrainConfig(mode="finetune", backbone=tiny_bert_dir, max_length=48, learning_rate=5e-3, epochs=2)
    with Project.open(path) as project:
        run = prepare.labelled_data(project, config)
    fold_of = data.folds_by_prompt(run.pairs.prompt_keys, 2, config.seed)
    in0 = fold_of == 0
    flipped = data.Pairs(
        run.pairs.comparison_ids,
        run.pairs.judgment_ids,
        [("b" if c == "a" else "a") if f else c for c, f in zip(run.pairs.choices, in0)],
        run.pairs.strengths,
        run.pairs.prompt_keys,
        run.pairs.prompts,
        [r if f else c for c, r, f in zip(run.pairs.chosen, run.pairs.rejected, in0)],
        [c if f else r for c, r, f in zip(run.pairs.chosen, run.pairs.rejected, in0)],
    )

    def rewards_of_first_stored(pairs: data.Pairs) -> np.ndarray:
        rd = prepare.RunData(config, pairs, run.is_val, {})
        gen = folds.finetune_folds(rd, fold_of, run_id=0, device=torch.device("cpu"), control=RunControl())
        r_c, r_r = folds._quietly(gen)
        return np.where(np.array(pairs.choices) == "a", r_c, r_r)

    before, after = rewards_of_first_stored(run.pairs), rewards_of_first_stored(flipped)
    assert np.allclose(before[in0], after[in0], atol=1e-5)
    assert not np.allclose(before[~in0], after[~in0], atol=1e-4)
