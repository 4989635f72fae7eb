"""Checkpoints and resuming: a run killed with SIGKILL continues the same curve from its last checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import collect, comparable_metrics
from wb_testing import make_synthetic_project

from workbench.core.store import Project
from workbench.training import checkpoint
from workbench.training.config import TrainConfig
from workbench.training.events import (
    CheckpointSaved,
    Failed,
    Finished,
    RunStarted,
    StepMetrics,
)
from workbench.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real training runs, killed and resumed

# The kill switch: a copy of the trainer in a subprocess that SIGKILLs itself two steps after its first
# checkpoint, so the run dies mid-epoch with metrics written after the checkpoint it will resume from.
_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
from workbench.training.config import TrainConfig
from workbench.training.events import CheckpointSaved, StepMetrics
from workbench.training.trainer import Trainer
import json
saved = None
for event in Trainer(sys.argv[2], TrainConfig.from_dict(json.loads(sys.argv[3]))).events():
    if isinstance(event, CheckpointSaved) and saved is None:
        saved = event.step
    if isinstance(event, StepMetrics) and saved is not None and event.step >= saved + 2:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _scores(path: Path, run_id: int):
    with Project.open(path) as p:
        return p.pair_scores(run_id).drop(columns=[]).reset_index(drop=True)


def _assert_same_curve(path: Path, run_a: int, run_b: int) -> None:
    a, b = comparable_metrics(path, run_a), comparable_metrics(path, run_b)
    assert [row[:3] for row in a] == [row[:3] for row in b]  # the same steps, splits and names
    assert max(abs(x[3] - y[3]) for x, y in zip(a, b)) <= 1e-6
    with Project.open(path) as p:
        steps = sorted(set(p.run_metrics(run_a)["step"]))
        evaluated = 0
        for step in steps:
            sa, sb = p.pair_scores(run_a, step), p.pair_scores(run_b, step)
            assert len(sa) == len(sb)
            if sa.empty:
                continue
            evaluated += 1
            assert sa[["comparison_id", "split", "chosen"]].equals(sb[["comparison_id", "split", "chosen"]])
            assert (sa[["r_chosen", "r_rejected"]] - sb[["r_chosen", "r_rejected"]]).abs().max().max() <= 1e-6
        assert evaluated >= 2


@pytest.mark.parametrize("mode", ["finetune", "head"])
@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_on_the_same_curve(tmp_path, tiny_bert_dir, mode):
    path = make_synthetic_project(tmp_path / "r.wbp")
    # Fine-tuning the tiny BERT uses dropout, so the RNG state must be restored exactly as well.
    config = TrainConfig(
        backbone=tiny_bert_dir, mode=mode, epochs=3, learning_rate=5e-3 if mode == "finetune" else 3e-2
    )
    uninterrupted = collect(Trainer(path, config))[-1]
    assert isinstance(uninterrupted, Finished)

    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(REPO), str(path), json.dumps(config.to_dict())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with Project.open(path) as p:
        killed = int(p.runs()["id"].iloc[-1])
        assert p.run(killed)["status"] == "running"  # nobody told the store
        first_epoch = checkpoint.load(checkpoint.latest(p.checkpoint_dir(killed))).step
        # Rows a process can write after its last checkpoint (buffered step metrics are flushed every few
        # seconds, evaluations when they happen): the resumed run must forget them.
        p.add_metrics(killed, first_epoch + 1, "train_step", {"loss": 123.0}, 1.2)
        p.add_pair_scores(killed, first_epoch + 1, [(1, "train", "a", 5.0, -5.0)])

    events = collect(Trainer(path, config, resume_run=killed))
    started, done = events[0], events[-1]
    assert isinstance(started, RunStarted) and started.run_id == killed
    assert started.resumed_from_step == first_epoch
    assert isinstance(done, Finished) and done.status == "finished" and done.run_id == killed
    assert min(e.step for e in events if isinstance(e, StepMetrics)) == first_epoch + 1
    _assert_same_curve(path, uninterrupted.run_id, killed)
    assert done.summary["val_accuracy"] == uninterrupted.summary["val_accuracy"]
    with Project.open(path) as p:
        assert p.run(killed)["status"] == "finished" and len(p.runs()) == 2


def test_cancel_mid_epoch_then_resume_is_the_uninterrupted_run(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "c.wbp")
    config = TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=2, learning_rate=5e-3)
    full = collect(Trainer(path, config))[-1]
    trainer = Trainer(path, config)
    events = collect(trainer, lambda e: trainer.cancel() if isinstance(e, StepMetrics) and e.step == 3 else None)
    assert events[-1].status == "cancelled" and events[-2].step == 3  # CheckpointSaved mid-epoch
    resumed = collect(Trainer(path, config, resume_run=events[-1].run_id))
    assert resumed[0].resumed_from_step == 3 and resumed[-1].status == "finished"
    _assert_same_curve(path, full.run_id, events[-1].run_id)


def test_resume_uses_the_runs_snapshot_even_after_relabelling(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "s.wbp")
    config = TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=4, learning_rate=3e-2)
    full = collect(Trainer(path, config))[-1]
    trainer = Trainer(path, config)
    events = collect(trainer, lambda e: trainer.cancel() if isinstance(e, StepMetrics) and e.step == 2 else None)
    with Project.open(path) as p:  # labels change while the run is stopped
        for cid in p.training_pairs()["comparison_id"][:5]:
            p.set_mark(int(cid), "exclude", True)
    collect(Trainer(path, config, resume_run=events[-1].run_id))
    _assert_same_curve(path, full.run_id, events[-1].run_id)


def test_resume_refuses_what_cannot_be_resumed(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "x.wbp")
    config = TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=1)
    done = collect(Trainer(path, config))[-1]
    cases = {done.run_id: "already finished", 99: "no run 99"}
    trainer = Trainer(path, config.replace(epochs=3))
    stopped = collect(trainer, lambda e: trainer.cancel() if isinstance(e, StepMetrics) else None)[-1]
    with Project.open(path) as p:
        for item in p.checkpoint_dir(stopped.run_id).iterdir():  # as if it died before any checkpoint
            item.unlink() if item.is_file() else __import__("shutil").rmtree(item)
    cases[stopped.run_id] = "no checkpoint"
    for run_id, message in cases.items():
        events = collect(Trainer(path, config, resume_run=run_id))
        assert len(events) == 1 and isinstance(events[0], Failed) and message in events[0].message


# --------------------------------------------------------------------- the checkpoint files
def test_checkpoints_are_safetensors_and_json_and_replace_each_other(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "f.wbp")
    events = collect(Trainer(path, TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=2)))
    saves = [e for e in events if isinstance(e, CheckpointSaved)]
    assert len(saves) == 2
    with Project.open(path) as p:
        run_dir = p.checkpoint_dir(events[-1].run_id)
    files = sorted(str(f.relative_to(run_dir)) for f in run_dir.rglob("*") if f.is_file())
    last = Path(saves[-1].path).name
    assert files == ["latest.json", f"{last}/model.safetensors", f"{last}/optimizer.safetensors", f"{last}/state.json"]
    state = json.loads((run_dir / last / "state.json").read_text())
    assert state["step"] == saves[-1].step and state["config"]["mode"] == "finetune"
    assert state["snapshot"]["judgment_ids"] and "torch" in state["rng"]
    assert not any(f.endswith((".pt", ".bin", ".pkl")) for f in files)


def test_optimizer_state_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(3):
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    saved = checkpoint.save(tmp_path, 3, checkpoint.trainable_state(model), opt, {"config": {}})
    assert checkpoint.latest(tmp_path) == saved
    ckpt = checkpoint.load(saved)
    twin = torch.nn.Linear(4, 1)
    checkpoint.load_trainable_state(twin, ckpt.model)
    twin_opt = torch.optim.AdamW(twin.parameters(), lr=0.1, weight_decay=0.01)
    twin_opt.load_state_dict(ckpt.optimizer)
    x = torch.randn(8, 4)
    for m, o in ((model, opt), (twin, twin_opt)):
        m(x).pow(2).mean().backward()
        o.step()
    assert torch.equal(model.weight, twin.weight) and torch.equal(model.bias, twin.bias)


def test_a_half_written_checkpoint_is_never_the_latest(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters())
    first = checkpoint.save(tmp_path, 1, checkpoint.trainable_state(model), opt, {})
    (tmp_path / ".step-000002.tmp").mkdir()  # a process died while writing step 2
    (tmp_path / ".step-000002.tmp" / "model.safetensors").write_bytes(b"partial")
    assert checkpoint.latest(tmp_path) == first
    second = checkpoint.save(tmp_path, 2, checkpoint.trainable_state(model), opt, {})
    assert checkpoint.latest(tmp_path) == second and not first.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step-000002"]


def test_load_trained_model_rebuilds_the_run(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "m.wbp")
    events = collect(Trainer(path, TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=1)))
    with Project.open(path) as p:
        run_dir = p.checkpoint_dir(events[-1].run_id)
        scores = p.pair_scores(events[-1].run_id).set_index("comparison_id")
        pairs = p.training_pairs().set_index("comparison_id")
    model, tokenizer, config = checkpoint.load_trained_model(run_dir)
    from workbench.training.model import PairEncoder, collate_pairs

    encoder = PairEncoder(tokenizer, config.max_length)
    cid = int(scores.index[scores["split"] == "val"][0])  # freshly scored (training pairs: the last epoch's passes)
    c, r = (encoder.encode(pairs.loc[cid, "prompt"], pairs.loc[cid, side]).input_ids for side in ("chosen", "rejected"))
    batch = collate_pairs([c], [r], tokenizer.pad_token_id)
    with torch.no_grad():
        r_c, r_r = model(batch["input_ids"], batch["attention_mask"]).tolist()
    assert abs(r_c - scores.loc[cid, "r_chosen"]) < 1e-5 and abs(r_r - scores.loc[cid, "r_rejected"]) < 1e-5


def test_a_snapshot_rebuilds_the_same_pairs_conversations_included(tmp_path):
    from workbench.core.records import PairRecord, Text
    from workbench.training import data

    path = tmp_path / "conv.wbp"
    records = [
        PairRecord(
            Text.of([{"role": "user", "content": f"Question {i}?"}]),
            Text.of([{"role": "assistant", "content": f"An excellent answer {i}."}]),
            Text(f"A plain answer {i}."),
            choice="ab"[i % 2],
            strength=1 + i % 4,
        )
        for i in range(12)
    ]
    with Project.create(path) as p:
        p.add_records(records, source="conv")
        fresh = data.pairs_from_frame(p.training_pairs())
        is_val = data.split_by_prompt(fresh.prompt_keys, 0.25, seed=0)
        rebuilt, rebuilt_val = data.pairs_from_snapshot(p.comparisons_frame(), data.make_snapshot(fresh, is_val))
    assert isinstance(fresh.prompts[0], list) and isinstance(fresh.chosen[0], (list, str))
    for name in ("choices", "strengths", "prompt_keys", "prompts", "chosen", "rejected"):
        assert getattr(rebuilt, name) == getattr(fresh, name), name
    assert (rebuilt.comparison_ids == fresh.comparison_ids).all() and (rebuilt_val == is_val).all()


def test_a_resumed_run_keeps_its_stored_config_and_records_what_changed(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    config = TrainConfig(backbone=tiny_bert_dir, mode="head", epochs=4, max_length=64)
    trainer = Trainer(path, config)
    for ev in trainer.events():
        if isinstance(ev, CheckpointSaved):
            trainer.cancel()
    run_id = trainer.run_id
    # Another mode, epochs and seed are ignored (the run's own), a thread count is allowed and recorded.
    asked = TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=1, seed=5, threads=1)
    events = collect(Trainer(path, asked, resume_run=run_id))
    started = events[0]
    assert isinstance(started, RunStarted) and isinstance(events[-1], Finished)
    assert started.config == {**config.to_dict(), "threads": 1}
    with Project.open(path) as p:
        run = p.run(run_id)
    assert run["summary"]["resumed_with"] == {"threads": 1}
    assert run["config"] == config.to_dict()  # what the run stored stays what it is
