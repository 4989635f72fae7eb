"""A small, learnable synthetic project for the trainer tests, and helpers to drive a Trainer.

The chosen response always contains the word "excellent" and the rejected one never does, so even a
2-layer random BERT learns the preference in a few steps. Which stored response (a or b) is the
chosen one is random, so a model cannot win by position.
"""

from __future__ import annotations

import random
from pathlib import Path

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project

WORDS = ("river", "apple", "engine", "garden", "planet", "window", "violin", "bridge", "silver", "forest",
         "copper", "castle", "rocket", "meadow", "pencil", "harbor")


def synthetic_records(n_prompts: int, per_prompt: int = 2, seed: int = 0, long_prompt: int = 0,
                      unlabelled: int = 0) -> list[PairRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n_prompts):
        prompt = f"Question {i}: tell me about the {rng.choice(WORDS)} and the {rng.choice(WORDS)}."
        if long_prompt:
            prompt = " ".join(rng.choice(WORDS) for _ in range(long_prompt)) + " " + prompt
        for j in range(per_prompt + unlabelled):
            topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
            good = f"An excellent answer about {topic} number {j}."
            bad = f"A plain answer about {topic} number {j} and {rng.choice(WORDS)}."
            if j >= per_prompt:  # unlabelled comparisons
                out.append(PairRecord(Text(prompt), Text(good), Text(bad)))
            elif rng.random() < 0.5:
                out.append(PairRecord(Text(prompt), Text(good), Text(bad), choice="a", strength=rng.randint(1, 4)))
            else:
                out.append(PairRecord(Text(prompt), Text(bad), Text(good), choice="b", strength=rng.randint(1, 4)))
    return out


def make_project(path: Path, n_prompts: int = 24, per_prompt: int = 2, seed: int = 0, **kwargs) -> Path:
    with Project.create(path) as project:
        project.add_records(synthetic_records(n_prompts, per_prompt, seed, **kwargs), source="synthetic.jsonl")
    return path


def collect(trainer, on_event=None) -> list:
    """All events of a run; ``on_event(event)`` is called for each as it arrives."""
    events = []
    for event in trainer.events():
        events.append(event)
        if on_event is not None:
            on_event(event)
    return events


def comparable_metrics(project_path: Path, run_id: int):
    """A run's metrics, with the wall-clock-dependent ones left out, as a sorted list of tuples."""
    with Project.open(project_path) as project:
        df = project.run_metrics(run_id)
    df = df[df["name"] != "created_at"]
    return sorted(zip(df["step"], df["split"], df["name"], df["value"]))
