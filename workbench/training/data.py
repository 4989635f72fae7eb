"""The trainer's data: labelled pairs from the project, the split by prompt, the snapshot a run records,
encoding to token ids, and the keys of the embedding cache.

No torch here (numpy only), so the split and the snapshot can be tested and used without a model.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: fewer trainable pairs than this and a run is refused with a hint to label more
MIN_PAIRS = 8
SNAPSHOT_FORMAT = 1
#: bump when what is cached changes (pooling code, text rendering), so old vectors are not reused
EMBEDDING_FORMAT = 1

Text = str | list[dict]


class DataError(ValueError):
    """The project's labels cannot make a run; ``hint`` says what the user can do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


@dataclass
class Pairs:
    """Labelled pairs as plain lists, in the order of ``comparison_ids``."""

    comparison_ids: np.ndarray
    judgment_ids: np.ndarray
    #: 'a' or 'b': which stored response of the comparison is the chosen one
    choices: list[str]
    strengths: list[int | None]
    #: the prompt as one string, the unit of the train/validation split
    prompt_keys: list[str]
    prompts: list[Text]
    chosen: list[Text]
    rejected: list[Text]
    #: P(chosen is better) per pair, the loss's soft target: 1.0 for a hard label (``labels`` posterior and
    #: ``ties`` half make others); None means 1.0 for every pair
    targets: list[float] | None = None

    def __len__(self) -> int:
        return len(self.comparison_ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> Pairs:
        index = [int(i) for i in index]
        lists = {
            f: [getattr(self, f)[i] for i in index]
            for f in ("choices", "strengths", "prompt_keys", "prompts", "chosen", "rejected")
        }
        return Pairs(
            self.comparison_ids[index],
            self.judgment_ids[index],
            **lists,
            targets=None if self.targets is None else [self.targets[i] for i in index],
        )

    def target_values(self) -> list[float]:
        """P(chosen is better) of every pair (1.0 where no soft target was given)."""
        return [1.0] * len(self) if self.targets is None else list(self.targets)


def _messages(value: Any) -> list[dict] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("["):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, list) else None
    return None


def _strength(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def pairs_from_frame(df: pd.DataFrame) -> Pairs:
    """From ``Project.training_pairs()``; conversations are kept as message lists."""
    df = df.sort_values("comparison_id", kind="stable").reset_index(drop=True)

    def side(text_col: str, msg_col: str) -> list[Text]:
        return [m if (m := _messages(msg)) is not None else str(text) for text, msg in zip(df[text_col], df[msg_col])]

    return Pairs(
        comparison_ids=df["comparison_id"].to_numpy(dtype=np.int64),
        judgment_ids=df["judgment_id"].to_numpy(dtype=np.int64),
        choices=[str(c) for c in df["choice"]],
        strengths=[_strength(s) for s in df["strength"]],
        prompt_keys=[str(p) for p in df["prompt"]],
        prompts=side("prompt", "prompt_messages"),
        chosen=side("chosen", "chosen_messages"),
        rejected=side("rejected", "rejected_messages"),
        targets=[float(t) for t in df["target"]] if "target" in df and (df["target"] != 1.0).any() else None,
    )


# --------------------------------------------------------------------- split
def split_by_prompt(prompt_keys: Sequence[str], val_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask: True for validation pairs. Whole prompts go to one side, never both.

    Each distinct prompt gets a seeded hash; the ``round(val_fraction * prompts)`` prompts with the
    smallest hashes are validation (at least one and at most all but one when there are two or more
    prompts and the fraction is above 0). The hash depends only on the seed and the prompt text, so
    the split does not depend on the order of the rows, and a prompt stays on its side as long as
    the set of prompts does not move the cut-off past it.
    """
    keys = list(prompt_keys)
    unique = _prompt_order(keys, seed)
    n_val = math.floor(val_fraction * len(unique) + 0.5)  # round half up, not to even
    if val_fraction > 0 and len(unique) >= 2:
        n_val = min(max(n_val, 1), len(unique) - 1)
    val = set(unique[:n_val])
    return np.array([k in val for k in keys], dtype=bool)


def folds_by_prompt(prompt_keys: Sequence[str], k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each pair for k-fold out-of-fold scoring: whole prompts go to one fold. Prompts
    in the seeded-hash order of :func:`split_by_prompt` are dealt round-robin, so folds differ by at most one
    prompt and the assignment does not depend on the order of the rows."""
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    keys = list(prompt_keys)
    fold_of = {key: i % k for i, key in enumerate(_prompt_order(keys, seed))}
    return np.array([fold_of[key] for key in keys], dtype=np.int64)


def _prompt_order(keys: Sequence[str], seed: int) -> list[str]:
    """The distinct prompts sorted by a hash of the seed and the text: a seeded shuffle independent of row order."""
    return sorted(
        set(keys),
        key=lambda k: hashlib.blake2b(f"{seed}\x1f{k}".encode("utf-8", "surrogatepass"), digest_size=8).digest(),
    )


# --------------------------------------------------------------------- snapshot
def make_snapshot(pairs: Pairs, is_val: np.ndarray, *, excluded: int = 0) -> dict[str, Any]:
    """What a run trained on: the judgments (so a later view knows which labels a run saw), the
    resolved choice and strength of each (so a resumed run rebuilds exactly the same data even after
    relabelling), and the validation comparisons."""
    return {
        "format": SNAPSHOT_FORMAT,
        "comparison_ids": [int(c) for c in pairs.comparison_ids],
        "judgment_ids": [int(j) for j in pairs.judgment_ids],
        "choices": "".join(pairs.choices),
        "strengths": pairs.strengths,
        "val_comparison_ids": [int(c) for c, v in zip(pairs.comparison_ids, is_val) if v],
        "n_pairs": len(pairs),
        "n_val": int(np.count_nonzero(is_val)),
        "n_excluded": int(excluded),
        # soft targets (P(chosen is better)) when any pair has one, so a resumed run trains on the same
        **({"targets": [float(t) for t in pairs.targets]} if pairs.targets is not None else {}),
    }


def pairs_from_snapshot(comparisons: pd.DataFrame, snapshot: dict[str, Any]) -> tuple[Pairs, np.ndarray]:
    """Rebuild a run's pairs and split from its snapshot and ``Project.comparisons_frame()``."""
    if snapshot.get("format") != SNAPSHOT_FORMAT:
        raise DataError("this run has no data snapshot this version can read", "start a new run")
    ids = snapshot["comparison_ids"]
    frame = comparisons.set_index("comparison_id")
    missing = [c for c in ids if c not in frame.index]
    if missing:
        raise DataError(
            f"{len(missing)} comparison(s) this run trained on are no longer in the project (e.g. {missing[0]})",
            "start a new run",
        )
    rows = frame.loc[ids]
    prompts, chosen, rejected = [], [], []
    columns = ("prompt", "prompt_messages", "response_a", "response_a_messages", "response_b", "response_b_messages")
    for (pt, pm, at, am, bt, bm), choice in zip(zip(*(rows[c] for c in columns)), snapshot["choices"]):
        a = m if (m := _messages(am)) is not None else str(at)
        b = m if (m := _messages(bm)) is not None else str(bt)
        prompts.append(m if (m := _messages(pm)) is not None else str(pt))
        chosen.append(a if choice == "a" else b)
        rejected.append(b if choice == "a" else a)
    pairs = Pairs(
        comparison_ids=np.asarray(ids, dtype=np.int64),
        judgment_ids=np.asarray(snapshot["judgment_ids"], dtype=np.int64),
        choices=list(snapshot["choices"]),
        strengths=list(snapshot["strengths"]),
        prompt_keys=[str(p) for p in rows["prompt"]],
        prompts=prompts,
        chosen=chosen,
        rejected=rejected,
        targets=[float(t) for t in snapshot["targets"]] if snapshot.get("targets") is not None else None,
    )
    val = set(snapshot["val_comparison_ids"])
    return pairs, np.array([int(c) in val for c in ids], dtype=bool)


@dataclass
class Unlabelled:
    """Comparisons that are not training pairs, scored for "model-uncertain first" (r_chosen = r_a)."""

    comparison_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prompts: list[Text] = field(default_factory=list)
    response_a: list[Text] = field(default_factory=list)
    response_b: list[Text] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.comparison_ids)


def unlabelled_from_frame(comparisons: pd.DataFrame, labelled_ids: Sequence[int]) -> Unlabelled:
    """Every comparison that is not among ``labelled_ids`` (no label yet, tie, both bad, excluded...)."""
    rows = comparisons[~comparisons["comparison_id"].isin(list(labelled_ids))]

    def texts(col: str, msg_col: str) -> list[Text]:
        return [m if (m := _messages(msg)) is not None else str(t) for t, msg in zip(rows[col], rows[msg_col])]

    return Unlabelled(
        rows["comparison_id"].to_numpy(dtype=np.int64),
        texts("prompt", "prompt_messages"),
        texts("response_a", "response_a_messages"),
        texts("response_b", "response_b_messages"),
    )


# --------------------------------------------------------------------- encoding
@dataclass
class EncodedSides:
    """Token ids for many (prompt, response) texts and the exact strings they came from."""

    texts: list[str]
    input_ids: list[list[int]]
    overlong: np.ndarray

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode_sides(encoder: Any, prompts: Sequence[Text], responses: Sequence[Text], chunk: int = 2048) -> EncodedSides:
    """Encode with a :class:`~workbench.training.model.PairEncoder` (left truncation; over-length flagged)."""
    texts = [encoder.text(p, r)[0] for p, r in zip(prompts, responses)]
    ids: list[list[int]] = []
    overlong: list[bool] = []
    for start in range(0, len(prompts), chunk):
        for e in encoder.encode_many(list(prompts[start : start + chunk]), list(responses[start : start + chunk])):
            ids.append(e.input_ids)
            overlong.append(e.overlong)
    return EncodedSides(texts, ids, np.asarray(overlong, dtype=bool))


# --------------------------------------------------------------------- embedding cache keys
_TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


def folder_fingerprint(path: str | Path) -> str:
    """A content fingerprint of a model folder: config and tokenizer files in full, weights sampled
    (name, size, the first and last MiB and 16 blocks between), so a retrained or replaced model in
    the same folder gets new cache keys while hashing a multi-GB model stays instant."""
    folder = Path(path)
    h = hashlib.blake2b(digest_size=12)
    for name in _TOKENIZER_FILES:
        f = folder / name
        if f.is_file():
            h.update(name.encode() + b"\x1f" + f.read_bytes() + b"\x1e")
    for f in sorted(folder.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f"{f.name}\x1f{size}\x1f".encode())
        with open(f, "rb") as fh:
            block = 1 << 20
            offsets = sorted({0, max(0, size - block), *(size * k // 17 for k in range(1, 17))})
            for off in offsets:
                fh.seek(off)
                h.update(fh.read(block if off in (0, max(0, size - block)) else 1 << 16))
    return h.hexdigest()


def embedding_key(backbone_path: str | Path, pooling: str, max_length: int) -> str:
    """The ``backbone`` key of ``Project.store_embeddings``: which model, where it reads, how long."""
    return f"v{EMBEDDING_FORMAT}:{folder_fingerprint(backbone_path)}:{pooling}:{int(max_length)}"


def text_hash(text: str) -> str:
    """The cache key of one exact input string."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
