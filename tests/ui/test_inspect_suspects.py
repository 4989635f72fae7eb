"""The Inspect view's suspects (issue 12) over a real head-mode run of the tiny BERT with out-of-fold scores
stored through the store: Suspects first, the category filter and queue, the reason line, click-to-open and
lasso on both plots, the review actions, the thin-dynamics message and the message for a run without folds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ui_helpers import ANNOTATOR, HEAD
from wb_testing import make_labelled_project

from workbench.core.store import Project
from workbench.training.config import TrainConfig
from workbench.training.events import Finished
from workbench.training.trainer import Trainer
from workbench.ui.inspect_view import InspectView

pytestmark = pytest.mark.slow


def train_with_folds(path, backbone, folds: bool = True, **settings) -> int:
    from workbench.training.folds import out_of_fold_margins

    events = list(Trainer(path, TrainConfig(backbone=backbone, **settings)).events())
    assert isinstance(events[-1], Finished), events[-1]
    run_id = events[0].run_id
    if folds:
        with Project.open(path) as p:
            if p.oof_scores(run_id).empty:  # the trainer may store them itself
                oof = out_of_fold_margins(p, run_id, k=4)
                rows = oof[["comparison_id", "chosen", "fold", "r_chosen", "r_rejected"]].itertuples(index=False)
                p.add_oof_scores(run_id, list(rows), "head-folds")
    return run_id


@pytest.fixture(scope="module")
def suspects_project(tmp_path_factory, tiny_bert_dir):
    path = make_labelled_project(tmp_path_factory.mktemp("suspects") / "s.wbp", n_prompts=20, noise_every=4)
    run_id = train_with_folds(path, tiny_bert_dir, **HEAD)
    return path, run_id


def open_view(qtbot, path):
    project = Project.open(path)
    view = InspectView()
    qtbot.addWidget(view)
    view.resize(1500, 900)
    view.set_annotator(ANNOTATOR)
    with qtbot.waitSignal(view.loaded, timeout=60_000):
        view.set_project(project)
    view.show()
    return view, project


@pytest.fixture
def inspect(qtbot, suspects_project, tmp_path):
    path = tmp_path / "copy.wbp"
    copy = shutil.copytree if suspects_project[0].is_dir() else shutil.copy2
    copy(suspects_project[0], path)
    view, project = open_view(qtbot, path)
    yield view
    view.set_project(None)
    project.close()


def column(view, key) -> list:
    return [view.model.value(r, key) for r in range(view.model.rowCount())]


def test_suspects_first_category_filter_and_the_reason_line(inspect):
    view = inspect
    assert view.has_suspects and view.suspects_note.text().startswith("Suspects:")
    view.suspects_first_button.click()
    p = np.asarray(column(view, "p_label_wrong"), dtype=float)
    assert len(p) == 40 and np.all(np.diff(p) <= 0) and p[0] > p[-1]
    assert view.model.data(view.model.index(0, 2)) == f"{p[0]:.2f}"
    cats = column(view, "category")
    target = cats[0]
    view.category_combo.setCurrentIndex(view.category_combo.findData(target))
    assert set(column(view, "category")) == {target} and view.model.rowCount() == cats.count(target)
    view.table.selectRow(0)
    reason = view.model.value(0, "reason")
    assert reason and "out-of-fold margin" in reason
    assert view.why_label.text() == f"Why suspected ({target}): {reason}"


def test_a_click_on_either_plot_opens_the_pair(inspect):
    view = inspect
    for plot in (view.cartography, view.error_map):
        assert plot.stack.currentWidget() is plot.plot, plot.message.text()
        item, spot = next((i, s) for i in plot.items.values() for s in i.points() if s.data() != view.selected_pair())
        cid = int(spot.data())
        item.sigClicked.emit(item, [spot], None)
        assert view.selected_pair() == cid
        assert view.detail_title.text().startswith(f"Pair #{cid} ")


def test_a_lasso_filters_the_table_and_clears(inspect):
    view = inspect
    plot = view.error_map
    x, y = plot.xs, plot.ys
    # A polygon around the points right of the median x: exactly those pairs are kept.
    mid = float(np.median(x))
    xs = np.array([mid + 1e-9, x.max() + 1, x.max() + 1, mid + 1e-9])
    ys = np.array([y.min() - 1, y.min() - 1, y.max() + 1, y.max() + 1])
    ids = plot.select_polygon(xs, ys)
    expected = set(plot.ids[x > mid].tolist())
    assert set(ids.tolist()) == expected and 0 < len(expected) < len(x)
    assert set(column(view, "comparison_id")) == expected
    assert view.lasso_label.text() == f"{len(expected)} pairs selected in the plot"
    view.lasso_clear.click()
    assert view.model.rowCount() == 40 and view.lasso_label.text() == ""


def test_each_review_writes_its_record_and_the_pair_leaves_the_queue(inspect, qtbot):
    view = inspect
    project = view.project
    view.queue_check.setChecked(True)
    queued = view.model.rowCount()
    assert queued >= 2, "the noisy labels should give suspects"
    view.suspects_first_button.click()
    for action in ("keep", "flip", "tie", "both_bad", "exclude"):
        if not view.model.rowCount():
            break
        view.table.selectRow(0)
        cid = view.selected_pair()
        before, _ = project.resolved_label(cid)
        assert view.review(action) is None  # no reason: nothing written
        view.reason_edit.setText(f"checked {action}")
        assert view.review(action) is not None
        assert cid not in set(column(view, "comparison_id"))
        now, _ = project.resolved_label(cid)
        if action == "exclude":
            assert cid in project.marked("exclude") and now == before
        else:
            adjudications = project.labels()
            mine = adjudications[(adjudications["comparison_id"] == cid) & (adjudications["kind"] == "adjudication")]
            assert mine["note"].tolist() == [f"review {action}: checked {action}"]
            want = {"keep": before, "flip": "b" if before == "a" else "a"}.get(action, action)
            assert now == want
    assert view.model.rowCount() == max(0, queued - 5)


def test_read_only_disables_the_reviews(qtbot, suspects_project, monkeypatch):
    from workbench.core import store

    monkeypatch.setattr(store, "probe_read_only", lambda p: "read-only file system")
    view, project = open_view(qtbot, suspects_project[0])
    try:
        view.table.selectRow(0)
        assert view.why_label.text()
        assert not any(b.isEnabled() for b in view.review_buttons.values())
    finally:
        view.set_project(None)
        project.close()


def test_thin_dynamics_and_missing_folds_say_so(qtbot, tmp_path, tiny_bert_dir):
    path = make_labelled_project(tmp_path / "thin.wbp", n_prompts=12, noise_every=4)
    thin = train_with_folds(path, tiny_bert_dir, **{**HEAD, "epochs": 2})
    bare = train_with_folds(path, tiny_bert_dir, folds=False, **{**HEAD, "epochs": 2})
    with Project.open(path) as p:
        p.add_oof_scores(bare, [], "head-folds")  # nothing stored (a run from before folds)
    view, project = open_view(qtbot, path)
    try:
        assert view.run_id == bare and not view.has_suspects
        assert f"workbench suspects --project {path} --run {bare}" in view.suspects_note.text()
        assert view.cartography.stack.currentWidget() is view.cartography.message
        with qtbot.waitSignal(view.loaded, timeout=60_000):
            view.show_run(thin)
        assert view.has_suspects
        assert view.cartography.stack.currentWidget() is view.cartography.message
        assert "Too few points per pair (n < 5" in view.cartography.message.text()
    finally:
        view.set_project(None)
        project.close()


def _set_blas_threads(n: int) -> None:
    """Size the process's OpenBLAS pools from a short-lived thread, as a task would (threadpoolctl lets one
    live thread at a time size them; a thread that has ended holds no such role)."""
    import threading

    from threadpoolctl import threadpool_limits

    setter = threading.Thread(target=lambda: threadpool_limits(limits=n, user_api="blas"))
    setter.start()
    setter.join()


def test_the_load_leaves_a_core_to_the_gui_thread_and_shows_the_run_in_steps(qtbot, suspects_project, tmp_path):
    """The load runs with the BLAS pools capped at all cores but one (OpenBLAS workers spinning after the
    error map's PCA starved the GUI thread), and a loaded run is shown in steps with due timers between
    them (the table, then the selection, then each plot): no one long turn of the event loop."""
    from PySide6.QtCore import QTimer
    from threadpoolctl import threadpool_info

    from workbench.ui.tasks import background_threads

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    path = tmp_path / "copy.wbp"
    shutil.copy2(suspects_project[0], path)
    project = Project.open(path)
    view = InspectView()
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    before = blas_threads()
    _set_blas_threads(background_threads() + 3)
    order: list[str] = []
    try:
        assert blas_threads() and set(blas_threads()) == {background_threads() + 3}
        ticker = QTimer()  # a zero-interval timer: it fires in every turn of the event loop that runs timers

        def note(what: str) -> None:  # repeats in a row count once (the frame and the filters each reset)
            if order[-1:] != [what]:
                order.append(what)

        ticker.timeout.connect(lambda: note("tick") if order else None)
        view.model.modelReset.connect(lambda: note("table") if view.busy() else None)
        view.table.selectionModel().currentRowChanged.connect(lambda *_: order.append("selection"))
        view.loaded.connect(lambda _r: order.append("loaded"))
        ticker.start(0)
        try:
            with qtbot.waitSignal(view.loaded, timeout=60_000):
                view.set_project(project)
        finally:
            ticker.stop()
        assert set(blas_threads()) == {background_threads()}
        shown = order[order.index("table") :]
        assert shown[:3] == ["table", "tick", "selection"], shown
        assert shown[-2:] == ["tick", "loaded"], shown
        assert not view.busy() and view.cartography.stack.currentWidget() is not view.cartography.message
    finally:
        _set_blas_threads(before[0])
        view.set_project(None)
        project.close()
