"""Helpers for the Train and Inspect view tests: a tiny random BERT (built in a second) and small projects
whose pairs the tester labelled, with a learnable rule (the chosen response says "excellent").

The model builder is the one in ``tests/training/conftest.py`` (copied, since fixtures there are not
visible from tests/ui)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from ui_helpers import ANNOTATOR

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ("river", "apple", "engine", "garden", "planet", "window", "violin", "bridge", "silver", "forest",
         "copper", "castle", "rocket", "meadow", "pencil", "harbor")
#: fast settings under which the tiny BERT learns the keyword rule in head mode
HEAD = {"mode": "head", "learning_rate": 3e-2, "epochs": 12}


def make_labelled_project(path: Path, n_prompts: int = 16, per_prompt: int = 2, noise_every: int = 0,
                          annotator: str = ANNOTATOR, seed: int = 0) -> Path:
    """Pairs over ``n_prompts`` prompts, each labelled by ``annotator`` (strength 3): the response with
    "excellent" wins, except every ``noise_every``-th pair, labelled the other way (so a model that
    learns the rule mispredicts exactly those)."""
    rng = random.Random(seed)
    records = []
    for i in range(n_prompts):
        prompt = f"Question {i}: tell me about the {rng.choice(WORDS)} and the {rng.choice(WORDS)}."
        for j in range(per_prompt):
            topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
            good = f"An excellent answer about {topic} number {j}."
            bad = f"A plain answer about {topic} number {j} and {rng.choice(WORDS)}."
            a, b = (good, bad) if rng.random() < 0.5 else (bad, good)
            records.append(PairRecord(Text(prompt), Text(a), Text(b)))
    with Project.create(path, seed=7) as project:
        project.add_records(records, source="synthetic.jsonl")
        frame = project.comparisons_frame()
        for k, row in enumerate(frame.itertuples(index=False)):
            choice = "a" if "excellent" in row.response_a else "b"
            if noise_every and k % noise_every == 0:
                choice = "b" if choice == "a" else "a"
            project.record_judgment(int(row.comparison_id), annotator, choice, strength=3, left="a")
    return path
