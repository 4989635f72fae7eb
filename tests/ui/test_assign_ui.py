"""Assign work from the Data view, "your batch" in the Label view, and the reliability panel, with real widgets."""

from __future__ import annotations

import random

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox
from ui_helpers import ANNOTATOR, activate, press
from wb_testing import make_labelled_project

from workbench.core.store import Project
from workbench.core.team import merge_projects
from workbench.training.config import TrainConfig
from workbench.ui.data_view import BATCH_COL, RELIABILITY_COL

K = Qt.Key


def show_data(window):
    data = window.data_view
    window.show_view(window.stack.indexOf(data))
    return data


def settle(qtbot, data, timeout=30000):
    qtbot.waitUntil(
        lambda: data.task is None and data.stats_task is None and data.team_stats is not None, timeout=timeout
    )


def row_of(table, name: str) -> int:
    return next(r for r in range(table.rowCount()) if table.item(r, 0).text() == name)


def test_assign_from_the_data_view_then_label_your_batch_and_merge_back(qtbot, main_window, make_project, tmp_path):
    path = make_project(n_pairs=40)
    assert main_window.open_project(path)
    data = show_data(main_window)
    settle(qtbot, data)
    dialog = data.open_assign()
    assert dialog is not None
    dialog.names_edit.setText(f"{ANNOTATOR}, bob")
    dialog.per_item_radio.setChecked(True)
    dialog.per_item_spin.setValue(2)
    dialog.folder_edit.setText(str(tmp_path / "packages"))
    assert "tester 40, bob 40" in dialog.preview.text() and "shares 40 to 40" in dialog.preview.text()
    assert "share only 40" in dialog.preview.text()  # fewer than 50: the design warns before anything is written
    dialog.names_edit.setText(f"{ANNOTATOR}, , bob")
    assert "empty" in dialog.preview.text() and not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    dialog.names_edit.setText(f"{ANNOTATOR}, bob")
    dialog.accept()  # "Write work packages"
    settle(qtbot, data)
    assert (tmp_path / "packages" / "tester.wbp").is_file() and (tmp_path / "packages" / "manifest.json").is_file()
    assert "Wrote 2 work packages" in data.team_status.text()
    qtbot.waitUntil(lambda: data.team_stats.get("assignment") is not None, timeout=30000)
    settle(qtbot, data)
    r = row_of(data.table, "bob")  # assigned, nothing labelled yet: a row all the same
    assert data.table.item(r, BATCH_COL).text() == "0 of 40"

    # The annotator opens their file: the Label view says how far into the batch they are.
    assert main_window.open_project(tmp_path / "packages" / "tester.wbp")
    view = main_window.label_view
    main_window.show_view(main_window.stack.indexOf(view))
    assert view.current is not None
    assert "your batch: 0 of 40" in view.progress_label.text()
    activate(qtbot, main_window)  # the dialog had the focus: the keys are the window's shortcuts
    press(qtbot, main_window, K.Key_1)
    press(qtbot, main_window, K.Key_2)
    assert "your batch: 2 of 40" in view.progress_label.text()

    # Back in the project, merged: progress against the assignment.
    assert main_window.open_project(path)
    merge_projects([tmp_path / "packages" / "tester.wbp"], path)
    data = show_data(main_window)
    data.refresh_counts()
    settle(qtbot, data)
    qtbot.waitUntil(lambda: data.table.item(row_of(data.table, ANNOTATOR), BATCH_COL).text() == "2 of 40")
    assert data.table.item(row_of(data.table, "bob"), BATCH_COL).text() == "0 of 40"


def test_the_reliability_panel_ranks_annotators(qtbot, main_window, make_project):
    path = make_project(n_pairs=120)
    rng = random.Random(1)
    accuracy = {"ana": 0.95, "ben": 0.85, "cat": 0.8, "dan": 0.55}
    with Project.open(path) as p, p.transaction():
        for cid in p.comparisons_frame()["comparison_id"]:
            truth = "a" if int(cid) % 3 else "b"
            for name in rng.sample(list(accuracy), 2):
                right = rng.random() < accuracy[name]
                p.record_judgment(int(cid), name, truth if right else ("b" if truth == "a" else "a"), left="a")
    assert main_window.open_project(path)
    data = show_data(main_window)
    settle(qtbot, data)
    qtbot.waitUntil(lambda: data.reliability is not None and data.reliability_task is None, timeout=60000)
    panel = data.reliability_panel
    assert panel.table.rowCount() == 4 and panel.report["fitted"]
    assert panel.skill("ana") > panel.skill("dan") and panel.skill("ben") > panel.skill("dan")
    assert "bootstrap" in panel.note.text()
    cell = data.table.item(row_of(data.table, "ana"), RELIABILITY_COL)
    assert cell.text().startswith(f"{panel.skill('ana'):.2f} [")


@pytest.mark.slow
def test_train_on_posterior_labels_from_the_train_view(qtbot, main_window, tmp_path, tiny_bert):
    """Three annotators' labels (as after a merge); the Labels setting of the Train view's form picks the posterior."""
    path = make_labelled_project(tmp_path / "p.wbp", n_prompts=16, annotator="ana")
    with Project.open(path) as p, p.transaction():  # two more annotators, one of them often wrong
        rng = random.Random(0)
        for cid in p.comparisons_frame()["comparison_id"]:
            right = p.current_judgment(int(cid), "ana").choice
            for name, accuracy in (("ben", 0.9), ("cat", 0.6)):
                p.record_judgment(int(cid), name, right if rng.random() < accuracy else ("b" if right == "a" else "a"))
    main_window.install_training_views()
    assert main_window.open_project(path)
    view = main_window.train_view
    main_window.show_view(main_window.stack.indexOf(view))
    view.form.set_config(TrainConfig(backbone=tiny_bert, mode="head", epochs=3, max_length=64))
    combo = view.form.editors["labels"]
    assert isinstance(combo, QComboBox) and combo.itemText(combo.findData("posterior")).startswith("Posterior")
    combo.setCurrentIndex(combo.findData("posterior"))
    assert view.form.config().labels == "posterior"
    qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.busy(), timeout=120_000)
    with Project.open(path) as p:
        run = p.runs().iloc[-1]
        stored = p.run(int(run["id"]))
    assert stored["status"] == "finished", stored["message"]
    assert stored["config"]["labels"] == "posterior" and stored["data_snapshot"]["labels"] == "posterior"
    assert min(stored["data_snapshot"]["targets"]) < 1.0
