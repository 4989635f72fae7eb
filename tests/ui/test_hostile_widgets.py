"""Data is never shown as rich text: every label, button, message box, tooltip, item tooltip and text
document in every view is walked (generically, so that a widget added later is covered too) on a project
whose texts, names, keys, file name and run message are HTML, entities, ESC sequences and bidi overrides."""

from __future__ import annotations

import json

from PySide6 import QtGui
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QLabel,
    QMessageBox,
    QTextEdit,
    QWidget,
)

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.ui.safe_text import message_box, tooltip

TAGS = ("<img src=x>", "<b>bold</b>", '<a href="http://example.invalid/">link</a>')
HOSTILE = " ".join(TAGS) + " &lt; \x1b[2J \u202eevil"
FILE_SAFE = "<b>bold<b> <img src=x> &lt; \x1b[2J \u202e"  # a file name holds no '/'


def shown_as_rich_text(text: str, text_format: Qt.TextFormat) -> bool:
    return text_format == Qt.TextFormat.RichText or (
        text_format == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text)
    )


def live_tags(text: str, text_format: Qt.TextFormat = Qt.TextFormat.AutoText) -> bool:
    """True when ``text`` would render one of the hostile tags as HTML (escaped tags are fine)."""
    return shown_as_rich_text(text, text_format) and any(tag in text for tag in (*TAGS, "<b>bold<b>"))


def columns(model) -> int:
    try:
        return model.columnCount(QModelIndex())
    except TypeError:  # a list model: columnCount is private in PySide
        return 1


def walk(found: dict[str, int]) -> list[str]:
    """Every widget of every top-level window: what would render data as HTML. ``found`` counts where the
    data was seen (so the walk cannot pass by seeing nothing)."""
    problems = []

    def check(where: str, text: str, text_format=Qt.TextFormat.AutoText) -> None:
        if "img src=x" in text:
            found[where.split(" ")[0]] = found.get(where.split(" ")[0], 0) + 1
        if live_tags(text, text_format):
            problems.append(f"{where}: {text[:80]!r}")

    for top in QApplication.topLevelWidgets():
        if not top.isVisible():
            continue
        for w in [top, *top.findChildren(QWidget)]:
            name = f"{type(w).__name__}({w.objectName()})"
            check(f"tooltip {name}", w.toolTip())
            if isinstance(w, QLabel):
                check(f"label {name}", w.text(), w.textFormat())
            if isinstance(w, QMessageBox):
                check(f"messagebox {name}", w.text(), w.textFormat())
            if isinstance(w, QAbstractButton):  # buttons draw plain text; their tooltips are checked above
                check(f"button {name}", w.text(), Qt.TextFormat.PlainText)
            if isinstance(w, QTextEdit):
                html = w.document().toHtml()
                if "img src=x" in w.document().toPlainText():
                    found["document"] = found.get("document", 0) + 1
                if "<img" in html or 'example.invalid/"' in html.replace("&quot;", ""):
                    problems.append(f"document {name}: an image or a live link from data")
            if isinstance(w, QAbstractItemView) and w.model() is not None:
                model = w.model()
                for r in range(min(model.rowCount(QModelIndex()), 200)):
                    for c in range(columns(model)):
                        index = model.index(r, c)
                        for role, kind in (
                            (Qt.ItemDataRole.ToolTipRole, "itemtip"),
                            (Qt.ItemDataRole.DisplayRole, "item"),
                        ):
                            value = model.data(index, role)
                            if isinstance(value, str):
                                # An item's text is drawn as plain text; its tooltip is a QToolTip.
                                fmt = (
                                    Qt.TextFormat.AutoText
                                    if role == Qt.ItemDataRole.ToolTipRole
                                    else Qt.TextFormat.PlainText
                                )
                                check(f"{kind} {name}[{r},{c}]", value, fmt)
    return problems


def hostile_project(path) -> Project:
    with Project.create(path, seed=7) as project:
        project.add_records(
            [
                PairRecord(
                    Text(f"Prompt {i} {HOSTILE}"),
                    Text(f"A{i} {HOSTILE}"),
                    Text(f"B{i} {HOSTILE}"),
                    choice="a",
                    annotator=f"ann {HOSTILE}",
                    metadata={f"key {HOSTILE}": f"value {HOSTILE}"},
                )
                for i in range(8)
            ],
            source=f"file {HOSTILE}",
        )
        ids = project.comparisons_frame()["comparison_id"].tolist()
        for i, cid in enumerate(ids):  # a second annotator, disagreeing now and then: agreement and bias
            project.record_judgment(
                cid,
                f"bob {HOSTILE}",
                "a" if i % 3 else "b",
                note=f"note {HOSTILE}",
                flags=("review",) if i == 0 else (),
            )
        run = project.create_run("head", f"backbone {HOSTILE}", {})
        project.add_pair_scores(run, 1, [(cid, "val", "a", 0.1 * i - 0.3, 0.0) for i, cid in enumerate(ids)])
        project.update_run(run, status="finished", summary={"val_accuracy": 0.5})
        failed = project.create_run("head", "bb", {})
        project.update_run(failed, status="failed", message=f"failed {HOSTILE}")
    return Project.open(path)


def test_tooltip_and_message_box_helpers_show_the_characters(qtbot):
    assert tooltip("plain & simple") == "plain & simple"
    tip = tooltip(HOSTILE)
    assert QtGui.Qt.mightBeRichText(tip) and "<img" not in tip and "&lt;img src=x&gt;" in tip
    doc = QtGui.QTextDocument()
    doc.setHtml(tip)
    assert doc.toPlainText() == HOSTILE  # what the tooltip shows is the text itself
    box = message_box(QMessageBox.Icon.Warning, "t", HOSTILE, HOSTILE, HOSTILE)
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText and box.detailedText() == HOSTILE
    labels = [label for label in box.findChildren(QLabel) if label.text()]
    assert len(labels) == 2 and all(label.textFormat() == Qt.TextFormat.PlainText for label in labels)


def test_no_view_renders_data_as_html(qtbot, main_window, tmp_path):
    path = tmp_path / f"{FILE_SAFE}.wbp"
    hostile_project(path).close()
    window = main_window
    window.install_training_views()
    assert window.open_project(path)
    found: dict[str, int] = {}
    problems: list[str] = []
    for name in ("Label", "Data", "Train", "Inspect"):
        window.show_view(window.stack.indexOf(window.view(name)))
        qtbot.wait(50)
        if name == "Inspect":
            window.show_pair(1, None)
            qtbot.wait(50)
        problems += [f"{name}: {p}" for p in walk(found)]

    # A failed import whose error quotes a hostile key: the error dialog and the status line.
    data = window.data_view
    window.show_view(window.stack.indexOf(data))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({HOSTILE: "x", "prompt": "p"}) + "\n")
    data.start_import(bad)
    qtbot.waitUntil(lambda: data.error_box is not None and data.error_box.isVisible(), timeout=20_000)
    assert "img src=x" in data.error_box.text()
    problems += [f"import error: {p}" for p in walk(found)]
    data.error_box.close()

    # A failed run's message in the Train view's dialog.
    from workbench.training.events import Failed

    window.show_view(window.stack.indexOf(window.train_view))
    window.train_view._show_failure(Failed(run_id=2, message=f"failed {HOSTILE}", hint=f"hint {HOSTILE}"))
    qtbot.waitUntil(lambda: window.train_view.error_box.isVisible(), timeout=5000)
    problems += [f"train error: {p}" for p in walk(found)]
    window.train_view.error_box.close()

    assert problems == [], "\n".join(
        dict.fromkeys(p.split("[")[0].split(":")[0] + ":" + p.split(":")[1] for p in problems)
    )
    # The walk saw the data where it is shown: texts, labels, item texts and tooltips, the dialogs.
    assert {"document", "label", "item", "itemtip", "messagebox"} <= set(found), found
