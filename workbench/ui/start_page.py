"""The page shown when no project is open: recent projects, create, open, open the demo."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from workbench.ui import settings
from workbench.ui.safe_text import tooltip


class StartPage(QWidget):
    open_requested = Signal(str)
    new_requested = Signal()
    browse_requested = Signal()
    demo_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("StartPage")
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        col = QVBoxLayout()
        col.setSpacing(10)
        col.addStretch(1)
        title = QLabel("Preference Workbench")
        title.setObjectName("Title")
        col.addWidget(title)
        subtitle = QLabel("Label preference pairs, train a reward model, and inspect what it gets wrong.")
        subtitle.setObjectName("Subtitle")
        subtitle.setWordWrap(True)
        col.addWidget(subtitle)
        col.addSpacing(16)

        actions = QHBoxLayout()
        actions.setSpacing(8)
        self.new_button = QPushButton("New project…")
        self.open_button = QPushButton("Open project…")
        self.demo_button = QPushButton("Open the demo project")
        self.demo_button.setObjectName("Primary")
        for b in (self.demo_button, self.new_button, self.open_button):
            b.setMinimumHeight(34)
            actions.addWidget(b)
        actions.addStretch(1)
        col.addLayout(actions)
        col.addSpacing(14)

        recent_title = QLabel("Recent projects")
        recent_title.setObjectName("Section")
        col.addWidget(recent_title)
        self.recent = QListWidget()
        self.recent.setObjectName("Recent")
        self.recent.setMinimumHeight(180)
        self.recent.setMaximumHeight(340)
        col.addWidget(self.recent)
        self.empty = QLabel("No recent projects yet. Start with the demo, or create a project and import data.")
        self.empty.setObjectName("Muted")
        self.empty.setWordWrap(True)
        col.addWidget(self.empty)
        col.addStretch(2)

        holder = QWidget()
        holder.setLayout(col)
        holder.setMinimumWidth(560)
        holder.setMaximumWidth(720)
        outer.addWidget(holder, 3)
        outer.addStretch(1)

        self.new_button.clicked.connect(self.new_requested)
        self.open_button.clicked.connect(self.browse_requested)
        self.demo_button.clicked.connect(self.demo_requested)
        self.recent.itemActivated.connect(self._on_activated)
        self.refresh()

    def refresh(self) -> None:
        self.recent.clear()
        for path in settings.recent_projects():
            p = Path(path)
            item = QListWidgetItem(f"{p.stem}\n{p.parent}")
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(tooltip(path))
            if not p.exists():
                item.setText(f"{p.stem}  (missing)\n{p.parent}")
                item.setForeground(Qt.GlobalColor.gray)
            self.recent.addItem(item)
        has = self.recent.count() > 0
        self.recent.setVisible(has)
        self.empty.setVisible(not has)
        if has:
            self.recent.setCurrentRow(0)

    def _on_activated(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(item.data(Qt.ItemDataRole.UserRole))
