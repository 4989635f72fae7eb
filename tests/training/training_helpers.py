"""Helpers to drive a Trainer in the training tests (the synthetic projects are in tests/wb_testing.py)."""

from __future__ import annotations

from pathlib import Path

from workbench.core.store import Project


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
