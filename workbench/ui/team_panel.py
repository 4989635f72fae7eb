"""Team work in the Data view: the agreement and reliability panels, the bias cells of the
annotator table, the Assign work dialog, and the adjudication dialog that settles the comparisons annotators
disagree on.

The numbers come from ``workbench.core.team`` (plain data, computed off the GUI thread by the Data view);
this module only shows them. Names and texts from the project are shown as plain text, never as HTML.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.core.records import STRENGTHS
from workbench.core.store import Project, read_only_message
from workbench.ui import style
from workbench.ui.safe_text import SafeTextBrowser, tooltip
from workbench.ui.widgets import Card, ChoiceRow, KeyButton

#: the exact value behind a number shown in a table cell (tests and tooltips read it)
VALUE_ROLE = Qt.ItemDataRole.UserRole
#: True on a bias cell whose 95% interval leaves out 50%
BIASED_ROLE = Qt.ItemDataRole.UserRole + 1
BIAS_BG = QColor("#fdf3e1")
BIAS_FG = QColor("#6b4a0b")
CHOICE_NAMES = {"a": "A", "b": "B", "tie": "Tie", "both_bad": "Both bad", "skip": "Skip"}
ADJUDICATOR_SUFFIX = " (adjudicator)"


def adjudicator_name(annotator: str) -> str:
    """The name an annotator decides under: their own name would replace their vote (see ``team.adjudicate``)."""
    name = annotator.strip()
    return name if name.endswith(ADJUDICATOR_SUFFIX) else name + ADJUDICATOR_SUFFIX


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


# ================================================================================ bias cells
def share_text(entry: Mapping[str, Any] | None) -> tuple[str, bool]:
    """("62% (57–67)", whether the 95% interval excludes 50%) for a ``team.share`` entry."""
    if not entry or entry.get("share") is None:
        return "—", False
    lo, hi = entry["ci95"]
    biased = hi < 0.5 or lo > 0.5
    return f"{'⚠ ' if biased else ''}{100 * entry['share']:.0f}% ({100 * lo:.0f}–{100 * hi:.0f})", biased


def bias_item(entry: Mapping[str, Any] | None, what: str, who: str) -> QTableWidgetItem:
    """A table cell for one bias share: ``what`` completes "picked the …" in the tooltip."""
    text, biased = share_text(entry)
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    item.setData(BIASED_ROLE, biased)
    if not entry or entry.get("share") is None:
        item.setToolTip(
            tooltip(
                f"{who}: no labels to measure this on"
                + (" (imported labels do not record which side was shown)" if "left" in what else "")
            )
        )
        return item
    item.setData(VALUE_ROLE, float(entry["share"]))
    lo, hi = entry["ci95"]
    tip = (
        f"{who} {what} in {100 * entry['share']:.1f}% of {entry['n']:,} (95% interval {100 * lo:.0f}–{100 * hi:.0f}%)."
    )
    if biased:
        tip += " The interval leaves out 50%: more than chance explains."
        item.setBackground(QBrush(BIAS_BG))
        item.setForeground(QBrush(BIAS_FG))
    else:
        tip += " The interval includes 50%: no sign of a bias."
    if entry.get("equal_length"):
        tip += f" {entry['equal_length']:,} pairs of equal length are left out."
    item.setToolTip(tooltip(tip))  # names are data
    return item


# ================================================================================ agreement
class AgreementPanel(QGroupBox):
    """Percent agreement, Krippendorff's α and Cohen's κ per pair of annotators."""

    KAPPA_COLUMNS = ("Annotator", "Annotator", "Shared", "Agree", "Cohen's κ")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Agreement", parent)
        self.setObjectName("AgreementPanel")
        row = QHBoxLayout(self)
        row.setSpacing(16)
        figures = QGridLayout()
        figures.setHorizontalSpacing(12)
        figures.setVerticalSpacing(6)
        self.figure_labels: dict[str, QLabel] = {}
        for r, (key, caption, tip) in enumerate(
            (
                ("items", "Compared", "Comparisons with labels from two or more annotators"),
                ("percent", "Percent agreement", "Mean share of agreeing label pairs on those comparisons"),
                (
                    "alpha",
                    "Krippendorff's α",
                    (
                        "Agreement beyond chance over all annotators (nominal; missing "
                        "labels allowed): 1 is perfect, 0 is chance"
                    ),
                ),
                (
                    "fleiss",
                    "Fleiss' κ",
                    ("Agreement beyond chance over three or more annotators: 1 is perfect, 0 is chance"),
                ),
            )
        ):
            cap = QLabel(caption)
            cap.setObjectName("Muted")
            cap.setToolTip(tip)
            value = QLabel("—")
            value.setObjectName("Figure")
            value.setStyleSheet("font-size: 13pt; font-weight: 600;")
            value.setToolTip(tip)
            figures.addWidget(cap, r, 0)
            figures.addWidget(value, r, 1)
            self.figure_labels[key] = value
        figures.setRowStretch(4, 1)
        row.addLayout(figures)

        right = QVBoxLayout()
        right.setSpacing(6)
        self.kappa_table = QTableWidget(0, len(self.KAPPA_COLUMNS))
        self.kappa_table.setObjectName("KappaTable")
        self.kappa_table.setHorizontalHeaderLabels(list(self.KAPPA_COLUMNS))
        self.kappa_table.verticalHeader().hide()
        self.kappa_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.kappa_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.kappa_table.setShowGrid(False)
        self.kappa_table.setAlternatingRowColors(True)
        header = self.kappa_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.model().setHeaderData(
            4,
            Qt.Orientation.Horizontal,
            "(observed − chance) / (1 − chance): 1 is perfect, 0 is chance",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.kappa_table.setMinimumHeight(90)
        self.kappa_table.setMaximumHeight(170)
        right.addWidget(self.kappa_table, 1)
        self.note = QLabel("")
        self.note.setObjectName("Muted")
        self.note.setWordWrap(True)
        right.addWidget(self.note)
        row.addLayout(right, 1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.report: dict | None = None
        self.set_report(None)

    def set_report(self, report: Mapping[str, Any] | None, busy: bool = False) -> None:
        """Show a ``team.agreement_report``; None clears the panel."""
        self.report = dict(report) if report is not None else None
        self.kappa_table.setRowCount(0)
        if report is None:
            for label in self.figure_labels.values():
                label.setText("—")
            self.note.setText("Computing…" if busy else "")
            return
        self.figure_labels["items"].setText(f"{report['items_multiply_labelled']:,}")
        self.figure_labels["percent"].setText(_percent(report["pairwise_agreement"]))
        self.figure_labels["alpha"].setText(_number(report["krippendorff_alpha"], 2))
        fleiss = report.get("fleiss_kappa")
        self.figure_labels["fleiss"].setText(_number(fleiss["kappa"], 2) if fleiss else "—")
        self.figure_labels["fleiss"].setToolTip(
            fleiss["variant"].replace("kappa", "κ") + f" on {fleiss['items']:,} comparisons"
            if fleiss
            else "Needs three or more annotators"
        )
        rows = report["cohen_kappa"]
        self.kappa_table.setRowCount(len(rows))
        for r, entry in enumerate(rows):
            first, second = entry["annotators"]
            cells = [
                (first, None),
                (second, None),
                (f"{entry['items']:,}", entry["items"]),
                (_percent(entry["observed"]), entry["observed"]),
                (_number(entry["kappa"]), entry["kappa"]),
            ]
            for c, (text, value) in enumerate(cells):
                item = QTableWidgetItem(text)
                if value is not None:
                    item.setData(VALUE_ROLE, float(value))
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 4:
                    item.setToolTip(
                        "κ is undefined: both used one and the same label throughout"
                        if entry["kappa"] is None
                        else f"observed agreement {entry['observed']:.3f}, expected by chance {entry['expected']:.3f}"
                    )
                self.kappa_table.setItem(r, c, item)
        if report["items_multiply_labelled"] == 0:
            self.note.setText(
                "No comparison has labels from two annotators yet. Merge the other annotators' "
                "projects (Merge projects…) to measure agreement."
            )
        else:
            self.note.setText(
                "κ and α correct for chance: 1 is perfect agreement, 0 is what chance gives. "
                f"{report['chance']} Adjudications are not counted as votes."
            )

    def kappa(self, first: str, second: str) -> float | None:
        """The κ shown for a pair of annotators (either order), for tests."""
        for r in range(self.kappa_table.rowCount()):
            one, other = self.kappa_table.item(r, 0), self.kappa_table.item(r, 1)
            assert one is not None and other is not None  # show_report sets every cell of a row
            names = {one.text(), other.text()}
            if names == {first, second}:
                value = self.kappa_table.item(r, 4)
                assert value is not None
                return value.data(VALUE_ROLE)
        raise KeyError(f"no κ row for {first} and {second}")


# ================================================================================ reliability
class ReliabilityPanel(QGroupBox):
    """Each annotator's reliability (skill) from the latent-truth model, with its bootstrap interval
    (``workbench.core.reliability.reliability_report``)."""

    COLUMNS = ("Annotator", "Reliability", "95% interval", "Shared", "A/B labels")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Annotator reliability", parent)
        self.setObjectName("ReliabilityPanel")
        box = QVBoxLayout(self)
        box.setSpacing(6)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("ReliabilityTable")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # names keep their width
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.model().setHeaderData(
            1,
            Qt.Orientation.Horizontal,
            "The estimated share of the annotator's A/B labels that name the truly better response "
            "(one-coin Dawid-Skene): 1 is always right, 0.5 is a coin",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setMinimumHeight(185)
        self.table.setMaximumHeight(230)
        box.addWidget(self.table, 1)
        self.note = QLabel("")
        self.note.setObjectName("Muted")
        self.note.setWordWrap(True)
        box.addWidget(self.note)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.report: dict | None = None
        self.set_report(None)

    def set_report(self, report: Mapping[str, Any] | None, busy: bool = False) -> None:
        self.report = dict(report) if report is not None else None
        self.table.setRowCount(0)
        if report is None:
            self.note.setText("Computing…" if busy else "")
            return
        rows = sorted(report["annotators"].items(), key=lambda kv: -(kv[1]["skill"] or -1.0))
        self.table.setRowCount(len(rows))
        for r, (name, row) in enumerate(rows):
            ci = row["ci95"]
            cells = [
                (name, None),
                (_number(row["skill"], 2), row["skill"]),
                ("—" if not ci else f"{ci[0]:.2f} – {ci[1]:.2f}", None),
                (f"{row['shared_labels']:,}", row["shared_labels"]),
                (f"{row['labels']:,}", row["labels"]),
            ]
            for c, (text, value) in enumerate(cells):
                item = QTableWidgetItem(text)
                if value is not None:
                    item.setData(VALUE_ROLE, float(value))
                if c >= 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        if not report["fitted"]:
            self.note.setText(
                "No comparison has A/B labels from two annotators: reliability cannot be estimated. Assign work "
                "with overlap (Assign work…) and merge the annotators' files."
            )
        else:
            self.note.setText(
                f"One-coin Dawid-Skene (crowd-kit) on {report['comparisons_multiply_labelled']:,} comparisons with "
                f"two or more A/B labels; intervals from {report['resamples']} bootstrap resamples. Training can use "
                "its posterior P(A better) per comparison (Train: Labels → Posterior). " + report["note"]
            )

    def skill(self, name: str) -> float | None:
        """The reliability shown for ``name``, for tests."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.text() == name:
                value = self.table.item(r, 1)
                assert value is not None
                return value.data(VALUE_ROLE)
        raise KeyError(name)


# ================================================================================ assignment
class AssignDialog(QDialog):
    """Assign work…: split the project's comparisons among annotators (``workbench.core.assign``), with a
    preview of each one's load and what pairs of annotators share. ``values()`` is what to run."""

    def __init__(self, n_comparisons: int, default_folder: str, parent: QWidget | None = None):
        from PySide6.QtWidgets import QDialogButtonBox, QDoubleSpinBox, QFormLayout, QRadioButton, QSpinBox

        super().__init__(parent)
        self.setWindowTitle("Assign work")
        self.setObjectName("AssignDialog")
        self.n_comparisons = n_comparisons
        root = QVBoxLayout(self)
        intro = QLabel(
            f"Split the {n_comparisons:,} comparisons (excluded pairs left out) into one project file per "
            "annotator. Each file holds only that person's comparisons: no one else's labels, and no model scores "
            "unless included below. Merge the files back when they are done."
        )
        intro.setWordWrap(True)
        intro.setObjectName("Muted")
        root.addWidget(intro)
        form = QFormLayout()
        self.names_edit = QLineEdit("alice, bob, carol")
        self.names_edit.setPlaceholderText("names separated by commas")
        form.addRow("Annotators", self.names_edit)
        self.overlap_radio = QRadioButton("Overlap: share given to two annotators")
        self.overlap_spin = QDoubleSpinBox()
        self.overlap_spin.setRange(1.0, 100.0)
        self.overlap_spin.setSuffix(" %")
        self.overlap_spin.setValue(20.0)
        self.per_item_radio = QRadioButton("Every comparison to")
        self.per_item_spin = QSpinBox()
        self.per_item_spin.setRange(1, 50)
        self.per_item_spin.setValue(2)
        self.per_item_spin.setSuffix(" annotators")
        self.overlap_radio.setChecked(True)
        form.addRow(self.overlap_radio, self.overlap_spin)
        form.addRow(self.per_item_radio, self.per_item_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2_147_483_647)
        form.addRow("Seed", self.seed_spin)
        from PySide6.QtWidgets import QCheckBox

        self.scores_check = QCheckBox("Include the latest model's scores (the Label view's score hint)")
        self.scores_check.setToolTip("Off: the annotators see no model at all (blind)")
        form.addRow("", self.scores_check)
        folder_row = QHBoxLayout()
        self.folder_edit = QLineEdit(default_folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        root.addLayout(form)
        self.preview = QLabel("")
        self.preview.setObjectName("AssignPreview")
        self.preview.setWordWrap(True)
        self.preview.setTextFormat(Qt.TextFormat.PlainText)
        root.addWidget(self.preview)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Write work packages")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        root.addWidget(self.buttons)
        for signal in (
            self.names_edit.textChanged,
            self.overlap_spin.valueChanged,
            self.per_item_spin.valueChanged,
            self.seed_spin.valueChanged,
            self.overlap_radio.toggled,
            self.folder_edit.textChanged,
        ):
            signal.connect(self._update_preview)
        self.resize(560, 380)
        self._update_preview()

    def _browse(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Folder for the work packages", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def values(self) -> dict[str, Any]:
        """Keyword arguments of ``assign_work`` (besides the project)."""
        names = [n.strip() for n in self.names_edit.text().split(",")]
        overlap = self.overlap_spin.value() / 100.0 if self.overlap_radio.isChecked() else None
        per_item = self.per_item_spin.value() if self.per_item_radio.isChecked() else None
        return {
            "annotators": names,
            "out_dir": self.folder_edit.text().strip(),
            "overlap": overlap,
            "per_item": per_item,
            "seed": self.seed_spin.value(),
            "with_scores": self.scores_check.isChecked(),
        }

    def _update_preview(self) -> None:
        from workbench.core.assign import design_packages, design_warnings, shared_counts

        ok = self.buttons.button(self.buttons.StandardButton.Ok)
        values = self.values()
        try:
            packages = design_packages(
                range(self.n_comparisons),
                values["annotators"],
                overlap=values["overlap"],
                per_item=values["per_item"],
                seed=values["seed"],
            )
        except ValueError as exc:
            self.preview.setText(str(exc))
            ok.setEnabled(False)
            return
        shared = [row["comparisons"] for row in shared_counts(packages)]
        loads = ", ".join(f"{name} {len(ids):,}" for name, ids in packages.items())
        lines = [f"Comparisons each: {loads}."]
        if shared:
            lines.append(f"Every pair of annotators shares {min(shared):,} to {max(shared):,} comparisons.")
        lines += [f"⚠ {w}" for w in design_warnings(packages, shared_counts(packages))]
        if not values["out_dir"]:
            lines.append("Choose a folder for the files.")
        self.preview.setText("\n".join(lines))
        ok.setEnabled(bool(values["out_dir"]) and self.n_comparisons > 0)


# ================================================================================ adjudication
def label_words(choice: str, strength: int | None) -> str:
    word = CHOICE_NAMES.get(choice, choice)
    if choice in ("a", "b"):
        word += " is better" if strength is None else f" ({STRENGTHS.get(strength, strength)})"
    return word


class AdjudicationDialog(QDialog):
    """Settle, one by one, the comparisons whose annotators disagree: see every label (with its strength
    and note) and record the decision with ``team.adjudicate`` under "<name> (adjudicator)". Training then
    uses the decision instead of the annotators' labels."""

    decided = Signal(int)  # a comparison was settled (or a decision undone)

    def __init__(self, project: Project, annotator: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("AdjudicationDialog")
        self.setWindowTitle("Adjudicate disagreements")
        self.project = project
        self.adjudicator = adjudicator_name(annotator)
        self.queue: list[int] = []
        self.rows: dict[int, dict[str, Any]] = {}
        self.current: int | None = None
        self.decisions = 0
        self._history: list[int] = []  # comparisons decided in this dialog, for undo
        self.resize(1180, 760)
        self._build()
        self._build_actions()
        self.reload()
        self.list.setFocus(Qt.FocusReason.OtherFocusReason)  # keys decide; the note takes typing once clicked

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(16, 14, 16, 12)
        root.setSpacing(10)
        head = QHBoxLayout()
        title = QLabel("Adjudicate disagreements")
        title.setObjectName("Section")
        title.setStyleSheet("font-size: 13pt;")
        head.addWidget(title)
        head.addStretch(1)
        self.who_label = QLabel("")
        self.who_label.setObjectName("Muted")
        self.who_label.setTextFormat(Qt.TextFormat.PlainText)
        head.addWidget(self.who_label)
        root.addLayout(head)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        left = Card("Queue")
        self.list = QListWidget()
        self.list.setObjectName("AdjudicationQueue")
        self.list.setMinimumWidth(230)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.set_body(self.list)
        splitter.addWidget(left)

        main = QWidget()
        col = QVBoxLayout(main)
        col.setContentsMargins(8, 0, 0, 0)
        col.setSpacing(8)
        self.position_label = QLabel("")
        self.position_label.setObjectName("Section")
        col.addWidget(self.position_label)
        self.votes_label = QLabel("")
        self.votes_label.setObjectName("Banner")
        self.votes_label.setTextFormat(Qt.TextFormat.PlainText)
        self.votes_label.setWordWrap(True)
        col.addWidget(self.votes_label)
        self.prompt_card = Card("Prompt")
        self.prompt_view = self.prompt_card.set_body(SafeTextBrowser())
        self.prompt_card.setMaximumHeight(170)
        col.addWidget(self.prompt_card)
        self.pair = pair = QSplitter(Qt.Orientation.Horizontal)
        pair.setChildrenCollapsible(False)
        pair.setHandleWidth(10)
        self.a_card = Card("Response A", "1")
        self.a_view = self.a_card.set_body(SafeTextBrowser())
        self.b_card = Card("Response B", "2")
        self.b_view = self.b_card.set_body(SafeTextBrowser())
        pair.addWidget(self.a_card)
        pair.addWidget(self.b_card)
        col.addWidget(pair, 1)
        self.empty_label = QLabel("")
        self.empty_label.setObjectName("Subtitle")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        col.addWidget(self.empty_label, 1)

        self.choices = ChoiceRow(("A is better", "1"), ("B is better", "2"))
        self.a_button, self.b_button = self.choices.first_button, self.choices.second_button
        self.tie_button, self.bad_button = self.choices.tie_button, self.choices.bad_button
        col.addWidget(self.choices)

        row = QHBoxLayout()
        row.setSpacing(0)
        caption = QLabel("Strength")
        caption.setObjectName("Muted")
        row.addWidget(caption)
        row.addSpacing(8)
        self.strength_group = QButtonGroup(self)
        self.strength_buttons: dict[int, QPushButton] = {}
        for level in (1, 2, 3, 4):
            b = QPushButton(("Negligibly", "Slightly", "Better", "Much better")[level - 1])
            b.setObjectName("Strength")
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setToolTip(f"{STRENGTHS[level].capitalize()} (Alt+{level})")
            self.strength_group.addButton(b, level)
            self.strength_buttons[level] = b
            row.addWidget(b)
        row.addSpacing(12)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Reason for the decision (optional; saved with it)")
        self.note_edit.setClearButtonEnabled(True)
        row.addWidget(self.note_edit, 1)
        row.addSpacing(8)
        self.skip_button = KeyButton("Later", "S", object_name="Secondary")
        self.skip_button.setToolTip("Leave this one for later (S)")
        self.undo_button = KeyButton("Undo decision", "Ctrl+Z", object_name="Secondary")
        row.addWidget(self.skip_button)
        row.addSpacing(6)
        row.addWidget(self.undo_button)
        col.addLayout(row)
        splitter.addWidget(main)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 4)
        splitter.setSizes([260, 900])
        root.addWidget(splitter, 1)

        foot = QHBoxLayout()
        self.status_label = QLabel("")
        self.status_label.setObjectName("Muted")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        foot.addWidget(self.status_label, 1)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.accept)
        foot.addWidget(self.close_button)
        root.addLayout(foot)

        self.list.currentRowChanged.connect(self._on_row_changed)
        self.choices.chosen.connect(self._on_choices_chosen)
        self.skip_button.clicked.connect(self.later)
        self.undo_button.clicked.connect(self.undo)

    def _on_choices_chosen(self, key: str) -> None:
        self.decide({"first": "a", "second": "b"}.get(key, key))

    def _build_actions(self) -> None:
        def make(keys: list[str], handler: Callable[[], object]) -> QAction:
            action = QAction(self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)  # the dialog is its own window
            action.triggered.connect(lambda _checked=False: handler())
            self.addAction(action)
            return action

        self._actions = [
            make(["1"], lambda: self.decide("a")),
            make(["2"], lambda: self.decide("b")),
            make(["="], lambda: self.decide("tie")),
            make(["0"], lambda: self.decide("both_bad")),
            make(["S"], self.later),
            make(["Ctrl+Z"], self.undo),
        ]
        for level in (1, 2, 3, 4):

            def check_strength(level: int = level) -> None:  # level bound now: one action per strength
                self.strength_buttons[level].setChecked(True)

            self._actions.append(make([f"Alt+{level}"], check_strength))

    # ------------------------------------------------------------------ the queue
    def reload(self, select: int | None = None) -> None:
        """Read the disagreements again (after a decision elsewhere, or an undo)."""
        from workbench.core.team import disagreements

        frame = disagreements(self.project)
        self.rows = {int(r["comparison_id"]): r for r in frame.to_dict("records")}
        self.queue = list(self.rows)
        with QSignalBlocker(self.list):
            self.list.clear()
            for cid in self.queue:
                row = self.rows[cid]
                votes = " · ".join(f"{n} {CHOICE_NAMES.get(c, c)}" for n, c in row["labels"].items())
                item = QListWidgetItem(f"#{cid}   {votes}")
                item.setData(Qt.ItemDataRole.UserRole, cid)
                item.setToolTip(tooltip(f"Comparison #{cid}: {votes}"))
                self.list.addItem(item)
        target = select if select in self.rows else (self.queue[0] if self.queue else None)
        self.show_comparison(target)

    def show_comparison(self, cid: int | None) -> None:
        self.current = cid
        has = cid is not None
        for w in (self.prompt_card, self.pair, self.votes_label, self.position_label):
            w.setVisible(has)
        self.empty_label.setVisible(not has)
        for b in (
            self.a_button,
            self.b_button,
            self.tie_button,
            self.bad_button,
            self.skip_button,
            *self.strength_buttons.values(),
            self.note_edit,
        ):
            b.setEnabled(has)
        self.undo_button.setEnabled(bool(self._history))
        for action in self._actions[:5]:
            action.setEnabled(has)
        self.who_label.setText(f"Deciding as {self.adjudicator}")
        self.status_label.setText(
            f"{len(self.queue):,} to settle · {self.decisions:,} decided here. The decision is what training "
            "uses for the comparison; the annotators' labels stay as they are."
        )
        if cid is None:  # not has
            self.empty_label.setText(
                "No disagreements left to settle.\nEvery comparison the annotators disagree "
                "on has an adjudicated label."
            )
            return
        with QSignalBlocker(self.list):
            self.list.setCurrentRow(self.queue.index(cid))
        row = self.rows[cid]
        comp = self.project.comparison(cid)
        labels = self.project.comparison_labels(cid)
        self.position_label.setText(f"Comparison #{cid}  ·  {self.queue.index(cid) + 1} of {len(self.queue)}")
        votes = "   ".join(
            f"{entry['annotator']}: {label_words(entry['choice'], entry['strength'])}"
            + (f" (“{entry['note']}”)" if entry["note"] else "")
            for entry in labels
        )
        majority = row.get("majority")
        summary = (
            f"Majority: {CHOICE_NAMES.get(majority, majority)}"
            if majority
            else "No majority (the votes are split evenly)"
        )
        if row.get("excluded"):
            summary += " · excluded from training"
        self.votes_label.setText(f"{votes}\n{summary}")
        font = style.reading_font(self.font())
        self.prompt_view.set_text(comp.prompt, font)
        self.a_view.set_text(comp.response_a, font)
        self.b_view.set_text(comp.response_b, font)
        for card, side in ((self.a_card, "a"), (self.b_card, "b")):
            names = [e["annotator"] for e in labels if e["choice"] == side]
            card.extra.setText(("chosen by " + ", ".join(names)) if names else "")
        self.strength_buttons[3].setChecked(True)
        self.note_edit.clear()

    def _on_row_changed(self, row: int) -> None:
        if 0 <= row < len(self.queue):
            self.show_comparison(self.queue[row])

    # ------------------------------------------------------------------ deciding
    def strength(self) -> int:
        level = self.strength_group.checkedId()
        return level if level in STRENGTHS else 3

    def decide(self, choice: str, strength: int | None = None) -> int | None:
        """Record the adjudicator's decision for the comparison on screen and show the next one."""
        from workbench.core.team import adjudicate

        cid = self.current
        if cid is None:
            return None
        if (read_only := read_only_message(self.project)) is not None:
            self.status_label.setText(read_only)
            return None
        if choice in ("a", "b") and strength is None:
            strength = self.strength()
        try:
            jid = adjudicate(
                self.project,
                cid,
                self.adjudicator,
                choice,
                strength if choice in ("a", "b") else None,
                note=self.note_edit.text().strip(),
            )
        except (ValueError, sqlite3.Error) as exc:
            self.status_label.setText(f"Could not record the decision: {exc}")
            return None
        self.decisions += 1
        self._history.append(cid)
        index = self.queue.index(cid)
        self.queue.remove(cid)
        self.rows.pop(cid, None)
        with QSignalBlocker(self.list):
            self.list.takeItem(index)
        self.decided.emit(cid)
        self.show_comparison(self.queue[min(index, len(self.queue) - 1)] if self.queue else None)
        return jid

    def later(self) -> None:
        if self.current is None or len(self.queue) < 2:
            return
        index = self.queue.index(self.current)
        self.show_comparison(self.queue[(index + 1) % len(self.queue)])

    def undo(self) -> None:
        """Take back the latest decision made here; its comparison comes back into the queue."""
        if not self._history:
            return
        if (read_only := read_only_message(self.project)) is not None:
            self.status_label.setText(read_only)
            return
        undone = self.project.undo_last(self.adjudicator)
        self._history.pop()
        if undone is None:
            return
        self.decisions = max(0, self.decisions - 1)
        self.decided.emit(undone.comparison_id)
        self.reload(select=undone.comparison_id)
        self.status_label.setText(f"Decision on #{undone.comparison_id} undone; decide it again.")
