"""Helpers shared by the test folders (importable as ``wb_testing``: tests/ is on sys.path via its conftest).

Tests that look inside a project file open their own SQLite connection: the store's is private. No Qt and no
torch here: the core tests import this module too (UI-only helpers are in tests/ui/ui_helpers.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
from pathlib import Path
from typing import Any

from workbench.core.records import PairRecord, Text
from workbench.core.store import Project


def _path(project_or_path: Any) -> str:
    return os.fspath(getattr(project_or_path, "path", project_or_path))


def db_dump(project_or_path: Any) -> str:
    """The whole database, every table, as SQL text: "unchanged" means byte for byte."""
    with contextlib.closing(sqlite3.connect(_path(project_or_path))) as conn:
        return "\n".join(conn.iterdump())


def sql(project_or_path: Any, query: str, *params: Any) -> list[tuple]:
    """Rows of a read-only query on the project file, on a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(_path(project_or_path))) as conn:
        return [tuple(row) for row in conn.execute(query, params)]


# ------------------------------------------------------------------ synthetic projects with a learnable rule
# The chosen response always says "excellent" and the rejected one never does, so even a 2-layer random BERT
# learns the preference in a few steps. Which stored response (a or b) is the chosen one is random, so a
# model cannot win by position.

WORDS = (
    "river",
    "apple",
    "engine",
    "garden",
    "planet",
    "window",
    "violin",
    "bridge",
    "silver",
    "forest",
    "copper",
    "castle",
    "rocket",
    "meadow",
    "pencil",
    "harbor",
)
#: the annotator of the labelled synthetic projects, and the one the UI tests label as
ANNOTATOR = "tester"


def _keyword_prompt(rng: random.Random, i: int) -> str:
    return f"Question {i}: tell me about the {rng.choice(WORDS)} and the {rng.choice(WORDS)}."


def _keyword_answers(rng: random.Random, j: int, max_topic_words: int) -> tuple[str, str]:
    """(good, bad): the good answer says "excellent"."""
    topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, max_topic_words)))
    return (
        f"An excellent answer about {topic} number {j}.",
        f"A plain answer about {topic} number {j} and {rng.choice(WORDS)}.",
    )


def synthetic_records(
    n_prompts: int, per_prompt: int = 2, seed: int = 0, long_prompt: int = 0, unlabelled: int = 0
) -> list[PairRecord]:
    """Labelled pairs (choice and a strength of 1-4 in the records), plus ``unlabelled`` pairs per prompt."""
    rng = random.Random(seed)
    out = []
    for i in range(n_prompts):
        prompt = _keyword_prompt(rng, i)
        if long_prompt:
            prompt = " ".join(rng.choice(WORDS) for _ in range(long_prompt)) + " " + prompt
        for j in range(per_prompt + unlabelled):
            good, bad = _keyword_answers(rng, j, 6)
            if j >= per_prompt:  # unlabelled comparisons
                out.append(PairRecord(Text(prompt), Text(good), Text(bad)))
            elif rng.random() < 0.5:
                out.append(PairRecord(Text(prompt), Text(good), Text(bad), choice="a", strength=rng.randint(1, 4)))
            else:
                out.append(PairRecord(Text(prompt), Text(bad), Text(good), choice="b", strength=rng.randint(1, 4)))
    return out


def make_synthetic_project(path: Path, n_prompts: int = 24, per_prompt: int = 2, seed: int = 0, **kwargs) -> Path:
    """A project of :func:`synthetic_records`, labelled on import."""
    with Project.create(path) as project:
        project.add_records(synthetic_records(n_prompts, per_prompt, seed, **kwargs), source="synthetic.jsonl")
    return path


def held_out_records(n_prompts: int = 8, seed: int = 9, flip: bool = False) -> list[PairRecord]:
    """Labelled pairs (two per prompt) over prompts no :func:`synthetic_records` training pair shares, for a
    test split; ``flip`` reverses every label."""
    out = []
    for r in synthetic_records(n_prompts, 2, seed=seed):
        choice = {"a": "b", "b": "a"}[r.choice] if flip else r.choice
        out.append(PairRecord(Text("Held out. " + r.prompt.text), r.response_a, r.response_b, choice, r.strength))
    return out


def make_split_project(path: Path, test: list[PairRecord] | None) -> Path:
    """24 synthetic training prompts (two pairs each) and, unless None, ``test`` as the test split."""
    with Project.create(path) as project:
        project.add_records(synthetic_records(24, 2, seed=0), source="train.jsonl")
        if test is not None:
            project.add_records(test, source="test.jsonl", split="test")
    return path


def make_labelled_project(
    path: Path,
    n_prompts: int = 16,
    per_prompt: int = 2,
    noise_every: int = 0,
    annotator: str = ANNOTATOR,
    seed: int = 0,
) -> Path:
    """Pairs over ``n_prompts`` prompts, each judged by ``annotator`` (strength 3): the response with
    "excellent" wins, except every ``noise_every``-th pair, labelled the other way (so a model that
    learns the rule mispredicts exactly those)."""
    rng = random.Random(seed)
    records = []
    for i in range(n_prompts):
        prompt = _keyword_prompt(rng, i)
        for j in range(per_prompt):
            good, bad = _keyword_answers(rng, j, 5)
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


def event_names(events) -> list[str]:
    """The class names of trainer events, in order."""
    return [type(e).__name__ for e in events]
