"""Closing the loop from the suspects queue: reviews resolve labels like adjudications, append-only, and the
next run's comparison shows which suspects flipped."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core import suspects
from workbench.core.records import PairRecord, Text
from workbench.core.store import Project

pytestmark = pytest.mark.slow  # trains runs to compare their suspects


@pytest.fixture
def project(tmp_path):
    records = [PairRecord(Text(f"prompt {i}"), Text(f"a{i}"), Text(f"b{i}")) for i in range(40)]
    with Project.create(tmp_path / "r.wbp") as p:
        p.add_records(records, source="x.jsonl")
        for cid in p.comparisons_frame()["comparison_id"]:
            p.record_judgment(int(cid), "ann", "a", strength=3)
        yield p


def _run(p: Project, margins: dict[int, float]) -> int:
    """A run row trained on the pairs' resolved a/b labels, with the given out-of-fold margins."""
    pairs = p.training_pairs()
    snapshot = {
        "comparison_ids": pairs["comparison_id"].tolist(),
        "choices": "".join(pairs["choice"]),
        "judgment_ids": pairs["judgment_id"].tolist(),
    }
    run_id = p.create_run("head", "minilm", {}, snapshot)
    p.update_run(run_id, status="finished")
    rows = [(c, ch, 0, margins.get(c, 3.0), 0.0) for c, ch in zip(pairs["comparison_id"], pairs["choice"])]
    p.add_oof_scores(run_id, rows, "head-folds")
    return run_id


def test_flip_resolves_a_one_one_split_to_the_other_side(project):
    project.record_judgment(1, "bob", "b")
    assert project.resolved_label(1) == (None, None)  # 1-1: not trained
    project.review_label(1, "flip", "b is clearly better", "carol", label="a")
    assert project.resolved_label(1)[0] == "b"
    assert 1 in set(project.training_pairs()["comparison_id"])
    # the annotators' votes are still there: the review is an adjudication, not a replaced vote
    assert {r["annotator"]: r["choice"] for r in project.comparison_labels(1)} == {"ann": "a", "bob": "b"}


def test_review_actions_and_append_only_history(project):
    judgments = project.counts()["judgments"]
    project.review_label(2, "keep", "checked", "carol")
    assert project.resolved_label(2)[0] == "a"
    project.review_label(3, "tie", "same answer", "carol")
    project.review_label(4, "both_bad", "", "carol")
    project.review_label(5, "exclude", "prompt leaks the answer", "carol")
    trained = set(project.training_pairs()["comparison_id"])
    assert {3, 4, 5}.isdisjoint(trained) and 2 in trained and 5 in project.marked("exclude")
    project.review_label(2, "flip", "on second thought", "dave")
    assert project.resolved_label(2)[0] == "b"
    log = project.reviews()
    assert log["action"].tolist() == ["keep", "tie", "both_bad", "exclude", "flip"]
    assert log.loc[log["action"] == "exclude", "reason"].item() == "prompt leaks the answer"
    assert project.reviews(2)["action"].tolist() == ["keep", "flip"]  # nothing rewritten
    assert project.counts()["judgments"] == judgments + 4  # exclude is a mark, the others adjudications
    assert project.reviewed() == {2: "flip", 3: "tie", 4: "both_bad", 5: "exclude"}
    with pytest.raises(ValueError, match="a review is one of"):
        project.review_label(2, "maybe", "", "carol")
    project.record_judgment(6, "bob", "b")
    with pytest.raises(ValueError, match="no a/b label"):
        project.review_label(6, "keep", "", "carol")


def test_kept_labels_leave_the_queue_and_compare_shows_what_flipped(project):
    bad = {1: -4.0, 2: -4.0, 3: -4.0}
    run_a = _run(project, bad)
    table = suspects.suspects_for_run(project, run_a)
    assert set(table.head(3)["comparison_id"]) == {1, 2, 3} and (table["review"] == "").all()
    project.review_label(1, "keep", "the label is right", "carol", run_id=run_a)
    project.review_label(2, "flip", "the label is wrong", "carol", label="a", run_id=run_a)
    project.review_label(3, "exclude", "unclear", "carol", run_id=run_a)
    queue = suspects.suspects_for_run(project, run_a, include_reviewed=False)
    assert {1, 2, 3}.isdisjoint(queue["comparison_id"])
    marked = suspects.suspects_for_run(project, run_a).set_index("comparison_id")
    assert marked.loc[1, "review"] == "keep" and marked.loc[2, "review"] == "flip"

    run_b = _run(project, {1: -4.0, 2: 4.0})  # the flipped pair now agrees with the model
    diff = suspects.compare_suspects(project, run_a, run_b).set_index("comparison_id")
    assert list(diff.reset_index().columns) == suspects.COMPARE_COLUMNS
    assert diff.loc[2, "label_a"] == "a" and diff.loc[2, "label_b"] == "b" and diff.loc[2, "label_flipped"]
    assert diff.loc[2, "change"] == "label flipped"
    assert diff.loc[3, "change"] == "left training" and diff.loc[3, "label_b"] is None
    assert not diff.loc[1, "label_flipped"] and diff.loc[1, "review"] == "keep"
    assert np.isnan(diff.loc[3, "p_label_wrong_b"])
