"""Training on team labels: the soft-target loss, and assign -> label -> merge -> ``train --labels posterior``."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from wb_testing import make_synthetic_project

from workbench.core.assign import assign_work
from workbench.core.label_session import LabelSession
from workbench.core.store import Project
from workbench.core.team import merge_projects
from workbench.training import data
from workbench.training.loss import pair_terms, pairwise_loss

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def test_soft_targets_are_the_cross_entropy_and_p1_is_todays_loss():
    rc, rr = torch.tensor([1.0, 0.2, -0.5]), torch.tensor([0.0, 0.7, -0.5])
    p = torch.tensor([0.9, 0.5, 0.7])
    got = pair_terms(rc, rr, target=p)
    for i in range(3):
        d = float(rc[i] - rr[i])
        want = -(p[i] * math.log(1 / (1 + math.exp(-d))) + (1 - p[i]) * math.log(1 / (1 + math.exp(d))))
        assert got[i].item() == pytest.approx(float(want), rel=1e-6)
    hard = pair_terms(rc, rr, margin=torch.tensor([0.3, 0.0, 1.0]))
    assert torch.allclose(pair_terms(rc, rr, margin=torch.tensor([0.3, 0.0, 1.0]), target=torch.ones(3)), hard)
    assert torch.allclose(pairwise_loss(rc, rr, target=1.0)[0], pairwise_loss(rc, rr)[0])
    # p = 1/2 pulls the two rewards together: no gradient at equal rewards, and symmetric in chosen/rejected
    x = torch.tensor([0.4], requires_grad=True)
    pair_terms(x, torch.tensor([0.4]), target=0.5).sum().backward()
    assert x.grad is not None and x.grad.abs().item() < 1e-7
    assert pair_terms(rc, rr, target=0.5).tolist() == pytest.approx(pair_terms(rr, rc, target=0.5).tolist())


def test_soft_targets_survive_the_snapshot(tmp_path):
    path = make_synthetic_project(tmp_path / "p.wbp", n_prompts=6)
    with Project.open(path) as p:
        frame = p.training_pairs()
        frame["target"] = [0.9 if i % 2 else 1.0 for i in range(len(frame))]
        pairs = data.pairs_from_frame(frame)
        is_val = data.split_by_prompt(pairs.prompt_keys, 0.3, 0)
        snapshot = data.make_snapshot(pairs, is_val)
        again, _ = data.pairs_from_snapshot(p.comparisons_frame(), snapshot)
    assert again.targets == pairs.targets and pairs.targets is not None and 0.9 in pairs.targets
    assert pairs.subset([1]).targets == [pairs.targets[1]]
    assert data.pairs_from_frame(frame.assign(target=1.0)).targets is None  # hard labels: no targets stored


def label_like(session: LabelSession, accuracy: float, rng: random.Random, n: int) -> None:
    """Label ``n`` comparisons: the response that says "excellent" with probability ``accuracy``."""
    for _ in range(n):
        comp = session.next()
        if comp is None:
            return
        good = "a" if "excellent" in comp.response_a.text else "b"
        session.commit(good if rng.random() < accuracy else ("b" if good == "a" else "a"))


@pytest.mark.slow
def test_assign_label_merge_and_train_on_posterior_labels(tmp_path, tiny_bert_dir):
    project = make_synthetic_project(tmp_path / "p.wbp", n_prompts=30, per_prompt=0, unlabelled=2)
    out = tmp_path / "out"
    assign_work(project, ["alice", "bob", "carol"], out, per_item=2, seed=0)
    rng = random.Random(0)
    for name, accuracy in (("alice", 0.95), ("bob", 0.85), ("carol", 0.6)):
        with Project.open(out / f"{name}.wbp") as p:
            label_like(LabelSession(p, name), accuracy, rng, 1000)
    merge_projects([out / f"{n}.wbp" for n in ("alice", "bob", "carol")], project)
    with Project.open(project) as p:
        soft = p.training_pairs(labels="posterior")
    assert len(soft) == 60 and (soft["target"] < 1).all() and (soft["target"] >= 0.5).all()

    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "train", "--project", str(project), "--labels", "posterior"]
        + ["--ties", "half", "--mode", "head", "--backbone", tiny_bert_dir, "--epochs", "3", "--max-length", "64"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "run 1 finished" in proc.stdout
    with Project.open(project) as p:
        run = p.run(1)
    assert run["config"]["labels"] == "posterior" and run["config"]["ties"] == "half"
    snapshot = run["data_snapshot"]
    assert snapshot["labels"] == "posterior" and snapshot["n_pairs"] == 60
    assert len(snapshot["targets"]) == 60 and min(snapshot["targets"]) >= 0.5 and min(snapshot["targets"]) < 1
