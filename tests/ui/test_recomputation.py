"""Recomputation: the figures every change asks for again, computed one at a time off the GUI thread."""

from __future__ import annotations

import threading

from wb_testing import make_synthetic_project

from workbench.ui.tasks import Recomputation


def test_a_request_while_one_runs_is_served_once_more_and_an_old_projects_result_is_dropped(qtbot, tmp_path):
    first = make_synthetic_project(tmp_path / "first.wbp", n_prompts=3)
    second = make_synthetic_project(tmp_path / "second.wbp", n_prompts=5)
    gate = threading.Event()
    runs: list[str] = []

    def work(project, progress, cancel):
        gate.wait(10)  # held until the test has asked again
        runs.append(project.path.name)
        return (project.path.name, project.counts()["comparisons"])

    figures = Recomputation(work, "counting")
    got: list[object] = []
    figures.ready.connect(got.append)
    running = figures.request(first)
    assert figures.request(first) is running and figures.request(second) is running  # no second thread
    gate.set()
    qtbot.waitUntil(lambda: figures.task is None and len(runs) == 2, timeout=10000)
    assert runs == ["first.wbp", "second.wbp"]  # once more, for the project asked for last
    assert got == [("second.wbp", 10)]  # the first project's figures arrived after it was no longer asked for

    gate.clear()
    figures.request(first)
    gate.set()
    figures.forget()  # the view closes its project: the running computation ends, its result is dropped
    qtbot.waitUntil(lambda: figures.task is None, timeout=10000)
    assert got == [("second.wbp", 10)]
