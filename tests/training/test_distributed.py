"""Data-parallel training under torchrun: two processes train like one, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from training_helpers import collect
from wb_testing import make_synthetic_project

from workbench.core.store import Project
from workbench.training import distributed
from workbench.training.config import TrainConfig
from workbench.training.trainer import STEP_SPLIT, Trainer, batches_by_rank

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: ``python -m workbench train`` once the CLI module exists; the training commands alone until then.
CLI = "workbench" if (REPO / "workbench" / "cli.py").is_file() else "workbench.training.commands"


@pytest.fixture(scope="module")
def tiny_bert_no_dropout(tmp_path_factory, tiny_bert_dir) -> str:
    """The tiny BERT without dropout, so one process and two compute the same function to float noise
    (with dropout each rank draws its own masks)."""
    out = tmp_path_factory.mktemp("tiny_bert_nodrop")
    shutil.copytree(tiny_bert_dir, out, dirs_exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(config))
    return str(out)


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        CLI,
        "train",
        *args,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=150)


@pytest.mark.parametrize("mode", ["finetune", "head"])
def test_two_processes_train_like_one(tmp_path, tiny_bert_no_dropout, mode):
    path = make_synthetic_project(tmp_path / f"{mode}.wbp")
    lr = 5e-3 if mode == "finetune" else 3e-2
    proc = torchrun(
        ["--project", str(path), "--mode", mode, "--backbone", tiny_bert_no_dropout, "--epochs", "3", "--lr", str(lr)]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished: validation accuracy") == 1  # rank 0 alone reports
    with Project.open(path) as p:
        runs = p.runs()
        assert len(runs) == 1  # rank 0 created the run; rank 1 used its id
        ddp = p.run(int(runs["id"][0]))
        assert ddp["status"] == "finished" and ddp["summary"]["world_size"] == 2
        ddp_metrics = p.run_metrics(ddp["id"])
        ddp_scores = p.pair_scores(ddp["id"])
        if mode == "head":
            assert ddp["summary"]["embedded_texts"] == 96  # the two ranks embedded half each; rank 0 stored all

    config = TrainConfig(backbone=tiny_bert_no_dropout, mode=mode, epochs=3, learning_rate=lr)
    single = collect(Trainer(path, config))[-1]
    assert single.summary["world_size"] == 1
    if mode == "head":
        assert single.summary["embedded_texts"] == 0  # what rank 0 cached is what one process needs
    assert single.summary["val_accuracy"] == ddp["summary"]["val_accuracy"] > 0.9
    assert abs(single.summary["val_loss"] - ddp["summary"]["val_loss"]) < 1e-4
    with Project.open(path) as p:
        one_metrics = p.run_metrics(single.run_id)
        one_scores = p.pair_scores(single.run_id)
    # Each step saw the same global batch: the same per-step curve and the same per-pair scores.
    ddp_metrics, one_metrics = (
        df.sort_values(["step", "split", "name"], ignore_index=True) for df in (ddp_metrics, one_metrics)
    )
    assert ddp_metrics[["step", "split", "name"]].equals(one_metrics[["step", "split", "name"]])
    steps = ddp_metrics["split"] == STEP_SPLIT
    # Float noise only: the two ranks' gradients are summed by the all-reduce, one process sums them in its
    # kernels. It grows over 3 epochs at this high learning rate, most in grad_norm (measured up to 1.5e-4
    # relative; loss and margins agree to 1e-5); a wrong average would be off by a factor, not 1e-3.
    assert np.allclose(ddp_metrics["value"][steps], one_metrics["value"][steps], rtol=1e-3, atol=1e-4)
    assert ddp_scores[["comparison_id", "split"]].equals(one_scores[["comparison_id", "split"]])
    assert np.allclose(ddp_scores["margin"], one_scores["margin"], atol=1e-4)


def test_helpers_on_one_process_are_no_ops():
    info = distributed.setup("cpu")
    assert info == distributed.SINGLE and not info.enabled and info.is_main
    assert distributed.shard([5, 6, 7], info) == [5, 6, 7]
    assert distributed.broadcast_object({"run": 3}, info) == {"run": 3}
    assert distributed.all_gather_objects(1, info) == [1]
    assert distributed.any_rank(True, info) and not distributed.any_rank(False, info)
    assert distributed.device_for(info, "cuda") == "cuda"


def test_batches_are_sharded_by_stride():
    two = [distributed.DistInfo(rank=r, world_size=2) for r in (0, 1)]
    batch = [10, 11, 12, 13, 14]
    assert [distributed.shard(batch, i) for i in two] == [[10, 12, 14], [11, 13]]
    assert distributed.shard([10], two[1]) == []  # the trainer then joins with a zero-weight pair
    assert batches_by_rank([[0, 1], [2, 3], [4]], 2) == [[0, 1, 4], [2, 3]]
