"""The Label view: judge two responses side by side, or rank all of a prompt's responses.

Keys are window-level ``QAction`` shortcuts (``Qt.WindowShortcut``), so they work whichever child has
focus; the response browsers take mouse selection only, so they do not claim the arrow keys. Editable
fields (the note, the guidelines editor) claim printable keys first, as they should: typing a note does
not judge anything. Each key is registered once and its handler dispatches on the mode (pair or rank),
so no two enabled shortcuts ever share a key.

A judgment is recorded (committed to the project file) before the next comparison is shown. What is
being judged and every write belong to a ``LabelSession`` (workbench/core/label_session.py, no Qt); this
module owns the widgets, the keys and the rendering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QResizeEvent, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.core.label_session import DEFAULT_STRENGTH, LabelSession
from workbench.core.records import STRENGTHS, Comparison, Judgment, Text
from workbench.ui import settings, style
from workbench.ui.safe_text import SafeTextBrowser, build_diff_document, build_document, plain, tooltip, word_diff
from workbench.ui.tasks import SCORE_JOB_TIMEOUT_S, JobRunner, JobThread, training_job
from workbench.ui.widgets import Card, ChoiceRow, KeyButton

if TYPE_CHECKING:
    from workbench.core.store import Project

STRENGTH_LABELS = {1: "Negligibly", 2: "Slightly", 3: "Better", 4: "Much better  ⇧"}
ORDER_LABELS = {
    "new": "New first",
    "random": "Random",
    "prompt": "By prompt",
    "uncertain": "Model-uncertain first",
    "disagree": "Model disagrees with label first",
}
#: the orders that read the latest run's per-pair scores
MODEL_ORDERS = ("uncertain", "disagree")
ORDER_TIPS = {
    "new": "Comparisons nobody has labelled first, in import order",
    "random": "A fixed shuffle of the comparisons (the project's seed)",
    "prompt": "Comparisons of one prompt together",
    "uncertain": "Where the latest model is least sure (smallest |margin|) first: the labels that teach it most",
    "disagree": "Your labelled pairs that the latest model ranks the other way first, most confident first: "
    "check them again",
}
NO_SCORES_TIP = (
    "Needs a trained model: train one in the Train view. These orders use the per-pair scores of the latest run."
)
SCORE_HINT_TIP = (
    "The latest run's reward for each response, shown in the response headers. Off by default: "
    "seeing the model's opinion before judging can sway the judgment."
)
CHOICE_WORDS = {"tie": "Tie", "both_bad": "Both bad", "skip": "Skipped"}

#: running score jobs: parentless (a view closed meanwhile must not destroy a running QThread), kept here until
#: they end
_LIVE_JOBS: set[JobThread] = set()


def _format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def _preview(text: Text, limit: int = 160) -> str:
    flat = " ".join(text.text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class GuidelinesPanel(QWidget):
    """The project's labelling guidelines (Markdown): read, edit, save."""

    saved = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(220)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        card = Card("Guidelines", "G")
        layout.addWidget(card)
        self.view = SafeTextBrowser()
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Write the labelling guidelines here (Markdown).")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.editor)
        card.set_body(self.stack)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(10, 6, 10, 10)
        self.edit_button = QPushButton("Edit")
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("Primary")
        self.cancel_button = QPushButton("Cancel")
        for b in (self.edit_button, self.save_button, self.cancel_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.save_button)
        card.body.addLayout(buttons)
        self.edit_button.clicked.connect(self.start_editing)
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.cancel)
        self._text = ""
        self._show_view()

    def set_text(self, text: str) -> None:
        self._text = text or ""
        shown = self._text.strip() or (
            "*No guidelines yet.* Click **Edit** to write them; they are saved in the project."
        )
        self.view.set_text(shown)
        self._show_view()

    def text(self) -> str:
        return self._text

    def start_editing(self) -> None:
        self.editor.setPlainText(self._text)
        self.stack.setCurrentWidget(self.editor)
        self.edit_button.hide()
        self.save_button.show()
        self.cancel_button.show()
        self.editor.setFocus()

    def is_editing(self) -> bool:
        return self.stack.currentWidget() is self.editor

    def save(self) -> None:
        text = self.editor.toPlainText()
        self.set_text(text)
        self.saved.emit(text)

    def cancel(self) -> None:
        self._show_view()

    def _show_view(self) -> None:
        self.stack.setCurrentWidget(self.view)
        self.edit_button.show()
        self.save_button.hide()
        self.cancel_button.hide()


class RankPanel(QWidget):
    """All of a prompt's responses in one list, best first; reorder by keys or drag."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        left = Card("Ranking, best first", "Alt+↑ / Alt+↓ · 1–9")
        self.list = QListWidget()
        self.list.setObjectName("RankList")
        self.list.setWordWrap(True)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        left.set_body(self.list)
        self.hint = QLabel(
            "Select with ↑ ↓ or the mouse · move with Alt+↑ ↓, a number key or drag · "
            "Ctrl+Enter submits · Esc goes back to pairs"
        )
        self.hint.setObjectName("Muted")
        self.hint.setWordWrap(True)
        self.hint.setContentsMargins(12, 4, 12, 4)
        left.body.addWidget(self.hint)
        right = Card("Selected response")
        self.preview = SafeTextBrowser()
        right.set_body(self.preview)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter)
        self._texts: dict[int, Text] = {}
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.model().rowsMoved.connect(lambda *_: self._renumber())

    def set_responses(self, responses: list[tuple[int, Text]]) -> None:
        self._texts = dict(responses)
        self.list.clear()
        for rid, text in responses:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, rid)
            item.setToolTip(tooltip(_preview(text, 600)))
            self.list.addItem(item)
        self._renumber()
        if self.list.count():
            self.list.setCurrentRow(0)

    def order(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def move_current(self, delta: int) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        self.place_current(row + delta)

    def place_current(self, target: int) -> None:
        """Move the selected response to position ``target`` (0-based), keeping it selected."""
        row = self.list.currentRow()
        target = max(0, min(self.list.count() - 1, target))
        if row < 0 or row == target:
            return
        item = self.list.takeItem(row)
        self.list.insertItem(target, item)
        self.list.setCurrentRow(target)
        self._renumber()

    def _renumber(self) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            rid = item.data(Qt.ItemDataRole.UserRole)
            text = self._texts.get(rid)
            item.setText(f"{i + 1}.  {_preview(text) if text else ''}")

    def _on_current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if current is None:
            return
        text = self._texts.get(current.data(Qt.ItemDataRole.UserRole))
        if text is not None:
            self.preview.set_text(text)


class LabelView(QWidget):
    """Judge comparisons for one annotator in one project."""

    message = Signal(str)  # a short status-bar message
    judged = Signal()  # a judgment (or a ranking) was committed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LabelView")
        self.session = LabelSession()
        self.rank_mode = False
        self.diff_mode = False
        self.score_hint = settings.value("label/score_hint", False) in (True, "true", "True", 1, "1")
        self.hint_scores: dict | None = None  # the scores shown by the hint (for tests and tooltips)
        self._done = 0
        self._total = 0
        self._batch: tuple[int, int] | None = None  # (done, assigned) of an assigned work package
        self._active = False
        self._response_count = 0
        #: how the "score_unlabelled" job runs (tests may run it in this process)
        self.score_runner: JobRunner = training_job("score_unlabelled", SCORE_JOB_TIMEOUT_S)
        self.score_job: JobThread | None = None
        self._score_failed: set[tuple[str, int]] = set()  # (project, run) whose scoring failed: not retried unasked
        self._build()
        self._build_actions()
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._update_clock)
        self.set_project(None)

    # The session's state, read where the view (and its tests) used to keep it.
    @property
    def project(self) -> Project | None:
        return self.session.project

    @property
    def annotator(self) -> str:
        return self.session.annotator

    @property
    def order(self) -> str:
        return self.session.order

    @property
    def current(self) -> Comparison | None:
        return self.session.current

    @property
    def previous(self) -> Judgment | None:
        """The answer being revised after an undo."""
        return self.session.previous

    @property
    def shown_at(self) -> float | None:
        return self.session.shown_at

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(14, 12, 14, 10)
        root.setSpacing(0)
        self.outer_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.outer_splitter.setChildrenCollapsible(False)
        root.addWidget(self.outer_splitter)

        main = QWidget()
        col = QVBoxLayout(main)
        col.setContentsMargins(0, 0, 10, 0)
        col.setSpacing(8)

        # Header: where we are and how the queue runs.
        head = QHBoxLayout()
        head.setSpacing(10)
        self.position_label = QLabel("")
        self.position_label.setObjectName("Section")
        head.addWidget(self.position_label)
        self.flag_badge = QLabel("⚑ flagged")
        self.flag_badge.setStyleSheet(f"color: {style.PREVIOUS}; font-weight: 600;")
        self.flag_badge.hide()
        head.addWidget(self.flag_badge)
        head.addStretch(1)
        order_label = QLabel("Queue")
        order_label.setObjectName("Muted")
        head.addWidget(order_label)
        self.order_combo = QComboBox()
        self.order_combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.order_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        head.addWidget(self.order_combo)
        self.diff_button = KeyButton("Word diff", "D", object_name="Toggle")
        self.rank_button = KeyButton("Rank all", "R", object_name="Toggle")
        self.guide_button = KeyButton("Guidelines", "G", object_name="Toggle")
        for b in (self.diff_button, self.rank_button, self.guide_button):
            b.setCheckable(True)
            head.addWidget(b)
        col.addLayout(head)

        self.banner = QLabel("")
        self.banner.setObjectName("Banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        col.addWidget(self.banner)

        # Prompt above, the two responses (or the ranking) below.
        self.prompt_card = Card("Prompt")
        self.prompt_view = SafeTextBrowser()
        self.prompt_card.set_body(self.prompt_view)
        col.addWidget(self.prompt_card)

        self.left_card = Card("Left", "1 · ←")
        self.left_view = self.left_card.set_body(SafeTextBrowser())
        self.right_card = Card("Right", "2 · →")
        self.right_view = self.right_card.set_body(SafeTextBrowser())
        self.pair_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.pair_splitter.setChildrenCollapsible(False)
        self.pair_splitter.setHandleWidth(10)
        self.pair_splitter.addWidget(self.left_card)
        self.pair_splitter.addWidget(self.right_card)
        self.rank_panel = RankPanel()
        self.body_stack = QStackedWidget()
        self.body_stack.addWidget(self.pair_splitter)
        self.body_stack.addWidget(self.rank_panel)
        self.empty_label = QLabel("")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setObjectName("Subtitle")
        self.empty_label.setWordWrap(True)
        self.body_stack.addWidget(self.empty_label)
        col.addWidget(self.body_stack, 1)

        # Choices: left under left, right under right, the others (or, ranking, the submit) in the middle.
        self.submit_rank_button = KeyButton("Submit ranking", "Ctrl+Enter", object_name="Primary")
        self.submit_rank_button.setMaximumWidth(340)
        self.choices = ChoiceRow(
            ("◀  Left is better", "1 · ←"), ("Right is better  ▶", "2 · →"), middle=self.submit_rank_button
        )
        self.left_button, self.right_button = self.choices.first_button, self.choices.second_button
        self.tie_button, self.bad_button = self.choices.tie_button, self.choices.bad_button
        col.addWidget(self.choices)

        # Strength, and the secondary actions.
        row = QHBoxLayout()
        row.setSpacing(0)
        self.strength_label = QLabel("Strength")
        self.strength_label.setObjectName("Muted")
        row.addWidget(self.strength_label)
        row.addSpacing(8)
        self.strength_group = QButtonGroup(self)
        self.strength_group.setExclusive(True)
        self.strength_buttons: dict[int, QPushButton] = {}
        for level in (1, 2, 3, 4):
            button = QPushButton(STRENGTH_LABELS[level])
            button.setObjectName("Strength")
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            tip = f"{STRENGTHS[level].capitalize()} (Alt+{level})"
            button.setToolTip(tip + ("; or hold Shift with 1 / 2 / ← / →" if level == 4 else ""))
            self.strength_group.addButton(button, level)
            self.strength_buttons[level] = button
            row.addWidget(button)
        row.addStretch(1)
        self.skip_button = KeyButton("Skip", "S", object_name="Secondary")
        self.note_button = KeyButton("Note", "N", object_name="Secondary")
        self.flag_button = KeyButton("Flag", "F", object_name="Secondary")
        self.flag_button.setCheckable(True)
        self.undo_button = KeyButton("Undo", "Ctrl+Z", object_name="Secondary")
        for b in (self.skip_button, self.note_button, self.flag_button, self.undo_button):
            row.addSpacing(6)
            row.addWidget(b)
        col.addLayout(row)

        # The note, inline: Enter keeps it for this comparison, Esc leaves it as it was.
        self.note_row = QWidget()
        note_layout = QHBoxLayout(self.note_row)
        note_layout.setContentsMargins(0, 0, 0, 0)
        note_caption = QLabel("Note")
        note_caption.setObjectName("Muted")
        note_layout.addWidget(note_caption)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("A note saved with this judgment · Enter keeps it · Esc cancels")
        self.note_edit.setClearButtonEnabled(True)
        note_layout.addWidget(self.note_edit, 1)
        self.note_row.hide()
        col.addWidget(self.note_row)
        self.note_label = plain(QLabel(""))
        self.note_label.setObjectName("Muted")
        self.note_label.setWordWrap(True)
        self.note_label.hide()
        col.addWidget(self.note_label)

        # Progress.
        prog = QHBoxLayout()
        prog.setSpacing(10)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setFixedHeight(6)
        self.progress_bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        prog.addWidget(self.progress_bar, 1)
        # What the model queue waits for (the comparisons the latest run has not scored), or why it failed:
        # in the status line, so that the comparison on screen does not move when it appears.
        self.scoring_label = QLabel("")
        self.scoring_label.setObjectName("Muted")
        self.scoring_label.hide()
        prog.addWidget(self.scoring_label)
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("Progress")
        prog.addWidget(self.progress_label)
        col.addLayout(prog)

        self.outer_splitter.addWidget(main)
        self.guidelines = GuidelinesPanel()
        self.outer_splitter.addWidget(self.guidelines)
        self.outer_splitter.setStretchFactor(0, 4)
        self.outer_splitter.setStretchFactor(1, 1)

        # Wiring.
        self.choices.chosen.connect(self._on_choices_chosen)
        self.strength_group.idClicked.connect(self.set_strength)
        self.skip_button.clicked.connect(self.skip)
        self.note_button.clicked.connect(self.start_note)
        self.flag_button.clicked.connect(lambda: self.toggle_flag())
        self.undo_button.clicked.connect(self.undo)
        self.submit_rank_button.clicked.connect(self.submit_ranking)
        self.diff_button.toggled.connect(self.set_diff)
        self.rank_button.toggled.connect(self.set_rank_mode)
        self.guide_button.toggled.connect(self.set_guidelines_visible)
        self.order_combo.currentIndexChanged.connect(self._on_order_changed)
        self.note_edit.returnPressed.connect(self.finish_note)
        self.note_edit.installEventFilter(self)
        self.guidelines.saved.connect(self._on_guidelines_saved)
        self.submit_rank_button.hide()
        self._update_strength()

    def _build_actions(self) -> None:
        """One QAction per key; window-wide; handlers dispatch on the mode."""
        self.actions_by_name: dict[str, QAction] = {}

        # handler() for an action; handler(checked) for a checkable one
        def make(
            name: str, text: str, keys: list[str], handler: Callable[..., object], checkable: bool = False
        ) -> QAction:
            action = QAction(text, self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setAutoRepeat(False)
            action.setCheckable(checkable)
            if checkable:
                action.toggled.connect(handler)
            else:
                action.triggered.connect(lambda _checked=False: handler())
            self.addAction(action)
            self.actions_by_name[name] = action
            return action

        # "1" and "←" are separate actions: in rank mode the number places the selected response,
        # while the arrow does nothing.
        make("left", "Left is better", ["1"], lambda: self._on_number(1, side="left"))
        make("right", "Right is better", ["2"], lambda: self._on_number(2, side="right"))
        make("left_arrow", "Left is better (arrow)", ["Left"], lambda: self.choose("left"))
        make("right_arrow", "Right is better (arrow)", ["Right"], lambda: self.choose("right"))
        make("left_much", "Left is much better", ["Shift+1", "Shift+Left"], lambda: self.choose("left", much=True))
        make("right_much", "Right is much better", ["Shift+2", "Shift+Right"], lambda: self.choose("right", much=True))
        for n in range(3, 10):
            make(f"place_{n}", f"Place at rank {n}", [str(n)], lambda n=n: self._on_number(n))
        make("tie", "Tie", ["="], lambda: self.commit("tie"))
        make("both_bad", "Both bad", ["0"], lambda: self.commit("both_bad"))
        make("skip", "Skip", ["S"], self.skip)
        make("undo", "Undo Last Judgment", ["Ctrl+Z"], self.undo)
        make("note", "Note…", ["N"], self.start_note)
        make("flag", "Flag for Review", ["F"], self.toggle_flag)
        for level in (1, 2, 3, 4):
            make(
                f"strength_{level}",
                f"Strength: {STRENGTHS[level]}",
                [f"Alt+{level}"],
                lambda level=level: self.set_strength(level),
            )
        make("diff", "Word Diff", ["D"], lambda: self.diff_button.toggle())
        make("rank", "Rank All Responses", ["R"], lambda: self.rank_button.toggle())
        make("guidelines", "Guidelines Panel", ["G"], lambda: self.guide_button.toggle())
        hint = make("score_hint", "Model Score Hint", [], self.set_score_hint, checkable=True)
        hint.setToolTip(SCORE_HINT_TIP)
        hint.setStatusTip(SCORE_HINT_TIP)
        with QSignalBlocker(hint):
            hint.setChecked(self.score_hint)
        make("rank_up", "Move Up in Ranking", ["Alt+Up"], lambda: self.rank_panel.move_current(-1))
        make("rank_down", "Move Down in Ranking", ["Alt+Down"], lambda: self.rank_panel.move_current(1))
        make("rank_submit", "Submit Ranking", ["Ctrl+Return", "Ctrl+Enter"], self.submit_ranking)
        make("rank_cancel", "Back to Pairs", ["Escape"], lambda: self.rank_button.setChecked(False))
        self._update_enabled()

    def menu_actions(self) -> dict[str, QAction]:
        """The actions the main window puts in its menus."""
        return self.actions_by_name

    # ------------------------------------------------------------------ project and annotator
    def set_project(self, project: Project | None) -> None:
        self.session.set_project(project)
        self.rank_mode = False
        with QSignalBlocker(self.rank_button):
            self.rank_button.setChecked(False)
        if project is None:
            self._clock.stop()
            self._show_empty("Open a project to start labelling.")
            self._update_enabled()
            return
        self.guidelines.set_text(project.guidelines)
        self._fill_orders()
        self._restore_layout()
        self._total = project.comparison_count()
        if self.annotator:
            self.load_next()
        self._clock.start()
        self._score_unlabelled_if_needed(asked=False)

    def set_annotator(self, name: str) -> None:
        self.session.set_annotator(name)
        if self.project is not None:
            self.load_next()

    def set_active(self, active: bool) -> None:
        """The main window says whether this view is the one on screen."""
        self._active = active
        if active and self.project is not None:  # a run may have finished meanwhile
            self._fill_orders()
            self._update_score_hint()
            self._score_unlabelled_if_needed(asked=False)
        self._update_enabled()

    def refresh(self) -> None:
        """Data changed elsewhere (an import): re-read totals and fill an empty screen."""
        if self.project is None:
            return
        self._total = self.project.comparison_count()
        self._fill_orders()
        if self.current is None:
            self.load_next()
        else:
            self._update_progress()
        self._score_unlabelled_if_needed(asked=False)  # an import adds comparisons the run has not scored

    # ------------------------------------------------------------------ the queue
    def _fill_orders(self) -> None:
        """All orders; the model's two are enabled once a run has scored pairs (a tooltip says why not)."""
        scored = self.project is not None and self.project.has_pair_scores()
        orders = list(ORDER_LABELS)
        available = [k for k in orders if scored or k not in MODEL_ORDERS]
        saved = str(settings.value("label/order", "new") or "new")
        with QSignalBlocker(self.order_combo):
            self.order_combo.clear()
            model = self.order_combo.model()
            assert isinstance(model, QStandardItemModel)  # a QComboBox's own model
            for i, key in enumerate(orders):
                self.order_combo.addItem(ORDER_LABELS[key], key)
                enabled = key in available
                self.order_combo.setItemData(
                    i, ORDER_TIPS[key] if enabled else NO_SCORES_TIP, Qt.ItemDataRole.ToolTipRole
                )
                model.item(i).setEnabled(enabled)
            self.session.order = saved if saved in available else "new"
            self.order_combo.setCurrentIndex(orders.index(self.order))
        self.order_combo.setToolTip(
            "The order comparisons come in"
            + ("" if scored else ". Model-uncertain and model-disagrees orders need a trained model (Train view)")
        )

    def model_orders_enabled(self) -> bool:
        model = self.order_combo.model()
        assert isinstance(model, QStandardItemModel)  # a QComboBox's own model
        return all(model.item(self.order_combo.findData(k)).isEnabled() for k in MODEL_ORDERS)

    def _on_order_changed(self, index: int) -> None:
        key = self.order_combo.itemData(index)
        if not key or key == self.order:
            return
        self.session.order = key
        settings.set_value("label/order", key)
        if self.project is not None and self.previous is None:
            self.load_next()
        self._score_unlabelled_if_needed(asked=True)

    def set_order(self, key: str) -> None:
        index = self.order_combo.findData(key)
        if index >= 0:
            self.order_combo.setCurrentIndex(index)

    def load_next(self) -> None:
        if not self.session.ready:
            return
        if self.session.next() is None:
            done, total = self.session.position()
            self._done, self._total = done, total
            if total == 0:
                self._show_empty("No comparisons yet.\nImport a data file in the Data view (Ctrl+I).")
            else:
                self._show_empty(
                    f"All done: you have answered all {total:,} comparisons.\nCtrl+Z brings back your last answer."
                )
            self._update_progress()
            self._update_enabled()
            return
        self._show_current()

    def show_comparison(self, comparison_id: int, previous: Judgment | None = None) -> None:
        """Show a comparison; ``previous`` is the answer being revised (after an undo)."""
        self.session.show(comparison_id, previous)
        self._show_current()

    def _show_current(self) -> None:
        """Render the session's current comparison, with its pending note, flag and strength."""
        comp, previous = self.current, self.previous
        assert comp is not None and self.project is not None  # the session has just shown (or kept) a comparison
        self.note_row.hide()
        self._response_count = self.project.response_count(comp.prompt_id)
        if self.rank_mode and self._response_count < 3:
            self.set_rank_mode(False)
        self._render()
        self._update_score_hint()
        self._show_previous(previous)
        self._update_pending()
        self._update_progress()
        self._update_enabled()
        self._update_clock()

    def _render(self) -> None:
        comp = self.current
        assert comp is not None  # every caller has a current comparison
        font = style.reading_font(self.font())
        self.prompt_view.setDocument(build_document(comp.prompt, font, self.prompt_view))
        self._fit_prompt()
        if comp.prompt.messages:  # a conversation: its last turn matters most, so show the end
            bar = self.prompt_view.verticalScrollBar()
            bar.setValue(bar.maximum())
        if self.rank_mode:
            self._fill_rank()
            self.body_stack.setCurrentWidget(self.rank_panel)
            return
        left_text, right_text = self.session.sides()
        if self.diff_mode:
            l_runs, r_runs = word_diff(left_text.text, right_text.text)
            self.left_view.setDocument(build_diff_document(l_runs, font, self.left_view))
            self.right_view.setDocument(build_diff_document(r_runs, font, self.right_view))
        else:
            self.left_view.setDocument(build_document(left_text, font, self.left_view))
            self.right_view.setDocument(build_document(right_text, font, self.right_view))
        self.body_stack.setCurrentWidget(self.pair_splitter)

    def _fit_prompt(self) -> None:
        """The prompt takes the height it needs, up to a third of the view; longer ones scroll."""
        doc = self.prompt_view.document()
        width = max(200, self.prompt_view.viewport().width())
        doc.setTextWidth(width)
        needed = int(doc.size().height()) + self.prompt_card.header.sizeHint().height() + 6
        limit = max(90, int(self.height() * 0.33))
        self.prompt_card.setFixedHeight(max(70, min(needed, limit)))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.current is not None:
            self._fit_prompt()

    def _show_empty(self, text: str) -> None:
        self._update_score_hint()
        self.prompt_card.hide()
        self.empty_label.setText(text)
        self.body_stack.setCurrentWidget(self.empty_label)
        self.position_label.setText("")
        self.banner.hide()
        self.flag_badge.hide()
        self.note_label.hide()
        self.note_row.hide()

    # ------------------------------------------------------------------ answering
    def _on_number(self, n: int, side: str | None = None) -> None:
        if self.rank_mode:
            self.rank_panel.place_current(n - 1)
        elif side is not None:
            self.choose(side)

    def _on_choices_chosen(self, key: str) -> None:
        if key in ("first", "second"):
            self.choose("left" if key == "first" else "right")
        else:
            self.commit(key)

    def choose(self, screen_side: str, much: bool = False) -> None:
        """The response on ``screen_side`` ("left"/"right") is better."""
        if self.current is None or self.rank_mode:
            return
        strength = 4 if much else self.strength()
        self.commit(self.current.side(screen_side), strength)

    def skip(self) -> None:
        self.commit("skip")

    def commit(self, choice: str, strength: int | None = None) -> bool:
        """Record the judgment for the comparison on screen; show the next one only once it is stored."""
        if self.current is None or self.rank_mode:
            return False
        if self.note_row.isVisible():
            self.finish_note()
        outcome = self.session.commit(choice, strength)
        if not outcome.ok:
            if outcome.message:
                self.message.emit(outcome.message)
            return False
        self.judged.emit()
        self.load_next()
        return True

    def undo(self) -> None:
        """Take back the latest judgment still in force and show its comparison with that answer marked."""
        outcome = self.session.undo()
        if not outcome.ok:
            if outcome.message:
                self.message.emit(outcome.message)
            return
        if self.rank_mode:
            self.rank_button.setChecked(False)
        self._show_current()
        self.message.emit(outcome.message)
        self.judged.emit()

    # ------------------------------------------------------------------ strength, note, flag
    def strength(self) -> int:
        return self.session.pending.strength

    def set_strength(self, level: int) -> None:
        self.session.set_strength(level)
        self._update_strength()

    def _update_strength(self) -> None:
        button = self.strength_buttons.get(self.session.pending.strength)
        if button is not None:
            button.setChecked(True)

    def start_note(self) -> None:
        if self.current is None:
            return
        self.note_edit.setText(self.session.pending.note)
        self.note_row.show()
        self.note_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.note_edit.selectAll()

    def finish_note(self) -> None:
        self.session.set_note(self.note_edit.text())
        self._close_note()

    def cancel_note(self) -> None:
        self._close_note()

    def _close_note(self) -> None:
        self.note_row.hide()
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self._update_pending()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if (
            obj is self.note_edit
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
        ):
            self.cancel_note()
            return True
        return super().eventFilter(obj, event)

    def toggle_flag(self, value: bool | None = None) -> None:
        if self.current is None:
            return
        self.session.toggle_flag(value)
        self._update_pending()

    def _update_pending(self) -> None:
        pending = self.session.pending
        with QSignalBlocker(self.flag_button):
            self.flag_button.setChecked(pending.flag)
        self.flag_badge.setVisible(pending.flag and self.current is not None)
        if pending.note and self.current is not None:
            self.note_label.setText(f"Note: {pending.note}")
            self.note_label.show()
        else:
            self.note_label.hide()
        self._update_strength()

    def _show_previous(self, previous: Judgment | None) -> None:
        buttons = {
            "left": self.left_button,
            "right": self.right_button,
            "tie": self.tie_button,
            "both_bad": self.bad_button,
            "skip": self.skip_button,
        }
        marked = self.session.shown_side(previous.choice) if previous and self.current is not None else None
        for key, button in buttons.items():
            button.set_previous(key == marked)
        if previous is None:
            self.banner.hide()
            return
        if previous.choice in ("a", "b"):
            side = "Left" if marked == "left" else "Right"
            what = f"{side} is better ({STRENGTHS.get(previous.strength or DEFAULT_STRENGTH)})"
        else:
            what = CHOICE_WORDS.get(previous.choice or "", "no answer")
        self.banner.setText(
            f"Undone. Your previous answer was <b>{what}</b> (marked with a dashed outline). "
            "Answer again, or press Ctrl+Z to go back further."
        )
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.show()

    # ------------------------------------------------------------------ modes
    def set_diff(self, on: bool) -> None:
        self.diff_mode = bool(on)
        with QSignalBlocker(self.diff_button):
            self.diff_button.setChecked(self.diff_mode)
        if self.current is not None and not self.rank_mode:
            self._render()

    def set_rank_mode(self, on: bool) -> None:
        on = bool(on)
        if on and (self.current is None or self._response_count < 3):
            self.message.emit("Ranking needs a prompt with three or more responses.")
            on = False
        self.rank_mode = on
        with QSignalBlocker(self.rank_button):
            self.rank_button.setChecked(on)
        if self.current is not None:
            self._render()
            if on:
                self.rank_panel.list.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self._update_enabled()

    def _fill_rank(self) -> None:
        assert self.current is not None and self.project is not None  # from _render: a comparison is shown
        responses = self.project.prompt_responses(self.current.prompt_id)
        first = list(self.session.side_ids())
        by_id = dict(responses)
        ordered = [(rid, by_id[rid]) for rid in first if rid in by_id]
        ordered += [(rid, t) for rid, t in responses if rid not in first]
        self.rank_panel.set_responses(ordered)

    def submit_ranking(self) -> int:
        """Record one judgment per comparison among the ranked responses (K(K-1)/2), in one transaction."""
        if not self.rank_mode or self.current is None:
            return 0
        outcome = self.session.rank(self.rank_panel.order())
        if outcome.message:
            self.message.emit(outcome.message)
        if not outcome.ok:
            return 0
        self.set_rank_mode(False)
        self.judged.emit()
        self.load_next()
        return outcome.count

    # ------------------------------------------------------------------ model score hint
    def set_score_hint(self, on: bool) -> None:
        """Show (or hide) the latest run's scores of the two responses; remembered in the settings."""
        self.score_hint = bool(on)
        action = self.actions_by_name["score_hint"]
        if action.isChecked() != self.score_hint:
            with QSignalBlocker(action):
                action.setChecked(self.score_hint)
        settings.set_value("label/score_hint", self.score_hint)
        self._update_score_hint()
        if self.score_hint:
            self._score_unlabelled_if_needed(asked=True)

    # ------------------------------------------------------------------ scores on demand
    def _needs_model_scores(self) -> bool:
        """Whether what is on screen reads the latest run's scores of unlabelled comparisons: the
        model-uncertain order or the score hint (the model-disagrees order reads labelled pairs only)."""
        return self.order == "uncertain" or self.score_hint

    def _score_unlabelled_if_needed(self, asked: bool) -> None:
        """Start the "score_unlabelled" job when the run the model queue reads is finished, has a model and
        has not scored some comparisons (a run no longer scores them at its end). The queue serves what is
        scored (then "new first") meanwhile, and follows the new scores once they land. ``asked``: the user
        picked the order or the hint now, so a run whose scoring failed before is tried again."""
        project = self.project
        if project is None or not self._needs_model_scores() or project.read_only is not None:
            return
        if self.score_job is not None:  # one at a time; the next look after it ends picks up anything new
            return
        due = project.scores_to_compute()
        if due is None:
            return
        run_id, missing = due
        key = (str(project.path), run_id)
        if key in self._score_failed and not asked:
            return
        self._score_failed.discard(key)
        text = f"Scoring {missing:,} unlabelled comparisons with run {run_id}…"
        self.scoring_label.setText(text)
        self.scoring_label.setToolTip(
            "The model-uncertain order and the score hint need the latest run's scores of the comparisons it did "
            "not train on. They are computed in the training process (after a training run, if one is on); keep "
            "labelling meanwhile: the queue follows the scores once they are in."
        )
        self._set_scoring_look("Muted")
        self.scoring_label.show()
        self.message.emit(text)
        job = JobThread(self.score_runner, {"project": str(project.path), "run": run_id})
        _LIVE_JOBS.add(job)
        job.succeeded.connect(lambda result, path=project.path: self._on_scored(path, result))
        job.failed.connect(lambda message, key=key: self._on_score_failed(key, message))
        job.finished.connect(lambda job=job: self._on_score_job_finished(job))
        self.score_job = job
        job.start()

    def _set_scoring_look(self, name: str) -> None:
        """Muted while the job runs, the style sheet's error colour when it failed."""
        self.scoring_label.setObjectName(name)
        self.scoring_label.style().unpolish(self.scoring_label)
        self.scoring_label.style().polish(self.scoring_label)

    def _on_scored(self, path: Path, result: object) -> None:
        assert isinstance(result, dict)  # the job's {"run", "scored"}
        if self.project is None or self.project.path != path:
            return  # another project was opened meanwhile
        text = f"Scored {int(result['scored']):,} unlabelled comparisons with run {result['run']}."
        self.scoring_label.hide()
        self.message.emit(text)
        if self._needs_model_scores():
            self._fill_orders()
            if self.order == "uncertain" and self.previous is None and not self.note_row.isVisible():
                self.load_next()  # the most uncertain comparison now, not the fallback's
            else:
                self._update_score_hint()

    def _on_score_failed(self, key: tuple[str, int], message: str) -> None:
        self._score_failed.add(key)
        if self.project is None or str(self.project.path) != key[0]:
            return
        text = f"Could not score the unlabelled comparisons with run {key[1]}: {message}"
        self.scoring_label.setText(f"⚠ Scoring with run {key[1]} failed")
        self.scoring_label.setToolTip(tooltip(text + "\nPick the order again to retry."))
        self._set_scoring_look("Error")
        self.scoring_label.show()
        self.message.emit(text)

    def _on_score_job_finished(self, job: JobThread) -> None:
        _LIVE_JOBS.discard(job)
        if self.score_job is job:
            self.score_job = None
        self._score_unlabelled_if_needed(asked=False)  # comparisons imported while it ran

    def wait_for_scoring(self, timeout_ms: int = 60_000) -> bool:
        """Block until the scoring job (if any) has ended and its signals were handled (tests, closing)."""
        from PySide6.QtCore import QCoreApplication, QDeadlineTimer

        deadline = QDeadlineTimer(timeout_ms)
        while self.score_job is not None and not deadline.hasExpired():
            self.score_job.wait(50)
            QCoreApplication.processEvents()
        return self.score_job is None

    def _update_score_hint(self) -> None:
        """The scores in the response cards' headers (muted, right-aligned), or nothing."""
        self.hint_scores = None
        cards = (self.left_card, self.right_card)
        comp = self.current
        if not self.score_hint or comp is None or self.project is None:
            for card in cards:
                card.extra.setText("")
                card.extra.setToolTip("")
            return
        scores = self.project.latest_pair_scores(comp.id)
        if scores is None:
            for card in cards:
                card.extra.setText("model: no score")
                card.extra.setToolTip("No trained run has scored this comparison yet (Train view)")
            return
        r_a, r_b = scores["r_a"], scores["r_b"]
        r_left, r_right = (r_a, r_b) if comp.left == "a" else (r_b, r_a)
        margin = abs(r_left - r_right)
        prefers = "left" if r_left > r_right else "right" if r_right > r_left else None
        self.hint_scores = {**scores, "left": r_left, "right": r_right, "prefers": prefers, "margin": margin}
        tip = (
            f"Run {scores['run_id']} (step {scores['step']}) scores the left response {r_left:+.3f} and the "
            f"right {r_right:+.3f}: "
            + (f"it prefers the {prefers} one by {margin:.3f}." if prefers else "no preference.")
            + "\n"
            + SCORE_HINT_TIP
        )
        for card, side, value in ((self.left_card, "left", r_left), (self.right_card, "right", r_right)):
            text = f"model {value:+.3f}"
            if prefers == side:
                text += f"  ·  preferred by {margin:.3f}"
            card.extra.setText(text)
            card.extra.setToolTip(tooltip(tip))

    def set_guidelines_visible(self, on: bool) -> None:
        self.guidelines.setVisible(bool(on))
        with QSignalBlocker(self.guide_button):
            self.guide_button.setChecked(bool(on))
        settings.set_value("label/guidelines_visible", bool(on))

    def _on_guidelines_saved(self, text: str) -> None:
        outcome = self.session.save_guidelines(text)
        if outcome.message:
            self.message.emit(outcome.message)

    # ------------------------------------------------------------------ state shown
    def _update_enabled(self) -> None:
        has_item = self.current is not None and self.project is not None
        live = self._active and self.project is not None
        pair = live and has_item and not self.rank_mode
        rank = live and has_item and self.rank_mode
        a = self.actions_by_name
        for name in ("left", "right"):
            a[name].setEnabled(pair or rank)
        for n in range(3, 10):
            a[f"place_{n}"].setEnabled(rank)
        for name in ("left_arrow", "right_arrow", "left_much", "right_much", "tie", "both_bad", "skip", "diff"):
            a[name].setEnabled(pair)
        for name in ("note", "flag"):
            a[name].setEnabled(live and has_item)
        for level in (1, 2, 3, 4):
            a[f"strength_{level}"].setEnabled(pair)
        a["undo"].setEnabled(live)
        a["guidelines"].setEnabled(live)
        a["rank"].setEnabled(live and has_item and (self._response_count >= 3 or self.rank_mode))
        for name in ("rank_up", "rank_down", "rank_submit", "rank_cancel"):
            a[name].setEnabled(rank)
        for b in (self.left_button, self.right_button, self.tie_button, self.bad_button, self.skip_button):
            b.setEnabled(has_item and not self.rank_mode)
        for button in self.strength_buttons.values():
            button.setEnabled(has_item and not self.rank_mode)
        self.note_button.setEnabled(has_item)
        self.flag_button.setEnabled(has_item)
        self.undo_button.setEnabled(self.project is not None)
        self.diff_button.setEnabled(has_item and not self.rank_mode)
        self.rank_button.setEnabled(has_item and (self._response_count >= 3 or self.rank_mode))
        self.rank_button.setToolTip(
            f"Rank all {self._response_count} responses of this prompt (R)"
            if self._response_count >= 3
            else "Ranking needs a prompt with three or more responses"
        )
        for b in (self.left_button, self.right_button, self.tie_button, self.bad_button):
            b.setVisible(not self.rank_mode)
        self.submit_rank_button.setVisible(self.rank_mode)
        self.strength_label.setVisible(not self.rank_mode)
        for button in self.strength_buttons.values():
            button.setVisible(not self.rank_mode)
        self.prompt_card.setVisible(has_item)

    def _update_progress(self) -> None:
        if self.project is None or not self.annotator:
            return
        done, total = self.session.position()
        self._done, self._total = done, total
        self._batch = self.session.batch()
        self.progress_bar.setMaximum(max(1, total))
        self.progress_bar.setValue(min(done, total))
        if self.current is not None:
            where = f"Comparison #{self.current.id}"
            self.position_label.setText(f"{where}  ·  item {min(done + 1, total):,} of {total:,}")
        self._update_clock()

    def _update_clock(self) -> None:
        if self.project is None:
            return
        elapsed = max(1.0, time.time() - self.session.started)
        rate = self.session.judgments * 3600.0 / max(elapsed, 60.0)
        parts = [f"{self._done:,} / {self._total:,} done", f"{rate:.0f} per hour this session"]
        batch = self._batch
        if batch is not None:  # an assigned work package (workbench assign)
            parts.insert(0, f"your batch: {batch[0]:,} of {batch[1]:,}")
        if self.current is not None and self.shown_at is not None:
            parts.append(f"{_format_duration(time.time() - self.shown_at)} on this item")
        self.progress_label.setText("  ·  ".join(parts))

    # ------------------------------------------------------------------ layout memory
    def _restore_layout(self) -> None:
        sizes = settings.int_list("label/outer_splitter")
        if sizes and len(sizes) == 2:
            self.outer_splitter.setSizes(sizes)
        else:
            self.outer_splitter.setSizes([1000, 280])
        sizes = settings.int_list("label/pair_splitter")
        if sizes and len(sizes) == 2:
            self.pair_splitter.setSizes(sizes)
        visible = settings.value("label/guidelines_visible", None)
        if visible is None:  # by default only where the responses keep enough width
            window = self.window()
            visible = (window.width() if window is not None else self.width()) >= 1500
        if isinstance(visible, str):
            visible = visible.lower() == "true"
        self.set_guidelines_visible(bool(visible))

    def save_layout(self) -> None:
        if self.guidelines.isVisible():
            settings.set_value("label/outer_splitter", self.outer_splitter.sizes())
        settings.set_value("label/pair_splitter", self.pair_splitter.sizes())
