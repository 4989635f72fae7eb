"""Starting the GUI: the QApplication, the look, the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from workbench.ui import settings, style


def create_app(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication, made and styled once."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else [sys.argv[0]])
        app.setOrganizationName(settings.ORGANISATION)
        app.setApplicationName(settings.APPLICATION)
        app.setApplicationDisplayName("Preference Workbench")
        app.setDesktopFileName("preference-workbench")
        style.apply(app)
    return app


def run_gui(project: str | os.PathLike | None = None, annotator: str | None = None, demo: bool = False) -> int:
    """Open the main window (on ``project``, or the demo) and run until it closes; the exit status."""
    from workbench.ui.main_window import MainWindow

    app = create_app()
    window = MainWindow(annotator=annotator)
    window.show()
    if demo:
        window.open_demo()
    elif project is not None:
        path = Path(project).expanduser()
        window.open_project(path, create=not path.exists())
    return app.exec()
