"""What the views say about the project that is not theirs alone: the read-only message.

No SQL here (tests/architecture/test_sealed_store.py): the views ask ``Project`` by name.
"""

from __future__ import annotations

from workbench.core.store import Project


def read_only_message(project: Project | None) -> str | None:
    """The status-bar line for a write refused because the project was opened read-only, or None when the
    project can be written (every view checks this before writing)."""
    reason = getattr(project, "read_only", None)
    if reason is None:
        return None
    return f"Read only ({reason}): nothing was changed. Copy the project somewhere writable to change it."
