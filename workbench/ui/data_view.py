"""The Data view: import files (off the GUI thread, cancellable), export datasets, counts per annotator."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.ui import settings
from workbench.ui.tasks import ProjectTask

FORMAT_LABELS = {
    "auto": "Detect automatically",
    "explicit": "Explicit: prompt, chosen, rejected",
    "implicit": "Implicit (HH-RLHF): chosen, rejected transcripts",
    "conversational": "Conversational: message lists",
    "unlabeled": "Unlabelled: prompt with responses",
}
DATA_FILTER = "Data files (*.jsonl *.jsonl.gz *.ndjson *.json *.csv *.tsv *.parquet *.pq);;All files (*)"
COLUMNS = ["Annotator", "Kind", "Answered", "Judged", "A / B", "Ties", "Both bad", "Skips", "Done", "Time per item"]


def _formats() -> tuple[str, ...]:
    try:
        from workbench.core.formats import FORMATS
    except ImportError:  # pragma: no cover
        return ("auto",)
    return tuple(FORMATS)


def _seconds(value) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


class DataView(QWidget):
    data_changed = Signal()  # an import added data
    message = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("DataView")
        self.project = None
        self.task: ProjectTask | None = None
        self.error_box: QMessageBox | None = None
        self.last_summary: dict | None = None
        self._build()
        self.set_project(None)

    def _build(self) -> None:
        from PySide6.QtWidgets import QGroupBox

        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.setSpacing(12)
        title = QLabel("Data")
        title.setObjectName("Section")
        title.setStyleSheet("font-size: 14pt;")
        root.addWidget(title)

        top = QHBoxLayout()
        top.setSpacing(12)

        # Import.
        box = QGroupBox("Import")
        grid = QGridLayout(box)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(8)
        grid.addWidget(QLabel("Shape"), 0, 0)
        self.format_combo = QComboBox()
        for key in _formats():
            self.format_combo.addItem(FORMAT_LABELS.get(key, key), key)
        self.format_combo.setToolTip("Leave on automatic unless the file is read as the wrong shape")
        grid.addWidget(self.format_combo, 0, 1, 1, 2)
        self.import_button = QPushButton("Import a file…")
        self.import_button.setObjectName("Primary")
        self.import_button.clicked.connect(self.choose_import)
        grid.addWidget(self.import_button, 1, 0)
        self.progress = QProgressBar()
        self.progress.setObjectName("Import")
        self.progress.setTextVisible(True)
        self.progress.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        grid.addWidget(self.progress, 1, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_import)
        grid.addWidget(self.cancel_button, 1, 2)
        self.import_status = QLabel("JSONL, JSON, CSV or Parquet: labelled pairs, or prompts with responses.")
        self.import_status.setObjectName("Muted")
        self.import_status.setWordWrap(True)
        grid.addWidget(self.import_status, 2, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        top.addWidget(box, 3)

        # Export.
        box = QGroupBox("Export")
        grid = QGridLayout(box)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(8)
        self.margin_check = QCheckBox("Margin from strength")
        self.margin_check.setToolTip("Adds a margin column (Llama 2 small scale) for a margin loss")
        self.ties_check = QCheckBox("Include ties and both-bad")
        self.ties_check.setToolTip("Adds them with a label column; reward training ignores them unless asked")
        grid.addWidget(self.margin_check, 0, 0)
        grid.addWidget(self.ties_check, 0, 1)
        self.export_pairs_button = QPushButton("Export pairs (TRL)…")
        self.export_pairs_button.clicked.connect(self.choose_export_pairs)
        self.export_log_button = QPushButton("Export judgment log…")
        self.export_log_button.clicked.connect(self.choose_export_log)
        grid.addWidget(self.export_pairs_button, 1, 0)
        grid.addWidget(self.export_log_button, 1, 1)
        self.export_status = QLabel("Pairs: JSONL or Parquet. Log: CSV, Parquet or JSONL.")
        self.export_status.setObjectName("Muted")
        self.export_status.setWordWrap(True)
        grid.addWidget(self.export_status, 2, 0, 1, 2)
        top.addWidget(box, 2)
        root.addLayout(top)

        # Counts.
        head = QHBoxLayout()
        section = QLabel("Annotators")
        section.setObjectName("Section")
        head.addWidget(section)
        head.addStretch(1)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("Muted")
        head.addWidget(self.summary_label)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_counts)
        head.addWidget(self.refresh_button)
        root.addLayout(head)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        root.addWidget(self.table, 1)
        self._set_idle()

    # ------------------------------------------------------------------ project
    def set_project(self, project) -> None:
        self.project = project
        enabled = project is not None
        for w in (self.import_button, self.export_pairs_button, self.export_log_button, self.refresh_button,
                  self.format_combo):
            w.setEnabled(enabled)
        self.refresh_counts()

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        self.refresh_counts()

    def refresh_counts(self) -> None:
        self.table.setRowCount(0)
        if self.project is None:
            self.summary_label.setText("")
            return
        stats = self.project.statistics()
        total = stats.get("comparisons", 0)
        labels = stats.get("labels", {})
        self.summary_label.setText(
            f"{stats.get('prompts', 0):,} prompts · {stats.get('responses', 0):,} responses · "
            f"{total:,} comparisons · {stats.get('judged_comparisons', 0):,} judged · "
            f"{labels.get('tie', 0):,} ties · {labels.get('both_bad', 0):,} both bad · "
            f"{labels.get('skip', 0):,} skips · {stats.get('trainable_pairs', 0):,} trainable"
        )
        rows = stats.get("annotators_detail", [])
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            judged = int(row.get("judged") or 0)
            skips = int(row.get("skips") or 0)
            values = [
                row.get("name", ""),
                row.get("kind", ""),
                f"{judged + skips:,}",
                f"{judged:,}",
                f"{int(row.get('preferences') or 0):,}",
                f"{int(row.get('ties') or 0):,}",
                f"{int(row.get('both_bad') or 0):,}",
                f"{skips:,}",
                f"{100.0 * judged / total:.0f}%" if total else "—",
                _seconds(row.get("seconds_per_item")),
            ]
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    # ------------------------------------------------------------------ import
    def choose_import(self) -> None:
        if self.project is None or self.busy():
            return
        start = str(settings.value("data/last_dir", "") or str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Import a data file", start, DATA_FILTER)
        if path:
            settings.set_value("data/last_dir", str(Path(path).parent))
            self.start_import(path, self.format_combo.currentData() or "auto")

    def start_import(self, path: str | os.PathLike, format: str = "auto") -> ProjectTask | None:
        """Import ``path`` in a worker thread with its own connection to the project."""
        if self.project is None or self.busy():
            return None
        from workbench.core.formats import import_file

        path = str(path)
        name = Path(path).name

        def work(project, progress, cancel):
            return import_file(project, path, format=format, progress=progress, cancel=cancel)

        task = ProjectTask(self.project.path, work, description=f"Importing {name}", parent=self)
        task.progressed.connect(self._on_progress)
        task.succeeded.connect(lambda summary: self._on_imported(name, summary))
        task.failed.connect(lambda msg: self._on_failed("Import failed", msg, imported=True))
        task.cancelled.connect(lambda: self._on_cancelled(name))
        task.finished.connect(self._on_task_finished)
        self._set_busy(f"Importing {name}…")
        self.task = task
        task.start()
        return task

    def cancel_import(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.import_status.setText("Cancelling…")

    def busy(self) -> bool:
        return self.task is not None and self.task.isRunning()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(min(done, total))

    def _on_imported(self, name: str, summary) -> None:
        data = summary.as_dict() if hasattr(summary, "as_dict") else dict(summary or {})
        self.last_summary = data
        text = (
            f"Imported {name}: {data.get('comparisons_added', 0):,} comparisons, "
            f"{data.get('prompts_added', 0):,} prompts, {data.get('responses_added', 0):,} responses, "
            f"{data.get('judgments_added', 0):,} labels"
        )
        if data.get("duplicates"):
            text += f" ({data['duplicates']:,} already in the project)"
        self._set_status(self.import_status, text + ".")
        self.message.emit(text + ".")
        self.refresh_counts()
        self.data_changed.emit()

    def _on_cancelled(self, name: str) -> None:
        self._set_status(self.import_status, f"Import of {name} cancelled; nothing was added.")
        self.message.emit("Import cancelled; nothing was added.")

    def _set_status(self, label: QLabel, text: str, error: bool = False) -> None:
        label.setText(text)
        label.setObjectName("Error" if error else "Muted")
        label.style().unpolish(label)
        label.style().polish(label)

    def _on_failed(self, title: str, message: str, imported: bool = False) -> None:
        self._set_status(self.import_status if imported else self.export_status, message, error=True)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(
            "Nothing was imported; the project is unchanged. Fix the file, or pick its shape in the Shape "
            "list, and import again." if imported else "Nothing was written. Choose another file name or type."
        )
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.error_box = box
        box.open()

    def _on_task_finished(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.deleteLater()
        self._set_idle()

    def _set_busy(self, text: str) -> None:
        self._set_status(self.import_status, text)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        for w in (self.import_button, self.export_pairs_button, self.export_log_button, self.format_combo):
            w.setEnabled(False)

    def _set_idle(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.hide()
        self.cancel_button.hide()
        enabled = self.project is not None
        for w in (self.import_button, self.export_pairs_button, self.export_log_button, self.format_combo):
            w.setEnabled(enabled)

    # ------------------------------------------------------------------ export
    def choose_export_pairs(self) -> None:
        if self.project is None or self.busy():
            return
        folder = Path(str(settings.value("data/last_dir", "") or Path.home()))
        start = str(folder / f"{self.project.path.stem}-pairs.jsonl")
        path, _ = QFileDialog.getSaveFileName(self, "Export preference pairs", start,
                                              "JSON Lines (*.jsonl);;Parquet (*.parquet)")
        if path:
            self.start_export_pairs(path, self.margin_check.isChecked(), self.ties_check.isChecked())

    def choose_export_log(self) -> None:
        if self.project is None or self.busy():
            return
        folder = Path(str(settings.value("data/last_dir", "") or Path.home()))
        start = str(folder / f"{self.project.path.stem}-judgments.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export the judgment log", start,
                                              "CSV (*.csv);;Parquet (*.parquet);;JSON Lines (*.jsonl)")
        if path:
            self.start_export_log(path)

    def start_export_pairs(self, path: str | os.PathLike, with_margin: bool = False,
                           include_ties: bool = False) -> ProjectTask | None:
        from workbench.core.formats import export_pairs

        path = str(path)
        return self._start_export(
            lambda project, progress, cancel: export_pairs(project, path, with_margin=with_margin,
                                                           include_ties=include_ties),
            path, "pairs")

    def start_export_log(self, path: str | os.PathLike) -> ProjectTask | None:
        from workbench.core.formats import export_judgments

        path = str(path)
        return self._start_export(lambda project, progress, cancel: export_judgments(project, path),
                                  path, "judgments")

    def _start_export(self, work, path: str, what: str) -> ProjectTask | None:
        if self.project is None or self.busy():
            return None
        settings.set_value("data/last_dir", str(Path(path).parent))
        task = ProjectTask(self.project.path, work, description=f"Exporting {what}", parent=self)
        task.succeeded.connect(lambda n: self._on_exported(path, what, n))
        task.failed.connect(lambda msg: self._on_failed("Export failed", msg))
        task.finished.connect(self._on_task_finished)
        self._set_busy(f"Exporting {what} to {Path(path).name}…")
        self.cancel_button.hide()
        self.task = task
        task.start()
        return task

    def _on_exported(self, path: str, what: str, n) -> None:
        text = f"Wrote {int(n or 0):,} {what} to {path}."
        self._set_status(self.export_status, text)
        self.message.emit(text)
