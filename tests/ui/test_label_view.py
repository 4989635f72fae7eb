"""The Label view driven with real key events, checked against what the project stores."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
from PySide6.QtCore import Qt
from ui_helpers import ANNOTATOR, activate, press

from workbench.core.store import Project

K = Qt.Key
SHIFT = Qt.KeyboardModifier.ShiftModifier
ALT = Qt.KeyboardModifier.AltModifier
CTRL = Qt.KeyboardModifier.ControlModifier


def text_on(view, side: str) -> str:
    browser = view.left_view if side == "left" else view.right_view
    return browser.toPlainText()


def current_label(project: Project, comparison_id: int):
    return project.current_judgment(comparison_id, ANNOTATOR)


@pytest.fixture
def labelling(main_window, make_project):
    path = make_project(n_pairs=30)
    assert main_window.open_project(path)
    view = main_window.label_view
    assert view.current is not None
    return main_window, view, main_window.project


def test_keys_drive_judgments_through_many_comparisons(qtbot, labelling):
    window, view, project = labelling
    expected: dict[int, dict] = {}
    seen_left = set()

    def answer(key, modifier=Qt.KeyboardModifier.NoModifier, *, choice, strength=None, note="", flags=()):
        comp = view.current
        seen_left.add(comp.left)
        left_shown = comp.response_a if comp.left == "a" else comp.response_b
        assert text_on(view, "left").startswith(left_shown.text.split("**")[0].strip()[:10])
        stored = {"left": comp.left, "right": "b" if comp.left == "a" else "a"}.get(choice, choice)
        press(qtbot, window, key, modifier)
        j = current_label(project, comp.id)
        assert j is not None and j.choice == stored, (choice, comp.left, j)
        assert j.strength == strength
        assert j.left == comp.left
        assert j.note == note
        assert tuple(j.flags) == tuple(flags)
        assert j.shown_at is not None and j.answered_at >= j.shown_at
        assert view.current is None or view.current.id != comp.id  # the next one is on screen
        expected[comp.id] = {"choice": stored, "strength": strength}
        return comp

    answer(K.Key_1, choice="left", strength=3)
    answer(K.Key_Right, choice="right", strength=3)
    answer(K.Key_Left, choice="left", strength=3)
    answer(K.Key_2, choice="right", strength=3)
    answer(K.Key_1, SHIFT, choice="left", strength=4)
    answer(K.Key_Right, SHIFT, choice="right", strength=4)
    answer(K.Key_Equal, choice="tie")
    answer(K.Key_0, choice="both_bad")
    answer(K.Key_S, choice="skip")

    # The strength picker: by mouse, then by Alt+<level>; it goes back to "better" after each judgment.
    qtbot.mouseClick(view.strength_buttons[1], Qt.MouseButton.LeftButton)
    answer(K.Key_2, choice="right", strength=1)
    assert view.strength() == 3
    press(qtbot, window, K.Key_2, ALT)
    assert view.strength() == 2
    answer(K.Key_Left, choice="left", strength=2)

    # A note typed inline; typing digits in it does not judge anything.
    before = view.current.id
    press(qtbot, window, K.Key_N)
    assert view.note_edit.hasFocus()
    qtbot.keyClicks(view.note_edit, "check 1 2 = 0 S")
    assert view.current.id == before
    qtbot.keyClick(view.note_edit, K.Key_Return)
    assert not view.note_edit.isVisible()
    answer(K.Key_1, choice="left", strength=3, note="check 1 2 = 0 S")

    # A flag, and a flag toggled off again.
    press(qtbot, window, K.Key_F)
    assert view.flag_button.isChecked()
    answer(K.Key_Equal, choice="tie", flags=("flag",))
    press(qtbot, window, K.Key_F)
    press(qtbot, window, K.Key_F)
    answer(K.Key_0, choice="both_bad")

    # Undo across submits: the previous comparison comes back with its old answer marked.
    last = answer(K.Key_1, choice="left", strength=3)
    second_last_id = list(expected)[-2]
    press(qtbot, window, K.Key_Z, CTRL)
    assert view.current.id == last.id
    assert view.previous is not None and view.previous.choice == last.left
    assert view.banner.isVisible()
    assert view.left_button.property("previous") == "true"
    undone = current_label(project, last.id)
    assert undone is None or undone.choice is None  # the undo restored "no answer"
    press(qtbot, window, K.Key_Z, CTRL)
    assert view.current.id == second_last_id
    assert view.previous.choice == "both_bad"
    assert view.bad_button.property("previous") == "true"
    del expected[last.id]
    del expected[second_last_id]
    # Answer both again, differently.
    answer(K.Key_Equal, choice="tie")
    assert view.current.id == last.id  # the undone one is next again
    answer(K.Key_2, SHIFT, choice="right", strength=4)

    # More comparisons, with focus in different places: keys still reach the view.
    view.set_guidelines_visible(True)
    focus_targets = [view.left_view, view.right_view, view.prompt_view, view.order_combo, view.guidelines.view]
    for i, widget in enumerate(focus_targets * 2):
        widget.setFocus(Qt.FocusReason.MouseFocusReason)
        qtbot.waitUntil(widget.hasFocus, timeout=1000)
        if i % 2:
            answer(K.Key_Left, choice="left", strength=3)
        else:
            answer(K.Key_Right, choice="right", strength=3)

    assert len(expected) >= 20
    assert seen_left == {"a", "b"}, "both placements must have been exercised"

    # The store agrees with everything, and the undone judgments are history, not current labels.
    labels = project.labels()
    mine = labels[labels["annotator"] == ANNOTATOR]
    got = {
        int(r.comparison_id): {"choice": r.choice, "strength": None if r.strength is pd_na() else int(r.strength)}
        for r in mine.itertuples()
    }
    assert got == expected
    log = project.judgment_log()
    assert (log["kind"] == "undo").sum() == 2


def pd_na():
    import pandas as pd

    return pd.NA


def test_left_and_right_map_to_stored_responses_for_both_placements(qtbot, labelling):
    """Whatever side a response is shown on, choosing that side stores that response."""
    window, view, project = labelling
    checked = {"a": 0, "b": 0}
    for _ in range(12):
        comp = view.current
        shown_left_text = text_on(view, "left")
        # Which stored response is on the left, judged from the text on screen.
        stored_left = "a" if shown_left_text.startswith("Response A") else "b"
        assert stored_left == comp.left
        key = K.Key_1 if checked[comp.left] % 2 == 0 else K.Key_2
        press(qtbot, window, key)
        j = current_label(project, comp.id)
        expected = stored_left if key == K.Key_1 else ("b" if stored_left == "a" else "a")
        assert j.choice == expected and j.left == comp.left
        checked[comp.left] += 1
    assert checked["a"] and checked["b"]


def test_arrow_keys_win_over_a_focused_text_browser(qtbot, labelling):
    window, view, project = labelling
    comp = view.current
    view.right_view.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(view.right_view.hasFocus)
    qtbot.keyClick(view.right_view, K.Key_Left)
    assert current_label(project, comp.id).choice == comp.left


def test_keys_type_into_the_guidelines_editor_instead_of_judging(qtbot, labelling):
    window, view, project = labelling
    if not view.guidelines.isVisible():
        press(qtbot, window, K.Key_G)
    assert view.guidelines.isVisible()
    comp = view.current
    view.guidelines.start_editing()
    qtbot.keyClicks(view.guidelines.editor, "Prefer 1 or 2 = fine")
    qtbot.keyClick(view.guidelines.editor, K.Key_Left)
    assert view.current.id == comp.id
    assert current_label(project, comp.id) is None
    qtbot.mouseClick(view.guidelines.save_button, Qt.MouseButton.LeftButton)
    assert project.guidelines == "Prefer 1 or 2 = fine"
    assert "Prefer 1 or 2" in view.guidelines.view.toPlainText()


def test_word_diff_toggle_highlights_differences(qtbot, labelling):
    window, view, _ = labelling
    press(qtbot, window, K.Key_D)
    assert view.diff_mode
    doc = view.left_view.document()
    highlighted = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().background().style() != Qt.BrushStyle.NoBrush:
                highlighted.append(frag.text())
            it += 1
        block = block.next()
    assert highlighted and all(h.strip() for h in highlighted)
    joined = " ".join(highlighted)
    assert "answer" not in joined  # shared words are not marked
    press(qtbot, window, K.Key_D)
    assert not view.diff_mode


def test_queue_order_and_progress(qtbot, labelling):
    window, view, project = labelling
    orders = [view.order_combo.itemData(i) for i in range(view.order_combo.count())]
    assert orders == ["new", "random", "prompt", "uncertain", "disagree"]
    assert not view.model_orders_enabled()  # no run yet: the model orders are listed but disabled
    press(qtbot, window, K.Key_1)
    press(qtbot, window, K.Key_2)
    assert "2 / 30 done" in view.progress_label.text()
    assert "item 3 of 30" in view.position_label.text()
    view.set_order("random")
    assert view.order == "random"
    assert project.next_comparison(ANNOTATOR, "random") == view.current.id


def test_reopening_resumes_where_the_annotator_stopped(qtbot, main_window, make_project):
    path = make_project(n_pairs=12)
    main_window.open_project(path)
    view = main_window.label_view
    answered = []
    for key in (K.Key_1, K.Key_2, K.Key_Equal, K.Key_1):
        answered.append(view.current.id)
        press(qtbot, main_window, key)
    waiting = view.current.id
    main_window.close_project()
    assert main_window.project is None and main_window.pages.currentWidget() is main_window.start_page
    assert main_window.start_page.recent.count() == 1
    # Reopen from the recent list, as a person would.
    item = main_window.start_page.recent.item(0)
    main_window.start_page.recent.itemActivated.emit(item)
    assert main_window.project is not None
    assert view.current.id == waiting
    assert view.current.id not in answered
    assert "4 / 12 done" in view.progress_label.text()


def test_ranking_four_responses_records_six_consistent_judgments(qtbot, main_window, make_project):
    path = make_project(n_pairs=0, ranked=True)
    main_window.open_project(path)
    window, view, project = main_window, main_window.label_view, main_window.project
    assert view._response_count == 4
    press(qtbot, window, K.Key_R)
    assert view.rank_mode and view.rank_panel.isVisible()
    order = view.rank_panel.order()
    assert len(order) == 4
    # Reorder with keys: select the last, move it to the top with number 1; move the (new) second down.
    view.rank_panel.list.setCurrentRow(3)
    press(qtbot, window, K.Key_1)
    view.rank_panel.list.setCurrentRow(1)
    press(qtbot, window, K.Key_Down, ALT)
    press(qtbot, window, K.Key_Left)  # arrows mean nothing in rank mode
    final = view.rank_panel.order()
    assert final == [order[3], order[1], order[0], order[2]]
    # A drag and drop moves rows in the model: the same move and back, numbers follow.
    from PySide6.QtCore import QModelIndex

    model = view.rank_panel.list.model()
    assert model.moveRow(QModelIndex(), 0, QModelIndex(), 4)
    assert view.rank_panel.list.item(3).text().startswith("4.")
    assert model.moveRow(QModelIndex(), 3, QModelIndex(), 0)
    assert view.rank_panel.order() == final
    assert view.rank_panel.list.item(0).text().startswith("1.")
    assert project.counts()["judgments"] == 0
    press(qtbot, window, K.Key_Return, CTRL)
    assert not view.rank_mode
    rank = {rid: i for i, rid in enumerate(final)}
    with closing(sqlite3.connect(project.path)) as conn:  # the test's own: the store keeps its private
        rows = conn.execute(
            "SELECT c.response_a, c.response_b, j.choice, j.kind FROM judgments j JOIN comparisons c"
            " ON c.id = j.comparison_id"
        ).fetchall()
    assert len(rows) == 6
    for ra, rb, choice, kind in rows:
        assert kind == "label"
        assert choice == ("a" if rank[ra] < rank[rb] else "b")
    assert view.current is None  # that prompt was all there was
    assert "All done" in view.empty_label.text()


def test_shown_at_is_when_the_comparison_appeared(qtbot, labelling):
    window, view, project = labelling
    comp = view.current
    shown = view.shown_at
    qtbot.wait(30)
    press(qtbot, window, K.Key_1)
    j = current_label(project, comp.id)
    assert j.shown_at == pytest.approx(shown)
    assert j.answered_at - j.shown_at >= 0.02


def test_nothing_to_undo_and_empty_project(qtbot, main_window, make_project):
    path = make_project(n_pairs=0)
    main_window.open_project(path)
    view = main_window.label_view
    assert view.current is None and "No comparisons yet" in view.empty_label.text()
    press(qtbot, main_window, K.Key_Z, CTRL)
    press(qtbot, main_window, K.Key_1)
    assert main_window.project.counts()["judgments"] == 0


def test_keys_are_off_while_another_view_is_shown(qtbot, labelling):
    window, view, project = labelling
    comp = view.current
    window.show_view(1)  # Data
    press(qtbot, window, K.Key_1)
    assert current_label(project, comp.id) is None
    window.show_view(0)
    activate(qtbot, window)
    press(qtbot, window, K.Key_1)
    assert current_label(project, comp.id).choice == comp.left


def test_flagged_note_is_saved_as_json_flags(qtbot, labelling):
    window, view, project = labelling
    comp = view.current
    press(qtbot, window, K.Key_F)
    press(qtbot, window, K.Key_2)
    with closing(sqlite3.connect(project.path)) as conn:
        row = conn.execute("SELECT flags FROM judgments WHERE comparison_id = ?", (comp.id,)).fetchone()
    assert json.loads(row[0]) == ["flag"]
