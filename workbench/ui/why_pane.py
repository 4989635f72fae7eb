"""Why the model prefers a response, and what if the texts were different (issue 12, parts 5 and 6).

``WhyPane`` shows a comparison's two responses with each sentence highlighted by how it moves the reward of
a run's model (green raises it, red lowers it, stronger colour for a larger effect, on one scale for both
responses), the two rewards and the margin. The attribution is an "attribute" job in the training process
(``training/attribution.py``: this process never imports torch), run in a worker thread, so the GUI thread
never waits on it.

"What if" makes the prompt and both responses editable: each edit, after a 400 ms pause in typing, is
re-scored by a "what_if" job (rewards, margin and attribution); nothing is stored. "Add as new response"
stores the edited response(s) as new responses of the prompt, which makes the new comparisons with the
pair's responses (``Project.add_records`` with one ``PromptRecord``), to be labelled like any other; a
read-only project cannot add. An edited prompt is a different prompt, so Add is then off.

Hosting it (the Inspect view's detail pane)::

    self.why = WhyPane(self)
    layout.addWidget(self.why)
    self.why.show_pair(project_path, run_id, comparison_id, prompt, chosen, rejected)

Texts are shown as plain text, coloured with ``QTextCharFormat`` backgrounds: no HTML from the data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from workbench.core.records import PromptRecord, Text
from workbench.core.store import Project, probe_read_only
from workbench.training import process
from workbench.ui import style
from workbench.ui.safe_text import SafeDocument, SafeTextBrowser, plain

#: pause in typing before a what-if edit is re-scored
DEBOUNCE_MS = 400
#: how long a job may take (the first loads the model; later ones reuse it)
JOB_TIMEOUT_S = 300.0
#: the source recorded for responses added from the pane
ADD_SOURCE = "what-if"
_GREEN = (46, 160, 67)
#: jobs running for any pane, kept alive until their thread ends
_LIVE: set[QThread] = set()
_RED = (215, 58, 73)


class _Job(QThread):
    """One training-process job in a worker thread; its result or error comes back as a signal."""

    succeeded = Signal(int, object)  # generation, result
    failed = Signal(int, str)

    def __init__(self, generation: int, fn: Callable[[], object], parent: QObject | None = None):
        super().__init__(parent)
        self.generation, self.fn = generation, fn

    def run(self) -> None:  # the worker thread
        try:
            result = self.fn()
        except Exception as exc:  # noqa: BLE001 - shown in the pane, never raised into Qt
            self.failed.emit(self.generation, str(exc) or type(exc).__name__)
        else:
            self.succeeded.emit(self.generation, result)


def _shade(score: float, scale: float) -> QColor:
    """The background for ``score``: white blended toward green (positive) or red, by |score| / scale."""
    strength = min(1.0, abs(score) / scale) if scale > 0 else 0.0
    r, g, b = _GREEN if score > 0 else _RED
    alpha = 0.12 + 0.5 * strength if strength > 0.02 else 0.0
    return QColor(*(round(255 + (c - 255) * alpha) for c in (r, g, b)))


def _plain(value: Text | str) -> str:
    return value if isinstance(value, str) else value.text


class WhyPane(QWidget):
    """The two responses of a pair, highlighted by what raises or lowers their reward, with a what-if editor."""

    #: the result shown (the job's dict), after each attribution or what-if answer
    updated = Signal(object)
    #: a one-line error from the training process
    failed = Signal(str)
    #: the number of new comparisons "Add as new response" created
    added = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, level: str = "sentences"):
        super().__init__(parent)
        self.level = level  # "sentences" or "tokens"
        self.project_path: Path | None = None
        self.run_id: int | None = None
        self.comparison_id: int | None = None
        self._original: tuple[Text, Text, Text] | None = None
        self._read_only = True
        self._generation = 0
        self._jobs: list[_Job] = []
        self._pending: Callable[[], object] | None = None
        self.result: dict[str, Any] | None = None

        self.summary = plain(QLabel("No pair shown"))
        self.summary.setWordWrap(True)
        self.status = plain(QLabel(""))
        self.status.setStyleSheet(f"color: {style.MUTED};")
        legend = plain(QLabel("Green raises the reward, red lowers it; hover a sentence for its effect."))
        legend.setStyleSheet(f"color: {style.MUTED};")
        self.what_if = QCheckBox("What if")
        self.what_if.setToolTip("Edit the prompt or a response and see the new rewards; nothing is saved")
        self.what_if.toggled.connect(self._toggle_what_if)
        self.add_button = QPushButton("Add as new response")
        self.add_button.setToolTip("Store the edited response(s) for this prompt and make comparisons to label")
        self.add_button.clicked.connect(self.add_edited)
        self.add_button.setVisible(False)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.what_if)
        top.addWidget(self.add_button)

        self.editors = QWidget()
        edit_layout = QVBoxLayout(self.editors)
        edit_layout.setContentsMargins(0, 0, 0, 0)
        self.prompt_edit, self.chosen_edit, self.rejected_edit = QPlainTextEdit(), QPlainTextEdit(), QPlainTextEdit()
        for title, editor in (
            ("Prompt", self.prompt_edit),
            ("Chosen", self.chosen_edit),
            ("Rejected", self.rejected_edit),
        ):
            editor.setMaximumHeight(90)
            edit_layout.addWidget(plain(QLabel(title)))
            edit_layout.addWidget(editor)
            editor.textChanged.connect(self._edited)
        self.editors.setVisible(False)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._score_edit)

        self.views: dict[str, SafeTextBrowser] = {}
        self.titles: dict[str, QLabel] = {}
        sides = QSplitter()
        for side in ("chosen", "rejected"):
            box = QWidget()
            layout = QVBoxLayout(box)
            layout.setContentsMargins(0, 0, 0, 0)
            self.titles[side] = plain(QLabel(side.capitalize()))
            self.views[side] = SafeTextBrowser()
            layout.addWidget(self.titles[side])
            layout.addWidget(self.views[side], 1)
            sides.addWidget(box)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.editors)
        layout.addWidget(sides, 1)
        layout.addWidget(legend)
        layout.addWidget(self.status)

    # ----------------------------------------------------------------- API for the hosting view
    def show_pair(
        self,
        project_path: str | Path,
        run_id: int,
        comparison_id: int | None,
        prompt: Text | str,
        chosen: Text | str,
        rejected: Text | str,
        *,
        titles: tuple[str, str] = ("Chosen", "Rejected"),
        read_only: bool | None = None,
    ) -> None:
        """Show a pair under run ``run_id``'s model and start its attribution (in the training process).
        ``titles`` name the two sides (an unlabelled pair: "Response A", "Response B"); ``read_only``
        defaults to whether the project file can be written."""
        self.project_path, self.run_id, self.comparison_id = Path(project_path), int(run_id), comparison_id
        as_text = [v if isinstance(v, Text) else Text(v) for v in (prompt, chosen, rejected)]
        self._original = (as_text[0], as_text[1], as_text[2])
        self._read_only = probe_read_only(self.project_path) is not None if read_only is None else read_only
        self.add_button.setEnabled(False)
        self.add_button.setToolTip(
            "This project is read-only" if self._read_only else "Store the edited response(s) and make comparisons"
        )
        for side, title in zip(("chosen", "rejected"), titles):
            self.titles[side].setText(title)
        for editor, value in zip((self.prompt_edit, self.chosen_edit, self.rejected_edit), as_text):
            editor.blockSignals(True)
            editor.setPlainText(value.text)
            editor.blockSignals(False)
        self.result = None
        self.summary.setText("Scoring…")
        for side, value in zip(("chosen", "rejected"), as_text[1:]):
            self._render(side, value.text, [], 0.0)
        self._submit("attribute", *(self._model_value(v) for v in as_text))

    def clear(self) -> None:
        """Show nothing (no pair selected); a job in flight is ignored when it answers."""
        self._generation += 1
        self._pending = None
        self._original = None
        self.result = None
        self.summary.setText("No pair shown")
        self.status.setText("")
        for view in self.views.values():
            view.clear()

    def edited_texts(self) -> tuple[str, str, str]:
        return self.prompt_edit.toPlainText(), self.chosen_edit.toPlainText(), self.rejected_edit.toPlainText()

    # ----------------------------------------------------------------- jobs
    @staticmethod
    def _model_value(value: Text) -> object:
        """What the model scores: the conversation when there is one (the encoder renders it), else the text."""
        return value.messages if value.messages is not None else value.text

    def _payload(self) -> dict[str, object]:
        return {"project": str(self.project_path), "run": self.run_id}

    def _submit(self, kind: str, prompt: object, chosen: object, rejected: object) -> None:
        self._generation += 1
        payload = {**self._payload(), "prompt": prompt, "chosen": chosen, "rejected": rejected}
        if kind == "what_if":
            payload["attribute"] = True

        def call() -> object:
            return process.run_job(kind, timeout=JOB_TIMEOUT_S, **payload)

        self.status.setText("Asking the training process…")
        if any(job.isRunning() for job in self._jobs):
            self._pending = call  # one job at a time; the latest edit replaces any waiting one
            return
        self._start(call)

    def _start(self, call: Callable[[], object]) -> None:
        # No parent: a pane closed while its job runs must not destroy a running QThread (Qt aborts); the
        # job finishes on its own (the training process answers or times out) and is released then.
        job = _Job(self._generation, call)
        _LIVE.add(job)
        job.succeeded.connect(self._answered)
        job.failed.connect(self._job_failed)
        job.finished.connect(self._job_done)
        self._jobs.append(job)
        job.start()

    def _job_done(self) -> None:
        for job in [j for j in self._jobs if j.isFinished()]:
            self._jobs.remove(job)
            _LIVE.discard(job)
            job.deleteLater()
        if self._pending is not None:
            call, self._pending = self._pending, None
            self._start(call)

    def _answered(self, generation: int, result: object) -> None:
        if generation != self._generation or not isinstance(result, dict):
            return  # an older edit's answer
        self.result = result
        self.status.setText("")
        self._show(result)
        self.updated.emit(result)

    def _job_failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self.summary.setText("No rewards")
        self.status.setText(message.splitlines()[0] if message else "the job failed")
        self.failed.emit(message)

    def wait_idle(self, timeout_ms: int = 0) -> bool:
        """Wait for the worker threads (tests; closing): True when none is left running."""
        return all(job.wait(timeout_ms) if timeout_ms else job.wait() for job in list(self._jobs))

    # ----------------------------------------------------------------- showing a result
    def _show(self, result: dict[str, Any]) -> None:
        margin = result["margin"]
        a, b = self.titles["chosen"].text(), self.titles["rejected"].text()
        self.summary.setText(
            f"{a}: {result['r_chosen']:+.3f}   {b}: {result['r_rejected']:+.3f}   margin ({a} − {b}): {margin:+.3f}"
        )
        sides = [result.get(s) for s in ("chosen", "rejected")]
        spans = [[] if s is None else s[self.level] for s in sides]
        scale = max((abs(v) for side in spans for *_, v in side), default=0.0)
        texts = self.edited_texts()[1:] if self.what_if.isChecked() else [_plain(v) for v in self._original[1:]]  # type: ignore[index]
        for side, text, side_spans in zip(("chosen", "rejected"), texts, spans):
            self._render(side, text, side_spans, scale)

    def _render(self, side: str, text: str, spans: list, scale: float) -> None:
        """The response as plain text, each span's background by its score (one scale for both sides)."""
        view = self.views[side]
        doc = SafeDocument(view)
        doc.setDefaultFont(view.font())
        doc.setDocumentMargin(10)
        cursor = QTextCursor(doc)
        at = 0
        for _, start, end, score in sorted(spans, key=lambda s: s[1]):
            if start > at:
                cursor.insertText(text[at:start], QTextCharFormat())
            fmt = QTextCharFormat()
            fmt.setBackground(_shade(score, scale))
            fmt.setToolTip(f"{score:+.4f}")
            cursor.insertText(text[max(start, at) : end], fmt)
            at = max(at, end)
        if at < len(text):
            cursor.insertText(text[at:], QTextCharFormat())
        view.setDocument(doc)

    def highlighted(self, side: str) -> list[tuple[str, QColor]]:
        """(text, background) runs of a side's view as shown, adjacent runs of one colour merged and line
        breaks kept (tests, accessibility checks)."""
        runs: list[tuple[str, QColor]] = []

        def add(text: str, colour: QColor) -> None:
            if runs and runs[-1][1] == colour:
                runs[-1] = (runs[-1][0] + text, colour)
            else:
                runs.append((text, colour))

        block = self.views[side].document().begin()
        colour = QColor()
        while block.isValid():
            if block != self.views[side].document().begin():
                add("\n", colour)
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                colour = fragment.charFormat().background().color()
                add(fragment.text(), colour)
                it += 1
            block = block.next()
        return runs

    # ----------------------------------------------------------------- what if
    def _toggle_what_if(self, on: bool) -> None:
        self.editors.setVisible(on)
        self.add_button.setVisible(on)
        if not on and self._original is not None:
            for editor, value in zip((self.prompt_edit, self.chosen_edit, self.rejected_edit), self._original):
                editor.blockSignals(True)
                editor.setPlainText(value.text)
                editor.blockSignals(False)
            self._debounce.stop()
            self._submit("attribute", *(self._model_value(v) for v in self._original))
        self._update_add()

    def _edited(self) -> None:
        self._update_add()
        self._debounce.start()

    def _score_edit(self) -> None:
        if self._original is None:
            return
        prompt, chosen, rejected = self.edited_texts()
        values = []
        for edited, original in zip((prompt, chosen, rejected), self._original):
            values.append(self._model_value(original) if edited == original.text else edited)
        self._submit("what_if", *values)

    def _new_responses(self) -> list[Text]:
        """The edited responses that differ from both of the pair's responses."""
        if self._original is None:
            return []
        known = {self._original[1].text, self._original[2].text}
        out: list[Text] = []
        for edited in self.edited_texts()[1:]:
            if edited.strip() and edited not in known:
                known.add(edited)
                out.append(Text(edited))
        return out

    def _update_add(self) -> None:
        prompt_changed = self._original is not None and self.prompt_edit.toPlainText() != self._original[0].text
        self.add_button.setEnabled(not self._read_only and not prompt_changed and bool(self._new_responses()))
        if prompt_changed:
            self.add_button.setToolTip("An edited prompt is a new prompt: only edited responses can be added")

    def add_edited(self) -> int:
        """Store the edited response(s) as new responses of the prompt, with a comparison against each of the
        pair's responses (and each other); the number of new comparisons."""
        new = self._new_responses()
        if self._original is None or self.project_path is None or not new or self._read_only:
            return 0
        prompt, chosen, rejected = self._original
        record = PromptRecord(prompt, [chosen, rejected, *new], metadata={"what_if_of": self.comparison_id})
        with Project.open(self.project_path) as project:
            summary = project.add_records([record], source=ADD_SOURCE)
        self.status.setText(f"Added {summary.comparisons_added} new comparison(s) to label")
        self.add_button.setEnabled(False)
        self.added.emit(summary.comparisons_added)
        return summary.comparisons_added
