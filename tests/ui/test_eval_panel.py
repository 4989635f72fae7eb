"""The Evaluation panel of the Train view with real runs and the real "evaluate" job in the training process,
and the Data view's test-set import and split sizes."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from ui_helpers import HEAD
from wb_testing import held_out_records, make_split_project

from workbench.core.store import Project
from workbench.training.config import TrainConfig
from workbench.training.eval_run import evaluate
from workbench.training.events import Finished
from workbench.training.trainer import Trainer

pytestmark = pytest.mark.slow  # real runs, and the training process


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_bert_dir):
    path = tmp_path_factory.mktemp("evalpanel") / "p.wbp"
    make_split_project(path, held_out_records(10))
    ids = []
    for seed, epochs in ((0, HEAD.get("epochs", 30)), (1, 2)):
        events = list(
            Trainer(path, TrainConfig(backbone=tiny_bert_dir, **{**HEAD, "seed": seed, "epochs": epochs})).events()
        )
        assert isinstance(events[-1], Finished), events[-1]
        ids.append(events[-1].run_id)
    return path, ids


def test_the_panel_evaluates_a_run_against_another_in_the_training_process(qtbot, main_window, two_runs):
    path, (first, second) = two_runs
    main_window.install_training_views()
    assert main_window.open_project(path)
    view = main_window.train_view
    main_window.show_view(main_window.stack.indexOf(view))
    panel = view.eval_panel
    assert [panel.run_combo.itemData(i) for i in range(panel.run_combo.count())] == [second, first]
    view.tabs.setCurrentWidget(panel)
    panel.select(first, against=second)
    with qtbot.waitSignal(panel.evaluated, timeout=120_000) as blocker:
        qtbot.mouseClick(panel.evaluate_button, Qt.MouseButton.LeftButton)
    panel.wait_idle()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5_000)
    shown = blocker.args[0]
    want, _ = evaluate(project=path, run=first, against=second)
    assert (shown["overall"]["n"], shown["overall"]["accuracy"]) == (want["overall"]["n"], want["overall"]["accuracy"])
    text = panel.summary.text()
    assert f"{100 * want['overall']['accuracy']:.1f}%" in text and "McNemar" in text and "ECE" in text
    assert panel.slices_table.rowCount() == sum(len(t) for t in want["slices"].values())
    flipped = want["against"]["flipped_to_right"] + want["against"]["flipped_to_wrong"]
    assert panel.flipped_list.count() == len(flipped)
    xs, ys = panel.raw_curve.getData()
    assert len(xs) == sum(1 for b in want["calibration"]["raw"]["bins"] if b["n"])
    if flipped:  # a flipped pair opens in Inspect
        with qtbot.waitSignal(view.pair_requested, timeout=5_000) as opened:
            panel._on_flipped_activated(panel.flipped_list.item(0))
        assert opened.args == [first, flipped[0]]


def test_the_data_view_imports_a_test_set_and_shows_the_split_sizes(qtbot, main_window, make_project, tmp_path):
    main_window.open_project(make_project(n_pairs=6))
    data = main_window.data_view
    rows = [{"prompt": f"held {i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    file = tmp_path / "test.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data.split_combo.setCurrentIndex(data.split_combo.findData("test"))
    task = data.start_import(file, "auto", data.split_combo.currentData())
    assert task is not None
    qtbot.waitUntil(lambda: not data.busy(), timeout=30_000)
    assert len(main_window.project.split_comparisons("test")) == 5
    data.refresh_counts()
    assert (
        "5 in the test set" in data.split_label.text()
        and "6 comparisons in the training pool" in data.split_label.text()
    )


def test_two_runs_selected_in_the_run_list_are_compared_in_the_evaluation_tab(qtbot, main_window, two_runs):
    """Ctrl+click a second run in the Train view's run list, then Compare: the newer run is evaluated against
    the older in the training process (``eval --run N --against M``), and the Evaluation tab shows McNemar,
    the paired interval and the flipped pairs, as ``workbench eval`` computes them."""
    path, (first, second) = two_runs
    main_window.install_training_views()
    assert main_window.open_project(path)
    view = main_window.train_view
    main_window.show_view(main_window.stack.indexOf(view))
    table = view.runs_table
    rows = {int(table.item(r, 0).data(Qt.ItemDataRole.UserRole)): r for r in range(table.rowCount())}

    def click(run_id: int, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
        rect = table.visualItemRect(table.item(rows[run_id], 0))
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())

    click(first)
    assert not view.compare_button.isEnabled()  # one run: nothing to compare
    click(second, Qt.KeyboardModifier.ControlModifier)
    assert [run_id for run_id, _ in view.selected_runs()] == [second, first]
    assert view.comparable_runs() == (second, first) and view.compare_button.isEnabled()
    menu = view.runs_menu()  # the right-click menu offers the same
    compare = menu.actions()[0]
    assert compare.text() == f"Compare #{second} against #{first}" and compare.isEnabled()
    panel = view.eval_panel
    with qtbot.waitSignal(panel.evaluated, timeout=120_000) as blocker:
        qtbot.mouseClick(view.compare_button, Qt.MouseButton.LeftButton)
    panel.wait_idle()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5_000)
    assert view.tabs.currentWidget() is panel
    assert (panel.run_combo.currentData(), panel.against_combo.currentData()) == (second, first)
    shown = blocker.args[0]
    want, _ = evaluate(project=path, run=second, against=first)
    a, got = want["against"], shown["against"]
    assert got["run_id"] == first and got["mcnemar"] == a["mcnemar"]
    assert got["difference"] == pytest.approx(a["difference"]) and got["difference_ci"] == pytest.approx(
        a["difference_ci"]
    )
    text = panel.summary.text()
    assert f"McNemar p = {a['mcnemar']['p_value']:.3g}" in text and f"{100 * a['difference']:+.1f} points" in text
    assert panel.flipped_list.count() == len(a["flipped_to_right"]) + len(a["flipped_to_wrong"])
    # One run selected again: nothing to compare, in the menu either.
    click(first)
    assert not view.compare_button.isEnabled() and not view.runs_menu().actions()[0].isEnabled()


def test_inspect_compares_two_runs_on_the_test_split_as_eval_does(qtbot, tmp_path, tiny_bert_dir):
    """Inspect with a second run and the Split filter on test: "Flipped only" lists exactly the pairs that
    ``workbench eval --against`` says flipped, so a flipped pair of the Evaluation panel is found there."""
    from workbench.ui.inspect_view import InspectView

    path = tmp_path / "flips.wbp"
    make_split_project(path, held_out_records(10))
    run_ids = []
    for swap in (False, True):
        if swap:  # half the training labels swapped: a second run that disagrees with the first
            with Project.open(path) as p:
                for cid in p.training_pairs()["comparison_id"].tolist()[::2]:
                    p.review_label(int(cid), "flip", "a test of disagreement")
        events = list(Trainer(path, TrainConfig(backbone=tiny_bert_dir, **HEAD)).events())
        assert isinstance(events[-1], Finished), events[-1]
        run_ids.append(events[-1].run_id)
    first, second = run_ids
    want, _ = evaluate(project=path, run=second, against=first)
    flipped = set(want["against"]["flipped_to_right"]) | set(want["against"]["flipped_to_wrong"])
    assert flipped, "the two runs disagree on some test pair"
    project = Project.open(path)
    view = InspectView()
    qtbot.addWidget(view)
    view.resize(1400, 800)
    with qtbot.waitSignal(view.loaded, timeout=20_000):
        view.set_project(project)
    try:
        assert view.run_id == second
        with qtbot.waitSignal(view.loaded, timeout=20_000):
            view.compare_combo.setCurrentIndex(view.compare_combo.findData(first))
        view.split_combo.setCurrentIndex(view.split_combo.findData("test"))
        assert view.model.rowCount() == want["overall"]["n"]
        view.flipped_check.setChecked(True)
        shown = {int(view.model.value(r, "comparison_id")) for r in range(view.model.rowCount())}
        assert shown == flipped
        right = {
            int(view.model.value(r, "comparison_id"))
            for r in range(view.model.rowCount())
            if int(view.model.value(r, "flip")) > 0
        }
        assert right == set(want["against"]["flipped_to_right"])
    finally:
        view.set_project(None)
        project.close()
