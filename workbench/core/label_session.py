"""One annotator's labelling session, without Qt: the comparison on screen, its sides, the pending answer.

It owns the comparison being judged (and the answer being revised after an undo), which response is on
the left, the note / flag / strength set but not yet submitted, when the comparison was shown, and the
session's count of judgments. It is the one place the Label view writes to the project (judgments,
undo, rankings, guidelines), so a refusal here (a read-only project) covers every key and button. Each
operation returns an ``Outcome`` the view renders; none raises for a storage error.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbench.core.records import STRENGTHS, Comparison, Judgment, Text
from workbench.core.store import Project, ProjectError, read_only_message

DEFAULT_STRENGTH = 3


@dataclass
class Pending:
    """What the annotator has set for the comparison on screen but not yet submitted."""

    note: str = ""
    flag: bool = False
    strength: int = DEFAULT_STRENGTH

    @property
    def flags(self) -> list[str]:
        return ["flag"] if self.flag else []


@dataclass(frozen=True)
class Outcome:
    """The result of an operation: whether it wrote, what to tell the annotator, what it wrote."""

    ok: bool
    message: str = ""
    count: int = 0  # judgments written (a ranking writes several)
    undone: Judgment | None = None


class LabelSession:
    """Judge comparisons of one project as one annotator; the view calls these and renders the results."""

    def __init__(
        self,
        project: Project | None = None,
        annotator: str = "",
        order: str = "new",
        clock: Callable[[], float] = time.time,
    ):
        self.project = project
        self.annotator = annotator
        self.order = order  # the queue order passed to ``Project.next_comparison``
        self.clock = clock
        self.current: Comparison | None = None
        self.previous: Judgment | None = None  # the answer being revised after an undo
        self.pending = Pending()
        self.shown_at: float | None = None
        self.started = clock()
        self.judgments = 0  # judgments this session (skips do not count; an undo takes one back)
        self._busy = False
        self._restart()

    def _restart(self) -> None:
        self.current = None
        self.previous = None
        self.pending = Pending()
        self.shown_at = None
        self.started = self.clock()
        self.judgments = 0

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self._restart()

    def set_annotator(self, name: str) -> None:
        self.annotator = name
        self._restart()

    @property
    def ready(self) -> bool:
        """A project and an annotator: comparisons can be fetched."""
        return self.project is not None and bool(self.annotator)

    @property
    def read_only(self) -> bool:
        return self.project is not None and self.project.read_only is not None

    # ------------------------------------------------------------------ the queue
    def next(self) -> Comparison | None:
        """Fetch and show the next comparison in the session's order; None when the queue is empty."""
        if not self.ready:
            return None
        assert self.project is not None  # ready: a project is open
        cid = self.project.next_comparison(self.annotator, self.order)
        if cid is None:
            self.current = None
            self.previous = None
            return None
        return self.show(cid)

    def show(self, comparison_id: int, previous: Judgment | None = None) -> Comparison:
        """Make a comparison current; ``previous`` (after an undo) seeds the pending note, flag and strength."""
        assert self.project is not None  # callers show comparisons of the open project only
        self.current = self.project.comparison(comparison_id)
        self.previous = previous
        self.pending = Pending(
            note=previous.note if previous else "",
            flag=bool(previous and "flag" in previous.flags),
            strength=previous.strength if previous and previous.strength in STRENGTHS else DEFAULT_STRENGTH,
        )
        self.shown_at = self.clock()
        return self.current

    def position(self) -> tuple[int, int]:
        """(comparisons this annotator has answered, comparisons in the project)."""
        assert self.project is not None  # callers ask only while a project is open
        return self.project.queue_position(self.annotator)

    def batch(self) -> tuple[int, int] | None:
        """(done, assigned) of this annotator's work package (``workbench assign``), or None when the project
        assigns them nothing: the Label view's "your batch: 120 of 300"."""
        if not self.ready:
            return None
        from workbench.core.assign import my_batch

        assert self.project is not None  # ready
        return my_batch(self.project, self.annotator)

    # ------------------------------------------------------------------ sides
    def sides(self) -> tuple[Text, Text]:
        """The (left, right) texts of the current comparison as shown."""
        comp = self.current
        assert comp is not None  # callers ask only while a comparison is shown
        return (comp.response_a, comp.response_b) if comp.left == "a" else (comp.response_b, comp.response_a)

    def side_ids(self) -> tuple[int, int]:
        """The (left, right) response ids of the current comparison as shown."""
        comp = self.current
        assert comp is not None  # callers ask only while a comparison is shown
        a, b = comp.response_a_id, comp.response_b_id
        return (a, b) if comp.left == "a" else (b, a)

    def shown_side(self, choice: str | None) -> str | None:
        """Where a stored choice sits on screen: "a"/"b" map to "left"/"right", the others stay as they are."""
        if choice in ("a", "b") and self.current is not None:
            return "left" if choice == self.current.left else "right"
        return choice

    # ------------------------------------------------------------------ pending answer
    def set_note(self, note: str) -> None:
        self.pending.note = note.strip()

    def toggle_flag(self, value: bool | None = None) -> None:
        self.pending.flag = (not self.pending.flag) if value is None else bool(value)

    def set_strength(self, level: int) -> None:
        if level in STRENGTHS:
            self.pending.strength = level

    # ------------------------------------------------------------------ writes
    def _refusal(self) -> Outcome | None:
        """Why no write can happen now, or None when it can."""
        if self.current is None or self.project is None or self._busy:
            return Outcome(False)
        if self.read_only:
            return Outcome(False, read_only_message(self.project) or "")
        return None

    def choose(self, screen_side: str, much: bool = False) -> Outcome:
        """The response on ``screen_side`` ("left"/"right") is better, at the pending strength (4 if ``much``)."""
        if self.current is None:
            return Outcome(False)
        return self.commit(self.current.side(screen_side), 4 if much else self.pending.strength)

    def skip(self) -> Outcome:
        return self.commit("skip")

    def commit(self, choice: str, strength: int | None = None) -> Outcome:
        """Record the judgment of the current comparison with the pending note and flag; durable on return."""
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        comp = self.current
        assert comp is not None and self.project is not None  # _refusal() checked both
        self._busy = True
        try:
            self.project.record_judgment(
                comp.id,
                self.annotator,
                choice,
                strength=strength if choice in ("a", "b") else None,
                left=comp.left,
                shown_at=self.shown_at,
                note=self.pending.note,
                flags=self.pending.flags,
            )
        except (sqlite3.Error, ProjectError) as exc:
            return Outcome(False, f"Could not save the judgment ({exc}); nothing was recorded. Try again.")
        finally:
            self._busy = False
        if choice != "skip":
            self.judgments += 1
        return Outcome(True, count=1)

    def undo(self) -> Outcome:
        """Take back the latest judgment still in force and make its comparison current, that answer as ``previous``."""
        if not self.ready or self._busy:
            return Outcome(False)
        assert self.project is not None  # ready: a project is open
        if self.read_only:
            return Outcome(False, read_only_message(self.project) or "")
        try:
            undone = self.project.undo_last(self.annotator)
        except (sqlite3.Error, ProjectError) as exc:
            return Outcome(False, f"Could not undo ({exc}); nothing was changed.")
        if undone is None:
            return Outcome(False, "Nothing to undo.")
        if undone.choice not in (None, "skip"):
            self.judgments = max(0, self.judgments - 1)
        self.show(undone.comparison_id, previous=undone)
        return Outcome(True, "Undone: answer this comparison again.", undone=undone)

    def rank(self, order: Sequence[int]) -> Outcome:
        """Record one judgment per comparison among the ranked response ids (best first): K(K-1)/2 for K
        responses, in one transaction, with the pending note and flag."""
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        assert self.current is not None and self.project is not None  # _refusal() checked both
        rank = {rid: i for i, rid in enumerate(order)}
        pairs = [
            (cid, ra, rb)
            for cid, ra, rb in self.project.prompt_comparisons(self.current.prompt_id)
            if ra in rank and rb in rank
        ]
        self._busy = True
        try:
            with self.project.transaction():
                for cid, ra, rb in pairs:
                    self.project.record_judgment(
                        cid,
                        self.annotator,
                        "a" if rank[ra] < rank[rb] else "b",
                        shown_at=self.shown_at,
                        note=self.pending.note,
                        flags=self.pending.flags,
                        kind="label",
                    )
        except (sqlite3.Error, ProjectError) as exc:
            return Outcome(False, f"Could not save the ranking ({exc}); nothing was recorded. Try again.")
        finally:
            self._busy = False
        self.judgments += len(pairs)
        return Outcome(True, f"Ranking saved as {len(pairs)} pairwise judgments.", count=len(pairs))

    def save_guidelines(self, text: str) -> Outcome:
        if self.project is None:
            return Outcome(False)
        if self.read_only:
            return Outcome(False, read_only_message(self.project) or "")
        try:
            self.project.guidelines = text
        except (sqlite3.Error, ProjectError) as exc:
            return Outcome(False, f"Could not save the guidelines ({exc}).")
        return Outcome(True, "Guidelines saved.")
