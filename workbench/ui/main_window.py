"""The main window: a start page when no project is open, else a side navigation over the views.

Views are plain widgets added with :meth:`MainWindow.add_view`. A view may define any of:

- ``set_project(project_or_None)``: called when a project is opened or closed (the GUI thread's
  ``Project``; a view that works in a thread opens its own ``Project(project.path)`` there);
- ``set_annotator(name)``: called when the annotator changes;
- ``set_active(bool)``: called when the view is shown or hidden (keys of hidden views stay off);
- ``save_layout()``: called before the window closes;
- a ``message`` signal of ``str``: shown in the status bar;
- ``confirm_close() -> bool``: asked before the project or the window closes (False keeps it open).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.ui import dialogs, settings
from workbench.ui.data_view import DataView
from workbench.ui.label_view import LabelView
from workbench.ui.safe_text import button_text, message_box, plain, tooltip, window_title
from workbench.ui.start_page import StartPage

if TYPE_CHECKING:
    import socket

    from PySide6.QtCore import QSocketNotifier

    from workbench.core.store import Project
    from workbench.ui.inspect_view import InspectView
    from workbench.ui.train_view import TrainView

PROJECT_FILTER = "Preference Workbench projects (*.wbp);;All files (*)"


class MainWindow(QMainWindow):
    project_changed = Signal(object)  # the open Project, or None
    annotator_changed = Signal(str)
    #: the signal wake-up socket pair and its notifier, set by ``app.quit_on_signals`` (kept as long as the window)
    _signal_wakeup: tuple[socket.socket, socket.socket, QSocketNotifier]

    def __init__(self, annotator: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preference Workbench")
        self.setMinimumSize(960, 620)
        self.project: Project | None = None
        self.annotator = (annotator or settings.annotator() or "").strip()
        if annotator:
            settings.set_annotator(annotator)
        self.views: list[tuple[str, QWidget]] = []
        self._view_actions: list[QAction] = []

        self.pages = QStackedWidget()
        self.start_page = StartPage()
        self.workspace = QWidget()
        self.workspace.setObjectName("Workspace")
        row = QHBoxLayout(self.workspace)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("Nav")
        self.nav.setFixedWidth(132)
        self.nav.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stack = QStackedWidget()
        # Shown while the open project is read-only (read-only media, no permission): writes are off.
        self.read_only_banner = QLabel("")
        self.read_only_banner.setObjectName("ReadOnlyBanner")
        self.read_only_banner.setWordWrap(True)
        self.read_only_banner.setTextFormat(Qt.TextFormat.PlainText)
        self.read_only_banner.setStyleSheet(
            "QLabel#ReadOnlyBanner { background: #fff3cd; color: #664d03; "
            "padding: 6px 10px; border-bottom: 1px solid #ffe69c; }"
        )
        self.read_only_banner.hide()
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.read_only_banner)
        column.addWidget(self.stack, 1)
        row.addWidget(self.nav)
        row.addLayout(column, 1)
        self.pages.addWidget(self.start_page)
        self.pages.addWidget(self.workspace)
        self.setCentralWidget(self.pages)

        self.label_view = LabelView()
        self.data_view = DataView()
        self._build_menus()
        self.train_view: TrainView | None = None
        self.inspect_view: InspectView | None = None
        self.add_view("Label", self.label_view)
        self.add_view("Data", self.data_view)
        self._build_status_bar()

        self.nav.currentRowChanged.connect(self._on_nav_changed)
        self.start_page.open_requested.connect(self.open_project)
        self.start_page.new_requested.connect(self.new_project)
        self.start_page.browse_requested.connect(self.browse_project)
        self.start_page.demo_requested.connect(self.open_demo)
        self.data_view.data_changed.connect(self.label_view.refresh)
        self._restore_window()
        self._show_start()

    # ------------------------------------------------------------------ views
    def add_view(self, name: str, widget: QWidget) -> int:
        """Add a view to the navigation (and the View menu, Ctrl+<n>); returns its index."""
        index = self.stack.addWidget(widget)
        item = QListWidgetItem(name)
        item.setSizeHint(QSize(0, 38))
        self.nav.addItem(item)
        self.views.append((name, widget))
        action = QAction(name, self)
        if index < 9:
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
        action.triggered.connect(lambda _=False, i=index: self.show_view(i))
        self.view_menu.insertAction(self._view_separator, action)
        self._view_actions.append(action)
        if hasattr(widget, "message"):
            widget.message.connect(self.show_message)
        if self.project is not None and hasattr(widget, "set_project"):
            widget.set_project(self.project)
        if self.annotator and hasattr(widget, "set_annotator"):
            widget.set_annotator(self.annotator)
        if hasattr(widget, "set_active"):
            widget.set_active(False)
        return index

    def show_view(self, index: int) -> None:
        if self.project is not None and 0 <= index < self.stack.count():
            self.nav.setCurrentRow(index)

    def view(self, name: str) -> QWidget | None:
        return next((w for n, w in self.views if n == name), None)

    def current_view(self) -> QWidget | None:
        return self.stack.currentWidget() if self.project is not None else None

    def install_training_views(self) -> None:
        """Add the Train and Inspect views (pyqtgraph) and wire them together; the app does this at start-up."""
        from workbench.ui.inspect_view import InspectView
        from workbench.ui.train_view import TrainView

        if self.train_view is not None:
            return
        train_view, inspect_view = TrainView(), InspectView()
        self.train_view, self.inspect_view = train_view, inspect_view
        self.add_view("Train", train_view)
        self.add_view("Inspect", inspect_view)
        train_view.pair_requested.connect(self.show_pair)
        train_view.inspect_requested.connect(lambda run_id: self.show_pair(run_id, None))
        train_view.run_ended.connect(lambda _run: inspect_view.runs_changed())
        inspect_view.labels_changed.connect(self.label_view.refresh)
        self._update_actions()

    def show_pair(self, run_id: int, comparison_id: int | None) -> None:
        """Switch to Inspect on a run (and select a pair of it)."""
        inspect_view = self.inspect_view
        assert inspect_view is not None  # only the Train view asks, and install_training_views made both
        self.show_view(self.stack.indexOf(inspect_view))
        if comparison_id is None:
            inspect_view.show_run(run_id)
        else:
            inspect_view.show_pair(run_id, comparison_id)

    def _views_allow_close(self) -> bool:
        return all(widget.confirm_close() for _, widget in self.views if hasattr(widget, "confirm_close"))

    def _on_nav_changed(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self._update_active()

    def _update_active(self) -> None:
        current = self.current_view()
        for _, widget in self.views:
            if hasattr(widget, "set_active"):
                widget.set_active(widget is current and self.project is not None)

    # ------------------------------------------------------------------ menus and status bar
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = file_menu.addAction("&New Project…", QKeySequence.StandardKey.New, self.new_project)
        self.open_action = file_menu.addAction("&Open Project…", QKeySequence.StandardKey.Open, self.browse_project)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction("Open the &Demo Project", self.open_demo)
        file_menu.addSeparator()
        self.import_action = file_menu.addAction("&Import Data…", QKeySequence("Ctrl+I"), self._import)
        self.export_pairs_action = file_menu.addAction("Export &Pairs…", self._export_pairs)
        self.export_log_action = file_menu.addAction("Export Judgment &Log…", self._export_log)
        file_menu.addSeparator()
        self.close_action = file_menu.addAction("&Close Project", QKeySequence("Ctrl+W"), self.close_project)
        file_menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

        actions = self.label_view.menu_actions()
        self._write_actions = [actions[name] for name in ("undo", "note", "flag", "skip")]
        edit = bar.addMenu("&Edit")
        edit.addAction(actions["undo"])
        edit.addSeparator()
        for name in ("note", "flag", "skip"):
            edit.addAction(actions[name])
        edit.addSeparator()
        edit.addAction("Change &Annotator…", self.change_annotator)
        self._write_actions.append(edit.addAction("Edit &Guidelines", self._edit_guidelines))

        self.view_menu = bar.addMenu("&View")
        self._view_separator = self.view_menu.addSeparator()
        for name in ("guidelines", "diff", "rank", "score_hint"):
            self.view_menu.addAction(actions[name])

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&Keyboard Shortcuts", QKeySequence("F1"), lambda: dialogs.show_keys(self))
        help_menu.addAction("&About Preference Workbench", lambda: dialogs.show_about(self))

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.project_label = plain(QLabel(""))
        self.project_label.setObjectName("Muted")
        bar.addPermanentWidget(self.project_label)
        self.annotator_button = QPushButton("")
        self.annotator_button.setObjectName("StatusButton")
        self.annotator_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.annotator_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.annotator_button.setToolTip("The name saved with your judgments; click to change it")
        self.annotator_button.clicked.connect(self.change_annotator)
        bar.addPermanentWidget(self.annotator_button)
        self._update_annotator_label()

    def show_message(self, text: str, timeout_ms: int = 6000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def _update_annotator_label(self) -> None:
        self.annotator_button.setText(
            f"Annotator: {button_text(self.annotator)}" if self.annotator else "Annotator: (not set)"
        )

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = settings.recent_projects()
        for path in paths:

            def open_recent(p: str = path) -> bool:  # p bound now: each entry opens its own path
                return self.open_project(p)

            self.recent_menu.addAction(path, open_recent)
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _update_actions(self) -> None:
        project = self.project
        has = project is not None
        for action in (
            self.import_action,
            self.export_pairs_action,
            self.export_log_action,
            self.close_action,
            *self._view_actions,
        ):
            action.setEnabled(has)
        writable = project is not None and project.read_only is None
        for action in (self.import_action, *self._write_actions):
            action.setEnabled(writable)
        if project is not None and not writable:
            self.read_only_banner.setText(
                f"Read only: {project.read_only}. You can look, export and score, but labels, imports, "
                "merges and training runs are off. Copy the project somewhere writable to change it."
            )
        self.read_only_banner.setVisible(has and not writable)

    # ------------------------------------------------------------------ annotator
    def ensure_annotator(self) -> bool:
        if self.annotator:
            return True
        name = dialogs.AnnotatorDialog.get_name(parent=self)
        if not name:
            return False
        self.set_annotator(name)
        return True

    def change_annotator(self) -> None:
        name = dialogs.AnnotatorDialog.get_name(self.annotator, parent=self)
        if name and name != self.annotator:
            self.set_annotator(name)

    def set_annotator(self, name: str) -> None:
        name = name.strip()
        if not name:
            return
        self.annotator = name
        settings.set_annotator(name)
        self._update_annotator_label()
        for _, widget in self.views:
            if hasattr(widget, "set_annotator"):
                widget.set_annotator(name)
        self.annotator_changed.emit(name)
        self.show_message(f"Labelling as {name}.")

    # ------------------------------------------------------------------ projects
    def open_project(self, path: str | Path, create: bool = False) -> bool:
        from workbench.core.store import Project, ProjectError

        if self.data_view.busy():
            self.show_message("Wait for the import or export to finish (or cancel it) first.")
            return False
        if self.project is not None and not self._views_allow_close():
            return False
        path = Path(path).expanduser()
        if not self.ensure_annotator():
            self.show_message("A project opens once you have given your name.")
            return False
        try:
            project = Project.create(path) if create else Project.open(path)
        except ProjectError as exc:
            self._warn(
                "Cannot open the project", str(exc), "Check the path, or create a new project from the File menu."
            )
            if not path.exists():
                settings.remove_recent_project(str(path.resolve()))
                self.start_page.refresh()
            return False
        except Exception as exc:  # noqa: BLE001 - sqlite and OS errors become a message
            self._warn("Cannot open the project", f"{path}: {exc}", "Is the file a Preference Workbench project?")
            return False
        self._set_project(project)
        settings.add_recent_project(path)
        self.start_page.refresh()
        return True

    def _set_project(self, project: Project | None) -> None:
        old = self.project
        self._save_layouts()
        self.project = project
        for _, widget in self.views:
            if hasattr(widget, "set_annotator") and self.annotator:
                widget.set_annotator(self.annotator)
            if hasattr(widget, "set_project"):
                widget.set_project(project)
        if old is not None:
            old.close()
        self.project_changed.emit(project)
        if project is None:
            self._show_start()
            return
        self.setWindowTitle(f"{window_title(project.name)} — Preference Workbench")
        self.project_label.setText(f"{project.name}  ·  {project.path}")
        self.project_label.setToolTip(tooltip(project.path))
        self.pages.setCurrentWidget(self.workspace)
        self.nav.setCurrentRow(0)
        self._update_active()
        self._update_actions()
        self.label_view.setFocus(Qt.FocusReason.OtherFocusReason)

    def close_project(self) -> None:
        if self.project is None:
            return
        if self.data_view.busy():
            self.show_message("Wait for the import or export to finish (or cancel it) first.")
            return
        if not self._views_allow_close():
            return
        self._set_project(None)

    def _show_start(self) -> None:
        self.setWindowTitle("Preference Workbench")
        self.project_label.setText("")
        self.start_page.refresh()
        self.pages.setCurrentWidget(self.start_page)
        self._update_active()
        self._update_actions()

    def new_project(self) -> None:
        start = str(Path(str(settings.value("data/last_dir", "") or Path.home())) / "labels.wbp")
        path, _ = QFileDialog.getSaveFileName(self, "New project", start, PROJECT_FILTER)
        if not path:
            return
        target = Path(path)
        if target.suffix == "":
            target = target.with_suffix(".wbp")
        if target.exists():
            self._warn(
                "Cannot create the project",
                f"{target}: a file already exists there.",
                "Open it instead, or choose another name.",
            )
            return
        self.open_project(target, create=True)
        if self.project is not None:
            self.show_view(self.stack.indexOf(self.data_view))
            self.show_message("New project created. Import a data file to start labelling.")

    def browse_project(self) -> None:
        start = str(settings.value("data/last_dir", "") or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open project", start, PROJECT_FILTER)
        if path:
            self.open_project(path)

    def open_demo(self) -> bool:
        from workbench.core.demo import ensure_demo_project

        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            path = ensure_demo_project()
        except Exception as exc:  # noqa: BLE001
            QApplication.restoreOverrideCursor()
            self._warn("Cannot build the demo project", str(exc), "")
            return False
        QApplication.restoreOverrideCursor()
        return self.open_project(path)

    def _warn(self, title: str, text: str, informative: str) -> QMessageBox:
        box = message_box(QMessageBox.Icon.Warning, title, text, informative, parent=self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.last_warning = box
        box.open()
        return box

    # ------------------------------------------------------------------ menu helpers
    def _import(self) -> None:
        self.show_view(self.stack.indexOf(self.data_view))
        QTimer.singleShot(0, self.data_view.choose_import)

    def _export_pairs(self) -> None:
        self.show_view(self.stack.indexOf(self.data_view))
        QTimer.singleShot(0, self.data_view.choose_export_pairs)

    def _export_log(self) -> None:
        self.show_view(self.stack.indexOf(self.data_view))
        QTimer.singleShot(0, self.data_view.choose_export_log)

    def _edit_guidelines(self) -> None:
        if self.project is None:
            return
        self.show_view(self.stack.indexOf(self.label_view))
        self.label_view.set_guidelines_visible(True)
        self.label_view.guidelines.start_editing()

    # ------------------------------------------------------------------ window state
    def _restore_window(self) -> None:
        geometry = settings.bytes_value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        state = settings.bytes_value("window/state")
        if state is not None:
            self.restoreState(state)

    def _save_layouts(self) -> None:
        for _, widget in self.views:
            if hasattr(widget, "save_layout") and self.project is not None:
                widget.save_layout()

    def closeEvent(self, event):  # noqa: N802
        if not self._views_allow_close():  # e.g. a training run the user keeps going
            event.ignore()
            return
        if self.data_view.busy():  # an import stops at its next check; an export runs to its end
            self.data_view.cancel_import()
            task = self.data_view.task
            assert task is not None  # busy() is a task under way
            task.wait()
        settings.set_value("window/geometry", QByteArray(self.saveGeometry()))
        settings.set_value("window/state", QByteArray(self.saveState()))
        self._save_layouts()
        if self.project is not None:
            for _, widget in self.views:
                if hasattr(widget, "set_project"):
                    widget.set_project(None)
            self.project.close()
            self.project = None
        super().closeEvent(event)
