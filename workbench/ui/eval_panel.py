"""The Train view's Evaluation panel: a run on the project's test split, optionally against another run.

The figures come from the "evaluate" job (``training/server.py``, ``training/eval_run.py``), run in the
training process from a worker thread, as ``workbench eval`` computes them; this panel only shows them:
accuracy and loss with intervals, calibration (reliability diagram, ECE before and after the run's
temperature), accuracy by length difference beside the "longer wins" baseline, the slices, and with a second
run McNemar's test, the paired interval and the pairs that flipped (a click opens one in Inspect). A report
(report.md and PNGs) is written by the same job when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.ui.safe_text import plain
from workbench.ui.tasks import JobRunner, JobThread, training_job

if TYPE_CHECKING:
    from workbench.core.store import Project

#: an evaluation reads stored scores (seconds); pairs a run never scored load its checkpoint first
JOB_TIMEOUT_S = 600.0
SLICE_COLUMNS = ["By", "Slice", "Pairs", "Accuracy", "95% interval", "Loss"]
RAW, SCALED, MODEL, LONGER = (214, 39, 40), (31, 119, 180), (31, 119, 180), (170, 170, 170)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _ci(ci: Any) -> str:
    return "—" if not ci else f"{100 * ci[0]:.1f} – {100 * ci[1]:.1f}"


class EvalPanel(QWidget):
    """Pick a finished run (and one to compare with), evaluate, and read the figures."""

    #: a flipped pair was clicked: (run id, comparison id)
    pair_requested = Signal(int, int)
    evaluated = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, runner: JobRunner | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EvalPanel")
        self.project: Project | None = None
        self.runner: JobRunner = runner or training_job("evaluate", JOB_TIMEOUT_S)
        self.job: JobThread | None = None
        self.result: dict[str, Any] | None = None
        self._report_dir: str | None = None
        self._build()
        self.set_project(None)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 6, 4, 4)
        col.setSpacing(8)
        row = QHBoxLayout()
        row.addWidget(QLabel("Run"))
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(110)
        row.addWidget(self.run_combo)
        row.addWidget(QLabel("against"))
        self.against_combo = QComboBox()
        self.against_combo.setMinimumWidth(110)
        self.against_combo.setToolTip(
            "Compare with another run on the same pairs: McNemar's test and the pairs that flipped"
        )
        row.addWidget(self.against_combo)
        self.evaluate_button = QPushButton("Evaluate on the test set")
        self.evaluate_button.setObjectName("Primary")
        self.evaluate_button.clicked.connect(lambda: self.evaluate())
        row.addWidget(self.evaluate_button)
        self.report_button = QPushButton("Write report…")
        self.report_button.setToolTip("report.md with PNG figures, for a pull request")
        self.report_button.clicked.connect(self._choose_report)
        row.addWidget(self.report_button)
        self.status = plain(QLabel(""))
        self.status.setObjectName("Muted")
        row.addWidget(self.status, 1)
        col.addLayout(row)

        self.summary = plain(
            QLabel("Import a test set (Data › Use for: Test set), train a run, then evaluate it here.")
        )
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.summary)

        plots = QHBoxLayout()
        self.reliability_plot = pg.PlotWidget()
        p = self.reliability_plot.getPlotItem()
        p.setTitle("Reliability", size="9pt")
        p.setLabel("bottom", "confidence max(p, 1 − p)")
        p.setLabel("left", "accuracy")
        p.showGrid(x=True, y=True, alpha=0.15)
        p.setXRange(0.5, 1.0)
        p.setYRange(0.0, 1.0)
        p.addLegend(offset=(8, 8), labelTextSize="8pt")  # top left: a calibrated curve runs from bottom left
        p.plot([0.5, 1.0], [0.5, 1.0], pen=pg.mkPen((150, 150, 150), width=1, style=Qt.PenStyle.DashLine))
        self.raw_curve = p.plot(name="T = 1", pen=pg.mkPen(RAW, width=2), symbol="o", symbolSize=6, symbolBrush=RAW)
        self.scaled_curve = p.plot(
            name="fitted T", pen=pg.mkPen(SCALED, width=2), symbol="o", symbolSize=6, symbolBrush=SCALED
        )
        plots.addWidget(self.reliability_plot)
        self.length_plot = pg.PlotWidget()
        q = self.length_plot.getPlotItem()
        q.setTitle("Accuracy by length difference · blue: model · grey: “longer wins”", size="9pt")
        q.setLabel("left", "accuracy")
        q.setLabel("bottom", "length difference, characters (n above the bars)")
        q.showGrid(y=True, alpha=0.15)
        q.setMouseEnabled(x=False, y=False)
        q.hideButtons()
        self.count_labels: list[pg.TextItem] = []
        self.model_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=MODEL)
        self.longer_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=LONGER)
        q.addItem(self.model_bars)
        q.addItem(self.longer_bars)
        plots.addWidget(self.length_plot)
        for w in (self.reliability_plot, self.length_plot):
            w.setMinimumHeight(200)
        top = QWidget()
        top.setLayout(plots)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        self.slices_table = QTableWidget(0, len(SLICE_COLUMNS))
        self.slices_table.setHorizontalHeaderLabels(SLICE_COLUMNS)
        self.slices_table.verticalHeader().hide()
        self.slices_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.slices_table.setAlternatingRowColors(True)
        self.slices_table.setShowGrid(False)
        header = self.slices_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        bottom.addWidget(self.slices_table)
        flipped_box = QWidget()
        fcol = QVBoxLayout(flipped_box)
        fcol.setContentsMargins(0, 0, 0, 0)
        self.flipped_label = plain(QLabel("Pairs that flipped (with a second run)"))
        self.flipped_label.setObjectName("Muted")
        fcol.addWidget(self.flipped_label)
        self.flipped_list = QListWidget()
        self.flipped_list.itemActivated.connect(self._on_flipped_activated)
        self.flipped_list.itemDoubleClicked.connect(self._on_flipped_activated)
        fcol.addWidget(self.flipped_list)
        bottom.addWidget(flipped_box)
        bottom.setSizes([640, 240])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setSizes([260, 200])
        col.addWidget(split, 1)

    # ------------------------------------------------------------------ project and runs
    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.result = None
        self.refresh_runs()
        self._clear()

    def refresh_runs(self) -> None:
        """The finished runs, newest first, in both pickers (the second also offers "no other run")."""
        current = self.run_combo.currentData()
        other = self.against_combo.currentData()
        self.run_combo.clear()
        self.against_combo.clear()
        self.against_combo.addItem("—", None)
        if self.project is not None:
            runs = self.project.runs()
            for run_id in runs.loc[runs["status"] == "finished", "id"].iloc[::-1]:
                self.run_combo.addItem(f"#{int(run_id)}", int(run_id))
                self.against_combo.addItem(f"#{int(run_id)}", int(run_id))
        for combo, value in ((self.run_combo, current), (self.against_combo, other)):
            i = combo.findData(value)
            if i >= 0:
                combo.setCurrentIndex(i)
        self._update_buttons()

    def select(self, run_id: int, against: int | None = None) -> None:
        for combo, value in ((self.run_combo, run_id), (self.against_combo, against)):
            i = combo.findData(value)
            if i >= 0:
                combo.setCurrentIndex(i)

    def busy(self) -> bool:
        return self.job is not None

    def _update_buttons(self) -> None:
        ok = self.project is not None and self.run_combo.count() > 0 and not self.busy()
        self.evaluate_button.setEnabled(ok)
        self.report_button.setEnabled(ok)
        self.run_combo.setEnabled(not self.busy())
        self.against_combo.setEnabled(not self.busy())

    # ------------------------------------------------------------------ the job
    def evaluate(self, run_id: int | None = None, against: int | None = None, report: str | None = None) -> bool:
        """Start the evaluation of ``run_id`` (default: the picked run) in the training process."""
        if self.project is None or self.busy():
            return False
        if run_id is not None:
            self.select(run_id, against)
        run = self.run_combo.currentData()
        if run is None:
            self.status.setText("No finished run to evaluate")
            return False
        other = self.against_combo.currentData()
        if other == run:
            other = None
        payload: dict[str, Any] = {"project": str(self.project.path), "run": int(run), "against": other}
        if report:
            payload["report"] = report
        self.status.setText(f"Evaluating run {run}" + (f" against run {other}" if other else "") + "…")
        job = JobThread(self.runner, payload)
        job.succeeded.connect(self._on_result)
        job.failed.connect(self._on_failed)
        job.finished.connect(self._on_job_finished)
        self.job = job
        self._update_buttons()
        job.start()
        return True

    def wait_idle(self, timeout_ms: int = 0) -> bool:
        job = self.job
        return job is None or (job.wait(timeout_ms) if timeout_ms else job.wait())

    def _choose_report(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Write the evaluation report into")
        if folder:
            self.evaluate(report=folder)

    def _on_job_finished(self) -> None:
        if self.job is not None:
            self.job.deleteLater()
        self.job = None
        self._update_buttons()

    def _on_failed(self, message: str) -> None:
        self.status.setText(message.splitlines()[0] if message else "the evaluation failed")
        self.failed.emit(message)

    def _on_result(self, reply: dict[str, Any]) -> None:
        result = reply["result"]
        self.result = result
        report = reply.get("report")
        self.status.setText(f"Report written: {report}" if report else "")
        self._show(result)
        self.evaluated.emit(result)

    # ------------------------------------------------------------------ showing
    def _clear(self) -> None:
        self.raw_curve.setData([], [])
        self.scaled_curve.setData([], [])
        self.model_bars.setOpts(x=[], height=[])
        self.longer_bars.setOpts(x=[], height=[])
        plot = self.length_plot.getPlotItem()
        for label in getattr(self, "count_labels", []):
            plot.removeItem(label)
        self.count_labels = []
        self.slices_table.setRowCount(0)
        self.flipped_list.clear()

    def _show(self, r: dict[str, Any]) -> None:
        o, cal, length = r["overall"], r["calibration"], r["length"]
        lines = [
            f"{r['model']} on the {r['pairs']}: {o['n']:,} pairs from {o.get('n_prompts', 0):,} prompts",
            f"Accuracy {_pct(o['accuracy'])} (95% interval {_ci(o['accuracy_ci'])}, bootstrap by prompt; "
            f"{o['ties']} ties) · loss {o['loss']:.4f}",
            f"Calibration: ECE {cal['raw']['ece']:.3f} at T = 1"
            + (
                f", {cal['scaled']['ece']:.3f} at the run's T = {cal['temperature']:.3g}"
                if cal.get("scaled")
                else " (the run has no fitted temperature)"
            ),
            f"Length: the model prefers the longer response in {_pct(length['model_prefers_longer'])} of pairs; "
            f"“always prefer the longer” scores {_pct(length['longer_baseline_accuracy'])}",
        ]
        if r.get("rewardbench"):
            lines.append("RewardBench: " + ", ".join(f"{k} {_pct(v)}" for k, v in r["rewardbench"].items()))
        a = r.get("against")
        if a:
            mc = a["mcnemar"]
            lines.append(
                f"Against {a['model']}: {_pct(a['accuracy_a'])} vs {_pct(a['accuracy_b'])}, difference "
                f"{100 * a['difference']:+.1f} points (95% paired interval {_ci(a['difference_ci'])}); McNemar "
                f"p = {mc['p_value']:.3g} on {mc['discordant']} pairs they disagree on"
            )
        lines += [f"⚠ {w}" for w in r.get("warnings", [])]
        self.summary.setText("\n".join(lines))
        for curve, rel in ((self.raw_curve, cal["raw"]), (self.scaled_curve, cal.get("scaled"))):
            pts = [(b["confidence"], b["accuracy"]) for b in (rel or {}).get("bins", []) if b["n"]]
            curve.setData([p[0] for p in pts], [p[1] for p in pts])
        bins = length["bins"]
        xs = np.arange(len(bins), dtype=float)
        self.model_bars.setOpts(x=xs - 0.2, height=[b["accuracy"] or 0.0 for b in bins])
        self.longer_bars.setOpts(x=xs + 0.2, height=[b["longer_baseline"] or 0.0 for b in bins])

        def name(b: dict[str, Any]) -> str:  # two short lines, so that seven bins fit side by side
            lo, hi = b["lo"], b["hi"]
            return f"<\n{int(hi)}" if lo is None else f"≥\n{int(lo)}" if hi is None else f"{int(lo)}…\n{int(hi)}"

        plot = self.length_plot.getPlotItem()
        plot.getAxis("bottom").setTicks([[(float(x), name(b)) for x, b in zip(xs, bins)]])
        for label in self.count_labels:
            plot.removeItem(label)
        self.count_labels = []
        for x, b in zip(xs, bins):
            label = pg.TextItem(f"n={b['n']}", color=(90, 90, 90), anchor=(0.5, 0.0))
            label.setPos(float(x), 1.15)  # the text hangs below its anchor, above the bars
            plot.addItem(label)
            self.count_labels.append(label)
        plot.setXRange(-0.6, len(bins) - 0.4, padding=0)
        plot.setYRange(0.0, 1.15, padding=0)
        rows = [(by, s) for by, table in r["slices"].items() for s in table]
        self.slices_table.setRowCount(len(rows))
        for i, (by, s) in enumerate(rows):
            values = [
                by,
                s["slice"],
                f"{s['n']:,}",
                _pct(s["accuracy"]),
                _ci(s["accuracy_ci"]),
                "—" if s["loss"] is None else f"{s['loss']:.4f}",
            ]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.slices_table.setItem(i, c, item)
        self.flipped_list.clear()
        if a:
            self.flipped_label.setText(
                f"Pairs that flipped: {len(a['flipped_to_right'])} now right, {len(a['flipped_to_wrong'])} now wrong "
                f"(double-click to inspect)"
            )
            for cid, text in [(c, "now right") for c in a["flipped_to_right"]] + [
                (c, "now wrong") for c in a["flipped_to_wrong"]
            ]:
                entry = QListWidgetItem(f"pair {cid} · {text} in {r['model']} · {self._excerpt(int(cid))}")
                entry.setData(Qt.ItemDataRole.UserRole, int(cid))
                self.flipped_list.addItem(entry)
        else:
            self.flipped_label.setText("Pairs that flipped (pick a run to compare with)")

    def _excerpt(self, comparison_id: int) -> str:
        """The start of the pair's prompt, on one line (the list is read to pick a pair, not to review it)."""
        if self.project is None:
            return ""
        try:
            text = " ".join(self.project.comparison(comparison_id).prompt.text.split())
        except KeyError:
            return ""
        return text[:70] + ("…" if len(text) > 70 else "")

    def _on_flipped_activated(self, item: QListWidgetItem) -> None:
        run = self.result.get("run_id") if self.result else None
        if run is not None:
            self.pair_requested.emit(int(run), int(item.data(Qt.ItemDataRole.UserRole)))
