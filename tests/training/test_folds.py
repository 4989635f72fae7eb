"""Out-of-fold margins on a real project with a real (tiny) backbone: the folds, their honesty, their storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wb_testing import make_labelled_project

from workbench.core.store import Project
from workbench.training import data, prepare
from workbench.training.config import TrainConfig
from workbench.training.folds import out_of_fold_margins


def _run(project: Project, config: TrainConfig) -> int:
    """A run row with the snapshot a new run records (what the trainer writes before its first step)."""
    run = prepare.labelled_data(project, config)
    return project.create_run(config.mode, config.backbone, config.to_dict(), run.snapshot)


@pytest.fixture
def labelled(tmp_path, tiny_bert_dir):
    path = make_labelled_project(tmp_path / "p.wbp", n_prompts=12, per_prompt=3, noise_every=5)
    config = TrainConfig(backbone=tiny_bert_dir, max_length=48, epochs=5, seed=3)
    with Project.open(path) as project:
        yield project, config, _run(project, config)


def test_folds_split_by_prompt_and_cover_every_pair_once(labelled):
    project, config, run_id = labelled
    oof = out_of_fold_margins(project, run_id, k=4)
    pairs = data.pairs_from_frame(project.training_pairs())
    assert sorted(oof["comparison_id"]) == sorted(pairs.comparison_ids.tolist())
    prompt_of = dict(zip(pairs.comparison_ids.tolist(), pairs.prompt_keys))
    folds_of_prompt = oof.groupby(oof["comparison_id"].map(prompt_of))["fold"].nunique()
    assert (folds_of_prompt == 1).all() and set(oof["fold"]) == {0, 1, 2, 3}
    assert np.allclose(oof["margin"], oof["r_chosen"] - oof["r_rejected"]) and oof["margin"].abs().max() > 0


def test_a_pair_is_scored_by_a_head_that_never_saw_its_prompt(labelled):
    """Flip every label of fold 0 in the run's snapshot: fold 0's out-of-fold rewards (per response) stay the
    same, because no head that scores them trained on them; the other folds' heads did, and move."""
    project, config, run_id = labelled
    before = out_of_fold_margins(project, run_id, k=3)
    snapshot = project.run(run_id)["data_snapshot"]
    fold0 = set(before.loc[before["fold"] == 0, "comparison_id"])
    choices = "".join(
        ("b" if c == "a" else "a") if cid in fold0 else c
        for cid, c in zip(snapshot["comparison_ids"], snapshot["choices"])
    )
    flipped_run = project.create_run("head", config.backbone, config.to_dict(), {**snapshot, "choices": choices})
    after = out_of_fold_margins(project, flipped_run, k=3)
    assert (after["fold"].to_numpy() == before["fold"].to_numpy()).all()

    def reward_of_a(frame: pd.DataFrame) -> np.ndarray:
        return np.where(frame["chosen"] == "a", frame["r_chosen"], frame["r_rejected"]).astype(float)

    in0 = before["fold"].to_numpy() == 0
    assert np.allclose(reward_of_a(before)[in0], reward_of_a(after)[in0], atol=1e-6)
    assert np.allclose(before["margin"][in0], -after["margin"][in0], atol=1e-6)
    assert not np.allclose(reward_of_a(before)[~in0], reward_of_a(after)[~in0], atol=1e-4)


def test_deterministic_for_a_seed_and_uses_the_cache(labelled):
    project, config, run_id = labelled
    first = out_of_fold_margins(project, run_id, k=3)
    again = out_of_fold_margins(project, run_id, k=3)
    pd.testing.assert_frame_equal(first, again)
    other = out_of_fold_margins(project, run_id, config.replace(seed=4), k=3)
    assert not (other["fold"].to_numpy() == first["fold"].to_numpy()).all()


def test_too_few_prompts_for_the_folds_is_a_user_error(labelled):
    project, _, run_id = labelled
    with pytest.raises(ValueError, match="13 folds need at least 13 prompts"):
        out_of_fold_margins(project, run_id, k=13)


def test_finetune_run_gets_head_folds_on_backbone_embeddings(tmp_path, tiny_bert_dir):
    path = make_labelled_project(tmp_path / "f.wbp", n_prompts=6, per_prompt=2)
    config = TrainConfig(mode="finetune", backbone=tiny_bert_dir, max_length=48, learning_rate=1e-5)
    with Project.open(path) as project:
        run_id = _run(project, config)
        oof = out_of_fold_margins(project, run_id, k=3)
        assert len(oof) == 12 and np.isfinite(oof["margin"]).all()


def test_oof_scores_round_trip_and_leave_in_sample_scores_alone(labelled):
    project, _, run_id = labelled
    project.add_pair_scores(run_id, 5, [(1, "train", "a", 0.5, -0.5)])
    oof = out_of_fold_margins(project, run_id, k=3)
    rows = list(zip(oof["comparison_id"], oof["chosen"], oof["fold"], oof["r_chosen"], oof["r_rejected"]))
    project.add_oof_scores(run_id, rows, "head-folds")
    project.add_oof_scores(run_id, rows, "head-folds")  # a recompute replaces, never duplicates
    stored = project.oof_scores(run_id)
    assert len(stored) == len(oof) and set(stored["source"]) == {"head-folds"}
    assert np.allclose(stored.sort_values("comparison_id")["margin"], oof.sort_values("comparison_id")["margin"])
    assert project.pair_scores(run_id, 5)["margin"].tolist() == [1.0]
    assert project.oof_scores(run_id + 99).empty
    with pytest.raises(ValueError, match="source"):
        project.add_oof_scores(run_id, rows, "guess")


def test_config_folds_defaults_by_mode():
    assert TrainConfig().resolved_folds() == 5 and TrainConfig(mode="finetune").resolved_folds() == 0
    assert TrainConfig(mode="finetune", folds=3).resolved_folds() == 3
    with pytest.raises(ValueError, match="folds"):
        TrainConfig(folds=1)
