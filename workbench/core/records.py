"""Plain records shared by the store, the formats and the views."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, final

CHOICES = ("a", "b", "tie", "both_bad", "skip")
#: Llama 2's four levels; 4 is "significantly better", 1 "negligibly better / unsure".
STRENGTHS = {4: "significantly better", 3: "better", 2: "slightly better", 1: "negligibly better"}
#: Margins m for the loss −log σ(r_c − r_r − m) from a judgment's strength (Llama 2, Touvron et al. 2023,
#: table 28). "small" is the default for training and for ``export_pairs(with_margin=True)``.
MARGIN_SCALES: dict[str, dict[int, float]] = {
    "small": {4: 1.0, 3: 2 / 3, 2: 1 / 3, 1: 0.0},
    "large": {4: 3.0, 3: 2.0, 2: 1.0, 1: 0.0},
}
#: What a judgment row records: a fresh label, an undo, a relabel from Inspect, an imported label,
#: or an adjudicator's decision (the one used for training when annotators disagree).
JUDGMENT_KINDS = ("label", "undo", "relabel", "import", "adjudication")


def content_hash(*parts: str) -> str:
    """A stable 128-bit hex digest of text parts; the unit separator keeps ("ab","c") != ("a","bc")."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


Messages = list[dict[str, str]]


def render_messages(messages: Messages) -> str:
    """A readable plain-text form of a conversation, used for hashing, search and display."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


@dataclass(frozen=True)
class Text:
    """A prompt or response: plain text, or a conversation whose plain form is ``text``."""

    text: str
    messages: Messages | None = None

    @classmethod
    def of(cls, value: str | Messages) -> Text:
        if isinstance(value, str):
            return cls(value)
        return cls(render_messages(value), [dict(role=m["role"], content=m["content"]) for m in value])

    @property
    def key(self) -> str:
        return json.dumps(self.messages, ensure_ascii=False) if self.messages is not None else self.text


@final  # code tells the record kinds apart by ``type(record) is PairRecord``
@dataclass
class PairRecord:
    """One comparison to import: a prompt and two responses, labelled or not.

    ``choice`` is "a" when ``response_a`` is preferred (for labelled shapes ``response_a`` is the
    chosen one), None when the pair arrives unlabelled.
    """

    prompt: Text
    response_a: Text
    response_b: Text
    choice: str | None = None
    strength: int | None = None
    annotator: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class PromptRecord:
    """A prompt with K responses, to be compared pairwise (K(K-1)/2 comparisons) or ranked."""

    prompt: Text
    responses: list[Text]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """A comparison as the Label view shows it; ``left`` says which response is on the left."""

    id: int
    prompt_id: int
    prompt: Text
    response_a_id: int
    response_a: Text
    response_b_id: int
    response_b: Text
    left: str

    def side(self, shown: str) -> str:
        """Map a side on screen ("left"/"right") to the stored response ("a"/"b")."""
        if shown == "left":
            return self.left
        return "b" if self.left == "a" else "a"


@dataclass(frozen=True)
class Judgment:
    id: int
    comparison_id: int
    annotator: str
    choice: str | None
    strength: int | None
    left: str | None
    kind: str
    note: str
    flags: tuple[str, ...]
    supersedes: int | None
    shown_at: float | None
    answered_at: float | None
