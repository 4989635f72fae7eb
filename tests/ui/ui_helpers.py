"""Helpers shared by the UI tests (imported by the tests and by conftest.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from wb_testing import ANNOTATOR

from workbench.core.records import PairRecord, PromptRecord, Text

__all__ = ["ANNOTATOR", "HEAD", "activate", "pair_records", "press", "ranked_record"]
#: fast settings under which the tiny BERT learns the keyword rule of wb_testing's projects in head mode
HEAD = {"mode": "head", "learning_rate": 3e-2, "epochs": 12}


def pair_records(n: int, start: int = 0) -> list[PairRecord]:
    return [
        PairRecord(
            prompt=Text(f"Prompt {i}: explain topic number {i}."),
            response_a=Text(f"Response A{i}. The first answer to prompt {i}, with **bold** text."),
            response_b=Text(f"Response B{i}. The second answer to prompt {i}, plain."),
        )
        for i in range(start, start + n)
    ]


def ranked_record(k: int = 4) -> PromptRecord:
    return PromptRecord(
        prompt=Text("Rank these answers: what is the capital of France?"),
        responses=[Text(f"Ranked answer R{j}: " + ("Paris." if j == 0 else f"Not quite ({j}).")) for j in range(k)],
    )


def activate(qtbot, window) -> None:
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)


def press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key press delivered where a person's would go: the focused widget, else the window."""
    qtbot.keyClick(QApplication.focusWidget() or window, key, modifier)
