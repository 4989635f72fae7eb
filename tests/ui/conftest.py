"""Fixtures for the UI tests: offscreen Qt, settings in a temporary folder, projects with known data,
and a guard that fails any test leaving a QThread running."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from weakref import WeakKeyDictionary

# Before anything imports Qt: the offscreen platform, with one 1920x1080 screen (its default screen is
# 800x800, smaller than the window, which would clamp restored geometry).
_SCREEN = Path(tempfile.gettempdir()) / "workbench-test-screen.json"
_SCREEN.write_text(
    json.dumps(
        {
            "screens": [
                {
                    "name": "test",
                    "x": 0,
                    "y": 0,
                    "width": 1920,
                    "height": 1080,
                    "logicalDpi": 96,
                    "logicalBaseDpi": 96,
                    "dpr": 1,
                }
            ]
        }
    )
)
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_SCREEN}"
os.environ.setdefault("WORKBENCH_SETTINGS_DIR", tempfile.mkdtemp(prefix="workbench-test-settings-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the Train and Inspect view tests train local tiny models

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # a source checkout that is not installed
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
from PySide6.QtCore import QThread, QThreadPool  # noqa: E402
from ui_helpers import ANNOTATOR, activate, pair_records, ranked_record  # noqa: E402

from workbench.core.store import Project  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _styled_app(qapp):
    from workbench.ui import style

    style.apply(qapp)
    return qapp


@pytest.fixture(autouse=True)
def settings_dir(tmp_path, monkeypatch):
    """Every test gets empty settings of its own."""
    folder = tmp_path / "settings"
    monkeypatch.setenv("WORKBENCH_SETTINGS_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_dangling_qthreads(monkeypatch, qtbot):
    """Fail a test that leaves a QThread (or a thread-pool job) running."""
    started: WeakKeyDictionary = WeakKeyDictionary()
    base_start = QThread.start

    def start(self, *args, **kwargs):
        started[self] = "".join(traceback.format_stack(limit=6)[:-1])
        return base_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start)
    yield
    running = []
    for thread, where in list(started.items()):
        try:
            if thread.isRunning():
                running.append(where)
                thread.quit()
                thread.wait(5000)
        except RuntimeError:  # the C++ object is gone: it finished
            pass
    pool = QThreadPool.globalInstance()
    busy = pool.activeThreadCount()
    pool.waitForDone(5000)
    if running or busy:
        pytest.fail(
            f"test left {len(running)} QThread(s) and {busy} pool job(s) running; started at:\n" + "\n".join(running)
        )


@pytest.fixture
def tiny_bert(tiny_bert_dir) -> str:
    """The tiny random BERT of tests/conftest.py, under the name the Train and Inspect view tests use."""
    return tiny_bert_dir


@pytest.fixture
def make_project(tmp_path):
    """make_project(n_pairs=25, ranked=False, name="p") -> Path of a new project holding known data."""
    counter = [0]

    def make(n_pairs: int = 25, ranked: bool = False, records=None, name: str | None = None) -> Path:
        counter[0] += 1
        path = tmp_path / f"{name or 'project'}{counter[0]}.wbp"
        with Project.create(path, seed=7) as project:
            recs = list(records) if records is not None else pair_records(n_pairs)
            if ranked:
                recs.append(ranked_record())
            project.add_records(recs, source="test")
        return path

    return make


@pytest.fixture
def main_window(qtbot):
    """A shown, active main window labelling as ``tester``; closed (project released) at the end."""
    from workbench.ui.main_window import MainWindow

    window = MainWindow(annotator=ANNOTATOR)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    activate(qtbot, window)
    yield window
    window.close()
