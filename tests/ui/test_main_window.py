"""The main window: start page, annotator, menus, persistence, the views' protocol, the commands."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from ui_helpers import activate

from workbench.ui import dialogs, settings
from workbench.ui.main_window import MainWindow


@pytest.fixture
def ask(monkeypatch):
    """Replace the annotator dialog: answers come from a list, questions are counted."""
    asked = []
    answers = []

    def get_name(current="", parent=None):
        asked.append(current)
        return answers.pop(0) if answers else None

    monkeypatch.setattr(dialogs.AnnotatorDialog, "get_name", staticmethod(get_name))
    return asked, answers


def test_start_page_without_a_project(qtbot):
    window = MainWindow(annotator="tester")
    qtbot.addWidget(window)
    window.show()
    assert window.pages.currentWidget() is window.start_page
    assert not window.start_page.recent.isVisible() and window.start_page.empty.isVisible()
    assert not window.import_action.isEnabled()
    assert window.menuBar().actions()[0].text() == "&File"
    assert [a.text() for a in window.menuBar().actions()] == ["&File", "&Edit", "&View", "&Help"]


def test_annotator_is_asked_once_and_remembered(qtbot, ask, make_project, settings_dir):
    asked, answers = ask
    answers.append("bob")
    path = make_project(n_pairs=2)
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.open_project(path)
    assert asked == [""] and window.annotator == "bob"
    assert (settings_dir / "workbench.ini").exists()
    assert settings.annotator() == "bob"
    assert window.annotator_button.text() == "Annotator: bob"
    assert window.label_view.annotator == "bob"
    window.close()

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.open_project(path)
    assert asked == [""]  # not asked a second time
    assert again.annotator == "bob"

    # Clicking the name in the status bar changes it, for every view.
    answers.append("carol")
    qtbot.mouseClick(again.annotator_button, Qt.MouseButton.LeftButton)
    assert asked[-1] == "bob"
    assert again.annotator == "carol" and again.label_view.annotator == "carol"
    assert settings.annotator() == "carol"
    again.close()


def test_cancelling_the_name_keeps_the_project_closed(qtbot, ask, make_project):
    path = make_project(n_pairs=2)
    window = MainWindow()
    qtbot.addWidget(window)
    assert not window.open_project(path)
    assert window.project is None


def test_geometry_splitters_and_recent_projects_persist(qtbot, make_project):
    path = make_project(n_pairs=3)
    window = MainWindow(annotator="tester")
    qtbot.addWidget(window)
    window.resize(1500, 900)
    activate(qtbot, window)
    window.open_project(path)
    window.label_view.set_guidelines_visible(True)
    window.label_view.pair_splitter.setSizes([300, 700])
    window.label_view.outer_splitter.setSizes([1000, 333])
    window.close()
    assert settings.recent_projects() == [str(path.resolve())]

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.size().width() == 1500 and again.size().height() == 900
    assert again.start_page.recent.count() == 1
    again.show()
    again.open_project(path)
    left, right = again.label_view.pair_splitter.sizes()
    assert left < right
    assert again.label_view.guidelines.isVisible()
    again.close()


def test_add_view_follows_the_protocol(qtbot, make_project):
    from PySide6.QtCore import Signal
    from PySide6.QtWidgets import QWidget

    class Dummy(QWidget):
        message = Signal(str)

        def __init__(self):
            super().__init__()
            self.projects, self.active = [], []

        def set_project(self, project):
            self.projects.append(project)

        def set_active(self, active):
            self.active.append(active)

    window = MainWindow(annotator="tester")
    qtbot.addWidget(window)
    train, inspect = Dummy(), Dummy()
    assert window.add_view("Train", train) == 2
    assert window.add_view("Inspect", inspect) == 3
    assert [window.nav.item(i).text() for i in range(window.nav.count())] == ["Label", "Data", "Train", "Inspect"]
    window.open_project(make_project(n_pairs=1))
    assert train.projects[-1] is window.project
    window.show_view(2)
    assert train.active[-1] is True and inspect.active[-1] is False
    train.message.emit("hello from Train")
    assert window.statusBar().currentMessage() == "hello from Train"
    window.close_project()
    assert train.projects[-1] is None


def test_opening_a_missing_or_foreign_file_says_why(qtbot, tmp_path):
    window = MainWindow(annotator="tester")
    qtbot.addWidget(window)
    assert not window.open_project(tmp_path / "nope.wbp")
    assert "no such project" in window.last_warning.text()
    window.last_warning.close()
    junk = tmp_path / "junk.wbp"
    junk.write_text("not a database")
    assert not window.open_project(junk)
    assert "not a Preference Workbench project" in window.last_warning.text()
    window.last_warning.close()


def test_about_lists_versions_without_importing_torch(qtbot):
    loaded = "torch" in sys.modules
    info = dialogs.versions()
    assert {"Preference Workbench", "Python", "Qt", "PySide6", "torch"} <= set(info)
    assert ("torch" in sys.modules) == loaded
    box = dialogs.show_about()
    qtbot.addWidget(box)
    label = box.findChild(QLabel, "qt_msgbox_label")
    assert "PySide6" in label.text() and info["Qt"] in label.text()
    box.close()


def test_commands_register_without_importing_qt():
    code = (
        "import argparse, sys\n"
        "from workbench.ui import commands\n"
        "p = argparse.ArgumentParser(); sub = p.add_subparsers(dest='command')\n"
        "commands.register(sub)\n"
        "a = p.parse_args(['gui', '--project', 'x.wbp', '--annotator', 'ann'])\n"
        "assert a.func is commands.gui_command and a.project == 'x.wbp' and a.annotator == 'ann'\n"
        "assert p.parse_args(['demo']).func is commands.demo_command\n"
        "assert 'PySide6' not in sys.modules, 'Qt imported at registration'\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_gui_command_opens_the_project(qtbot, monkeypatch, make_project):
    """`workbench gui --project P --annotator NAME` opens P labelling as NAME (event loop stubbed)."""
    from PySide6.QtWidgets import QApplication

    from workbench.ui import commands

    path = make_project(n_pairs=2)
    seen = {}

    def fake_exec():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        seen["project"] = window.project.path
        seen["annotator"] = window.label_view.annotator
        window.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", staticmethod(fake_exec))
    args = argparse.Namespace(project=str(path), annotator="dana")
    assert commands.gui_command(args) == 0
    assert seen == {"project": path, "annotator": "dana"}
    assert settings.annotator() == "dana"


def test_demo_command_opens_the_demo_project(qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QApplication

    from workbench.ui import commands

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    seen = {}

    def fake_exec():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        seen["name"] = window.project.path.name
        seen["has_item"] = window.label_view.current is not None
        seen["guidelines"] = bool(window.project.guidelines)
        window.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", staticmethod(fake_exec))
    assert commands.demo_command(argparse.Namespace(annotator="erin")) == 0
    assert seen == {"name": "demo.wbp", "has_item": True, "guidelines": True}


def test_keyboard_reference_lists_every_label_key(qtbot):
    box = dialogs.show_keys()
    qtbot.addWidget(box)
    text = box.findChild(QLabel, "qt_msgbox_label").text()
    for key in ("Ctrl + Z", "Shift", "=", "Ctrl + Enter"):
        assert key in text
    box.close()
