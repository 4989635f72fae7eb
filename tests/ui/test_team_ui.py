"""Team work in the Data view, with real widgets: merging annotators' projects off the GUI thread, the
agreement panel and the bias cells, and adjudicating disagreements from the adjudication dialog."""

from __future__ import annotations

import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog
from ui_helpers import ANNOTATOR, pair_records

from workbench.core import team
from workbench.core.store import Project
from workbench.ui.team_panel import BIASED_ROLE, VALUE_ROLE, AgreementPanel

# A tiny case worked by hand: 10 comparisons, alice says a a a a a a b b b b, bob a a a a b b b b b b.
# Observed agreement 8/10. Chance counts every label both ways round (a and b pooled), so each annotator's
# shares are a .5, b .5: chance .5 * .5 + .5 * .5 = 0.5 and kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6.
# (Taken as stored, chance would be .6 * .4 + .4 * .6 = 0.48 and kappa 8/13, a number that changes when a
# pair is stored the other way round.)
ALICE = list("aaaaaabbbb")
BOB = list("aaaabbbbbb")
HAND_KAPPA = 0.6


def annotator_project(path, annotator: str, choices, n_pairs: int = 10):
    """A project of ``pair_records(n_pairs)`` (as every test project holds) labelled by ``annotator``."""
    with Project.create(path, seed=7) as project:
        project.add_records(pair_records(n_pairs), source="shared.jsonl")
        ids = project.comparisons_frame()["comparison_id"].tolist()
        for cid, choice in zip(ids, choices):
            comp = project.comparison(cid)
            project.record_judgment(
                cid, annotator, choice, strength=3 if choice in ("a", "b") else None, left=comp.left
            )
    return path


def show_data(window):
    data = window.data_view
    window.show_view(window.stack.indexOf(data))
    return data


def settle(qtbot, data, timeout=10000):
    """Until no import, export or merge runs and the agreement figures of the current data are in."""
    qtbot.waitUntil(
        lambda: data.task is None and data.stats_task is None and data.team_stats is not None, timeout=timeout
    )


def row_of(table, name: str) -> int:
    return next(r for r in range(table.rowCount()) if table.item(r, 0).text() == name)


def test_merge_two_annotators_from_the_data_view_and_see_their_agreement(
    qtbot, main_window, make_project, tmp_path, monkeypatch
):
    alice = annotator_project(tmp_path / "alice.wbp", "alice", ALICE)
    bob = annotator_project(tmp_path / "bob.wbp", "bob", BOB)
    assert main_window.open_project(make_project(n_pairs=10))
    project = main_window.project
    data = show_data(main_window)
    settle(qtbot, data)
    assert data.agreement_panel.figure_labels["items"].text() == "0"  # nobody to compare yet
    assert "Merge" in data.agreement_panel.note.text()

    # The action as a person uses it: the button, a file dialog that returns two project files.
    asked = {}

    def pick(parent, caption, folder, filters):
        asked["filters"] = filters
        return [str(alice), str(bob)], filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(pick))
    qtbot.mouseClick(data.merge_button, Qt.MouseButton.LeftButton)
    assert "*.wbp" in asked["filters"]
    assert data.busy() and not data.merge_button.isEnabled()  # the merge runs in its worker thread
    settle(qtbot, data)

    # Both annotators' judgments are in the open project.
    labels = project.labels()
    for name, choices in (("alice", ALICE), ("bob", BOB)):
        mine = labels[labels["annotator"] == name].sort_values("comparison_id")
        assert mine["choice"].tolist() == choices
    assert data.last_merge["judgments_added"] == 20
    assert "20 judgments added" in data.team_status.text()
    names = [data.table.item(r, 0).text() for r in range(data.table.rowCount())]
    assert {"alice", "bob"} <= set(names)

    # kappa as the panel shows it = team.cohen_kappa on the same labels = the hand-computed value.
    table = team.rating_table(project)
    units = table.pivot(index="comparison_id", columns="annotator", values="choice")
    expected = team.cohen_kappa(units["alice"].tolist(), units["bob"].tolist(), mirror=team.PAIR_MIRROR)["kappa"]
    shown = data.agreement_panel.kappa("alice", "bob")
    assert shown == pytest.approx(expected) == pytest.approx(HAND_KAPPA)
    assert data.agreement_panel.kappa_table.rowCount() == 1
    row = 0
    assert data.agreement_panel.kappa_table.item(row, 4).text() == f"{HAND_KAPPA:.3f}" == "0.600"
    assert data.agreement_panel.kappa_table.item(row, 2).text() == "10"
    figures = data.agreement_panel.figure_labels
    assert figures["items"].text() == "10"
    assert figures["percent"].text() == "80%"
    alpha = team.krippendorff_alpha_nominal(
        [[units.loc[c, "alice"], units.loc[c, "bob"]] for c in units.index], mirror=team.PAIR_MIRROR
    )
    assert figures["alpha"].text() == f"{alpha:.2f}"
    assert figures["fleiss"].text() == "—" and "three or more" in figures["fleiss"].toolTip()  # two annotators
    assert team.CHANCE_NOTE in data.agreement_panel.note.text()  # the panel says what chance agreement is
    # Per annotator: agreement with the others' majority (here: with the one other annotator).
    cell = data.table.item(row_of(data.table, "alice"), 10)
    assert cell.text() == "80% of 10" and cell.data(VALUE_ROLE) == pytest.approx(0.8)

    # Merging the same work again adds nothing.
    data.start_merge([alice, bob])
    settle(qtbot, data)
    assert data.last_merge["judgments_added"] == 0 and data.last_merge["judgments_present"] == 20


def test_a_file_that_is_no_project_gives_a_message_and_changes_nothing(qtbot, main_window, make_project, tmp_path):
    bad = tmp_path / "notes.wbp"
    bad.write_text("these are not labels\n")
    alice = annotator_project(tmp_path / "alice.wbp", "alice", ALICE)
    assert main_window.open_project(make_project(n_pairs=10))
    project = main_window.project
    data = show_data(main_window)
    before = project.counts()
    assert data.start_merge([alice, bad]) is not None
    settle(qtbot, data)
    box = data.error_box
    assert box is not None and box.isVisible()
    assert "notes.wbp" in box.text() and "not" in box.text()
    assert "unchanged" in box.informativeText()
    assert "notes.wbp" in data.team_status.text()
    box.close()
    assert project.counts() == before  # one transaction: alice's labels did not come in either
    assert data.merge_button.isEnabled()


def test_bias_cells_mark_an_interval_that_leaves_out_half(qtbot, main_window, make_project):
    path = make_project(n_pairs=12)
    with Project.open(path) as project:
        ids = project.comparisons_frame()["comparison_id"].tolist()
        for k, cid in enumerate(ids):
            comp = project.comparison(cid)
            right = "b" if comp.left == "a" else "a"
            project.record_judgment(cid, "lefty", comp.left, left=comp.left)  # always the left one: 12 of 12
            project.record_judgment(cid, "even", comp.left if k % 2 else right, left=comp.left)  # 6 of 12
        run = project.create_run("head", "minilm", {})
        project.add_pair_scores(run, 3, [(cid, "unlabelled", "a", 1.0, 0.0) for cid in ids])
    assert main_window.open_project(path)
    data = show_data(main_window)
    settle(qtbot, data)
    table = data.table
    lefty = table.item(row_of(table, "lefty"), 11)
    assert lefty.data(BIASED_ROLE) is True and lefty.text().startswith("⚠ 100%")
    assert "leaves out 50%" in lefty.toolTip()
    even = table.item(row_of(table, "even"), 11)
    assert even.data(BIASED_ROLE) is False and even.text().startswith("50%")
    assert "includes 50%" in even.toolTip()
    bias = team.bias_report(main_window.project)
    assert lefty.data(VALUE_ROLE) == pytest.approx(bias["annotators"]["lefty"]["left"]["share"]) == 1.0
    # The latest model run is audited beside the annotators.
    model_row = row_of(table, f"Model, run {run}")
    assert table.item(model_row, 1).text() == "model"
    # The stored order is no position: a model has no left-side share; its length share is audited.
    assert table.item(model_row, 11).text() == "n/a" and "no left or right" in table.item(model_row, 11).toolTip()
    longer = table.item(model_row, 12)
    assert bias["model"]["longer"]["n"] > 0
    assert longer.data(VALUE_ROLE) == pytest.approx(bias["model"]["longer"]["share"])


def test_adjudication_from_the_data_view_is_what_training_uses(qtbot, main_window, make_project):
    path = make_project(n_pairs=6)
    with Project.open(path) as project:
        ids = project.comparisons_frame()["comparison_id"].tolist()
        for cid, a_says, b_says in zip(ids[:3], "aab", "aba"):  # two disagreements, one agreement
            project.record_judgment(cid, "alice", a_says, strength=3)
            project.record_judgment(cid, "bob", b_says, strength=2, note="B reads better" if b_says == "b" else "")
    first, second = ids[1], ids[2]
    assert main_window.open_project(path)
    project = main_window.project
    data = show_data(main_window)
    settle(qtbot, data)
    assert data.adjudicate_button.isEnabled()
    assert data.adjudicate_button.text() == "Adjudicate 2 disagreements…"

    qtbot.mouseClick(data.adjudicate_button, Qt.MouseButton.LeftButton)
    dialog = data.adjudication_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.adjudicator == f"{ANNOTATOR} (adjudicator)"
    assert dialog.queue == [first, second] and dialog.current == first
    votes = dialog.votes_label.text()
    assert "alice: A (better)" in votes and "bob: B (slightly better)" in votes and "B reads better" in votes
    assert "No majority" in votes
    assert dialog.b_card.extra.text() == "chosen by bob"

    # Decide the first by mouse: B, much better.
    qtbot.mouseClick(dialog.strength_buttons[4], Qt.MouseButton.LeftButton)
    dialog.note_edit.setText("bob is right: A dodges the question")
    qtbot.mouseClick(dialog.b_button, Qt.MouseButton.LeftButton)
    decision = project.current_judgment(first, dialog.adjudicator)
    assert decision.kind == "adjudication" and decision.choice == "b" and decision.strength == 4
    assert decision.note == "bob is right: A dodges the question"
    kinds = dict(zip(project.annotators()["name"], project.annotators()["kind"]))
    assert kinds[dialog.adjudicator] == "adjudicator"
    pairs = project.training_pairs().set_index("comparison_id")
    assert pairs.loc[first, "annotator"] == dialog.adjudicator and pairs.loc[first, "choice"] == "b"
    assert pairs.loc[first, "judgment_id"] == decision.id
    # The annotators' own labels stay as they were.
    assert project.current_judgment(first, "alice").choice == "a"
    assert project.current_judgment(first, "bob").choice == "b"

    # The second by key: 1 is "A is better".
    assert dialog.current == second
    dialog.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=3000)
    qtbot.keyClick(QApplication.focusWidget() or dialog, Qt.Key.Key_1)
    assert project.current_judgment(second, dialog.adjudicator).choice == "a"
    assert dialog.current is None and dialog.empty_label.isVisible()
    assert team.disagreements(project).empty

    # Undo brings the last decision back into the queue; decide it again.
    qtbot.mouseClick(dialog.undo_button, Qt.MouseButton.LeftButton)
    assert dialog.current == second and project.current_judgment(second, dialog.adjudicator) is None
    qtbot.mouseClick(dialog.tie_button, Qt.MouseButton.LeftButton)
    assert project.current_judgment(second, dialog.adjudicator).choice == "tie"
    assert second not in project.training_pairs()["comparison_id"].tolist()  # a tie is not trained on

    dialog.accept()
    settle(qtbot, data)
    assert data.adjudication_dialog is None
    assert data.adjudicate_button.text() == "No disagreements" and not data.adjudicate_button.isEnabled()
    # Agreement still counts the annotators only: adjudications are decisions, not votes.
    assert data.agreement_panel.kappa_table.rowCount() == 1


def test_agreement_panel_names_fleiss_kappa_for_three_annotators(qtbot):
    # Three annotators on four comparisons, one with two labels only (unequal raters per item).
    rows = [
        (1, "x", "a"),
        (1, "y", "a"),
        (1, "z", "a"),
        (2, "x", "a"),
        (2, "y", "b"),
        (3, "x", "b"),
        (3, "y", "b"),
        (3, "z", "tie"),
        (4, "x", "b"),
        (4, "y", "b"),
    ]
    report = team.agreement_from_table(pd.DataFrame(rows, columns=["comparison_id", "annotator", "choice"]))
    panel = AgreementPanel()
    qtbot.addWidget(panel)
    panel.set_report(report)
    fleiss = panel.figure_labels["fleiss"]
    assert fleiss.text() == f"{report['fleiss_kappa']['kappa']:.2f}" == "0.29"  # 101/351, see test_team.py
    assert "unequal raters per item" in fleiss.toolTip() and "on 4 comparisons" in fleiss.toolTip()
    assert "both ways round" in panel.note.text()
