"""The trainer in a child process (what the GUI runs): the same events, controls across the pipe, and a
child that dies is a failed, resumable run, not a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from wb_testing import event_names, make_synthetic_project

from workbench.core.store import Project
from workbench.training import process
from workbench.training.config import TrainConfig
from workbench.training.events import (
    CheckpointSaved,
    Failed,
    Finished,
    Paused,
    RunStarted,
    StepMetrics,
)
from workbench.training.process import TrainerProcess

pytestmark = pytest.mark.slow  # each test starts the training process

REPO = Path(__file__).resolve().parents[2]


def test_a_run_in_the_child_yields_the_trainers_events(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=2))
    events = list(tp.events())
    assert event_names(events)[0] == "RunStarted" and event_names(events)[-1] == "Finished"
    assert events[-1].status == "finished" and tp.run_id == events[0].run_id
    assert tp.pid is not None and tp.pid != os.getpid()
    with Project.open(path) as p:
        assert p.run(tp.run_id)["status"] == "finished"
        assert len(p.pair_scores(tp.run_id))


def test_controls_reach_the_child_and_a_late_one_never_touches_the_next_run(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    config = TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=50, learning_rate=1e-3)
    tp = TrainerProcess(path, config)
    tp.pause()  # before the child has the run: it goes with the run
    seen = []
    for ev in tp.events():
        seen.append(ev)
        if isinstance(ev, Paused):
            tp.cancel()
    assert "Paused" in event_names(seen) and not any(isinstance(e, StepMetrics) for e in seen)
    assert isinstance(seen[-1], Finished) and seen[-1].status == "cancelled"
    tp.cancel()  # after its run ended: dropped, not kept for whatever run the child does next

    tp2 = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=1))
    events = list(tp2.events())
    assert tp2.pid == tp.pid  # the same child served both runs (torch imported once)
    assert isinstance(events[-1], Finished) and events[-1].status == "finished"


@pytest.mark.slow
def test_a_killed_child_is_a_failed_resumable_run_and_the_next_run_gets_a_new_child(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    config = TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=200, learning_rate=1e-3)
    tp = TrainerProcess(path, config)
    events: list = []
    for ev in tp.events():
        events.append(ev)
        if isinstance(ev, StepMetrics) and any(isinstance(e, CheckpointSaved) for e in events):
            os.kill(tp.pid, signal.SIGKILL)  # after the first epoch's checkpoint
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.run_id == events[0].run_id
    assert "killed by SIGKILL" in failed.message and "resume" in failed.hint
    with Project.open(path) as p:
        run = p.run(failed.run_id)
        assert run["status"] == "failed" and "killed by SIGKILL" in run["message"]

    resumed = TrainerProcess(path, config, resume_run=failed.run_id)
    resumed.cancel()  # the run is resumable: it starts again from its checkpoint, then stops at once
    again = list(resumed.events())
    assert resumed.pid != tp.pid
    assert isinstance(again[0], RunStarted) and again[0].run_id == failed.run_id
    assert isinstance(again[-1], Finished) and again[-1].status == "cancelled"


def test_stopping_iteration_mid_run_checkpoints_and_frees_the_child(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=200, learning_rate=1e-3))
    stream = tp.events()
    for ev in stream:
        if isinstance(ev, StepMetrics):
            break
    stream.close()  # e.g. the window went away: the child is told to stop at a step boundary
    with Project.open(path) as p:
        assert p.run(tp.run_id)["status"] == "cancelled"
    tp2 = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=1))
    assert event_names(list(tp2.events()))[-1] == "Finished" and tp2.pid == tp.pid


@pytest.mark.parametrize(
    "exc, oom",
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes"), True),
        (MemoryError(), True),
        (RuntimeError("shape mismatch"), False),
    ],
)
def test_failures_name_what_happened_and_what_to_do(exc, oom):
    ev = process.failure_event(exc, 7)
    assert ev.run_id == 7 and ev.hint
    assert ev.message.startswith("out of memory") == oom
    assert ("lower batch_size" in ev.hint) == oom


def test_the_gui_process_never_imports_torch():
    """The GUI's modules (the Train view and its worker included) leave torch to the training process."""
    code = (
        "import sys; import workbench.ui.main_window, workbench.ui.train_view, workbench.ui.inspect_view, "
        "workbench.ui.worker, workbench.ui.app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------- short jobs in the training process
def _texts_of(path, run_id, n=4):
    """(prompt, chosen) texts of ``n`` scored pairs of a run, and their stored r_chosen."""
    with Project.open(path) as p:
        scores = p.pair_scores(run_id)
        frame = p.comparisons_frame().drop_duplicates("comparison_id").set_index("comparison_id")
    scores = scores[scores["split"] != "unlabelled"].head(n)
    texts = []
    for cid, choice in zip(scores["comparison_id"], scores["chosen"]):
        row = frame.loc[cid]
        texts.append((row["prompt"], row["response_a"] if choice == "a" else row["response_b"]))
    return texts, scores["r_chosen"].to_numpy()


def test_a_score_job_runs_in_the_training_process_with_a_runs_model(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=2))
    assert event_names(list(tp.events()))[-1] == "Finished"
    texts, stored = _texts_of(path, tp.run_id)
    got = process.run_job("score", project=str(path), run=tp.run_id, texts=texts, timeout=120)
    assert len(got) == len(texts)
    assert max(abs(a - b) for a, b in zip(got, stored)) < 1e-4  # the scores the run stored for those texts
    with pytest.raises(process.JobError, match="no run 99"):
        process.run_job("score", project=str(path), run=99, texts=texts, timeout=120)
    with pytest.raises(process.JobError, match="unknown job kind 'nope'"):
        process.run_job("nope", timeout=60)
    tp2 = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=1))
    assert event_names(list(tp2.events()))[-1] == "Finished" and tp2.pid == tp.pid  # one process for all of it


def test_a_short_job_waits_while_a_run_trains_and_runs_while_it_is_paused(tmp_path, tiny_bert_dir):
    import threading

    path = make_synthetic_project(tmp_path / "p.wbp")
    done = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=1))
    list(done.events())
    texts, _ = _texts_of(path, done.run_id, n=2)
    results: list = []

    def ask() -> None:
        results.append(process.run_job("score", project=str(path), run=done.run_id, texts=texts, timeout=300))

    asker = threading.Thread(target=ask)
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=200, learning_rate=1e-3))
    steps = 0
    for ev in tp.events():
        if isinstance(ev, StepMetrics):
            steps += 1
            if steps == 1:
                asker.start()  # arrives while the run trains
            elif steps == 8:
                assert not results  # the rule: it waits while the run trains...
                tp.pause()
        elif isinstance(ev, Paused):
            asker.join(120)  # ...and runs once the run is paused
            assert len(results) == 1 and len(results[0]) == 2
            tp.cancel()
    assert isinstance(ev, Finished) and ev.status == "cancelled"
