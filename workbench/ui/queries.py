"""Small read-only queries the views need and the store does not (yet) offer.

Each prefers a method of ``Project`` when the store grows one, so these fall away without a change
to the views.
"""

from __future__ import annotations

import json

from workbench.core.records import Text
from workbench.core.store import Project


def read_only_message(project: Project | None) -> str | None:
    """The status-bar line for a write refused because the project was opened read-only, or None when the
    project can be written (every view checks this before writing)."""
    reason = getattr(project, "read_only", None)
    if reason is None:
        return None
    return f"Read only ({reason}): nothing was changed. Copy the project somewhere writable to change it."


def response_count(project: Project, prompt_id: int) -> int:
    """How many responses a prompt has (ranking needs three or more)."""
    return project.conn.execute("SELECT COUNT(*) FROM responses WHERE prompt_id = ?", (prompt_id,)).fetchone()[0]


def prompt_responses(project: Project, prompt_id: int) -> list[tuple[int, Text]]:
    """The responses of a prompt that take part in at least one comparison, oldest first."""
    if hasattr(project, "prompt_responses"):
        return project.prompt_responses(prompt_id)
    rows = project.conn.execute(
        "SELECT r.id, r.text, r.messages FROM responses r WHERE r.prompt_id = ? AND EXISTS"
        " (SELECT 1 FROM comparisons c WHERE c.response_a = r.id OR c.response_b = r.id) ORDER BY r.id",
        (prompt_id,),
    ).fetchall()
    return [(r[0], Text(r[1], json.loads(r[2]) if r[2] else None)) for r in rows]


def has_model_scores(project: Project) -> bool:
    """Whether a run has scored pairs, so the model-driven queue orders mean something."""
    return project.conn.execute("SELECT 1 FROM pair_scores LIMIT 1").fetchone() is not None


def comparison_total(project: Project) -> int:
    return project.conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0]
