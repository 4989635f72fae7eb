"""The thread count of "auto": measured by a probe whose timer the tests replace, cached per machine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_helpers import collect
from wb_testing import make_synthetic_project

from workbench.training import threads
from workbench.training.config import TrainConfig
from workbench.training.events import Finished, RunStarted
from workbench.training.trainer import Trainer


class FakeClock:
    """A timer that advances only by what a step at the current thread count costs."""

    def __init__(self, cost: dict[int, float]):
        self.now, self.cost, self.calls = 0.0, cost, 0

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.calls += 1
        self.now += self.cost[torch.get_num_threads()]


def test_candidates_come_from_the_machine():
    assert threads.candidates(1) == [1]
    assert threads.candidates(2) == [1, 2]
    assert threads.candidates(8) == [1, 4, 8]
    assert threads.candidates(16) == [1, 8, 16]
    assert threads.candidates() == sorted(set(threads.candidates()))  # this machine's, whatever it is


def test_the_fastest_count_is_chosen_and_cached(tmp_path):
    cache = tmp_path / "threads.json"
    clock = FakeClock({1: 1.0, 4: 0.3, 8: 0.4})
    before = torch.get_num_threads()
    choice = threads.choose_threads(0, "finetune", clock.step, cache_path=cache, timer=clock, cores=8)
    assert (choice.threads, choice.source) == (4, "probe")
    assert choice.seconds == pytest.approx({1: 1.0, 4: 0.3, 8: 0.4})
    assert clock.calls == 9  # a warm-up and two timed steps per count
    assert torch.get_num_threads() == before  # the probe restores torch's setting
    assert "4 CPU threads" in choice.describe() and "1: 1 s" in choice.describe()
    stored = json.loads(cache.read_text(encoding="utf-8"))
    (key,) = stored
    assert key == threads.machine_key("finetune", 8) and threads.cpu_model() in key
    assert stored[key]["threads"] == 4

    # The next run on this machine reads it back without probing; another kind of work probes for itself.
    again = threads.choose_threads(0, "finetune", clock.step, cache_path=cache, timer=clock, cores=8)
    assert (again.threads, again.source, again.seconds, clock.calls) == (4, "cache", choice.seconds, 9)
    score = threads.choose_threads(0, "score", FakeClock({1: 0.5, 4: 0.5, 8: 0.1}).step, cache_path=cache, cores=8)
    assert score.source == "probe" and len(json.loads(cache.read_text(encoding="utf-8"))) == 2


def test_a_tie_goes_to_fewer_threads_and_a_setting_is_kept(tmp_path):
    clock = FakeClock({1: 1.0, 2: 0.98})  # within MIN_GAIN: one thread leaves the other core to the user
    choice = threads.choose_threads(0, "finetune", clock.step, cache_path=tmp_path / "t.json", timer=clock, cores=2)
    assert choice.threads == 1
    clock = FakeClock({1: 1.0, 2: 0.5})
    assert threads.choose_threads(0, "x", clock.step, cache_path=tmp_path / "u.json", timer=clock, cores=2).threads == 2
    assert threads.choose_threads(3, "finetune", None, cache_path=tmp_path / "v.json") == threads.ThreadChoice(
        3, "setting"
    )
    assert not (tmp_path / "v.json").exists()


def test_a_broken_cache_file_is_measured_again(tmp_path):
    cache = tmp_path / "threads.json"
    cache.write_text("not json", encoding="utf-8")
    clock = FakeClock({1: 0.2, 2: 0.5})
    choice = threads.choose_threads(0, "finetune", clock.step, cache_path=cache, timer=clock, cores=2)
    assert (choice.threads, choice.source) == (1, "probe")
    assert json.loads(cache.read_text(encoding="utf-8"))[threads.machine_key("finetune", 2)]["threads"] == 1


def test_an_auto_run_probes_once_and_changes_nothing_it_trains(tmp_path, monkeypatch, tiny_bert_dir):
    """A real fine-tune with threads=0: the probe's figures reach the run's details and summary, the cache
    lands in the user's data folder, and the trained weights equal those of a run with the count set."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    path_a, path_b = make_synthetic_project(tmp_path / "a.wbp"), make_synthetic_project(tmp_path / "b.wbp")
    cfg = dict(backbone=tiny_bert_dir, mode="finetune", learning_rate=5e-3, epochs=1, folds=0)
    events = collect(Trainer(path_a, TrainConfig(threads=0, **cfg)))
    started = next(e for e in events if isinstance(e, RunStarted))
    done = events[-1]
    assert isinstance(done, Finished) and done.status == "finished"
    chosen = started.details["threads"]
    assert chosen["source"] in ("probe", "cache") and chosen["threads"] in threads.candidates()
    assert done.summary["threads"] == chosen["threads"] and "CPU thread" in done.summary["threads_note"]
    if len(threads.candidates()) > 1:
        assert (tmp_path / "data" / threads.CACHE_FILE).is_file()
    set_events = collect(Trainer(path_b, TrainConfig(threads=chosen["threads"], **cfg)))
    assert set_events[-1].summary["threads"] == chosen["threads"]
    a, b = (np.array([e.summary["train_loss"], e.summary["val_loss"]]) for e in (done, set_events[-1]))
    assert np.allclose(a, b, atol=1e-6)  # the probe's passes left the weights and random state alone


def test_the_training_process_of_the_window_leaves_a_core_to_the_gui(monkeypatch, tmp_path):
    """With a core reserved (server._child_main does it), auto never measures or uses every core, and its
    cached choice is kept apart from the command line's, which may use them all."""
    monkeypatch.setattr(threads, "_reserved_cores", 0)
    free_key = threads.machine_key("finetune", 8)
    threads.reserve_cores(1)
    assert threads.candidates(8) == [1, 3, 7]
    assert threads.candidates(2) == [1]
    assert threads.machine_key("finetune", 8) != free_key
    clock = FakeClock({1: 1.0, 3: 0.4, 7: 0.2, 8: 0.1})
    choice = threads.choose_threads(0, "finetune", clock.step, cache_path=tmp_path / "t.json", timer=clock, cores=8)
    assert choice.threads == 7 and set(choice.seconds) == {1, 3, 7}
    assert threads.choose_threads(0, "finetune", clock.step, cache_path=tmp_path / "t.json", cores=2).threads == 1
