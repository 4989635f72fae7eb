"""The Data view: imports off the GUI thread, errors that say where, exports, counts."""

from __future__ import annotations

import json
import threading

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from ui_helpers import ANNOTATOR


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def wait_idle(qtbot, view, timeout=10000):
    """Until the task's `finished` has been handled: its other signals, queued before, are handled too."""
    qtbot.waitUntil(lambda: view.task is None, timeout=timeout)


def test_bad_file_shows_where_and_changes_nothing(qtbot, main_window, make_project, tmp_path):
    main_window.open_project(make_project(n_pairs=3))
    project = main_window.project
    data = main_window.data_view
    main_window.show_view(main_window.stack.indexOf(data))
    before = project.counts()
    labels_before = len(project.judgment_log())
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "ok", "chosen": "yes", "rejected": "no"},
            {"prompt": "ok 2", "chosen": "yes"},  # no "rejected"
        ],
    )
    task = data.start_import(bad)
    assert task is not None and data.busy()
    wait_idle(qtbot, data)
    box = data.error_box
    assert box is not None and box.isVisible()
    assert box.icon() == QMessageBox.Icon.Warning
    assert "bad.jsonl" in box.text() and "line 2" in box.text() and "rejected" in box.text()
    assert "unchanged" in box.informativeText()
    assert "line 2" in data.import_status.text()
    box.close()
    assert project.counts() == before
    assert len(project.judgment_log()) == labels_before
    assert data.import_button.isEnabled()


def test_import_runs_in_a_thread_and_refreshes_the_views(qtbot, main_window, make_project, tmp_path):
    main_window.open_project(make_project(n_pairs=0))
    view, data, project = main_window.label_view, main_window.data_view, main_window.project
    assert view.current is None
    rows = [{"prompt": f"P{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "annotator": "alice"} for i in range(40)]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    task = data.start_import(path, "explicit")
    assert task is not None
    # while it runs nothing can start a second import, export, merge or assignment, nor change what it reads
    controls = (data.import_button, data.import_folder_button, data.format_combo, data.split_combo)
    assert not any(w.isEnabled() for w in (*controls, data.export_pairs_button, data.merge_button))
    wait_idle(qtbot, data)
    assert all(w.isEnabled() for w in controls)
    assert project.counts()["comparisons"] == 40
    assert data.last_summary["comparisons_added"] == 40
    assert "Imported pairs.jsonl" in data.import_status.text()
    assert view.current is not None  # the Label view picked up the new data
    assert data.table.rowCount() >= 1
    names = [data.table.item(r, 0).text() for r in range(data.table.rowCount())]
    assert "alice" in names


def test_import_can_be_cancelled(qtbot, main_window, make_project, tmp_path):
    main_window.open_project(make_project(n_pairs=1))
    data, project = main_window.data_view, main_window.project
    main_window.show_view(main_window.stack.indexOf(data))
    before = project.counts()
    rows = [{"prompt": f"P{i}", "response_a": f"a {i}", "response_b": f"b {i}"} for i in range(6000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    cancelled = []
    clicked = threading.Event()
    task = data.start_import(path)
    task.cancelled.connect(lambda: cancelled.append(True))
    # Hold the worker at its first progress report until the click has happened, so that the cancel
    # lands mid-import however slow the machine is.
    task.progressed.connect(lambda done, total: clicked.wait(10), Qt.ConnectionType.DirectConnection)
    qtbot.mouseClick(data.cancel_button, Qt.MouseButton.LeftButton)
    clicked.set()
    wait_idle(qtbot, data, timeout=20000)
    assert cancelled == [True]
    assert "cancelled" in data.import_status.text()
    assert project.counts() == before


def test_exports_and_counts(qtbot, main_window, make_project, tmp_path):
    from PySide6.QtTest import QTest

    main_window.open_project(make_project(n_pairs=6))
    data = main_window.data_view
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_Equal, Qt.Key.Key_0, Qt.Key.Key_S):
        QTest.keyClick(main_window, key)
    main_window.show_view(main_window.stack.indexOf(data))
    row = next(r for r in range(data.table.rowCount()) if data.table.item(r, 0).text() == ANNOTATOR)
    cells = [data.table.item(row, c).text() for c in range(data.table.columnCount())]
    # Annotator, Kind, Answered, Judged, A/B, Ties, Both bad, Skips, Done, Time per item
    assert cells[2:8] == ["5", "4", "2", "1", "1", "1"]
    assert cells[9].endswith("s")

    data.margin_check.setChecked(True)
    out = tmp_path / "out" / "pairs.jsonl"
    task = data.start_export_pairs(out, with_margin=True)
    assert task is not None
    wait_idle(qtbot, data)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 2 and all("margin" in x for x in lines)
    log = tmp_path / "out" / "log.csv"
    task = data.start_export_log(log)
    assert task is not None
    wait_idle(qtbot, data)
    assert log.exists() and "Wrote 5 judgments" in data.export_status.text()

    task = data.start_export_log(tmp_path / "log.txt")  # an unsupported type: a message, no crash
    assert task is not None
    wait_idle(qtbot, data)
    assert data.error_box is not None and ".txt" in data.error_box.text()
    data.error_box.close()


def test_a_dataset_folder_imports_the_split_the_user_picks(qtbot, main_window, make_project, tmp_path, monkeypatch):
    """The folder button: the folder from the (stubbed) folder dialog, the split from the (stubbed) list of the
    folder's splits, then the same threaded import as a file."""
    import pandas as pd
    from PySide6.QtWidgets import QFileDialog, QInputDialog

    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    for split, n in (("train", 5), ("test", 3)):
        rows = [{"prompt": f"{split} {i}", "chosen": "good", "rejected": "bad"} for i in range(n)]
        pd.DataFrame(rows).to_parquet(folder / f"{split}-00000-of-00001.parquet")
    main_window.open_project(make_project(n_pairs=0))
    data, project = main_window.data_view, main_window.project
    offered = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: str(folder.parent))

    def pick(parent, title, label, items, *rest):
        offered.append(list(items))
        return "test", True

    monkeypatch.setattr(QInputDialog, "getItem", pick)
    qtbot.mouseClick(data.import_folder_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, data)
    assert offered == [["test", "train"]]
    assert project.counts()["comparisons"] == 3
    assert "Imported hub [test]" in data.import_status.text()


def test_the_dataset_folder_export(qtbot, main_window, make_project, tmp_path):
    main_window.open_project(make_project(n_pairs=0))
    data, project = main_window.data_view, main_window.project
    rows = [{"prompt": f"P{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(20)]
    data.start_import(write_jsonl(tmp_path / "pairs.jsonl", rows), "explicit")
    wait_idle(qtbot, data)
    out = tmp_path / "dataset"
    assert data.start_export_splits(out) is not None
    wait_idle(qtbot, data)
    train = (out / "train.jsonl").read_text().splitlines()
    test = (out / "test.jsonl").read_text().splitlines()
    assert (len(train), len(test)) == (18, 2) and (out / "README.md").is_file()
    assert f"Wrote 20 rows (train, test and ties) to {out}" in data.export_status.text()
    assert project.counts()["comparisons"] == 20
