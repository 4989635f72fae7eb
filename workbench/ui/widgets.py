"""Small building blocks shared by the views."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

W = TypeVar("W", bound=QWidget)


class KeyHint(QLabel):
    """A key shown as a small badge, e.g. ``1 · ←``."""

    def __init__(self, keys: str, parent: QWidget | None = None):
        super().__init__(keys, parent)
        self.setObjectName("KeyHint")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)


class KeyButton(QPushButton):
    """A push button that shows its keyboard shortcut as a badge beside its label."""

    def __init__(self, text: str, keys: str = "", parent: QWidget | None = None, object_name: str = "Choice"):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 4, 8, 4)
        layout.setSpacing(8)
        self.label = QLabel(text, self)
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout.addStretch(1)
        layout.addWidget(self.label)
        self.hint = KeyHint(keys, self) if keys else None
        if self.hint is not None:
            layout.addWidget(self.hint)
        layout.addStretch(1)
        self.setAccessibleName(text)
        self.setToolTip(f"{text} ({keys})" if keys else text)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:  # noqa: N802 - keep QPushButton's API
        self.label.setText(text)
        self.setAccessibleName(text)

    def text(self) -> str:
        return self.label.text()

    def sizeHint(self) -> QSize:  # noqa: N802
        layout = self.layout()
        assert layout is not None  # the QHBoxLayout made in __init__
        hint = layout.sizeHint()
        return QSize(hint.width() + 8, max(hint.height() + 6, 36))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.sizeHint()

    def set_previous(self, previous: bool) -> None:
        """Mark the answer given before an undo."""
        value = "true" if previous else "false"
        if self.property("previous") == value:
            return
        self.setProperty("previous", value)
        self.style().unpolish(self)
        self.style().polish(self)


class ChoiceRow(QWidget):
    """The answers to a pairwise comparison: the first response's button under it, the second's under the
    second, tie and both bad between them (and an optional ``middle`` widget, e.g. a submit button)."""

    chosen = Signal(str)  # "first", "second", "tie" or "both_bad"

    def __init__(
        self,
        first: tuple[str, str],
        second: tuple[str, str],
        middle: QWidget | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        self.first_button = KeyButton(*first)
        self.tie_button = KeyButton("Tie", "=")
        self.bad_button = KeyButton("Both bad", "0")
        self.second_button = KeyButton(*second)
        row.addWidget(self.first_button, 3)
        row.addStretch(1)
        row.addWidget(self.tie_button, 2)
        row.addWidget(self.bad_button, 2)
        if middle is not None:
            row.addWidget(middle, 3)
        row.addStretch(1)
        row.addWidget(self.second_button, 3)
        for key, button in self.buttons().items():
            button.clicked.connect(lambda _checked=False, key=key: self.chosen.emit(key))

    def buttons(self) -> dict[str, KeyButton]:
        return {
            "first": self.first_button,
            "tie": self.tie_button,
            "both_bad": self.bad_button,
            "second": self.second_button,
        }


class Card(QFrame):
    """A white rounded panel with a title row and a body."""

    def __init__(self, title: str = "", keys: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Card")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(1, 1, 1, 1)
        outer.setSpacing(0)
        self.header = QWidget(self)
        head = QHBoxLayout(self.header)
        head.setContentsMargins(14, 8, 10, 0)
        head.setSpacing(8)
        self.title = QLabel(title, self.header)
        self.title.setObjectName("CardTitle")
        head.addWidget(self.title)
        self.hint = KeyHint(keys, self.header) if keys else None
        if self.hint is not None:
            head.addWidget(self.hint)
        head.addStretch(1)
        self.extra = QLabel("", self.header)
        self.extra.setObjectName("Muted")
        head.addWidget(self.extra)
        outer.addWidget(self.header)
        self.body = QVBoxLayout()
        self.body.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(self.body, 1)

    def set_body(self, widget: W) -> W:
        self.body.addWidget(widget)
        return widget
