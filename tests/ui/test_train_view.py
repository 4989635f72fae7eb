"""The Train view with the real trainer on a tiny BERT: signals in order, live plots that match the stored
metrics, pause / resume / stop, failures shown as dialogs, a click on the margin plot opening Inspect,
and closing the window during a run."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox
from ui_helpers import HEAD, pair_records
from wb_testing import event_names, make_labelled_project

from workbench.core.store import Project
from workbench.training import checkpoint
from workbench.training.config import TrainConfig
from workbench.training.events import Failed, RunStarted

pytestmark = pytest.mark.slow  # real training runs behind the view


@pytest.fixture
def window(main_window):
    main_window.install_training_views()
    yield main_window
    view = main_window.train_view
    if view.busy():  # never leave a run (a QThread) behind, whatever the test did
        view.stop_and_wait()


@pytest.fixture
def trainable(tmp_path):
    """32 pairs over 16 prompts labelled by the tester; every 6th label is "wrong" (mispredicted later)."""
    return make_labelled_project(tmp_path / "train.wbp", noise_every=6)


def open_train(qtbot, window, path):
    assert window.open_project(path)
    view = window.train_view
    window.show_view(window.stack.indexOf(view))
    return view


def start(qtbot, view, backbone: str, **settings):
    view.form.set_config(TrainConfig(backbone=backbone, **settings))
    spy: list = []
    view.run_starting.connect(lambda run: run.worker.event.connect(spy.append))
    qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    assert view.busy()
    return spy


def wait_ended(qtbot, view, timeout=60_000):
    qtbot.waitUntil(lambda: not view.busy(), timeout=timeout)


# --------------------------------------------------------------------- the form
def test_the_form_is_built_from_the_config_dataclass(qtbot, window, trainable):
    view = open_train(qtbot, window, trainable)
    form = view.form
    for f in dataclasses.fields(TrainConfig):
        assert form.editors[f.name].toolTip() == f.metadata["help"], f.name
    assert form.config() == TrainConfig()  # defaults on screen: mode head, bundled MiniLM
    assert form.editors["mode"].currentData() == "head" and form.backbone_edit.text() == "minilm"
    assert not form.editors["lora"].isEnabled()  # LoRA is for fine-tuning only
    form.editors["mode"].setCurrentIndex(form.editors["mode"].findData("finetune"))
    assert form.editors["lora"].isEnabled() and form.editors["epochs"].specialValueText() == "auto (2)"
    form.editors["learning_rate"].setValue(2e-5)
    form.editors["epochs"].setValue(3)
    form.editors["margin_from_strength"].setChecked(True)
    cfg = form.config()
    assert (cfg.mode, cfg.learning_rate, cfg.epochs, cfg.margin_from_strength) == ("finetune", 2e-5, 3, True)
    form.set_config(TrainConfig(mode="head", epochs=None, learning_rate=None, seed=4))
    assert form.config() == TrainConfig(mode="head", seed=4)
    form.editors["val_fraction"].setValue(0.0)  # valid; a bad value is caught by TrainConfig with a message
    form.backbone_edit.setText("   ")
    assert form.config().backbone == "minilm"
    # folds: 0 is a real choice (none), so "auto" sits below it
    assert form.editors["folds"].specialValueText() == "auto" and form.config().folds is None
    form.editors["folds"].setValue(0)
    assert form.config().folds == 0
    form.editors["folds"].setValue(3)
    assert form.config().folds == 3


# --------------------------------------------------------------------- a run
def test_a_head_run_emits_its_signals_in_order_and_fills_every_plot(qtbot, window, trainable, tiny_bert):
    view = open_train(qtbot, window, trainable)
    runs = []
    view.run_starting.connect(lambda run: runs.append(weakref.ref(run)))
    events = start(qtbot, view, tiny_bert, **HEAD)
    wait_ended(qtbot, view)
    qtbot.wait(10)
    gc.collect()
    assert runs and runs[0]() is None  # the run's thread, worker, model and data are freed
    seq = event_names(events)
    assert seq[0] == "RunStarted" and seq[-1] == "Finished", [getattr(e, "message", "") for e in events[:3]]
    assert seq == view.events_seen  # the view saw every event, in the order the worker sent them
    phases = [e.phase for e in events if type(e).__name__ == "PhaseProgress"]
    assert phases[0] == "embedding" and "training" in phases and "evaluating" in phases
    first = {name: seq.index(name) for name in ("PhaseProgress", "StepMetrics", "Evaluation", "CheckpointSaved")}
    assert first["PhaseProgress"] < first["StepMetrics"] < first["Evaluation"] < first["CheckpointSaved"]
    run_id = events[0].run_id
    assert events[-1].status == "finished" and view.shown_run_id == run_id
    assert view.phase_label.text() == f"Run {run_id} finished"  # the last refresh leaves it

    plots = view.plots
    with Project.open(trainable) as p:
        metrics = p.run_metrics(run_id)
        scores = p.pair_scores(run_id)
    steps = metrics[(metrics["split"] == "train_step") & (metrics["name"] == "loss")]
    x, y = plots.train_loss.getData()
    assert len(x) == events[0].total_steps and np.allclose(x, steps["step"]) and np.allclose(y, steps["value"])
    x, y = plots.train_acc.getData()
    acc = metrics[(metrics["split"] == "train_step") & (metrics["name"] == "accuracy")]
    assert len(y) and np.allclose(y, acc["value"])
    for item, name in ((plots.val_loss, "loss"), (plots.val_acc, "accuracy")):
        x, y = item.getData()
        val = metrics[(metrics["split"] == "val") & (metrics["name"] == name)]
        assert len(y) == HEAD["epochs"] and np.allclose(x, val["step"]) and np.allclose(y, val["value"])
    labelled = scores[scores["split"] != "unlabelled"]
    _, counts_train = plots.hist_train.getData()
    _, counts_val = plots.hist_val.getData()
    assert counts_train.sum() == (labelled["split"] == "train").sum() > 0
    assert counts_val.sum() == (labelled["split"] == "val").sum() > 0
    x, y = plots.margin_curve.getData()
    assert np.allclose(y, np.sort(labelled["margin"].to_numpy()))
    wrong = int((labelled["margin"] <= 0).sum())
    assert wrong > 0 and len(plots.wrong_points.data) == wrong  # the noisy labels are mispredicted
    assert np.allclose(plots.chance_line.value(), np.log(2))
    assert plots.refreshes < events[0].total_steps  # redrawn from the timer, not once per step

    # The runs list shows the run; its status, mode and validation accuracy.
    table = view.runs_table
    assert table.rowCount() == 1
    row = [table.item(0, c).text() for c in range(table.columnCount())]
    assert row[:3] == [f"#{run_id}", "finished", "head"]
    assert row[3] == f"{events[-1].summary['val_accuracy']:.3f}"
    assert view.start_button.isEnabled() and not view.stop_button.isEnabled()


def test_labelling_goes_on_while_a_run_trains(qtbot, window, trainable, tiny_bert):
    with Project.open(trainable) as p:
        p.add_records(pair_records(3, start=100), source="more.jsonl")
    view = open_train(qtbot, window, trainable)
    start(qtbot, view, tiny_bert, mode="finetune", learning_rate=1e-3, epochs=100)
    qtbot.waitUntil(lambda: "StepMetrics" in view.events_seen, timeout=30_000)
    label = window.label_view
    window.show_view(window.stack.indexOf(label))
    label.refresh()
    before = window.project.counts()["judgments"]
    assert label.current is not None
    label.choose("left")
    assert window.project.counts()["judgments"] == before + 1
    assert view.busy()  # the run went on meanwhile
    view.stop()
    wait_ended(qtbot, view)


# --------------------------------------------------------------------- controls
def test_pause_stops_progress_and_resume_continues(qtbot, window, trainable, tiny_bert):
    view = open_train(qtbot, window, trainable)
    events = start(qtbot, view, tiny_bert, mode="finetune", learning_rate=1e-3, epochs=40)
    qtbot.waitUntil(lambda: view.events_seen.count("StepMetrics") >= 2, timeout=30_000)
    qtbot.mouseClick(view.pause_button, Qt.MouseButton.LeftButton)
    assert view.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: "Paused" in view.events_seen, timeout=10_000)
    paused_at = next(e for e in events if type(e).__name__ == "Paused").step
    n = len(view.events_seen)
    qtbot.wait(600)
    assert len(view.events_seen) == n  # nothing happens while paused
    assert view.phase_label.text().startswith(f"Paused at step {paused_at}")
    with Project.open(trainable) as p:
        assert p.runs()["status"].tolist() == ["paused"]
    qtbot.mouseClick(view.pause_button, Qt.MouseButton.LeftButton)  # resume
    qtbot.waitUntil(lambda: view.events_seen.count("StepMetrics") >= paused_at + 3, timeout=30_000)
    resumed = [e for e in events if type(e).__name__ == "Resumed"]
    assert resumed and resumed[0].step == paused_at
    steps = [e.step for e in events if type(e).__name__ == "StepMetrics"]
    assert steps == list(range(1, len(steps) + 1))  # the curve goes on where it stopped
    view.stop()
    wait_ended(qtbot, view)


def test_stop_ends_within_one_step_and_saves_a_checkpoint(qtbot, window, trainable, tiny_bert):
    view = open_train(qtbot, window, trainable)
    events = start(qtbot, view, tiny_bert, mode="finetune", learning_rate=1e-3, epochs=200)
    qtbot.waitUntil(lambda: view.events_seen.count("StepMetrics") >= 3, timeout=30_000)
    # The trainer runs in its own process: when Stop is clicked, it may have sent the next step's metrics
    # (still in the pipe) and be inside the step after; it stops at the end of that one.
    at_stop = max(e.step for e in events if type(e).__name__ == "StepMetrics") + 2
    qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    wait_ended(qtbot, view, timeout=20_000)  # a hang fails here; "within one step" is asserted below
    done = events[-1]
    assert type(done).__name__ == "Finished" and done.status == "cancelled"
    last_step = max(e.step for e in events if type(e).__name__ == "StepMetrics")
    assert last_step <= at_stop
    with Project.open(trainable) as p:
        assert p.run(done.run_id)["status"] == "cancelled"
        assert checkpoint.latest(p.checkpoint_dir(done.run_id)) is not None
    assert "stopped" in view.phase_label.text()
    # The stopped run can be resumed from the list.
    view.select_run(done.run_id)
    assert view.resume_button.isEnabled()


# --------------------------------------------------------------------- failures
def _close_error(qtbot, view, contains: str) -> None:
    qtbot.waitUntil(lambda: view.error_box is not None and view.error_box.isVisible(), timeout=30_000)
    box = view.error_box
    assert contains in box.text() + "\n" + box.informativeText(), box.text()
    box.close()


def test_a_bad_backbone_folder_shows_a_dialog_and_the_app_keeps_working(qtbot, window, trainable, tiny_bert, tmp_path):
    view = open_train(qtbot, window, trainable)
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    start(qtbot, view, str(empty), mode="head")
    _close_error(qtbot, view, "no config.json")
    wait_ended(qtbot, view)
    assert "What to do: choose another backbone" in view.error_box.informativeText()
    with Project.open(trainable) as p:  # a user error found before training leaves no run behind
        assert p.runs().empty
    assert view.runs_table.rowCount() == 0
    # The app goes on: a good run after the failed one.
    events = start(qtbot, view, tiny_bert, **HEAD)
    wait_ended(qtbot, view)
    assert events[-1].status == "finished"


@pytest.mark.slow
def test_a_crashed_training_process_shows_a_dialog_and_the_run_can_be_resumed(qtbot, window, trainable, tiny_bert):
    """The trainer's process dies (as when the system kills it for memory): the window stays, says so."""
    import os
    import signal

    view = open_train(qtbot, window, trainable)
    events = start(qtbot, view, tiny_bert, mode="finetune", learning_rate=1e-3, epochs=200)
    qtbot.waitUntil(
        lambda: "CheckpointSaved" in event_names(events) and event_names(events)[-1] == "StepMetrics", timeout=30_000
    )
    os.kill(view.run.worker.trainer.pid, signal.SIGKILL)
    _close_error(qtbot, view, "killed by SIGKILL")
    wait_ended(qtbot, view)
    run_id = events[0].run_id
    assert isinstance(events[-1], Failed) and events[-1].run_id == run_id
    with Project.open(trainable) as p:
        assert p.run(run_id)["status"] == "failed"
    view.select_run(run_id)
    assert view.resume_button.isEnabled() and view.start_button.isEnabled()
    resumed = []
    view.run_starting.connect(lambda run: run.worker.event.connect(resumed.append))
    qtbot.mouseClick(view.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "StepMetrics" in event_names(resumed), timeout=30_000)
    assert resumed[0].run_id == run_id and resumed[0].resumed_from_step > 0  # from the epoch's checkpoint
    view.stop_and_wait()
    assert resumed[-1].status == "cancelled"


def test_too_few_labelled_pairs_shows_what_to_do(qtbot, window, tmp_path, tiny_bert):
    path = make_labelled_project(tmp_path / "few.wbp", n_prompts=2, per_prompt=2)
    view = open_train(qtbot, window, path)
    events = start(qtbot, view, tiny_bert, mode="head")
    _close_error(qtbot, view, "at least 8")
    wait_ended(qtbot, view)
    assert event_names(events) == ["Failed"] and "label at least 4 more" in view.error_box.informativeText()
    assert view.start_button.isEnabled()


def test_a_diverging_loss_shows_a_dialog(qtbot, window, trainable, tiny_bert, monkeypatch):
    view = open_train(qtbot, window, trainable)
    # The form caps the learning rate at 10; a NaN within two steps needs far more.
    monkeypatch.setattr(
        view.form, "config", lambda: TrainConfig(backbone=tiny_bert, mode="finetune", learning_rate=1e30)
    )
    qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    _close_error(qtbot, view, "loss became")
    wait_ended(qtbot, view)
    assert "lower the learning rate" in view.error_box.informativeText()


def test_running_out_of_memory_in_the_worker_becomes_a_failed_run(qtbot, window, trainable, tiny_bert, monkeypatch):
    from workbench.training import trainer as trainer_module

    real = trainer_module.Trainer.events

    def events(self):
        for ev in real(self):
            yield ev
            if isinstance(ev, RunStarted):
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer_module.Trainer, "events", events)
    view = open_train(qtbot, window, trainable)
    view.trainer_factory = trainer_module.Trainer  # in this process, to patch it
    spy = start(qtbot, view, tiny_bert, mode="finetune")
    _close_error(qtbot, view, "out of memory")
    wait_ended(qtbot, view)
    assert isinstance(spy[-1], Failed) and spy[-1].run_id == spy[0].run_id
    assert "lower batch_size" in view.error_box.informativeText()
    with Project.open(trainable) as p:
        assert p.run(spy[0].run_id)["status"] == "failed"


def test_the_worker_forwards_events_synchronously_and_reports_errors(trainable, tiny_bert, monkeypatch):
    """The worker without a thread (superqt style): run() emits one signal per event, then done."""
    from workbench.training.trainer import Trainer
    from workbench.ui.worker import TrainWorker

    worker = TrainWorker(trainable, TrainConfig(backbone=tiny_bert, mode="head", epochs=1))
    seen, done = [], []
    worker.event.connect(seen.append)
    worker.finished.connect(lambda ev: seen.append("finished-signal"))
    worker.done.connect(lambda: done.append(True))
    worker.run()
    assert event_names(seen)[0] == "RunStarted" and seen[-2] == "finished-signal" and done == [True]

    from workbench.training import trainer as trainer_module

    def boom(self):
        raise ValueError("something unexpected")
        yield

    monkeypatch.setattr(trainer_module.Trainer, "events", boom)
    worker = TrainWorker(trainable, TrainConfig(backbone=tiny_bert), trainer_factory=Trainer)  # in this process
    failed = []
    worker.failed.connect(failed.append)
    worker.run()
    assert len(failed) == 1 and "ValueError: something unexpected" in failed[0].message and failed[0].hint


# --------------------------------------------------------------------- the margin plot and Inspect
def test_a_click_on_a_mispredicted_point_opens_the_pair_in_inspect(qtbot, window, trainable, tiny_bert):
    view = open_train(qtbot, window, trainable)
    start(qtbot, view, tiny_bert, **HEAD)
    wait_ended(qtbot, view)
    plots = view.plots
    wrong = np.flatnonzero(plots.sorted_margins <= 0)
    assert len(wrong)
    cid = int(plots.sorted_cids[wrong[-1]])  # the least wrong one, beside right ones: picked exactly
    qtbot.wait(100)  # the last labels' layout settles (it can move the plots)

    def hover() -> bool:  # the label names the pair and its prompt (fetched for this one pair)
        QTest.mouseMove(plots.view.viewport(), plots.view.mapFromScene(plots.scene_pos_of(cid)) + QPoint(1, 0))
        QTest.mouseMove(plots.view.viewport(), plots.view.mapFromScene(plots.scene_pos_of(cid)))
        return plots.hover_label.isVisible() and f"#{cid} " in plots.hover_label.textItem.toPlainText()

    qtbot.waitUntil(hover, timeout=3000)
    pos = plots.view.mapFromScene(plots.scene_pos_of(cid))
    assert "Question" in plots.hover_label.textItem.toPlainText()
    inspect = window.inspect_view
    QTest.mouseClick(plots.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert window.current_view() is inspect
    qtbot.waitUntil(lambda: inspect.selected_pair() == cid and not inspect.busy(), timeout=20_000)
    assert inspect.run_id == view.shown_run_id and inspect.selected_pair() == cid
    row = inspect.table.currentIndex().row()
    assert inspect.model.value(row, "comparison_id") == cid and inspect.model.value(row, "margin") <= 0
    assert f"Pair #{cid}" in inspect.detail_title.text()


def test_a_past_run_is_drawn_when_selected(qtbot, window, trainable, tiny_bert):
    view = open_train(qtbot, window, trainable)
    first = start(qtbot, view, tiny_bert, **HEAD)
    wait_ended(qtbot, view)
    second = start(qtbot, view, tiny_bert, mode="head", learning_rate=3e-2, epochs=3)
    wait_ended(qtbot, view)
    assert len(view.plots.val_loss.getData()[0]) == 3
    view.select_run(first[0].run_id)
    assert view.shown_run_id == first[0].run_id
    assert len(view.plots.val_loss.getData()[0]) == HEAD["epochs"]
    assert second[0].run_id != first[0].run_id


# --------------------------------------------------------------------- closing during a run
def _answer(button_text: str, seen: list) -> None:
    """Click a button of the modal question once it is up."""

    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            for b in box.buttons():
                if b.text() == button_text:
                    b.click()
                    return
        QTimer.singleShot(50, click)

    QTimer.singleShot(50, click)


def test_closing_the_window_during_a_run_asks_and_stops_it(qtbot, window, trainable, tiny_bert):
    view = open_train(qtbot, window, trainable)
    events = start(qtbot, view, tiny_bert, mode="finetune", learning_rate=1e-3, epochs=200)
    qtbot.waitUntil(lambda: view.events_seen.count("StepMetrics") >= 2, timeout=30_000)
    asked: list = []
    _answer("Cancel", asked)  # first: keep the window (and the run)
    assert not window.close()
    assert asked and "Stop it and save a checkpoint" in asked[0]
    assert window.isVisible() and view.busy()
    asked.clear()
    _answer("Stop and save a checkpoint", asked)
    assert window.close()
    assert asked and not view.busy() and not window.isVisible()
    done = events[-1]
    assert type(done).__name__ == "Finished" and done.status == "cancelled"
    with Project.open(trainable) as p:
        assert p.run(done.run_id)["status"] == "cancelled"
        assert checkpoint.latest(p.checkpoint_dir(done.run_id)) is not None


# --------------------------------------------------------------------- themes
def test_the_plots_take_their_colours_from_the_palette(qtbot):
    from PySide6.QtGui import QColor, QPalette

    from workbench.ui.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    dark = QPalette(plots.palette())
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1f22"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#e3e3e3"))
    plots.setPalette(dark)  # a dark system theme (PaletteChange)
    assert plots.view.backgroundBrush().color().name() == "#1e1f22"
    for plot in plots.plots():
        assert plot.getAxis("left").textPen().color().name() == "#e3e3e3"
        assert plot.getAxis("bottom").labelText  # every axis is labelled


def test_the_runs_table_says_which_threads_a_run_used_and_why(qtbot, window, trainable):
    """The thread probe's choice (training/threads.py) reaches the Train view as the run row's tooltip."""
    note = "2 CPU threads (measured now, s/step: 1: 0.9 s, 2: 0.5 s)"
    with Project.open(trainable) as p:
        run_id = p.create_run("finetune", "minilm", TrainConfig(mode="finetune").to_dict())
        p.update_run(run_id, status="finished", summary={"val_accuracy": 0.6, "threads": 2, "threads_note": note})
    view = open_train(qtbot, window, trainable)
    view.refresh_runs()
    row = next(r for r in range(view.runs_table.rowCount()) if view.runs_table.item(r, 0).text() == f"#{run_id}")
    assert note in view.runs_table.item(row, 0).toolTip()
