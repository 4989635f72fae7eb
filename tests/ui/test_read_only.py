"""A project that cannot be written opens read-only: a banner says so and no key or action writes."""

from __future__ import annotations

import hashlib

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from workbench.core import store


def test_a_read_only_project_shows_a_banner_and_a_label_key_writes_nothing(
    qtbot, main_window, make_project, monkeypatch
):
    path = make_project(n_pairs=5)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    # Read-only media, injected (CI runs as root: chmod would not stop a write).
    monkeypatch.setattr(store, "probe_read_only", lambda p: "read-only file system")
    assert main_window.open_project(path)
    project = main_window.project
    assert project.read_only == "read-only file system"
    assert main_window.read_only_banner.isVisible()
    assert main_window.read_only_banner.text().startswith("Read only: read-only file system")
    assert not main_window.import_action.isEnabled() and main_window.export_pairs_action.isEnabled()
    view = main_window.label_view
    shown = view.current
    assert shown is not None
    qtbot.keyClick(QApplication.focusWidget() or main_window, Qt.Key.Key_1)
    assert view.commit("a", 2) is False and view.current is shown
    assert not (project.judgment_log()["annotator"] == "tester").any()
    assert main_window.data_view.start_import(path) is None
    main_window.close_project()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before

    monkeypatch.setattr(store, "probe_read_only", lambda p: None)
    assert main_window.open_project(path)
    assert not main_window.read_only_banner.isVisible() and main_window.import_action.isEnabled()
