"""JobThread: a short job waited for off the GUI thread, its result or error back as a signal."""

from __future__ import annotations

import threading

from workbench.ui.tasks import JobThread


def test_the_result_comes_back_from_the_worker_thread_and_an_error_as_its_message(qtbot):
    seen: list[tuple[str, bool]] = []

    def runner(payload):
        seen.append((payload["kind"], threading.current_thread() is threading.main_thread()))
        if payload["kind"] == "bad":
            raise ValueError("run 3 has no checkpoint")
        return {"scored": 7}

    good = JobThread(runner, {"kind": "good"})
    with qtbot.waitSignal(good.succeeded, timeout=5000) as result:
        good.start()
    assert result.args == [{"scored": 7}]
    bad = JobThread(runner, {"kind": "bad"})
    with qtbot.waitSignal(bad.failed, timeout=5000) as error:
        bad.start()
    assert error.args == ["run 3 has no checkpoint"]
    good.wait(5000), bad.wait(5000)
    assert seen == [("good", False), ("bad", False)]  # never on the GUI thread
