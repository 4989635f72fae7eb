"""A small trained project for the export and score tests: HH-style pairs, tiny models, four runs.

The prompts are HH transcripts ("\\n\\nHuman: ...\\n\\nAssistant:") so that the same pairs can be written as
explicit rows and as implicit whole transcripts; some prompts are long enough to be cut from the left
at MAX_LENGTH, so truncation is exercised. Runs (all short; what they learn does not matter here,
only that their heads and backbones have moved off their initial values):

1. finetune, tiny BERT;  2. head, tiny BERT;  3. finetune with LoRA, tiny BERT;  4. finetune, tiny GPT-2.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from training_helpers import collect
from wb_testing import WORDS

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.training.config import TrainConfig
from workbench.training.events import Finished
from workbench.training.trainer import Trainer

MAX_LENGTH = 40
RUNS = {
    "finetune": dict(mode="finetune", learning_rate=5e-3, epochs=2),
    "head": dict(mode="head", learning_rate=3e-2, epochs=10),
    "lora": dict(mode="finetune", lora=True, learning_rate=2e-2, epochs=2),
}


def hh_records(n_prompts: int = 20, seed: int = 0) -> list[PairRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n_prompts):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.choice([2, 4, 30])))  # some prompts are long
        prompt = f"\n\nHuman: Question {i}: {words}, tell me about the {rng.choice(WORDS)}?\n\nAssistant:"
        for j in range(2):
            topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
            good = f" An excellent answer about {topic} number {j}."
            bad = f" A plain answer about {topic} and {rng.choice(WORDS)} number {j}."
            if rng.random() < 0.5:
                out.append(PairRecord(Text(prompt), Text(good), Text(bad), choice="a"))
            else:
                out.append(PairRecord(Text(prompt), Text(bad), Text(good), choice="b"))
    return out


@dataclass
class TrainedProject:
    path: Path
    #: run name -> run id
    runs: dict[str, int]


def train_project(path: Path, bert_dir: str, gpt2_dir: str) -> TrainedProject:
    with Project.create(path) as project:
        project.add_records(hh_records(), source="hh-style.jsonl")
    runs = {}
    for name, settings in [*RUNS.items(), ("gpt2", dict(mode="finetune", learning_rate=5e-3, epochs=1))]:
        backbone = gpt2_dir if name == "gpt2" else bert_dir
        # rescore_train: every stored score is the final model's, so all of them must match the export
        exact = {"rescore_train": True} if settings.get("mode") == "finetune" else {}
        events = collect(Trainer(path, TrainConfig(backbone=backbone, max_length=MAX_LENGTH, **settings, **exact)))
        assert isinstance(events[-1], Finished), events[-1]
        runs[name] = events[-1].run_id
    return TrainedProject(path, runs)


def app_scores(path: Path, run_id: int) -> dict[int, tuple[float, float]]:
    """comparison id -> (r_chosen, r_rejected) as the app stored them at the run's last evaluation."""
    with Project.open(path) as project:
        frame = project.pair_scores(run_id)
    return {int(c): (rc, rr) for c, rc, rr in zip(frame["comparison_id"], frame["r_chosen"], frame["r_rejected"])}


def training_pairs(path: Path) -> list[dict]:
    """The project's labelled pairs: comparison_id, prompt, chosen, rejected (plain strings here)."""
    with Project.open(path) as project:
        frame = project.training_pairs()
    return [
        dict(comparison_id=int(c), prompt=p, chosen=ch, rejected=rj)
        for c, p, ch, rj in zip(frame["comparison_id"], frame["prompt"], frame["chosen"], frame["rejected"])
    ]


# Runs in a fresh interpreter that must not import workbench: only transformers and torch.
_PLAIN_SCORER = r"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
torch.set_num_threads(1)
jobs = json.loads(sys.stdin.read())
out = []
for job in jobs:
    tok = AutoTokenizer.from_pretrained(job["folder"])
    model = AutoModelForSequenceClassification.from_pretrained(job["folder"], num_labels=1)
    assert not model.training and model.config.num_labels == 1
    assert tok.truncation_side == "left", tok.truncation_side
    batch = tok(job["texts"], truncation=True, max_length=job["max_length"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out.append(model(**batch).logits.squeeze(-1).tolist())
assert not any(m == "workbench" or m.startswith("workbench.") for m in sys.modules), "workbench was imported"
print(json.dumps(out))
"""


def score_with_plain_transformers(jobs: list[dict]) -> list[list[float]]:
    """Score texts with exported folders in a subprocess that imports only transformers and torch.
    Each job: {"folder", "texts", "max_length"}."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-c", _PLAIN_SCORER],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(jobs[0]["folder"]).parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
