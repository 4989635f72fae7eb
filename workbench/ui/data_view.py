"""The Data view: import files (off the GUI thread, cancellable), export datasets, counts per annotator,
and the team's work: merge other annotators' projects, agreement, position and length bias
audits, and the queue of disagreements to adjudicate.

Counts are read on the GUI thread (one cheap query); agreement, bias and disagreements are computed in a
``ProjectTask`` with its own connection, since they read every current label.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
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

from workbench.core.store import read_only_message
from workbench.ui import settings
from workbench.ui.safe_text import message_box, plain, tooltip
from workbench.ui.tasks import SCORE_JOB_TIMEOUT_S, ProjectTask, Recomputation, training_job
from workbench.ui.team_panel import (
    VALUE_ROLE,
    AdjudicationDialog,
    AgreementPanel,
    AssignDialog,
    ReliabilityPanel,
    bias_item,
)

if TYPE_CHECKING:
    from workbench.core.store import ImportSummary, Project
    from workbench.core.team import MergeSummary

    #: what a ProjectTask runs: fn(project, progress=..., cancel=...)
    TaskFunction = Callable[[Project, Callable[[int, int], None], Callable[[], bool]], object]

FORMAT_LABELS = {
    "auto": "Detect automatically",
    "explicit": "Explicit: prompt, chosen, rejected",
    "implicit": "Implicit (HH-RLHF): chosen, rejected transcripts",
    "conversational": "Conversational: message lists",
    "unlabeled": "Unlabelled: prompt with responses",
    "arena": "Chatbot Arena: response_a, response_b, winner_*",
    "helpsteer2": "HelpSteer2: response_1, response_2, preference_strength",
    "shp": "SHP: history, human_ref_A, human_ref_B, labels",
    "labelstudio": "Label Studio pairwise export",
    "prodigy": "Prodigy ab answers",
}
DATA_FILTER = "Data files (*.jsonl *.jsonl.gz *.ndjson *.json *.csv *.tsv *.parquet *.pq);;All files (*)"
PROJECT_FILTER = "Preference Workbench projects (*.wbp);;All files (*)"
COLUMNS = [
    "Annotator",
    "Kind",
    "Answered",
    "Judged",
    "A / B",
    "Ties",
    "Both bad",
    "Skips",
    "Done",
    "Time per item",
    "With majority",
    "Picks left",
    "Picks longer",
    "Batch",
    "Reliability",
]
#: the team columns, filled when the agreement and bias figures arrive
MAJORITY_COL, LEFT_COL, LONGER_COL = 10, 11, 12
#: progress against the latest assignment (workbench assign), and the reliability model's skill
BATCH_COL, RELIABILITY_COL = 13, 14
#: the Kind of a row for an annotator who was assigned work and has not labelled yet
ASSIGNED_KIND = "assigned"
COLUMN_TIPS = {
    MAJORITY_COL: "How often the annotator's label matches the majority of the OTHER annotators' labels "
    "(comparisons where the others tie are left out)",
    LEFT_COL: "Share of A/B labels that picked the response shown on the LEFT, with its 95% interval; 50% is "
    "unbiased. ⚠ marks an interval that leaves out 50%. A model scores each response alone: no side",
    LONGER_COL: "Share of A/B labels that picked the LONGER response (in characters), with its 95% interval. "
    "⚠ marks an interval that leaves out 50%",
    BATCH_COL: "Comparisons labelled of those assigned to the annotator (Assign work…), after merging their file",
    RELIABILITY_COL: "Estimated share of the annotator's A/B labels that name the truly better response, with its "
    "95% bootstrap interval (one-coin Dawid-Skene; see the reliability panel)",
}
MODEL_KIND = "model"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


class DataView(QWidget):
    data_changed = Signal()  # an import added data
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DataView")
        self.project: Project | None = None
        self.annotator = ""
        self.task: ProjectTask | None = None  # import, export or merge: one at a time
        # agreement, bias and disagreements; annotator reliability apart (crowd-kit's import and the bootstrap
        # take seconds), so that the agreement figures never wait for it
        self.team_figures = Recomputation(_team_figures, "Computing agreement", self)
        self.team_figures.ready.connect(self._on_team_stats)
        self.team_figures.failed.connect(self._on_team_failed)
        self.reliability_figures = Recomputation(_reliability_figures, "Estimating annotator reliability", self)
        self.reliability_figures.ready.connect(self._on_reliability)
        self.reliability_figures.failed.connect(self._on_reliability_failed)
        self.reliability: dict | None = None
        self.team_stats: dict | None = None  # the latest figures for the open project
        self.error_box: QMessageBox | None = None
        self.last_summary: dict | None = None
        self.last_merge: dict | None = None
        self.adjudication_dialog: AdjudicationDialog | None = None
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
        from workbench.core.formats import FORMATS

        self.format_combo = QComboBox()
        for key in FORMATS:
            self.format_combo.addItem(FORMAT_LABELS.get(key, key), key)
        self.format_combo.setToolTip("Leave on automatic unless the file is read as the wrong shape")
        grid.addWidget(self.format_combo, 0, 1, 1, 2)
        grid.addWidget(QLabel("Use for"), 1, 0)
        self.split_combo = QComboBox()
        self.split_combo.addItem("Training and labelling", None)
        self.split_combo.addItem("Test set: evaluation only, never trained on", "test")
        self.split_combo.setToolTip(
            "A test set is never trained or validated on, nor is any other pair of its prompts; "
            "annotators may still label it. Train › Evaluation scores runs on it."
        )
        grid.addWidget(self.split_combo, 1, 1, 1, 2)
        self.import_button = QPushButton("Import a file…")
        self.import_button.setObjectName("Primary")
        self.import_button.clicked.connect(self.choose_import)
        grid.addWidget(self.import_button, 2, 0)
        self.progress = QProgressBar()
        self.progress.setObjectName("Import")
        self.progress.setTextVisible(True)
        self.progress.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        grid.addWidget(self.progress, 2, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_import)
        grid.addWidget(self.cancel_button, 2, 2)
        self.import_folder_button = QPushButton("Import a dataset folder…")
        self.import_folder_button.setToolTip(
            "A folder saved by datasets' save_to_disk, or a dataset downloaded from the Hugging Face Hub "
            "(Parquet or JSON Lines files); you choose the split when it has several"
        )
        self.import_folder_button.clicked.connect(self.choose_import_folder)
        grid.addWidget(self.import_folder_button, 3, 0)
        self.import_status = plain(
            QLabel("JSONL, JSON, CSV or Parquet files, or dataset folders: labelled pairs, or prompts with responses.")
        )
        self.import_status.setObjectName("Muted")
        self.import_status.setWordWrap(True)
        grid.addWidget(self.import_status, 4, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        top.addWidget(box, 5)

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
        self.export_splits_button = QPushButton("Export dataset folder…")
        self.export_splits_button.setToolTip(
            "train and test split by prompt, ties apart, and a dataset card: datasets.load_dataset(folder) "
            "reads it as a DatasetDict"
        )
        self.export_splits_button.clicked.connect(self.choose_export_splits)
        grid.addWidget(self.export_splits_button, 2, 0)
        self.export_status = plain(QLabel("Pairs: JSONL or Parquet. Log: CSV, Parquet or JSONL."))
        self.export_status.setObjectName("Muted")
        self.export_status.setWordWrap(True)
        grid.addWidget(self.export_status, 3, 0, 1, 2)
        top.addWidget(box, 4)

        # Team: merge other annotators' projects, settle their disagreements.
        box = QGroupBox("Team")
        grid = QGridLayout(box)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(8)
        self.assign_button = QPushButton("Assign work…")
        self.assign_button.setToolTip(
            "Split this project's comparisons into one blind project file per annotator, with overlap so that "
            "agreement and reliability can be measured"
        )
        self.assign_button.clicked.connect(self.open_assign)
        self.merge_button = QPushButton("Merge projects…")
        self.merge_button.setToolTip(
            "Bring other annotators' project files (.wbp) into this one: their "
            "comparisons and judgments, matched by content; nothing is lost or doubled"
        )
        self.merge_button.clicked.connect(self.choose_merge)
        self.adjudicate_button = QPushButton("Adjudicate disagreements…")
        self.adjudicate_button.setToolTip(
            "Settle the comparisons whose annotators disagree; the decision is what training uses"
        )
        self.adjudicate_button.clicked.connect(self.open_adjudication)
        grid.addWidget(self.assign_button, 0, 0)
        grid.addWidget(self.merge_button, 0, 1)
        grid.addWidget(self.adjudicate_button, 1, 0, 1, 2)
        self.team_status = plain(QLabel("Merge the annotators' projects into this one to compare their labels."))
        self.team_status.setObjectName("Muted")
        self.team_status.setWordWrap(True)
        grid.addWidget(self.team_status, 2, 0, 1, 2)
        grid.setRowStretch(3, 1)
        top.addWidget(box, 3)
        root.addLayout(top)

        # Counts.
        head = QHBoxLayout()
        section = QLabel("Annotators")
        section.setObjectName("Section")
        head.addWidget(section)
        head.addStretch(1)
        self.summary_label = plain(QLabel(""))
        self.summary_label.setObjectName("Muted")
        head.addWidget(self.summary_label)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_counts)
        head.addWidget(self.refresh_button)
        root.addLayout(head)
        self.split_label = plain(QLabel(""))
        self.split_label.setObjectName("Muted")
        root.addWidget(self.split_label)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)  # the names keep their width; the slack goes to the last column
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setMinimumHeight(130)
        for column, tip in COLUMN_TIPS.items():
            header.model().setHeaderData(column, Qt.Orientation.Horizontal, tip, Qt.ItemDataRole.ToolTipRole)
        root.addWidget(self.table, 3)
        self.bias_legend = QLabel(
            "Picks left / longer: share of A/B labels with its 95% interval; 50% is "
            "unbiased, and ⚠ marks an interval that leaves out 50%."
        )
        self.bias_legend.setObjectName("Muted")
        self.bias_legend.setWordWrap(True)
        root.addWidget(self.bias_legend)
        self.agreement_panel = AgreementPanel()
        self.reliability_panel = ReliabilityPanel()
        panels = QHBoxLayout()
        panels.addWidget(self.agreement_panel, 3)
        panels.addWidget(self.reliability_panel, 2)
        root.addLayout(panels, 2)
        self.assign_dialog: AssignDialog | None = None
        self.last_assignment: dict | None = None
        self._set_idle()

    # ------------------------------------------------------------------ project
    def set_project(self, project: Project | None) -> None:
        if self.adjudication_dialog is not None:
            self.adjudication_dialog.close()
            self.adjudication_dialog = None
        self.team_figures.forget()  # a read of the old project: let it end, drop its result
        self.reliability_figures.forget()
        self.project = project
        self.team_stats = None
        self.reliability = None
        self.refresh_button.setEnabled(project is not None)
        for w in self._data_controls():
            w.setEnabled(project is not None)
        self.refresh_counts()

    def set_annotator(self, name: str) -> None:
        self.annotator = name.strip()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        self.refresh_counts()

    def refresh_counts(self) -> None:
        """Counts now; agreement, bias and disagreements from a worker thread (``stats_task``)."""
        self.table.setRowCount(0)
        if self.project is None:
            self.summary_label.setText("")
            self.split_label.setText("")
            self.agreement_panel.set_report(None)
            self.reliability_panel.set_report(None)
            self._update_adjudicate_button()
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
        sizes = stats["splits"]
        self.split_label.setText(
            f"Splits: {sizes['pool']:,} comparisons in the training pool · {sizes['test']:,} in the test set "
            f"({sizes['test_labelled']:,} labelled A or B) · {sizes['held_out']:,} held out with their test prompts"
            if sizes["test"]
            else f"Splits: {sizes['pool']:,} comparisons in the training pool · no test set (import one with "
            "“Use for: Test set”)"
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
                "…",
                "…",
                "…",  # agreement and bias: filled when they have been computed
                "",
                "…",  # batch and reliability: likewise
            ]
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self._fill_team_columns()
        if self.isVisible():  # otherwise when the view is next shown
            self.refresh_team()

    # ------------------------------------------------------------------ agreement and bias
    def refresh_team(self) -> ProjectTask | None:
        """Compute agreement, bias and the disagreement count in a worker thread; the panel updates when
        they arrive. A request while one runs is served once it ends."""
        if self.project is None:
            return None
        if self.team_stats is None:
            self.agreement_panel.set_report(None, busy=True)
        task = self.team_figures.request(self.project.path)
        self.refresh_reliability()
        return task

    def refresh_reliability(self) -> ProjectTask | None:
        """Annotator reliability in a worker thread of its own (crowd-kit brings no torch, so it may run in this
        process); the panel and the Reliability column update when it arrives."""
        if self.project is None:
            return None
        if self.reliability is None:
            self.reliability_panel.set_report(None, busy=True)
        return self.reliability_figures.request(self.project.path)

    @property
    def stats_task(self) -> ProjectTask | None:
        return self.team_figures.task

    @property
    def reliability_task(self) -> ProjectTask | None:
        return self.reliability_figures.task

    def _on_reliability(self, report: dict) -> None:
        self.reliability = report
        self.reliability_panel.set_report(report)
        self._fill_team_columns()

    def _on_reliability_failed(self, message: str) -> None:
        self.reliability_panel.note.setText(f"Could not estimate reliability: {message}")

    def _on_team_stats(self, stats: dict) -> None:
        self.team_stats = stats
        self.agreement_panel.set_report(stats["agreement"])
        self._fill_team_columns()
        self._update_adjudicate_button()

    def _on_team_failed(self, message: str) -> None:
        self.agreement_panel.note.setText(f"Could not compute agreement: {message}")

    def team_busy(self) -> bool:
        return self.stats_task is not None

    def _fill_team_columns(self) -> None:
        """Majority agreement and bias per annotator row, and a row for the latest model run."""
        stats = self.team_stats
        for r in range(self.table.rowCount() - 1, -1, -1):  # an old model row, old rows of assigned annotators
            kind = self.table.item(r, 1)
            if kind is not None and kind.text() in (MODEL_KIND, ASSIGNED_KIND):
                self.table.removeRow(r)
        if stats is None:
            return
        self._fill_assignment(stats.get("assignment"), self.reliability)
        majority = stats["agreement"]["majority_agreement"]
        bias = stats["bias"]["annotators"]
        for r in range(self.table.rowCount()):
            name_item = self.table.item(r, 0)
            assert name_item is not None  # every annotator row has its name (the model row went above)
            name = name_item.text()
            entry = majority.get(name)
            item = QTableWidgetItem(
                "—"
                if not entry or entry["agreement"] is None
                else f"{100 * entry['agreement']:.0f}% of {entry['items']:,}"
            )
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if entry and entry["agreement"] is not None:
                item.setData(VALUE_ROLE, float(entry["agreement"]))
                item.setToolTip(
                    tooltip(
                        f"{name} agrees with the other annotators' majority on {entry['agreed']:,} "
                        f"of {entry['items']:,} comparisons ({entry['tied']:,} where the others tie "
                        "are left out)"
                    )
                )
            else:
                item.setToolTip("No comparison that this annotator and others both labelled")
            self.table.setItem(r, MAJORITY_COL, item)
            entry = bias.get(name, {})
            self.table.setItem(r, LEFT_COL, bias_item(entry.get("left"), "picked the response shown on the left", name))
            self.table.setItem(r, LONGER_COL, bias_item(entry.get("longer"), "picked the longer response", name))
        model = stats["bias"].get("model")
        if model:
            r = self.table.rowCount()
            self.table.insertRow(r)
            who = f"Model, run {model['run_id']}"
            for c, text in enumerate([who, MODEL_KIND, *["" for _ in range(2, MAJORITY_COL)], "—"]):
                item = QTableWidgetItem(text)
                item.setForeground(QBrush(QColor("#5f6771")))
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    item.setToolTip(
                        f"The latest run with per-pair scores ({model['pairs']:,} pairs at step "
                        f"{model['step']}): what it prefers, audited like an annotator"
                    )
                self.table.setItem(r, c, item)
            # Which response is stored as A says nothing (imports store the chosen one there): no position.
            item = QTableWidgetItem("n/a")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setForeground(QBrush(QColor("#5f6771")))
            item.setToolTip(
                f"{who} scores each response on its own and sees no left or right: no position bias to measure"
            )
            self.table.setItem(r, LEFT_COL, item)
            self.table.setItem(r, LONGER_COL, bias_item(model.get("longer"), "preferred the longer response", who))

    def _fill_assignment(self, assignment: dict | None, reliability: dict | None) -> None:
        """The Batch column (labelled of assigned), with a row for each assigned annotator who has not
        labelled yet, and the Reliability column."""
        assigned = (assignment or {}).get("annotators", {})
        present = {item.text() for r in range(self.table.rowCount()) if (item := self.table.item(r, 0)) is not None}
        for name in assigned:
            if name not in present:
                r = self.table.rowCount()
                self.table.insertRow(r)
                for c, text in enumerate([name, ASSIGNED_KIND, *["—"] * (len(COLUMNS) - 2)]):
                    item = QTableWidgetItem(text)
                    if c >= 2:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.table.setItem(r, c, item)
        skills = (reliability or {}).get("annotators", {})
        for r in range(self.table.rowCount()):
            name_item = self.table.item(r, 0)
            assert name_item is not None
            name = name_item.text()
            entry = assigned.get(name)
            item = QTableWidgetItem("" if entry is None else f"{entry['done']:,} of {entry['assigned']:,}")
            if entry is not None:
                item.setData(VALUE_ROLE, float(entry["done"]))
                item.setToolTip(
                    tooltip(f"{name} has labelled {entry['done']:,} of the {entry['assigned']:,} comparisons assigned")
                )
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, BATCH_COL, item)
            skill = skills.get(name)
            text = "—"
            if skill and skill["skill"] is not None:
                ci = skill["ci95"]
                text = f"{skill['skill']:.2f}" + (f" [{ci[0]:.2f}–{ci[1]:.2f}]" if ci else "")
            item = QTableWidgetItem(text)
            if skill and skill["skill"] is not None:
                item.setData(VALUE_ROLE, float(skill["skill"]))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, RELIABILITY_COL, item)

    # ------------------------------------------------------------------ assignment
    def open_assign(self) -> AssignDialog | None:
        """The Assign work dialog; on OK the packages are written in a worker thread."""
        if self.project is None or self.busy() or self._refuse_read_only():
            return None
        stats = self.project.statistics()
        n = int(stats.get("comparisons", 0)) - int(stats.get("excluded", 0))
        folder = str(self.project.path.with_name(self.project.path.stem + "-packages"))
        dialog = AssignDialog(n, folder, parent=self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.accepted.connect(lambda: self.start_assign(**dialog.values()))
        self.assign_dialog = dialog
        dialog.open()
        return dialog

    def start_assign(
        self,
        annotators: list[str],
        out_dir: str,
        overlap: float | None = None,
        per_item: int | None = None,
        seed: int = 0,
        with_scores: bool = False,
    ) -> ProjectTask | None:
        if self.project is None or self.busy() or self._refuse_read_only():
            return None
        from workbench.core.assign import assign_work

        def work(project: Project, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> object:
            if with_scores:
                _score_missing_first(project)
            return assign_work(
                project.path,
                annotators,
                out_dir,
                overlap=overlap,
                per_item=per_item,
                seed=seed,
                with_scores=with_scores,
            )

        self.task = ProjectTask(self.project.path, work, description="Writing work packages", parent=self)
        self.task.succeeded.connect(self._on_assigned)
        self.task.failed.connect(lambda msg: self._on_failed("Could not assign the work", msg, assigned=True))
        self.task.finished.connect(self._on_task_finished)
        self._set_busy("Writing work packages…", self.team_status)
        self.task.start()
        return self.task

    def _on_assigned(self, summary: object) -> None:  # assign_work's AssignmentSummary
        from workbench.core.assign import AssignmentSummary

        assert isinstance(summary, AssignmentSummary)
        self.last_assignment = summary.as_dict()
        text = f"Wrote {len(summary.files)} work packages to {summary.out_dir}."
        shared = [row["comparisons"] for row in summary.shared]
        if shared:
            text += f" Every pair of annotators shares {min(shared):,} to {max(shared):,} comparisons."
        if summary.warnings:
            text += " ⚠ " + summary.warnings[0]
        self._set_status(self.team_status, text, error=bool(summary.warnings))
        self.message.emit(text)
        self.refresh_counts()

    def _update_adjudicate_button(self) -> None:
        stats = self.team_stats
        n = stats["disagreements"] if stats else 0
        self.adjudicate_button.setEnabled(self.project is not None and n > 0 and not self.busy())
        if stats is None:
            self.adjudicate_button.setText("Adjudicate disagreements…")
        else:
            self.adjudicate_button.setText(
                f"Adjudicate {n:,} disagreement{'s' if n != 1 else ''}…" if n else "No disagreements"
            )

    # ------------------------------------------------------------------ adjudication
    def open_adjudication(self) -> AdjudicationDialog | None:
        """Open the adjudication dialog on the disagreements (window-modal: the project stays open meanwhile)."""
        if self.project is None or self._refuse_read_only():
            return None
        dialog = AdjudicationDialog(self.project, self.annotator or "adjudicator", parent=self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.decided.connect(self._on_adjudicated)
        dialog.finished.connect(self._on_adjudication_closed)
        self.adjudication_dialog = dialog
        dialog.open()
        return dialog

    def _on_adjudicated(self, _cid: int) -> None:
        self.data_changed.emit()
        self.refresh_counts()

    def _on_adjudication_closed(self, _result: int) -> None:
        dialog, self.adjudication_dialog = self.adjudication_dialog, None
        if dialog is not None:
            if dialog.decisions:
                self.message.emit(
                    f"{dialog.decisions:,} disagreement{'s' if dialog.decisions != 1 else ''} "
                    f"settled by {dialog.adjudicator}."
                )
            dialog.deleteLater()

    # ------------------------------------------------------------------ import
    def choose_import(self) -> None:
        if self.project is None or self.busy():
            return
        start = str(settings.value("data/last_dir", "") or str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Import a data file", start, DATA_FILTER)
        if path:
            settings.set_value("data/last_dir", str(Path(path).parent))
            self.start_import(path, self.format_combo.currentData() or "auto", self.split_combo.currentData())

    def choose_import_folder(self) -> None:
        if self.project is None or self.busy():
            return
        start = str(settings.value("data/last_dir", "") or str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Import a dataset folder", start)
        if not path:
            return
        settings.set_value("data/last_dir", str(Path(path).parent))
        from workbench.core.formats import FormatError
        from workbench.core.hub import folder_splits

        try:
            splits = list(folder_splits(path))  # names and files only: cheap enough for the GUI thread
        except FormatError as exc:
            self._on_failed("Import failed", str(exc), imported=True)
            return
        split = splits[0]
        if len(splits) > 1:
            split, ok = QInputDialog.getItem(self, "Choose a split", "The dataset's split to import:", splits, 0, False)
            if not ok:
                return
        self.start_import(path, self.format_combo.currentData() or "auto", self.split_combo.currentData(), split=split)

    def _refuse_read_only(self) -> bool:
        text = read_only_message(self.project)
        if text is not None:
            self.message.emit(text)
        return text is not None

    def start_import(
        self, path: str | os.PathLike, format: str = "auto", use_for: str | None = None, split: str | None = None
    ) -> ProjectTask | None:
        """Import ``path`` (a file, or one ``split`` of a dataset folder) in a worker thread with its own
        connection to the project; ``use_for="test"`` makes its pairs evaluation-only."""
        if self.project is None or self.busy() or self._refuse_read_only():
            return None
        from workbench.core.formats import import_file

        path = str(path)
        name = Path(path).name + (f" [{split}]" if split else "")

        def work(project: Project, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> object:
            return import_file(
                project, path, format=format, progress=progress, cancel=cancel, split=split, use_for=use_for
            )

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
        """An import, export or merge is under way: from its start until its end has been handled (a task
        whose thread has just ended still has its result to deliver)."""
        return self.task is not None

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(min(done, total))

    def _on_imported(self, name: str, summary: ImportSummary) -> None:  # import_file's result
        data = summary.as_dict()
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

    def _on_failed(
        self, title: str, message: str, imported: bool = False, merged: bool = False, assigned: bool = False
    ) -> None:
        label = self.import_status if imported else self.team_status if merged or assigned else self.export_status
        self._set_status(label, message, error=True)
        box = message_box(QMessageBox.Icon.Warning, title, message, parent=self)  # the message quotes the file
        if imported:
            informative = (
                "Nothing was imported; the project is unchanged. Fix the file, or pick its shape in the "
                "Shape list, and import again."
            )
        elif merged:
            informative = (
                "Nothing was merged; the project is unchanged. Choose project files (.wbp) made by "
                "Preference Workbench, and merge again."
            )
        elif assigned:
            informative = "No work package was written and nothing was recorded. Correct the names or the folder."
        else:
            informative = "Nothing was written. Choose another file name or type."
        box.setInformativeText(informative)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.error_box = box
        box.open()

    def _on_task_finished(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.deleteLater()
        self._set_idle()

    def _set_busy(self, text: str, label: QLabel | None = None) -> None:
        self._set_status(label or self.import_status, text)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        for w in (*self._data_controls(), self.adjudicate_button):
            w.setEnabled(False)

    def _set_idle(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.hide()
        self.cancel_button.hide()
        for w in self._data_controls():
            w.setEnabled(self.project is not None)
        self._update_adjudicate_button()

    def _data_controls(self) -> tuple[QWidget, ...]:
        """What starts an import, export, merge or assignment: enabled with a project, off while one runs."""
        return (
            self.import_button,
            self.import_folder_button,
            self.format_combo,
            self.split_combo,
            self.export_pairs_button,
            self.export_splits_button,
            self.export_log_button,
            self.merge_button,
            self.assign_button,
        )

    # ------------------------------------------------------------------ merge
    def choose_merge(self) -> None:
        if self.project is None or self.busy():
            return
        start = str(settings.value("data/last_dir", "") or str(Path.home()))
        paths, _ = QFileDialog.getOpenFileNames(self, "Merge annotators' projects into this one", start, PROJECT_FILTER)
        if paths:
            settings.set_value("data/last_dir", str(Path(paths[0]).parent))
            self.start_merge(paths)

    def start_merge(self, paths: Iterable[str | os.PathLike]) -> ProjectTask | None:
        """Merge the projects ``paths`` into the open one, in a worker thread, as one transaction."""
        if self.project is None or self.busy() or self._refuse_read_only():
            return None
        from workbench.core.team import merge_projects

        sources = [str(p) for p in paths]
        if not sources:
            return None
        target = str(self.project.path)

        def work(project: Project, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> object:
            return merge_projects(sources, target)

        names = ", ".join(Path(p).name for p in sources)
        task = ProjectTask(self.project.path, work, description=f"Merging {names}", parent=self)
        task.succeeded.connect(self._on_merged)
        task.failed.connect(lambda msg: self._on_failed("Merge failed", msg, merged=True))
        task.finished.connect(self._on_task_finished)
        self._set_busy(f"Merging {names}…", self.team_status)
        self.cancel_button.hide()  # one transaction: it cannot stop half way
        self.task = task
        task.start()
        return task

    def _on_merged(self, summary: MergeSummary) -> None:  # merge_projects' result
        data = summary.as_dict()
        self.last_merge = data
        n = len(data.get("sources", []))
        text = (
            f"Merged {n} project{'s' if n != 1 else ''}: {data.get('judgments_added', 0):,} judgments "
            f"added ({data.get('judgments_present', 0):,} already here), {data.get('comparisons_added', 0):,} "
            f"new comparisons, {data.get('annotators_added', 0):,} new annotators."
        )
        if data.get("comparisons_flipped"):
            text += f" {data['comparisons_flipped']:,} comparisons stored the other way round were mapped."
        if data.get("skipped_sources"):
            text += (
                " Skipped: "
                + ", ".join(Path(p).name for p in data["skipped_sources"])
                + " (this project itself, or listed twice)."
            )
        self._set_status(self.team_status, text)
        self.message.emit(text)
        self.refresh_counts()
        self.data_changed.emit()

    # ------------------------------------------------------------------ export
    def choose_export_pairs(self) -> None:
        if self.project is None or self.busy():
            return
        folder = Path(str(settings.value("data/last_dir", "") or Path.home()))
        start = str(folder / f"{self.project.path.stem}-pairs.jsonl")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export preference pairs", start, "JSON Lines (*.jsonl);;Parquet (*.parquet)"
        )
        if path:
            self.start_export_pairs(path, self.margin_check.isChecked(), self.ties_check.isChecked())

    def choose_export_log(self) -> None:
        if self.project is None or self.busy():
            return
        folder = Path(str(settings.value("data/last_dir", "") or Path.home()))
        start = str(folder / f"{self.project.path.stem}-judgments.csv")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the judgment log", start, "CSV (*.csv);;Parquet (*.parquet);;JSON Lines (*.jsonl)"
        )
        if path:
            self.start_export_log(path)

    def start_export_pairs(
        self, path: str | os.PathLike, with_margin: bool = False, include_ties: bool = False
    ) -> ProjectTask | None:
        from workbench.core.formats import export_pairs

        path = str(path)
        return self._start_export(
            lambda project, progress, cancel: export_pairs(
                project, path, with_margin=with_margin, include_ties=include_ties
            ),
            path,
            "pairs",
        )

    def choose_export_splits(self) -> None:
        if self.project is None or self.busy():
            return
        start = str(settings.value("data/last_dir", "") or Path.home())
        path = QFileDialog.getExistingDirectory(self, "Export a dataset folder (an empty or new folder)", start)
        if path:
            self.start_export_splits(path, self.margin_check.isChecked())

    def start_export_splits(self, path: str | os.PathLike, with_margin: bool = False) -> ProjectTask | None:
        from workbench.core.hub import export_splits

        path = str(path)

        def work(project: Project, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> int:
            return sum(export_splits(project, path, with_margin=with_margin).values())

        return self._start_export(work, path, "rows (train, test and ties)")

    def start_export_log(self, path: str | os.PathLike) -> ProjectTask | None:
        from workbench.core.formats import export_judgments

        path = str(path)
        return self._start_export(lambda project, progress, cancel: export_judgments(project, path), path, "judgments")

    def _start_export(self, work: TaskFunction, path: str, what: str) -> ProjectTask | None:
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

    def _on_exported(self, path: str, what: str, n: int | None) -> None:
        text = f"Wrote {int(n or 0):,} {what} to {path}."
        self._set_status(self.export_status, text)
        self.message.emit(text)


def _team_figures(project: Project, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> object:
    from workbench.core import team
    from workbench.core.assign import assignment_progress

    return {
        "agreement": team.agreement_report(project),
        "bias": team.bias_report(project),
        "disagreements": len(team.disagreements(project)),
        "assignment": assignment_progress(project),
    }


def _reliability_figures(project: Project, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> object:
    from workbench.core.reliability import reliability_report

    return reliability_report(project)


def _score_missing_first(project: Project) -> None:
    """Work packages with scores hand out the latest run's scores of every comparison; a run scores only its
    training pairs, so the rest are scored first by the training process's "score_unlabelled" job (as
    ``workbench assign --with-scores`` does). Called in the task's thread: the job is waited for there."""
    due = project.scores_to_compute()
    if due is not None:
        training_job("score_unlabelled", SCORE_JOB_TIMEOUT_S)({"project": str(project.path), "run": due[0]})
