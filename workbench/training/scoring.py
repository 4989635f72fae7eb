"""Score texts with an exported reward model: the folder through transformers alone.

    scorer = Scorer.load("rm-3")                       # AutoTokenizer + AutoModelForSequenceClassification
    rewards = scorer.score(prompts, responses)         # float64 numpy, one per (prompt, response)
    report = score_file("rm-3", "in.jsonl", "out.parquet")

The model is the stock ``*ForSequenceClassification`` that ``export-model`` wrote (no ``RewardModel``,
no checkpoint); the inputs are built exactly as inside the app by :class:`~workbench.training.model.PairEncoder`
on the loaded tokenizer (chat template when the export says so, prompt and response as one segment
otherwise, the prompt cut from the left when too long), so the token ids, and therefore the scores, are
those the app computed. Texts are de-duplicated, sorted by length and padded on the right per batch.

Any local Hugging Face sequence classifier with one label can be scored the same way (``max_length``
then comes from its tokenizer unless given).

Input files (:func:`score_file`; JSONL, JSON, CSV, Parquet, optionally gzipped), by shape:

============================  ==================================================================
input                         output columns
============================  ==================================================================
``prompt``, ``response``      every input column, then ``score``
explicit / implicit (HH) /    ``prompt``, ``chosen``, ``rejected``, ``score_chosen``,
conversational pairs          ``score_rejected``, then the metadata columns (implicit transcripts
                              come back split: the shared prompt and the two responses)
unlabelled ``response_a`` /   ``prompt``, ``response_a``, ``response_b``, ``score_a``, ``score_b``,
``response_b``                then the metadata columns
unlabelled ``responses``      ``prompt``, ``responses``, ``scores`` (a list, one per response)
============================  ==================================================================

The rule: each scored field ``X`` gets a ``score_X`` column (``scores`` for the ``responses`` list;
``score`` for the single ``response``). Conversations stay message lists (JSON text in CSV). The
output format follows the output file's extension: ``.jsonl``, ``.csv`` or ``.parquet``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.core.outputs import check_output_path

if TYPE_CHECKING:  # formats is imported where it is used: the score command loads fast
    from workbench.core.formats import Rows

#: the ``--format`` choices of ``workbench score``: the import shapes plus prompt/response rows
SCORE_FORMATS = ("auto", "rows", "explicit", "implicit", "conversational", "unlabeled")
OUTPUT_KINDS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
#: texts encoded per call of the tokenizer (bounds the memory of the id lists)
_ENCODE_CHUNK = 2048

Text = str | list[dict]
Progress = Callable[[int, int], None]


class ScoringError(ValueError):
    """The model folder or the request cannot be used; the message says what to do."""


# --------------------------------------------------------------------- the scorer
@dataclass
class Scorer:
    """An exported reward model, loaded with transformers, and the encoder that builds its inputs."""

    model: Any
    tokenizer: Any
    encoder: Any
    device: str
    folder: Path
    #: reward_model.json written by the export ({} for other folders)
    facts: dict
    #: over-length texts (the response alone did not fit) in the last ``score`` call
    last_overlong: int = 0
    #: distinct texts scored by the last ``score`` call
    last_texts: int = 0

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu", max_length: int | None = None) -> Scorer:
        """Load ``folder`` (config.json, model.safetensors, tokenizer) for scoring, in eval mode, float32."""
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        from workbench.training.model import PairEncoder

        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ScoringError(f"{path}: no such folder; give the folder that `workbench export-model` wrote")
        if not (path / "config.json").is_file():
            raise ScoringError(
                f"{path} has no config.json, so it is not a Hugging Face model folder; give the "
                "folder that `workbench export-model` wrote"
            )
        if not any(path.glob("*.safetensors")):
            raise ScoringError(
                f"{path} has no .safetensors weights; only safetensors are loaded (pickled .bin files can run code)"
            )
        facts: dict = {}
        if (path / "reward_model.json").is_file():
            try:
                facts = json.loads((path / "reward_model.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ScoringError(f"{path}/reward_model.json cannot be read ({exc}); export the model again") from None
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ScoringError(f"cannot read {path}/config.json: {exc}") from None
        if getattr(config, "num_labels", 1) != 1:
            raise ScoringError(
                f"{path} holds a classifier with {config.num_labels} labels, not a reward model "
                "(one scalar output, num_labels=1)"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, local_files_only=True, use_safetensors=True, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ScoringError(f"cannot load the model in {path}: {exc}") from None
        if tokenizer.pad_token_id is None:  # a decoder exported elsewhere: pad with eos, where its score is read
            pad_id = config.pad_token_id if config.pad_token_id is not None else tokenizer.eos_token_id
            if pad_id is None:
                raise ScoringError(f"the tokenizer in {path} has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(int(pad_id))
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.truncation_side = "left"
        limit = max_length or facts.get("max_length")
        if not limit:
            known = getattr(tokenizer, "model_max_length", None)
            limit = known if isinstance(known, int) and known < 1_000_000 else 512
        try:
            encoder = PairEncoder(tokenizer, int(limit), use_chat_template=facts.get("chat_template"))
        except ValueError as exc:
            raise ScoringError(f"{path}: {exc}") from None
        model.to(device).eval()
        return cls(model, tokenizer, encoder, str(device), path, facts)

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    def score(
        self, prompts: Sequence[Text], responses: Sequence[Text], batch_size: int = 32, progress: Progress | None = None
    ) -> np.ndarray:
        """One reward per (prompt, response), float64, in input order. ``progress(done, total)`` counts
        distinct texts as they are scored."""
        import torch

        from workbench.training.model import make_batches, pad_batch

        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        # The exact strings, de-duplicated: a response scored twice (or a prompt's K responses) costs once.
        slot: dict[str, int] = {}
        first: list[int] = []
        where = np.empty(len(prompts), dtype=np.int64)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            text = self.encoder.text(p, r)[0]
            j = slot.get(text)
            if j is None:
                j = slot[text] = len(first)
                first.append(i)
            where[i] = j
        ids: list[list[int]] = []
        overlong = 0
        for s in range(0, len(first), _ENCODE_CHUNK):
            chunk = first[s : s + _ENCODE_CHUNK]
            for e in self.encoder.encode_many([prompts[i] for i in chunk], [responses[i] for i in chunk]):
                ids.append(e.input_ids)
                overlong += e.overlong
        self.last_overlong, self.last_texts = overlong, len(ids)
        out = np.zeros(len(ids), dtype=np.float64)
        done = 0
        if progress is not None:
            progress(0, len(ids))
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for batch in make_batches([len(x) for x in ids], batch_size, shuffle=False):
                input_ids, mask = pad_batch([ids[i] for i in batch], pad, "right")
                logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
                out[batch] = logits[:, 0].float().cpu().numpy()
                done += len(batch)
                if progress is not None:
                    progress(done, len(ids))
        return out[where]


# --------------------------------------------------------------------- files
@dataclass
class ScoreReport:
    out_path: Path
    shape: str
    rows: int
    texts: int
    overlong: int
    seconds: float
    #: labelled pairs: share with score_chosen > score_rejected (strictly); else None
    accuracy: float | None = None
    #: what one input row is: "rows" (prompt, response), "pairs", or "prompts" (with a responses list)
    unit: str = "rows"


def score_file(
    model_dir: str | os.PathLike,
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    format: str = "auto",
    batch_size: int = 32,
    device: str = "cpu",
    max_length: int | None = None,
    progress: Progress | None = None,
    scorer: Scorer | None = None,
    table: tuple[str, _Table] | None = None,
) -> ScoreReport:
    """Score every row of ``in_path`` with the model in ``model_dir`` and write ``out_path`` (see the
    module doc for the columns). The input is read and checked, and the output format known, before
    the model is loaded; the output is written to a temporary file and renamed into place. ``scorer``
    and ``table`` (what :func:`read_scoring_input` returned) skip loading or reading again."""
    from workbench.core.formats import FormatError

    t0 = time.perf_counter()
    out = Path(out_path)
    kind = output_kind(out)
    if out.exists() and Path(in_path).exists() and out.resolve() == Path(in_path).resolve():
        raise FormatError(out, "is the input file; write the scores to another file")
    shape, rows = table or read_scoring_input(in_path, format)
    scorer = scorer or Scorer.load(model_dir, device=device, max_length=max_length)
    prompts: list[Text] = []
    responses: list[Text] = []
    for p, rs in zip(rows.prompts, rows.responses):
        prompts.extend([p] * len(rs))
        responses.extend(rs)
    flat = scorer.score(prompts, responses, batch_size=batch_size, progress=progress)
    columns = dict(rows.columns)
    k = 0
    per_row: list[list[float]] = []
    for rs in rows.responses:
        per_row.append(flat[k : k + len(rs)].tolist())
        k += len(rs)
    accuracy = None
    if rows.score_names == ["scores"]:
        columns["scores"] = per_row
    else:
        for j, name in enumerate(rows.score_names):
            columns[name] = [row[j] for row in per_row]
        if rows.labelled:
            c, r = np.array(columns["score_chosen"]), np.array(columns["score_rejected"])
            accuracy = float(np.mean(c > r)) if len(c) else None
    for name, values in rows.metadata.items():
        columns.setdefault(name, values)
    write_table(columns, out, kind)
    unit = "rows" if shape == "rows" else "prompts" if rows.score_names == ["scores"] else "pairs"
    return ScoreReport(
        out, shape, len(rows.prompts), scorer.last_texts, scorer.last_overlong, time.perf_counter() - t0, accuracy, unit
    )


@dataclass
class _Table:
    """What to score and how to write it: per row a prompt and its response(s)."""

    prompts: list[Text]
    responses: list[list[Text]]
    #: output columns before the scores, in order
    columns: dict[str, list]
    score_names: list[str]
    metadata: dict[str, list]
    labelled: bool = False


def output_kind(out_path: str | os.PathLike) -> str:
    """jsonl, csv or parquet from the output file's extension; FormatError for anything else."""
    from workbench.core.formats import FormatError

    out = Path(out_path)
    kind = OUTPUT_KINDS.get(out.suffix.lower())
    if kind is None:
        raise FormatError(
            out, f"unknown output format {out.suffix or '(no extension)'}; name the file .jsonl, .csv or .parquet"
        )
    if out.is_dir():
        raise FormatError(out, "is a directory; give a file name")
    return kind


def read_scoring_input(path: str | os.PathLike, format: str = "auto") -> tuple[str, _Table]:
    """(shape, table) of an input file: ``rows`` (prompt, response) or one of the import shapes."""
    from workbench.core import formats
    from workbench.core.records import PairRecord, PromptRecord

    value = (format or "auto").strip().lower()
    value = "unlabeled" if value == "unlabelled" else value
    if value not in SCORE_FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(SCORE_FORMATS)}")
    if value in ("auto", "rows"):
        rows = formats.read_rows(path)  # the import's reader: containers, gzip, line numbers, messages in CSV
        cols = set(rows.columns)
        pair_cols = {"chosen", "rejected", "response_a", "response_b", "responses"}
        if value == "rows" or ({"prompt", "response"} <= cols and not cols & pair_cols):
            return "rows", _rows_table(rows)
    try:
        records, info = formats.read_records(path, "auto" if value == "rows" else value)
    except formats.FormatError as exc:
        if exc.message.startswith("the data fits no known shape"):
            exc.message = exc.message.replace("expected ", "expected rows (prompt, response) to score, or ", 1)
            exc.args = (exc.message,)
        raise
    labelled = info.shape != "unlabeled"
    meta_cols = [c for c in info.metadata_columns if c not in ("prompt", "chosen", "rejected")]
    metadata = {c: [r.metadata.get(c) for r in records] for c in meta_cols}
    pairs = [r for r in records if isinstance(r, PairRecord)]
    lists = [r for r in records if isinstance(r, PromptRecord)]
    if pairs and lists:  # formats reads one shape per file: pairs, or prompts with lists of responses
        raise formats.FormatError(Path(path), "mixes pairs and lists of responses; score them in two files")
    if not lists:
        names, scores = (
            (("chosen", "rejected"), ["score_chosen", "score_rejected"])
            if labelled
            else (("response_a", "response_b"), ["score_a", "score_b"])
        )
        prompts = [_value(r.prompt) for r in pairs]
        a = [_value(r.response_a) for r in pairs]
        b = [_value(r.response_b) for r in pairs]
        return info.shape, _Table(
            prompts,
            [[x, y] for x, y in zip(a, b)],
            {"prompt": prompts, names[0]: a, names[1]: b},
            scores,
            metadata,
            labelled,
        )
    prompts = [_value(r.prompt) for r in lists]
    responses = [[_value(t) for t in r.responses] for r in lists]
    return info.shape, _Table(prompts, responses, {"prompt": prompts, "responses": responses}, ["scores"], metadata)


def _value(text: Any) -> Text:
    """A record's Text as the trainer sees it: the message list when it is a conversation, else the string."""
    return text.messages if text.messages is not None else text.text


def _rows_table(rows: Rows) -> _Table:
    missing = "missing (rows to score need a prompt and a response)"
    prompts = [_value(t) for t in rows.texts("prompt", missing)]
    responses = [[_value(t)] for t in rows.texts("response", missing)]
    table = {c: [row.get(c) for row in rows.rows] for c in rows.columns}
    return _Table(prompts, responses, table, ["score"], {})


def write_table(columns: dict[str, list], out_path: str | os.PathLike, kind: str) -> None:
    """Write columns as JSONL, CSV (lists and objects as JSON text) or Parquet, to a temporary file
    beside the target that is then renamed over it."""
    out = check_output_path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if kind == "jsonl":
            names = list(columns)
            encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(encode(dict(zip(names, values))) + "\n" for values in zip(*columns.values()))
        else:
            import pandas as pd

            def cell(v: Any) -> Any:
                return json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (list, dict)) else v

            if kind == "csv":
                pd.DataFrame({k: [cell(v) for v in vs] for k, vs in columns.items()}).to_csv(tmp, index=False)
            else:
                frame = {}
                for k, vs in columns.items():
                    kinds = {type(v) for v in vs if v is not None}
                    # One Parquet column holds one type: a mix of text and conversations becomes JSON text.
                    frame[k] = [cell(v) for v in vs] if len(kinds) > 1 and kinds & {list, dict} else vs
                pd.DataFrame(frame).to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
