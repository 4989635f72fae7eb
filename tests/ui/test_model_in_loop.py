"""The model in the labelling loop: the queue orders that read the latest run's per-pair scores, and the
optional score hint. Scores are written with ``create_run`` + ``add_pair_scores``, as a run would, without
training anything."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from ui_helpers import ANNOTATOR, press

from workbench.core.store import Project
from workbench.ui import settings
from workbench.ui.label_view import LabelView

K = Qt.Key


def comparison_ids(project: Project) -> list[int]:
    return project.comparisons_frame()["comparison_id"].tolist()


def add_run(project: Project, rows, step: int = 5) -> int:
    """A finished run with per-pair scores: rows of (comparison, split, chosen, r_chosen, r_rejected)."""
    run = project.create_run("head", "minilm", {"mode": "head"})
    project.add_pair_scores(run, step, rows)
    project.update_run(run, status="finished")
    return run


def come_back_to_label(window) -> None:
    """What a person does after training: another view, then the Label view again."""
    window.show_view(window.stack.indexOf(window.data_view))
    window.show_view(window.stack.indexOf(window.label_view))


def order_item(view, key):
    return view.order_combo.model().item(view.order_combo.findData(key))


def test_model_orders_appear_with_scores_and_uncertain_serves_the_smallest_margin_first(
    qtbot, main_window, make_project
):
    assert main_window.open_project(make_project(n_pairs=8))
    window, view, project = main_window, main_window.label_view, main_window.project
    assert not view.model_orders_enabled()
    assert not order_item(view, "uncertain").isEnabled()
    tip = view.order_combo.itemData(view.order_combo.findData("uncertain"), Qt.ItemDataRole.ToolTipRole)
    assert "trained model" in tip and "Train view" in tip
    assert view.order_combo.findText("Model disagrees with label first") >= 0

    ids = comparison_ids(project)
    margins = [2.0, -1.5, 0.1, -0.05, 0.7, 3.0, -0.3, 1.0]
    add_run(project, [(cid, "unlabelled", "a", m, 0.0) for cid, m in zip(ids, margins)])
    come_back_to_label(window)
    assert view.model_orders_enabled()
    assert "least sure" in view.order_combo.itemData(
        view.order_combo.findData("uncertain"), Qt.ItemDataRole.ToolTipRole
    )

    view.order_combo.setCurrentIndex(view.order_combo.findData("uncertain"))
    assert view.order == "uncertain" and settings.value("label/order") == "uncertain"
    by_margin = [cid for _, cid in sorted(zip((abs(m) for m in margins), ids))]
    served = []
    for key in (K.Key_1, K.Key_2, K.Key_Equal, K.Key_1):
        served.append(view.current.id)
        press(qtbot, window, key)
    assert served == by_margin[:4]  # |margin| 0.05, 0.1, 0.3, 0.7
    assert view.current.id == by_margin[4]


def test_disagree_order_brings_back_the_labels_the_model_ranks_the_other_way(qtbot, main_window, make_project):
    path = make_project(n_pairs=6)
    with Project.open(path) as project:
        ids = comparison_ids(project)
        for cid in ids[:3]:
            project.record_judgment(cid, ANNOTATOR, "a", strength=3)
        # The model agrees with the label of the second pair only; the first is the most confidently wrong.
        add_run(
            project,
            [(ids[0], "train", "a", -2.0, 0.0), (ids[1], "train", "a", 1.0, 0.0), (ids[2], "val", "a", -0.5, 0.0)],
        )
    assert main_window.open_project(path)
    window, view = main_window, main_window.label_view
    assert view.model_orders_enabled()
    view.set_order("disagree")
    assert view.current.id == ids[0]
    press(qtbot, window, K.Key_2)  # looked at again after the run: it leaves the queue
    assert view.current.id == ids[2]
    press(qtbot, window, K.Key_1)
    assert view.current.id not in ids[:3]  # then the order falls back to new comparisons


def test_score_hint_is_off_by_default_and_shows_the_latest_scores_when_on(qtbot, main_window, make_project):
    assert main_window.open_project(make_project(n_pairs=4))
    window, view, project = main_window, main_window.label_view, main_window.project
    ids = comparison_ids(project)
    # An older run, then the latest one, whose last step the hint must show.
    add_run(project, [(cid, "unlabelled", "a", 9.0, -9.0) for cid in ids])
    scores = {ids[0]: (0.75, -0.5), ids[1]: (-1.25, 0.25), ids[2]: (0.1, 0.1)}  # (r_a, r_b)
    run = project.create_run("head", "minilm", {})
    project.add_pair_scores(run, 1, [(cid, "unlabelled", "a", 5.0, 5.0) for cid in ids])
    rows = [(cid, "unlabelled", "a", ra, rb) for cid, (ra, rb) in scores.items()]
    rows[1] = (ids[1], "train", "b", scores[ids[1]][1], scores[ids[1]][0])  # labelled b: r_chosen is b's
    project.add_pair_scores(run, 2, rows)
    come_back_to_label(window)

    action = view.menu_actions()["score_hint"]
    assert action in window.view_menu.actions()
    assert not action.isChecked() and not view.score_hint
    assert view.left_card.extra.text() == "" and view.right_card.extra.text() == ""

    action.trigger()  # View > Model Score Hint
    assert view.score_hint and settings.value("label/score_hint") in (True, "true")
    for _ in range(3):
        comp = view.current
        r_a, r_b = scores[comp.id]
        left, right = (r_a, r_b) if comp.left == "a" else (r_b, r_a)
        left_text, right_text = view.left_card.extra.text(), view.right_card.extra.text()
        assert left_text.startswith(f"model {left:+.3f}") and right_text.startswith(f"model {right:+.3f}")
        if left != right:
            winner, loser = (left_text, right_text) if left > right else (right_text, left_text)
            assert winner.endswith(f"preferred by {abs(r_a - r_b):.3f}") and "preferred" not in loser
            assert view.hint_scores["margin"] == pytest.approx(abs(r_a - r_b))
        else:
            assert "preferred" not in left_text + right_text and view.hint_scores["prefers"] is None
        assert view.hint_scores["run_id"] == run and view.hint_scores["step"] == 2
        assert f"Run {run} (step 2)" in view.left_card.toolTip() + view.left_card.extra.toolTip()
        press(qtbot, window, K.Key_1)
    assert view.current.id == ids[3]  # not scored by the latest run
    assert view.left_card.extra.text() == "model: no score"

    # Remembered: a new Label view starts with the hint on; turning it off clears it.
    other = LabelView()
    qtbot.addWidget(other)
    assert other.score_hint and other.menu_actions()["score_hint"].isChecked()
    action.trigger()
    assert not view.score_hint and view.left_card.extra.text() == ""
    assert settings.value("label/score_hint") in (False, "false")
