"""The Inspect view over runs of the real trainer (tiny BERT): most wrong first, filters, compare two runs,
the detail pane (safe text), relabel / flag / exclude, and a 100,000-row table that stays quick."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import Qt
from ui_helpers import ANNOTATOR, HEAD
from wb_testing import held_out_records, make_labelled_project, make_split_project

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.training.config import TrainConfig
from workbench.training.events import Finished, RunStarted
from workbench.training.trainer import Trainer
from workbench.ui.frame_model import Column, FrameModel, fixed
from workbench.ui.inspect_view import MARGIN_COLUMN, InspectView

pytestmark = pytest.mark.slow  # each test trains a run to inspect

HTML_PROMPT = 'Question x: <img src="file:///etc/passwd"> <b>bold?</b> <a href="http://example.com">link</a>'


def train(path, backbone, **settings) -> list:
    events = list(Trainer(path, TrainConfig(backbone=backbone, **settings)).events())
    assert isinstance(events[-1], Finished), events[-1]
    return events


@pytest.fixture
def trained(tmp_path, tiny_bert):
    """A project with noisy labels (a few by "other", one with HTML in its prompt) and one trained run."""
    path = make_labelled_project(tmp_path / "inspect.wbp", noise_every=5)
    with Project.open(path) as p:
        p.add_records(
            [PairRecord(Text(HTML_PROMPT), Text("An excellent answer, html."), Text("A plain one."))],
            source="html.jsonl",
        )
        html_id = int(p.comparisons_frame()["comparison_id"].max())
        p.record_judgment(html_id, ANNOTATOR, "a", strength=2)
        for cid in p.training_pairs()["comparison_id"].tolist()[:4]:
            choice = p.current_judgment(cid, ANNOTATOR).choice
            p.record_judgment(cid, "other", choice, strength=4)  # agrees: "other" becomes the pair's annotator
    events = train(path, tiny_bert, **HEAD)
    return path, events[0].run_id, html_id


@pytest.fixture
def inspect(qtbot, trained):
    path, _, _ = trained
    project = Project.open(path)
    view = InspectView()
    qtbot.addWidget(view)
    view.resize(1400, 800)
    view.set_annotator(ANNOTATOR)
    with qtbot.waitSignal(view.loaded, timeout=20_000):
        view.set_project(project)
    view.show()
    yield view
    view.set_project(None)
    project.close()


def column(view, key) -> list:
    return [view.model.value(r, key) for r in range(view.model.rowCount())]


def select(qtbot, view, row: int) -> int:
    view.table.selectRow(row)
    cid = int(view.model.value(row, "comparison_id"))
    assert view.selected_pair() == cid
    return cid


# --------------------------------------------------------------------- the table
def test_pairs_are_listed_most_wrong_first_with_labels_and_scores(inspect, trained):
    path, run_id, _ = trained
    view = inspect
    with Project.open(path) as p:
        scores = p.pair_scores(run_id)
        n_labelled = len(p.training_pairs())
    assert view.run_id == run_id and view.model.rowCount() == n_labelled
    margins = column(view, "margin")
    assert margins == sorted(margins) and margins[0] <= 0  # most negative first; noisy labels are wrong
    assert view.model.sort_column == MARGIN_COLUMN
    by_id = scores.set_index("comparison_id")
    for r in range(view.model.rowCount()):
        cid = view.model.value(r, "comparison_id")
        assert view.model.value(r, "r_chosen") == pytest.approx(by_id.loc[cid, "r_chosen"])
    first = {c.title: view.model.data(view.model.index(0, i)) for i, c in enumerate(view.model.columns)}
    assert first["Pair"].startswith("#") and first["Prompt"].startswith("Question")
    assert first["Margin"] == f"{margins[0]:+.3f}"
    assert first["Label"] in (
        "A · better",
        "B · better",
        "A · slightly better",
        "B · slightly better",
        "A · significantly better",
        "B · significantly better",
    )
    assert first["Annotator"] in (ANNOTATOR, "other")
    assert view.model.data(view.model.index(0, MARGIN_COLUMN), Qt.ItemDataRole.ForegroundRole) is not None  # red
    assert "mispredicted" in view.count_label.text()
    # Sorting by a header click (here: the model's sort, as the header calls it).
    view.model.sort(0, Qt.SortOrder.DescendingOrder)
    ids = column(view, "comparison_id")
    assert ids == sorted(ids, reverse=True)


def test_filters_mispredicted_annotator_flagged_margin_and_search(qtbot, inspect):
    view = inspect
    frame = view.model.frame
    view.wrong_check.setChecked(True)
    assert view.model.rowCount() == int((frame["margin"] <= 0).sum()) > 0
    assert all(m <= 0 for m in column(view, "margin"))
    view.wrong_check.setChecked(False)
    view.annotator_combo.setCurrentIndex(view.annotator_combo.findData("other"))
    assert view.model.rowCount() == 4 and set(column(view, "annotator")) == {"other"}
    view.annotator_combo.setCurrentIndex(0)
    view.margin_min.setText("0")
    view.margin_max.setText("0.5")
    view.apply_filters()  # (typing starts a short timer; apply now)
    assert all(0 <= m <= 0.5 for m in column(view, "margin"))
    view.margin_min.clear()
    view.margin_max.clear()
    view.search_edit.setText("QUESTION 3:")
    qtbot.waitUntil(lambda: view.model.rowCount() == 2, timeout=2000)  # debounced, case-insensitive
    assert all("Question 3:" in t for t in column(view, "prompt"))
    view.search_edit.clear()
    view.apply_filters()
    select(qtbot, view, 0)
    qtbot.mouseClick(view.flag_button, Qt.MouseButton.LeftButton)
    view.flagged_check.setChecked(True)
    assert view.model.rowCount() == 1 and view.model.value(0, "flagged")
    assert "flagged" in view.model.data(view.model.index(0, len(view.model.columns) - 1))


def test_the_detail_pane_shows_the_pair_safely_with_its_scores(qtbot, inspect, trained):
    _, _, html_id = trained
    view = inspect
    assert view.select_pair(html_id)
    text = view.prompt_view.toPlainText()
    assert '<img src="file:///etc/passwd">' in text and "<b>bold?</b>" in text  # shown as characters
    assert view.prompt_view.resource_requests == 0
    assert "excellent answer, html" in view.a_view.toPlainText()
    row = view.table.currentIndex().row()
    r_c = view.model.value(row, "r_chosen")
    assert view.a_card.title.text().startswith("Response A · chosen")
    assert view.a_card.extra.text() == f"reward {r_c:+.3f}"
    assert f"Pair #{html_id}" in view.detail_title.text()


# --------------------------------------------------------------------- actions
def test_relabel_writes_a_superseding_judgment(qtbot, inspect, trained):
    path, _, _ = trained
    view = inspect
    view.annotator_combo.setCurrentIndex(view.annotator_combo.findData(ANNOTATOR))
    cid = select(qtbot, view, 0)
    before = view.project.current_judgment(cid, ANNOTATOR)
    messages = []
    view.message.connect(messages.append)
    qtbot.mouseClick(view.swap_button, Qt.MouseButton.LeftButton)
    with Project.open(path) as p:
        log = p.judgment_log()
        last = log.iloc[-1]
        assert last["comparison_id"] == cid and last["kind"] == "relabel" and last["annotator"] == ANNOTATOR
        assert last["supersedes"] == before.id
        assert last["choice"] == ("b" if before.choice == "a" else "a") and last["strength"] == before.strength
        assert p.resolved_labels().set_index("comparison_id").loc[cid, "choice"] == last["choice"]
    row = view.table.currentIndex().row()
    assert view.model.value(row, "comparison_id") == cid
    assert "label now" in view.model.data(view.model.index(row, len(view.model.columns) - 1))
    assert messages and "relabelled" in messages[-1]
    # Tie: not trained on any more.
    qtbot.mouseClick(view.tie_button, Qt.MouseButton.LeftButton)
    with Project.open(path) as p:
        assert p.judgment_log().iloc[-1]["choice"] == "tie"
        assert cid not in set(p.training_pairs()["comparison_id"])


def test_a_relabel_that_disagrees_with_another_annotator_says_so(qtbot, inspect):
    view = inspect
    view.annotator_combo.setCurrentIndex(view.annotator_combo.findData("other"))
    select(qtbot, view, 0)
    view.set_annotator("third")  # nobody has labelled as "third" yet
    messages = []
    view.message.connect(messages.append)
    qtbot.mouseClick(view.swap_button, Qt.MouseButton.LeftButton)
    assert "differs" in messages[-1]


def test_excluding_a_pair_removes_it_from_the_next_run(qtbot, inspect, trained, tiny_bert):
    path, run_id, _ = trained
    view = inspect
    cid = select(qtbot, view, 0)
    qtbot.mouseClick(view.exclude_button, Qt.MouseButton.LeftButton)
    assert view.model.value(0, "excluded")
    with Project.open(path) as p:
        assert cid in p.marked("exclude")
        n_before = p.run(run_id)["data_snapshot"]["n_pairs"]
    events = train(path, tiny_bert, mode="head", epochs=1)
    started = events[0]
    assert isinstance(started, RunStarted) and started.n_train + started.n_val == n_before - 1
    with Project.open(path) as p:
        snap = p.run(started.run_id)["data_snapshot"]
        assert cid not in snap["comparison_ids"] and snap["n_excluded"] == 1
    # And back in.
    qtbot.mouseClick(view.exclude_button, Qt.MouseButton.LeftButton)
    with Project.open(path) as p:
        assert cid not in p.marked("exclude")


def test_compare_with_another_run_shows_the_pairs_that_flipped(qtbot, inspect, trained, tiny_bert):
    path, first, _ = trained
    view = inspect
    # Fix the labels the first run got wrong, then train again: those pairs should now come out right.
    with Project.open(path) as p:
        scores = p.pair_scores(first)
        wrong = scores[(scores["split"] != "unlabelled") & (scores["margin"] <= 0)]
        for cid, chosen in zip(wrong["comparison_id"].tolist(), wrong["chosen"].tolist()):
            p.record_judgment(int(cid), ANNOTATOR, "b" if chosen == "a" else "a", strength=3, kind="relabel")
    second = train(path, tiny_bert, **HEAD)[0].run_id
    view.refresh_runs()
    with qtbot.waitSignal(view.loaded, timeout=20_000):
        view.show_run(second)
    with qtbot.waitSignal(view.loaded, timeout=20_000):
        view.compare_combo.setCurrentIndex(view.compare_combo.findData(first))
    flip_col = [c.title for c in view.model.columns].index("Compared")
    assert (view.run_id, view.compare_id) == (second, first) and flip_col == MARGIN_COLUMN + 1
    with Project.open(path) as p:
        a = p.pair_scores(second).set_index("comparison_id")["margin"]
        b = p.pair_scores(first).set_index("comparison_id")["margin"]
    a = a[a.index.isin(view.model.frame["comparison_id"])]
    flipped = {int(c) for c in a.index if (a[c] > 0) != (b[c] > 0)}
    assert flipped  # the relabelled pairs changed sign
    view.flipped_check.setChecked(True)
    assert set(column(view, "comparison_id")) == flipped
    texts = {view.model.data(view.model.index(r, flip_col)) for r in range(view.model.rowCount())}
    # Runs store out-of-fold scores now, so a former suspect also says what became of it.
    assert all(t.startswith((f"▲ fixed (wrong in #{first})", f"▼ broken (right in #{first})")) for t in texts), texts


# --------------------------------------------------------------------- 100,000 rows
def test_a_100k_row_table_sorts_and_filters_and_data_does_no_formatting(qtbot):
    n = 100_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "comparison_id": np.arange(n),
            "margin": rng.normal(0.5, 1.0, n),
            "annotator": rng.choice(["ann", "bob", "cy"], n),
        }
    )
    frame["wrong"] = frame["margin"] <= 0
    calls = []

    def fmt(series):
        calls.append(len(series))
        return fixed(3, signed=True)(series)

    model = FrameModel(
        [
            Column("comparison_id", "Pair"),
            Column("margin", "Margin", fmt=fmt, alert="wrong"),
            Column("annotator", "Annotator"),
        ]
    )
    model.set_frame(frame, sort_column=1)
    model.set_filter(frame["wrong"].to_numpy())
    model.sort(2, Qt.SortOrder.DescendingOrder)
    model.sort(1, Qt.SortOrder.AscendingOrder)
    for r in range(60):
        model.data(model.index(r, 1))
    assert model.rowCount() == int(frame["wrong"].sum())
    assert model.data(model.index(0, 1)) == f"{frame['margin'].min():+.3f}"
    assert calls == [n]  # the column was formatted once, as a whole, not per row (speed: bench_gui_responsiveness)
    for r in range(5000):
        model.data(model.index(r, 1))
    assert calls == [n]  # reading cells formats nothing more
    # Changing one row recomputes that cell only.
    pos = model.frame_position(0)
    model.update_rows([pos], {"margin": 9.0, "wrong": False})
    assert calls == [n, 1] and model.data(model.index(0, 1)) == "+9.000"


@pytest.mark.slow
def test_the_why_tab_attributes_the_pair_on_screen_with_the_runs_model(qtbot, inspect, trained):
    """Attribution runs in the training process only while the tab is open, for the selected pair."""
    path, run_id, _ = trained
    view = inspect
    cid = select(qtbot, view, 0)
    assert view.why_pane.run_id is None  # the Texts tab is open: no job was asked for
    with qtbot.waitSignal(view.why_pane.updated, timeout=60_000) as blocker:
        view.detail_tabs.setCurrentWidget(view.why_pane)
    view.why_pane.wait_idle()
    assert (view.why_pane.run_id, view.why_pane.comparison_id) == (run_id, cid)
    with Project.open(path) as p:
        stored = p.pair_scores(run_id).set_index("comparison_id").loc[cid]
    assert blocker.args[0]["margin"] == pytest.approx(float(stored["margin"]), abs=1e-4)


# --------------------------------------------------------------------- the test split (issue 13)
def test_the_runs_test_split_pairs_are_shown_with_their_eval_results(qtbot, tmp_path, tiny_bert):
    """Test-split pairs appear beside the run's own pairs, split "test", with the margins, right/wrong and
    p(chosen) = σ(margin / T) that ``workbench eval`` computes for them (oriented to their label: A or B); the
    Split filter shows them alone; test pairs imported after the run are counted, not shown; a flipped pair
    of the Evaluation panel (a test pair) opens."""
    from wb_testing import synthetic_records

    from workbench.training.eval_run import evaluate

    path = tmp_path / "split.wbp"
    make_split_project(path, held_out_records(10))
    with Project.open(path) as p:
        n_train = len(p.training_pairs())
    run_id = train(path, tiny_bert, **HEAD)[0].run_id
    want, frame = evaluate(project=path, run=run_id)
    with Project.open(path) as p:
        assert set(p.test_pairs()["choice"]) == {"a", "b"}  # both orientations are checked
    late = [
        PairRecord(Text("Late. " + r.prompt.text), r.response_a, r.response_b, r.choice, r.strength)
        for r in synthetic_records(3, 2, seed=5)
    ]
    with Project.open(path) as p:
        p.add_records(late, source="late.jsonl", split="test")

    project = Project.open(path)
    view = InspectView()
    qtbot.addWidget(view)
    view.resize(1400, 800)
    with qtbot.waitSignal(view.loaded, timeout=20_000):
        view.set_project(project)
    try:
        assert view.model.rowCount() == n_train + len(frame)
        assert [view.split_combo.itemData(i) for i in range(view.split_combo.count())] == [None, "train", "val", "test"]
        view.split_combo.setCurrentIndex(view.split_combo.findData("test"))
        shown = {int(view.model.value(r, "comparison_id")): r for r in range(view.model.rowCount())}
        assert set(shown) == set(frame["comparison_id"].astype(int))
        for row in frame.itertuples(index=False):
            r = shown[int(row.comparison_id)]
            assert view.model.value(r, "split_s") == "test"
            assert view.model.value(r, "margin") == pytest.approx(row.margin, abs=1e-9)
            assert view.model.value(r, "p_chosen") == pytest.approx(row.p_chosen, abs=1e-9)
            assert bool(view.model.value(r, "wrong")) == (not row.correct)
        wrong = int((~frame["correct"]).sum())
        assert f"{len(frame)} of {n_train + len(frame)} pairs shown" in view.count_label.text()
        assert f"{wrong} of them mispredicted" in view.count_label.text()  # the test split's own mistakes
        assert f"{len(late)} test pairs have no stored score of this run yet" in view.suspects_note.text()
        view.split_combo.setCurrentIndex(view.split_combo.findData("train"))
        assert {view.model.value(r, "split") for r in range(view.model.rowCount())} == {"train"}
        view.split_combo.setCurrentIndex(0)
        cid = int(frame["comparison_id"].iloc[0])
        view.show_pair(run_id, cid)  # what a double-click on a flipped pair in the Evaluation panel does
        assert view.selected_pair() == cid
        assert view.detail_title.text().startswith(f"Pair #{cid} · test")
        assert "p(chosen)" in view.detail_scores.text()
        assert wrong == int(
            sum(
                bool(view.model.value(r, "wrong"))
                for r in range(view.model.rowCount())
                if view.model.value(r, "split") == "test"
            )
        )
        assert want["overall"]["n"] == len(frame)
    finally:
        view.set_project(None)
        project.close()
