"""Issue 16: a run no longer scores the comparisons it did not train on; the Label view has them scored (the
"score_unlabelled" job in the real training process) when "Model-uncertain first" is picked, keeps the
annotator labelling meanwhile, and follows the scores once they are in. A failure is shown, not swallowed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from wb_testing import event_names, make_synthetic_project

from workbench.core.store import Project
from workbench.training.config import TrainConfig
from workbench.training.process import TrainerProcess

pytestmark = pytest.mark.slow  # a real run and a real job in the training process


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert_dir):
    """48 labelled pairs and 24 unlabelled comparisons; one finished head-mode run in the training process."""
    path = make_synthetic_project(tmp_path_factory.mktemp("scoring") / "p.wbp", unlabelled=1)
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=1))
    assert event_names(list(tp.events()))[-1] == "Finished"
    return path, tp.run_id


def fresh_copy(trained, folder: Path) -> tuple[Path, int]:
    """The trained project and its checkpoints, copied: each test starts with nothing scored on demand."""
    path, run = trained
    copy = folder / path.name
    shutil.copy(path, copy)
    shutil.copytree(path.with_name(path.name + ".checkpoints"), copy.with_name(copy.name + ".checkpoints"))
    return copy, run


def test_uncertain_order_scores_the_unlabelled_comparisons_and_then_follows_them(qtbot, main_window, trained, tmp_path):
    path, run = fresh_copy(trained, tmp_path)
    with Project.open(path) as p:
        assert p.unscored_count(run) == 24  # the run scored its 48 training pairs only
    assert main_window.open_project(path)
    view, project = main_window.label_view, main_window.project
    messages: list[str] = []
    view.message.connect(messages.append)
    assert view.model_orders_enabled() and view.score_job is None  # "new first": nothing asked for scores

    view.set_order("uncertain")
    assert view.score_job is not None and view.scoring_label.isVisible()
    assert view.scoring_label.text() == f"Scoring 24 unlabelled comparisons with run {run}…"
    assert messages[-1] == view.scoring_label.text()
    # The annotator keeps labelling while it runs: the queue serves what is scored (the labelled pairs).
    first = view.current.id
    view.choose("left")
    assert view.annotator in {r["annotator"] for r in project.comparison_labels(first)} and view.current.id != first

    assert view.wait_for_scoring()
    assert not view.scoring_label.isVisible() and messages[-1] == f"Scored 24 unlabelled comparisons with run {run}."
    assert project.unscored_count(run) == 0
    scores = project.pair_scores(run)
    assert (scores["split"] == "unlabelled").sum() == 24
    # The queue follows the new scores: the smallest |margin| of everything this annotator has not answered.
    open_ = scores[scores["comparison_id"] != first].assign(size=lambda d: d["margin"].abs())
    expected = open_.sort_values(["size", "comparison_id"])["comparison_id"].iloc[0]
    assert view.current.id == expected

    view.set_order("new")
    view.set_order("uncertain")
    assert view.score_job is None  # nothing is missing any more: no second job


def test_a_scoring_failure_is_shown_and_not_retried_unasked(qtbot, main_window, tmp_path):
    path = make_synthetic_project(tmp_path / "broken.wbp", n_prompts=6, unlabelled=1)
    with Project.open(path) as p:
        ids = p.training_pairs()["comparison_id"].tolist()
        run = p.create_run("head", "minilm", {"mode": "head"})
        p.add_pair_scores(run, 3, [(cid, "train", "a", 0.5, 0.0) for cid in ids])
        p.update_run(run, status="finished")
        folder = p.checkpoint_dir(run)
    folder.mkdir(parents=True)
    (folder / "latest.json").write_text(json.dumps({"step": 3, "path": "step-3"}), encoding="utf-8")  # no weights
    assert main_window.open_project(path)
    view = main_window.label_view
    messages: list[str] = []
    view.message.connect(messages.append)
    view.set_order("uncertain")
    assert view.score_job is not None
    assert view.wait_for_scoring()
    assert view.scoring_label.isVisible() and view.scoring_label.text() == f"⚠ Scoring with run {run} failed"
    assert messages[-1].startswith(f"Could not score the unlabelled comparisons with run {run}: ")
    assert "checkpoint" in messages[-1] and "checkpoint" in view.scoring_label.toolTip()
    assert view.current is not None  # labelling goes on in the fallback order
    view.set_active(False)
    view.set_active(True)  # a passive look does not start it again...
    assert view.score_job is None
    view.set_order("new")
    view.set_order("uncertain")  # ... picking the order again does
    assert view.score_job is not None
    assert view.wait_for_scoring()


def test_work_packages_with_scores_get_every_comparisons_score(qtbot, main_window, trained, tmp_path):
    """The Data view's Assign work with scores: what the run has not scored is scored first."""
    path, run = fresh_copy(trained, tmp_path)
    assert main_window.open_project(path)
    task = main_window.data_view.start_assign(["alice", "bob"], str(tmp_path / "out"), per_item=2, with_scores=True)
    assert task is not None
    with qtbot.waitSignal(task.finished, timeout=120_000):
        pass
    with Project.open(tmp_path / "out" / "alice.wbp") as p:
        assert len(p.pair_scores(run)) == p.comparison_count() == 72
    assert main_window.project.unscored_count(run) == 0
