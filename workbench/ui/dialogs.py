"""Small dialogs: the annotator's name, About, and the key reference."""

from __future__ import annotations

import platform
from importlib import metadata

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QMessageBox, QVBoxLayout, QWidget

import workbench


class AnnotatorDialog(QDialog):
    """Asks who is labelling; the name is stored with every judgment."""

    def __init__(self, current: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Who is labelling?")
        self.setMinimumWidth(380)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(10)
        intro = QLabel(
            "Your name is saved with each judgment, so that the labels of several people can be "
            "told apart and compared. You can change it later from the status bar."
        )
        intro.setWordWrap(True)
        intro.setObjectName("Muted")
        layout.addWidget(intro)
        self.name_edit = QLineEdit(current)
        self.name_edit.setPlaceholderText("Your name or initials")
        self.name_edit.setMaxLength(80)
        layout.addWidget(self.name_edit)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.name_edit.textChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.name().strip()))

    def name(self) -> str:
        return self.name_edit.text().strip()

    @classmethod
    def get_name(cls, current: str = "", parent: QWidget | None = None) -> str | None:
        dialog = cls(current, parent)
        return dialog.name() if dialog.exec() == QDialog.DialogCode.Accepted and dialog.name() else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """Versions of the app and what it runs on; torch is looked up, never imported."""
    import PySide6
    from PySide6.QtCore import qVersion

    out = {
        "Preference Workbench": workbench.__version__,
        "Python": platform.python_version(),
        "Qt": qVersion(),
        "PySide6": PySide6.__version__,
    }
    for label, dist in (("pyqtgraph", "pyqtgraph"), ("torch", "torch"), ("transformers", "transformers")):
        out[label] = _version(dist) or "not installed"
    out["Platform"] = platform.platform(terse=True)
    return out


def about_text() -> str:
    rows = "".join(
        f"<tr><td style='padding-right:14px;color:#5f6771'>{k}</td><td>{v}</td></tr>" for k, v in versions().items()
    )
    return (
        "<h3 style='margin-bottom:4px'>Preference Workbench</h3>"
        "<p>Label preference pairs, train a reward model, and inspect what it gets wrong: "
        "offline, from one project file.</p>"
        f"<table>{rows}</table>"
    )


def show_about(parent: QWidget | None = None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About Preference Workbench")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text())
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box


KEYS = [
    ("1  or  ←", "the left response is better"),
    ("2  or  →", "the right response is better"),
    ("Shift + 1 / 2 / ← / →", "… much better (strength 4)"),
    ("Alt + 1 … 4", "set the strength (negligibly, slightly, better, much better)"),
    ("=", "tie"),
    ("0", "both are bad"),
    ("S", "skip"),
    ("N", "write a note (Enter keeps it)"),
    ("F", "flag for review"),
    ("Ctrl + Z", "undo the last judgment (repeatable)"),
    ("D", "word diff of the two responses"),
    ("R", "rank all responses of the prompt"),
    ("Alt + ↑ / ↓,  1 … 9", "move the selected response (ranking)"),
    ("Ctrl + Enter", "submit the ranking"),
    ("G", "show or hide the guidelines"),
]


def show_keys(parent: QWidget | None = None) -> QMessageBox:
    rows = "".join(f"<tr><td style='padding:2px 16px 2px 0'><b>{k}</b></td><td>{v}</td></tr>" for k, v in KEYS)
    box = QMessageBox(parent)
    box.setWindowTitle("Keyboard shortcuts")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(f"<h3>Labelling keys</h3><table>{rows}</table>")
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box
