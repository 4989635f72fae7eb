"""The Train view: settings, start / pause / resume / stop, progress with ETA, live plots,
and the project's past runs.

The settings form is ``ConfigForm`` (config_form.py, built from the ``TrainConfig`` dataclass). A run goes to a
``TrainingRun`` (its own QThread, see ``worker.py``); its events arrive as signals carrying the event
dataclasses. Event handlers only store values; a 100 ms timer updates the progress widgets and the
plots, so a fast run never redraws per step. Labelling goes on in the Label view meanwhile.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPoint, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.core.store import read_only_message
from workbench.training.events import (
    CheckpointSaved,
    Evaluation,
    Failed,
    Finished,
    Paused,
    PhaseProgress,
    Resumed,
    RunStarted,
    StepMetrics,
)
from workbench.ui import settings
from workbench.ui.config_form import ConfigForm
from workbench.ui.eval_panel import EvalPanel
from workbench.ui.plots import TrainingPlots
from workbench.ui.safe_text import message_box, plain, tooltip
from workbench.ui.worker import TrainingRun

if TYPE_CHECKING:
    from workbench.core.store import Project

PHASES = {
    "embedding": "Embedding texts",
    "training": "Training",
    "evaluating": "Evaluating",
    "folds": "Out-of-fold scores",
}
RUN_COLUMNS = ["Run", "Status", "Mode", "Val. accuracy", "Time", "Started"]
TICK_MS = 100


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainView(QWidget):
    """Settings, controls, progress, live plots and the list of runs."""

    message = Signal(str)
    #: a pair was clicked on the margin plot: (run id, comparison id)
    pair_requested = Signal(int, int)
    #: "Inspect" was asked for a run
    inspect_requested = Signal(int)
    #: a run ended (finished, cancelled or failed) and its results are stored
    run_ended = Signal(int)
    #: a TrainingRun is about to start (connect to its worker's signals here)
    run_starting = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainView")
        self.project: Project | None = None
        self.annotator = ""
        self.run: TrainingRun | None = None
        #: what a run builds its trainer with (None: the training process; tests inject ``Trainer``)
        self.trainer_factory = None
        self.shown_run_id: int | None = None  # the run the plots show
        self.error_box: QMessageBox | None = None
        self.last_failure: Failed | None = None
        self._reset_progress()
        self._text_cache: dict[int, str] = {}
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.set_project(None)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(14, 12, 14, 12)
        root.setSpacing(12)

        # Left: settings and controls.
        left = QWidget()
        left.setMinimumWidth(330)
        left.setMaximumWidth(420)
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(10)
        title = QLabel("Train a reward model")
        title.setObjectName("Section")
        title.setStyleSheet("font-size: 14pt;")
        col.addWidget(title)
        box = QGroupBox("Settings")
        inner = QVBoxLayout(box)
        self.form = ConfigForm()
        inner.addWidget(self.form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(box)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_box, self.settings_scroll = box, scroll
        self.form.advanced_button.toggled.connect(lambda _on: QTimer.singleShot(0, self._fit_settings))
        col.addWidget(scroll, 100)
        self.form_error = plain(QLabel(""))
        self.form_error.setObjectName("Error")
        self.form_error.setWordWrap(True)
        self.form_error.hide()
        col.addWidget(self.form_error)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("Primary")
        self.start_button.setStyleSheet(  # the shared style has no disabled look for the primary button
            "QPushButton#Primary:disabled { background: #aabbe0; border-color: #aabbe0; color: #f4f6fb; }"
        )
        self.start_button.setToolTip("Start a new run with these settings (it trains in the background)")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause at the next step (a checkpoint is saved); press again to resume")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop at the next step and save a checkpoint (the run can be resumed)")
        self.stop_button.clicked.connect(self.stop)
        for b in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        col.addLayout(buttons)

        self.phase_label = QLabel("No run yet")
        self.phase_label.setObjectName("Section")
        col.addWidget(self.phase_label)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        col.addWidget(self.progress)
        # Fixed heights: the texts change ten times a second during a run, and a label that changes size
        # makes the whole window lay out again.
        lines = self.fontMetrics().lineSpacing()
        self.detail_label = plain(QLabel(""))
        self.detail_label.setObjectName("Muted")
        self.detail_label.setWordWrap(True)
        self.detail_label.setFixedHeight(3 * lines + 4)
        self.detail_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        col.addWidget(self.detail_label)
        self.metrics_label = QLabel("")
        self.metrics_label.setFixedHeight(2 * lines + 4)
        self.metrics_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        col.addWidget(self.metrics_label)
        col.addStretch(1)
        root.addWidget(left)

        # Right: plots above, runs below.
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        self.plots = TrainingPlots()
        self.plots.setMinimumHeight(320)
        self.plots.describe_pair = self._describe_pair
        self.plots.pair_clicked.connect(self._on_pair_clicked)
        # Issue 13: the Evaluation panel beside the curves (a run on the test split; two runs compared).
        self.eval_panel = EvalPanel()
        self.eval_panel.pair_requested.connect(self.pair_requested)
        self.eval_panel.failed.connect(self.message)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.plots, "Training curves")
        self.tabs.addTab(self.eval_panel, "Evaluation")
        split.addWidget(self.tabs)
        runs_box = QWidget()
        runs_col = QVBoxLayout(runs_box)
        runs_col.setContentsMargins(0, 6, 0, 0)
        runs_col.setSpacing(6)
        head = QHBoxLayout()
        label = QLabel("Runs")
        label.setObjectName("Section")
        head.addWidget(label)
        self.runs_hint = QLabel(
            "Select a run for its curves · Ctrl+click a second to compare · double-click to inspect"
        )
        self.runs_hint.setObjectName("Muted")
        head.addWidget(self.runs_hint)
        head.addStretch(1)
        self.resume_button = QPushButton("Resume run")
        self.resume_button.setToolTip("Continue the selected stopped run from its last checkpoint")
        self.resume_button.clicked.connect(self.resume_selected)
        self.inspect_button = QPushButton("Inspect pairs")
        self.inspect_button.setToolTip("Open the selected run's pairs in Inspect, most wrong first")
        self.inspect_button.clicked.connect(self._inspect_selected)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip(
            "Evaluate the selected run on the test set (against the run evaluated before it, if one was)"
        )
        self.evaluate_button.clicked.connect(self._evaluate_selected)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip(
            "Select two finished runs (Ctrl+click): the newer is evaluated against the older on the test set "
            "(McNemar's test, the paired interval of the accuracy difference, the pairs that flipped)"
        )
        self.compare_button.clicked.connect(self.compare_selected)
        head.addWidget(self.resume_button)
        head.addWidget(self.evaluate_button)
        head.addWidget(self.compare_button)
        head.addWidget(self.inspect_button)
        runs_col.addLayout(head)
        self.runs_table = QTableWidget(0, len(RUN_COLUMNS))
        self.runs_table.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.runs_table.verticalHeader().hide()
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # Two runs may be selected, to compare them; the first selected is the one shown.
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.runs_table.customContextMenuRequested.connect(self._runs_menu)
        self.runs_table.setShowGrid(False)
        self.runs_table.setAlternatingRowColors(True)
        header = self.runs_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.runs_table.itemSelectionChanged.connect(self._on_run_selected)
        self.runs_table.cellDoubleClicked.connect(lambda *_: self._inspect_selected())
        runs_col.addWidget(self.runs_table, 1)
        split.addWidget(runs_box)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        sizes = settings.int_list("train/splitter")
        split.setSizes(sizes if sizes and len(sizes) == 2 and min(sizes) >= 120 else [620, 170])
        self.splitter = split
        root.addWidget(split, 1)
        self._update_buttons()

    def _fit_settings(self) -> None:
        """The settings take the height they need (scrolling only when the window is too short)."""
        self.settings_scroll.setMaximumHeight(self.settings_box.sizeHint().height() + 4)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        self._fit_settings()

    # ------------------------------------------------------------------ view protocol
    def set_project(self, project: Project | None) -> None:
        if self.run is not None and self.run.is_running():
            self.stop_and_wait()  # the main window asked first (confirm_close)
        self.project = project
        self._text_cache.clear()
        self.shown_run_id = None
        self.plots.clear()
        self._reset_progress()
        self.phase_label.setText("No run yet")
        self.detail_label.setText("")
        self.metrics_label.setText("")
        self.progress.setValue(0)
        self.refresh_runs()
        self.eval_panel.set_project(project)
        if project is not None:
            runs = project.runs()
            if len(runs):
                self.show_run(int(runs["id"].iloc[-1]))
        self._update_buttons()

    def set_annotator(self, name: str) -> None:
        self.annotator = name

    def set_active(self, active: bool) -> None:
        pass  # the plots keep their data while hidden; only what is visible is ever painted

    def save_layout(self) -> None:
        if self.isVisible() and min(self.splitter.sizes()) > 0:
            settings.set_value("train/splitter", self.splitter.sizes())

    def confirm_close(self) -> bool:
        """Before the window or the project closes: ask whether to stop a running run; stop it if so."""
        if self.run is None or not self.run.is_running():
            return True
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "A run is training",
            "A training run is still going. Stop it and save a checkpoint?",
            parent=self,
        )
        box.setInformativeText("The run stops at its next step and can be resumed later from the Train view.")
        stop = box.addButton("Stop and save a checkpoint", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stop)
        self.close_question: QMessageBox | None = box
        box.exec()
        self.close_question = None
        if box.clickedButton() is not stop:
            return False
        self.stop_and_wait()
        return True

    def busy(self) -> bool:
        return self.run is not None and self.run.is_running()

    # ------------------------------------------------------------------ controls
    def start(self, resume_run: int | None = None) -> bool:
        if self.project is None or self.busy():
            return False
        if (read_only := read_only_message(self.project)) is not None:
            self.form_error.setText(read_only)
            self.form_error.show()
            return False
        try:
            config = self.form.config()
        except ValueError as exc:
            self.form_error.setText(str(exc))
            self.form_error.show()
            return False
        self.form_error.hide()
        self.plots.clear()
        self._reset_progress()
        self.shown_run_id = None
        self.last_failure = None
        self.phase_label.setText("Starting…" if resume_run is None else f"Resuming run {resume_run}…")
        self.detail_label.setText("Loading the backbone and the labelled pairs")
        self.metrics_label.setText("")
        # Not the "busy" animation: it would repaint ten times a second while the worker prepares data.
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        # No Qt parent: the run (its thread, worker and trainer) is freed as soon as ``self.run`` lets go.
        run = TrainingRun(self.project.path, config, resume_run=resume_run, trainer_factory=self.trainer_factory)
        w = run.worker
        w.run_started.connect(self._on_run_started)
        w.progress.connect(self._on_progress)
        w.step.connect(self._on_step)
        w.evaluated.connect(self._on_evaluated)
        w.checkpoint_saved.connect(self._on_checkpoint)
        w.paused.connect(self._on_paused)
        w.resumed.connect(self._on_resumed)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        run.ended.connect(self._on_ended)
        self.run = run
        self.run_starting.emit(run)
        run.start()
        self.timer.start()  # one timer for the progress and the plots: one paint pass per tick
        self._update_buttons()
        self.message.emit("Training started; you can keep labelling meanwhile.")
        return True

    def toggle_pause(self) -> None:
        if not self.busy():
            return
        assert self.run is not None  # busy()
        if self.run.paused:
            self.run.resume()
            self.phase_label.setText(PHASES.get(self._phase, "Training"))
        else:
            self.run.pause()
            self.phase_label.setText("Pausing at the next step…")
        self._update_buttons()

    def stop(self) -> None:
        if not self.busy():
            return
        assert self.run is not None  # busy()
        self.run.cancel()
        self.phase_label.setText("Stopping at the next step…")
        self.stop_button.setEnabled(False)
        self.pause_button.setEnabled(False)

    def stop_and_wait(self) -> None:
        """Cancel the run and wait for its thread (the GUI stays responsive; input is blocked)."""
        if not self.busy():
            return
        self.stop()
        dialog = QProgressDialog("Stopping the run at the next step and saving a checkpoint…", "", 0, 0, self)
        dialog.setCancelButton(None)
        dialog.setWindowTitle("Stopping")
        dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
        dialog.setMinimumDuration(300)
        self.stop_dialog: QProgressDialog | None = dialog
        assert self.run is not None  # busy()
        self.run.wait()
        dialog.close()
        self.stop_dialog = None

    def resume_selected(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self.start(resume_run=run_id)

    # ------------------------------------------------------------------ events (GUI thread; store, don't draw)
    def _reset_progress(self) -> None:
        self.events_seen: list[str] = []
        self._phase = ""
        self._done = 0
        self._total = 0
        self._phase_t0 = time.monotonic()
        self._phase_done0 = 0
        self._train_t0: float | None = None  # when training steps began (pauses added back)
        self._train_step0 = 0
        self._paused_at: float | None = None
        self._step = 0
        self._total_steps = 0
        self._epoch = 0.0
        self._last_metrics: dict[str, float] = {}
        self._last_val: dict[str, float] = {}
        self._started: RunStarted | None = None
        #: Finished or Failed has come: the phase label says so, and the last refreshes leave it
        self._run_over = False
        self._dirty = True

    def _on_run_started(self, ev: RunStarted) -> None:
        self.events_seen.append("RunStarted")
        self._started = ev
        self.shown_run_id = ev.run_id
        self._total_steps = ev.total_steps
        self.plots.set_step_range(ev.total_steps)
        self._step = ev.resumed_from_step
        if ev.resumed_from_step and self.project is not None:
            self._load_history(ev.run_id)  # the curve so far, then the new steps join it
        self.refresh_runs()
        self.select_run(ev.run_id, show=False)
        self._dirty = True

    def _on_progress(self, ev: PhaseProgress) -> None:
        self.events_seen.append("PhaseProgress")
        if ev.phase != self._phase:
            self._phase = ev.phase
            self._phase_t0 = time.monotonic()
            self._phase_done0 = ev.done
            if ev.phase == "training" and self._train_t0 is None:
                self._train_t0, self._train_step0 = time.monotonic(), ev.done
        self._done, self._total = ev.done, ev.total
        self._dirty = True

    def _on_step(self, ev: StepMetrics) -> None:
        self.events_seen.append("StepMetrics")
        self.plots.add_step(ev.step, ev.metrics)
        self._step, self._total_steps, self._epoch = ev.step, ev.total_steps, ev.epoch
        self._last_metrics = ev.metrics
        if self._phase == "training":
            self._done, self._total = ev.step, ev.total_steps
        self._dirty = True

    def _on_evaluated(self, ev: Evaluation) -> None:
        self.events_seen.append("Evaluation")
        self.plots.add_evaluation(ev.step, ev.val)
        self.plots.set_margins(ev.comparison_ids, ev.split, ev.margins)
        self._last_val = ev.val
        self._dirty = True

    def _on_checkpoint(self, ev: CheckpointSaved) -> None:
        self.events_seen.append("CheckpointSaved")

    def _on_paused(self, ev: Paused) -> None:
        self.events_seen.append("Paused")
        self._paused_at = time.monotonic()
        self.phase_label.setText(f"Paused at step {ev.step} (checkpoint saved)")
        self.refresh_runs()
        self._update_buttons()

    def _on_resumed(self, ev: Resumed) -> None:
        self.events_seen.append("Resumed")
        self._phase_t0 = time.monotonic()  # the pause is no part of the rate
        self._phase_done0 = self._done
        if self._paused_at is not None and self._train_t0 is not None:
            self._train_t0 += time.monotonic() - self._paused_at
        self._paused_at = None
        self.refresh_runs()
        self._update_buttons()

    def _on_finished(self, ev: Finished) -> None:
        self.events_seen.append("Finished")
        self._run_over = True
        s = ev.summary
        acc = s.get("val_accuracy")
        if ev.status == "finished":
            self.phase_label.setText(f"Run {ev.run_id} finished")
            self.progress.setRange(0, 1000)
            self.progress.setValue(1000)
            text = f"Run {ev.run_id} finished" + (f": validation accuracy {acc:.3f}" if acc is not None else "")
        else:
            self.phase_label.setText(f"Run {ev.run_id} stopped at step {s.get('steps', self._step)}")
            text = f"Run {ev.run_id} stopped; a checkpoint was saved, so it can be resumed."
        self.detail_label.setText(
            f"{s.get('n_train', 0):,} training and {s.get('n_val', 0):,} validation pairs · "
            f"{s.get('steps', 0)} steps · {_fmt_duration(s.get('time_s'))}"
            + (f" · {s['n_overlong']:,} pairs cut to fit" if s.get("n_overlong") else "")
        )
        self.message.emit(text)

    def _on_failed(self, ev: Failed) -> None:
        self.events_seen.append("Failed")
        self._run_over = True
        self.last_failure = ev
        self.phase_label.setText("The run failed" if ev.run_id is None else f"Run {ev.run_id} failed")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.detail_label.setText(ev.message)
        self._show_failure(ev)

    def _on_ended(self) -> None:
        run = self.run
        self.timer.stop()
        self._dirty = True
        self._tick(final=True)
        self.run = None
        self.refresh_runs()
        self._update_buttons()
        if run is not None and run.run_id is not None:
            self.run_ended.emit(run.run_id)

    def _show_failure(self, ev: Failed) -> None:
        box = message_box(
            QMessageBox.Icon.Warning, "Training failed", ev.message[:1].upper() + ev.message[1:] + ".", parent=self
        )  # the message quotes paths and settings
        box.setInformativeText(
            ("What to do: " + ev.hint + ".")
            if ev.hint
            else "The project and its labels are unchanged; adjust the settings and start again."
        )
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.error_box = box
        box.open()

    # ------------------------------------------------------------------ the timer: progress and plots
    def _tick(self, final: bool = False) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self._phase:
            if self.progress.maximum() == 0:
                self.progress.setRange(0, 1000)
            frac = self._done / self._total if self._total else 0.0
            self.progress.setValue(round(1000 * min(1.0, frac)))
            paused = self.run is not None and self.run.paused
            if not self._run_over and not paused and self.run is not None and not self.run.cancelling:
                self.phase_label.setText(PHASES.get(self._phase, self._phase.capitalize()))
            parts = []
            if self._phase == "training" or self._step:
                parts.append(f"step {self._step:,} / {self._total_steps:,} · epoch {self._epoch:.1f}")
            elif self._total:
                parts.append(f"{self._done:,} / {self._total:,}")
            eta = None if paused else self._eta()
            if eta is not None and not final:
                parts.append(f"ETA {_fmt_duration(eta)}")
            if self._started is not None:
                parts.append(f"{self._started.n_train:,} train / {self._started.n_val:,} val pairs")
            self.detail_label.setText(" · ".join(parts))
        m, v = self._last_metrics, self._last_val
        bits = []
        if "loss" in m:
            bits.append(f"train loss {m['loss']:.3f} · acc {m.get('accuracy', float('nan')):.2f}")
        if "accuracy" in v:
            bits.append(f"validation loss {v.get('loss', float('nan')):.3f} · acc {v['accuracy']:.3f}")
        self.metrics_label.setText("\n".join(bits))
        self.plots.refresh(force=final)
        self._dirty = self.plots.pending()  # margins held back, or curves left for the next tick
        self.timer.setInterval(self.plots.suggested_interval())  # slower when painting is slow

    def _eta(self) -> float | None:
        """Seconds left: while training, the remaining steps at the rate of the steps so far (evaluations
        and checkpoints included); before that, the rest of the current phase (embedding)."""
        now = time.monotonic()
        if self._train_t0 is not None and self._total_steps:
            done, elapsed = self._step - self._train_step0, now - self._train_t0
            if done <= 0 or elapsed <= 0.5:
                return None
            return (self._total_steps - self._step) * elapsed / done
        elapsed = now - self._phase_t0
        done = self._done - self._phase_done0
        if self._total <= 0 or done <= 0 or elapsed <= 0.5:
            return None
        return (self._total - self._done) * elapsed / done

    # ------------------------------------------------------------------ runs
    def refresh_runs(self) -> None:
        self.eval_panel.refresh_runs()
        table = self.runs_table
        selected = self.selected_run_id()
        with QSignalBlocker(table):
            table.setRowCount(0)
            if self.project is None:
                return
            runs = self.project.runs()
            table.setRowCount(len(runs))
            for r, row in enumerate(runs.iloc[::-1].itertuples(index=False)):  # newest first
                summary = row.summary or {}
                acc = summary.get("val_accuracy")
                took = summary.get("time_s")
                if took is None and row.finished_at and row.created_at:
                    took = row.finished_at - row.created_at
                started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at)) if row.created_at else ""
                values = [
                    f"#{row.id}",
                    row.status,
                    row.mode,
                    "—" if acc is None else f"{acc:.3f}",
                    _fmt_duration(took),
                    started,
                ]
                # the CPU threads the run used and why ("auto": the probe's figures, training/threads.py)
                tip = "\n".join(t for t in (row.message, summary.get("threads_note")) if t)
                for c, value in enumerate(values):
                    item = QTableWidgetItem(str(value))
                    item.setData(Qt.ItemDataRole.UserRole, int(row.id))
                    if tip:
                        item.setToolTip(tooltip(tip))
                    if c == 1 and row.status == "failed":
                        item.setForeground(Qt.GlobalColor.darkRed)
                    table.setItem(r, c, item)
            if selected is not None:
                self.select_run(selected, show=False)
        self._update_buttons()

    def selected_run_id(self) -> int | None:
        rows = self.runs_table.selectionModel().selectedRows() if self.runs_table.selectionModel() else []
        if not rows:
            return None
        # Of two selected runs, the one clicked last (the current row) is the one shown.
        current = self.runs_table.currentRow()
        row = current if any(r.row() == current for r in rows) else rows[0].row()
        item = self.runs_table.item(row, 0)
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def select_run(self, run_id: int, show: bool = True) -> None:
        for r in range(self.runs_table.rowCount()):
            item = self.runs_table.item(r, 0)
            assert item is not None  # refresh_runs sets every cell
            if item.data(Qt.ItemDataRole.UserRole) == run_id:
                if item.isSelected():
                    break  # already selected (perhaps with a second run, to compare): keep the selection
                with QSignalBlocker(self.runs_table):
                    self.runs_table.selectRow(r)
                break
        if show:
            self._on_run_selected()

    def _on_run_selected(self) -> None:
        run_id = self.selected_run_id()
        self._update_buttons()
        if run_id is None or self.busy():
            return
        self.show_run(run_id)

    def selected_runs(self) -> list[tuple[int, str]]:
        """(run id, status) of each selected run, in table order (newest first)."""
        model = self.runs_table.selectionModel()
        out = []
        for index in sorted(model.selectedRows() if model else [], key=lambda i: i.row()):
            item, status = self.runs_table.item(index.row(), 0), self.runs_table.item(index.row(), 1)
            if item is not None and status is not None:
                out.append((int(item.data(Qt.ItemDataRole.UserRole)), status.text()))
        return out

    def comparable_runs(self) -> tuple[int, int] | None:
        """(newer, older) when exactly two finished runs are selected, else None."""
        runs = self.selected_runs()
        if len(runs) != 2 or any(status != "finished" for _, status in runs):
            return None
        ids = sorted(run_id for run_id, _ in runs)
        return ids[1], ids[0]

    def compare_selected(self) -> bool:
        """Evaluate the newer of the two selected runs against the older (``workbench eval --run N --against
        M``) as a job in the training process; the Evaluation tab shows McNemar, the paired interval and the
        pairs that flipped."""
        pair = self.comparable_runs()
        if pair is None or self.busy():
            return False
        self.tabs.setCurrentWidget(self.eval_panel)
        if self.eval_panel.busy():
            self.message.emit("An evaluation is running; compare when it has finished")
            return False
        return self.eval_panel.evaluate(*pair)

    def _runs_menu(self, pos: QPoint) -> None:
        self.runs_menu().exec(self.runs_table.viewport().mapToGlobal(pos))

    def runs_menu(self) -> QMenu:
        """The run list's context menu: Compare (two finished runs selected), Evaluate, Inspect."""
        menu = QMenu(self)
        pair = self.comparable_runs()
        compare = menu.addAction(
            f"Compare #{pair[0]} against #{pair[1]}" if pair else "Compare (select two finished runs)"
        )
        compare.setEnabled(pair is not None and self.compare_button.isEnabled())
        compare.triggered.connect(self.compare_selected)
        evaluate = menu.addAction("Evaluate on the test set")
        evaluate.setEnabled(self.evaluate_button.isEnabled())
        evaluate.triggered.connect(self._evaluate_selected)
        inspect = menu.addAction("Inspect pairs")
        inspect.setEnabled(self.inspect_button.isEnabled())
        inspect.triggered.connect(self._inspect_selected)
        return menu

    def _evaluate_selected(self) -> None:
        run_id = self.selected_run_id()
        if run_id is None:
            return
        self.tabs.setCurrentWidget(self.eval_panel)
        self.eval_panel.evaluate(run_id, self.eval_panel.against_combo.currentData())

    def _inspect_selected(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self.inspect_requested.emit(run_id)

    def show_run(self, run_id: int) -> None:
        """Draw a stored run: its step and validation curves and its latest per-pair margins."""
        if self.project is None or self.busy():
            return
        self.plots.clear()
        self._load_history(run_id)
        self.plots.refresh()
        self.shown_run_id = run_id
        self.select_run(run_id, show=False)
        run = self.project.run(run_id)
        s = run.get("summary") or {}
        acc = s.get("val_accuracy")
        self.phase_label.setText(f"Run {run_id} · {run['status']}")
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 if run["status"] == "finished" else 0)
        self.detail_label.setText(
            (run.get("message") or "")
            if run["status"] == "failed"
            else f"{run['mode']} · {s.get('n_train', 0):,} train / {s.get('n_val', 0):,} val pairs · "
            f"{s.get('steps', 0)} steps · {_fmt_duration(s.get('time_s'))}"
        )
        self.metrics_label.setText("" if acc is None else f"validation accuracy {acc:.3f}")

    def _load_history(self, run_id: int) -> None:
        assert self.project is not None  # both callers checked
        metrics = self.project.run_metrics(run_id)
        steps = metrics[metrics["split"] == "train_step"]
        wide = steps.pivot_table(index="step", columns="name", values="value", aggfunc="last")
        for step, row in wide.iterrows():
            self.plots.add_step(int(step), {k: float(v) for k, v in row.items() if np.isfinite(v)})
        val = metrics[metrics["split"] == "val"].pivot_table(
            index="step", columns="name", values="value", aggfunc="last"
        )
        for step, row in val.iterrows():
            self.plots.add_evaluation(int(step), {k: float(v) for k, v in row.items() if np.isfinite(v)})
        scores = self.project.pair_scores(run_id)
        if len(scores):
            self.plots.set_margins(
                scores["comparison_id"].to_numpy(), scores["split"].to_numpy(), scores["margin"].to_numpy()
            )

    def _update_buttons(self) -> None:
        has = self.project is not None
        busy = self.busy()
        self.start_button.setEnabled(has and not busy)
        self.form.setEnabled(not busy)
        self.pause_button.setEnabled(busy)
        self.stop_button.setEnabled(busy)
        self.pause_button.setText("Resume" if busy and self.run is not None and self.run.paused else "Pause")
        run_id = self.selected_run_id()
        status = None
        if run_id is not None and self.project is not None:
            item = self.runs_table.item(self.runs_table.currentRow(), 1)
            status = item.text() if item is not None else None
        # A failed run too: a crashed or killed training process leaves its last checkpoint (the trainer
        # says so in a dialog when there is none).
        self.resume_button.setEnabled(has and not busy and status in ("cancelled", "paused", "running", "failed"))
        self.inspect_button.setEnabled(has and run_id is not None)
        self.evaluate_button.setEnabled(has and not busy and status == "finished")
        self.compare_button.setEnabled(has and not busy and self.comparable_runs() is not None)

    # ------------------------------------------------------------------ pairs
    def _describe_pair(self, comparison_id: int) -> str:
        """A short prompt excerpt for the hover label, read once per pair."""
        if comparison_id not in self._text_cache:
            text = ""
            if self.project is not None:
                try:
                    prompt = self.project.comparison(comparison_id).prompt.text
                    text = " ".join(prompt.split())
                    text = text[:90] + ("…" if len(text) > 90 else "")
                except KeyError:
                    text = ""
            if len(self._text_cache) > 2000:
                self._text_cache.clear()
            self._text_cache[comparison_id] = text
        return self._text_cache[comparison_id]

    def _on_pair_clicked(self, comparison_id: int) -> None:
        if self.shown_run_id is not None:
            self.pair_requested.emit(self.shown_run_id, comparison_id)
