"""The Hugging Face world in and out (README "Formats"): dataset folders, other tools' shapes, split exports.

In, offline and without importing ``datasets`` (a test/bench extra only):

- a ``save_to_disk`` folder (``state.json`` + ``data-*.arrow`` in Arrow's *stream* format, one folder per
  split under a ``dataset_dict.json``), read with ``pyarrow.ipc.open_stream``;
- a downloaded Hub dataset folder (Parquet, JSON Lines, JSON or CSV files): splits from the README's YAML
  ``configs`` (``data_files`` with ``split`` and ``path``), else from the split word in each file's path
  (``data/train-00000-of-00001.parquet``, ``test.jsonl``, ``validation/x.json``) as ``datasets`` does.

``--split NAME`` picks the dataset's split; a folder with several splits and no ``--split`` is refused with
their names. ``--columns prompt=question,chosen=good`` renames the file's columns to ours before the shape is
detected.

Other tools' shapes, recognised from their columns (each turned into labelled pairs; every unused column is
kept as metadata):

- ``arena`` (Chatbot Arena / LMSYS): ``prompt``, ``response_a``, ``response_b`` and ``winner_model_a`` /
  ``winner_model_b`` / ``winner_tie``; fields may be JSON-encoded lists of turns (several turns: the first
  user turn is the prompt, each response the rest of its side's conversation);
- ``helpsteer2``: ``prompt``, ``response_1``, ``response_2``, ``preference_strength`` (-3..3, negative when
  response 1 is better): 3 -> strength 4 (significantly), 2 -> 3 (better), 1 -> 2 (slightly), 0 -> a tie;
- ``shp`` (Stanford Human Preferences): ``history``, ``human_ref_A``, ``human_ref_B``, ``labels`` (1: A is
  preferred; without it the higher ``score_A`` / ``score_B`` wins);
- ``labelstudio``: Label Studio's JSON export of its pairwise template (``data.prompt``, ``data.answer1``,
  ``data.answer2``; each annotation's ``pairwise`` result ``selected: left | right`` is one judgment by
  ``labelstudio:<completed_by>``; a task without annotations is an unlabelled pair);
- ``prodigy``: Prodigy's ``ab`` recipe answers (``prompt``, ``A`` and ``B`` objects with ``text``,
  ``accept: ["A"]`` with ``answer: accept``; other answers import the pair without a label).

UltraFeedback-binarised (``prompt`` with ``chosen`` / ``rejected`` message lists that repeat the prompt, and
``score_chosen`` / ``score_rejected``) and RewardBench (``prompt``, ``chosen``, ``rejected``, ``subset``, ...)
are the conversational and explicit shapes of ``formats.py``.

Out: :func:`export_splits` writes a dataset folder that ``datasets.load_dataset(DIR)`` reads as a
``DatasetDict`` of ``train`` and ``test``.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.records import PairRecord

if TYPE_CHECKING:
    from workbench.core.formats import _Source
    from workbench.core.store import Project

#: HelpSteer2's |preference_strength| -> our strength (README "Formats"); 0 is a tie.
HELPSTEER2_STRENGTH = {3: 4, 2: 3, 1: 2}
_DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".jsonl.gz", ".json.gz", ".csv.gz", ".arrow")
# The split words ``datasets`` recognises in file and folder names, and the split each names.
_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
}

Rows = list[dict]


# ============================================================================================ folders
def folder_splits(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """split name -> its data files, for a ``save_to_disk`` folder or a downloaded Hub folder."""
    from workbench.core.formats import FormatError

    root = Path(folder)
    if (root / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk
        try:
            names = json.loads((root / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FormatError(root / "dataset_dict.json", f"cannot read the split list ({exc})") from None
        return {str(n): _arrow_files(root / str(n)) for n in names}
    if (root / "state.json").is_file():  # Dataset.save_to_disk: one split, named in dataset_info or "train"
        info = _json_file(root / "dataset_info.json")
        splits = info.get("splits") if isinstance(info, dict) else None
        name = next(iter(splits)) if isinstance(splits, dict) and len(splits) == 1 else "train"
        return {name: _arrow_files(root)}
    configs = _readme_configs(root / "README.md")
    if configs:
        out: dict[str, list[Path]] = {}
        for split, patterns in configs.items():
            files = sorted({f for p in patterns for f in root.glob(p) if f.is_file()})
            if not files:
                raise FormatError(root / "README.md", f"split {split!r} names files that are not there: {patterns}")
            out[split] = files
        return out
    files = [
        f
        for f in sorted(root.rglob("*"))
        if f.is_file()
        and f.name.lower().endswith(_DATA_SUFFIXES)
        and not any(part.startswith(".") for part in f.relative_to(root).parts)
    ]
    if not files:
        raise FormatError(
            root,
            "is a directory that holds no dataset: no dataset_dict.json or state.json (datasets' save_to_disk) and no "
            ".parquet, .jsonl, .json or .csv files (a Hub dataset download)",
        )
    grouped: dict[str, list[Path]] = {}
    for f in files:
        grouped.setdefault(_split_of(f.relative_to(root)), []).append(f)
    return grouped


_SHARD = re.compile(r"^(?P<split>[\w.]+?)-\d{5}-of-\d{5}")


def _split_of(rel: Path) -> str:
    """The split a file belongs to, by ``datasets``' rules: a shard name gives it literally
    (``data/train_prefs-00000-of-00001.parquet`` -> train_prefs); else the split word in the path
    (``test.jsonl``, ``validation/x.json``); else train."""
    shard = _SHARD.match(rel.name)
    if shard:
        return shard.group("split")
    for part in reversed(rel.parts):
        for word in re.split(r"[^A-Za-z]+", part.lower()):
            if word in _SPLIT_WORDS:
                return _SPLIT_WORDS[word]
    return "train"


def _arrow_files(folder: Path) -> list[Path]:
    from workbench.core.formats import FormatError

    state = _json_file(folder / "state.json")
    if not isinstance(state, dict) or not isinstance(state.get("_data_files"), list):
        raise FormatError(folder / "state.json", "missing or unreadable: not a datasets save_to_disk folder")
    return [folder / str(f["filename"]) for f in state["_data_files"]]


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _readme_configs(readme: Path) -> dict[str, list[str]]:
    """split -> path patterns from a dataset card's YAML ``configs`` (the default config, else the first)."""
    if not readme.is_file():
        return {}
    meta = read_card_yaml(readme)
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        return {}
    chosen = next((c for c in configs if isinstance(c, dict) and c.get("default")), configs[0])
    files = chosen.get("data_files") if isinstance(chosen, dict) else None
    if isinstance(files, str):
        return {"train": [files]}
    if isinstance(files, dict):  # data_files: {train: path or [paths], ...}
        return {str(k): [str(p) for p in (v if isinstance(v, list) else [v])] for k, v in files.items()}
    out: dict[str, list[str]] = {}
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, dict) and "split" in entry and "path" in entry:
            paths = entry["path"]
            out[str(entry["split"])] = [str(p) for p in (paths if isinstance(paths, list) else [paths])]
    return out


def read_card_yaml(readme: str | os.PathLike) -> dict:
    """The YAML front matter of a Hugging Face README (dataset or model card); {} when there is none."""
    import yaml

    try:
        text = Path(readme).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return {}
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def load_folder(folder: str | os.PathLike, split: str | None) -> tuple[_Source, Rows, list[int] | None, str]:
    """(source for error messages, rows, JSONL line numbers or None, split name) of one split of a folder."""
    from workbench.core.formats import FormatError, _Source

    splits = folder_splits(folder)
    if split is None:
        if len(splits) > 1:
            raise FormatError(folder, f"the dataset has splits {', '.join(splits)}; choose one with --split NAME")
        split = next(iter(splits))
    elif split not in splits:
        raise FormatError(folder, f"the dataset has no split {split!r}; its splits are {', '.join(splits)}")
    rows: Rows = []
    sources = []
    locs: list[int] | None = None
    for f in splits[split]:
        src = _Source(f)
        if f.suffix == ".arrow":
            src.container = "arrow"
            file_rows = _arrow_rows(f)
        else:
            file_rows, locs = src.load()
        sources.append(src)
        rows.extend(file_rows)
    if not rows:
        raise FormatError(folder, f"split {split!r} holds no rows")
    if len(sources) == 1:  # errors name the file and its line (JSONL) or row
        return sources[0], rows, locs, split
    # Several shards: errors name the split and the row counted over all of them, in file name order.
    src = _Source(f"{os.fspath(folder)} (split {split})")
    src.container = sources[0].container
    return src, rows, None, split


def _arrow_rows(path: Path) -> Rows:
    """The rows of one ``save_to_disk`` Arrow file (the IPC stream format ``datasets`` writes)."""
    import pyarrow as pa

    from workbench.core.formats import FormatError

    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise FormatError(path, f"not a readable Arrow file ({exc})") from None
    from workbench.core.formats import _plain

    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]  # timestamps as text


# ============================================================================================ columns
def parse_columns(spec: str | None) -> dict[str, str]:
    """``prompt=question,chosen=good`` -> {"prompt": "question", "chosen": "good"} (ours = theirs)."""
    if not spec:
        return {}
    out = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ValueError(f"--columns: {item.strip()!r} is not OURS=THEIRS (for example prompt=question)")
        if ours.strip() in out:
            raise ValueError(f"--columns maps {ours.strip()!r} twice")
        out[ours.strip()] = theirs.strip()
    return out


def rename_columns(src: _Source, rows: Rows, columns: list[str], mapping: dict[str, str]) -> list[str]:
    """Rename each row's columns in place (theirs -> ours); the new column list. A mapped column the data
    does not have is an error naming it and the columns found."""
    missing = [theirs for theirs in mapping.values() if theirs not in columns]
    if missing:
        found = ", ".join(f'"{c}"' for c in columns[:20])
        raise src.error(None, f"--columns names a column the data does not have; its columns: {found}", missing[0])
    clash = [ours for ours in mapping if ours in columns and ours not in mapping.values()]
    if clash:  # the file's own column of that name would be dropped silently
        raise src.error(
            None,
            f'--columns takes "{clash[0]}" from "{mapping[clash[0]]}", but the data has a "{clash[0]}" column too, '
            "which would be lost; remove that column from the data or map a different one",
            clash[0],
        )
    back = {theirs: ours for ours, theirs in mapping.items()}
    for i, row in enumerate(rows):
        rows[i] = {back.get(k, k): v for k, v in row.items() if not (k in mapping and k not in back)}
    return [back.get(c, c) for c in columns if not (c in mapping and c not in back)]


# ============================================================================================= shapes
def detect_foreign(rows: Rows, columns: list[str]) -> str | None:
    """The other tool's shape these columns fit, or None (then the app's own shapes are tried)."""
    cols = set(columns)
    first = rows[0]
    if isinstance(first.get("data"), dict) and "annotations" in cols:
        return "labelstudio"
    if {"A", "B"} <= cols and isinstance(first.get("A"), dict) and ("answer" in cols or "accept" in cols):
        return "prodigy"
    if {"response_a", "response_b"} <= cols and cols & {"winner_model_a", "winner_model_b", "winner_tie"}:
        return "arena"  # before the unlabelled shape, which has the same response columns
    if {"prompt", "response_1", "response_2", "preference_strength"} <= cols:
        return "helpsteer2"
    if {"history", "human_ref_A", "human_ref_B"} <= cols:
        return "shp"
    return None


#: columns each shape turns into the pair and its label (the rest is metadata)
CONSUMED = {
    "arena": {"prompt", "response_a", "response_b", "winner_model_a", "winner_model_b", "winner_tie"},
    "helpsteer2": {"prompt", "response_1", "response_2", "preference_strength"},
    "shp": {"history", "human_ref_A", "human_ref_B", "labels"},
    "labelstudio": {"data", "annotations", "predictions"},
    "prodigy": {"prompt", "A", "B", "options", "accept", "answer", "_annotator_id"},
}


def expand(src: _Source, shape: str, rows: Rows, locs: list[int] | None) -> tuple[Rows, list[int]]:
    """Label Studio tasks carry several annotations: one row per judgment (a task without one: one row)."""
    out: Rows = []
    out_locs: list[int] = []
    for i, row in enumerate(rows):
        loc = locs[i] if locs else i + 1
        if shape != "labelstudio":
            out.append(row)
            out_locs.append(loc)
            continue
        annotations = row.get("annotations") or []
        if not isinstance(annotations, list):
            raise src.error(loc, f"expected a list of annotations, got {type(annotations).__name__}", "annotations")
        judged = False
        for annotation in annotations:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result") or []:
                if isinstance(result, dict) and result.get("type") == "pairwise":
                    selected = (result.get("value") or {}).get("selected")
                    if selected not in ("left", "right"):
                        raise src.error(
                            loc, f'a pairwise result must select "left" or "right", got {selected!r}', "annotations"
                        )
                    who = annotation.get("completed_by")
                    if isinstance(who, dict):
                        who = who.get("email") or who.get("id")
                    out.append({**row, "_choice": "a" if selected == "left" else "b", "_who": who})
                    out_locs.append(loc)
                    judged = True
        if not judged:
            out.append({**row, "_choice": None, "_who": None})
            out_locs.append(loc)
    return out, out_locs


def converter(src: _Source, shape: str, columns: list[str]) -> Callable[[dict, int], PairRecord]:
    """(row, loc) -> PairRecord for one of FOREIGN_SHAPES; problems raise naming the row and field."""
    from workbench.core.formats import _text

    meta_cols = [c for c in columns if c not in CONSUMED[shape]]

    def meta(row: dict) -> dict:
        return {k: row[k] for k in meta_cols if k in row and k not in ("_choice", "_who")}

    def need(row: dict, loc: int, name: str) -> Any:
        if row.get(name) is None:
            raise src.error(loc, f"missing (the {shape} shape needs it)", name)
        return row[name]

    def arena(row: dict, loc: int) -> PairRecord:
        prompt = _turns(src, need(row, loc, "prompt"), loc, "prompt")
        a = _turns(src, need(row, loc, "response_a"), loc, "response_a")
        b = _turns(src, need(row, loc, "response_b"), loc, "response_b")
        flags = {k: _flag(src, row.get(k), loc, k) for k in ("winner_model_a", "winner_model_b", "winner_tie")}
        won = [k for k, v in flags.items() if v]
        if len(won) != 1:
            raise src.error(
                loc,
                f"exactly one of winner_model_a, winner_model_b, winner_tie must be 1, got {won or 'none'}",
                "winner_model_a",
            )
        choice = {"winner_model_a": "a", "winner_model_b": "b", "winner_tie": "tie"}[won[0]]
        if len(prompt) == 1 and len(a) == 1 and len(b) == 1:
            texts = [
                _text(src, prompt[0], loc, "prompt"),
                _text(src, a[0], loc, "response_a"),
                _text(src, b[0], loc, "response_b"),
            ]
        else:  # several turns: the first user turn is the prompt, each side's conversation its response
            for name, side in (("response_a", a), ("response_b", b)):
                if len(side) != len(prompt):
                    raise src.error(loc, f"{len(side)} turns for {len(prompt)} prompt turns", name)
            texts = [
                _text(src, [{"role": "user", "content": _turn(src, prompt[0], loc, "prompt")}], loc, "prompt"),
                _text(src, _side(src, prompt, a, loc, "response_a"), loc, "response_a"),
                _text(src, _side(src, prompt, b, loc, "response_b"), loc, "response_b"),
            ]
        return PairRecord(texts[0], texts[1], texts[2], choice, None, None, meta(row))

    def helpsteer2(row: dict, loc: int) -> PairRecord:
        value = need(row, loc, "preference_strength")
        level = _int(value)
        if level is None or not -3 <= level <= 3:
            raise src.error(loc, f"expected an integer from -3 to 3, got {value!r}", "preference_strength")
        choice = "tie" if level == 0 else "a" if level < 0 else "b"
        return PairRecord(
            _text(src, need(row, loc, "prompt"), loc, "prompt"),
            _text(src, need(row, loc, "response_1"), loc, "response_1"),
            _text(src, need(row, loc, "response_2"), loc, "response_2"),
            choice,
            HELPSTEER2_STRENGTH.get(abs(level)),
            None,
            {**meta(row), "preference_strength": level},
        )

    def shp(row: dict, loc: int) -> PairRecord:
        label = row.get("labels")
        if label is not None:
            level = _int(label)
            if level not in (0, 1):
                raise src.error(loc, f"expected 1 (A preferred) or 0 (B preferred), got {label!r}", "labels")
            choice = "a" if level == 1 else "b"
        else:
            sa, sb = _number(row.get("score_A")), _number(row.get("score_B"))
            if sa is None or sb is None:
                raise src.error(loc, "no labels column and no numeric score_A and score_B to tell the winner", "labels")
            choice = "a" if sa > sb else "b" if sb > sa else "tie"
        return PairRecord(
            _text(src, need(row, loc, "history"), loc, "history"),
            _text(src, need(row, loc, "human_ref_A"), loc, "human_ref_A"),
            _text(src, need(row, loc, "human_ref_B"), loc, "human_ref_B"),
            choice,
            None,
            None,
            meta(row),
        )

    def labelstudio(row: dict, loc: int) -> PairRecord:
        data = row["data"]
        fields = {}
        for name in ("prompt", "answer1", "answer2"):
            if data.get(name) is None:
                raise src.error(
                    loc, "missing (Label Studio's pairwise template has prompt, answer1, answer2)", f"data.{name}"
                )
            fields[name] = _text(src, data[name], loc, f"data.{name}")
        who = row.get("_who")
        extra = {k: v for k, v in data.items() if k not in ("prompt", "answer1", "answer2")}
        if row.get("id") is not None:
            extra["labelstudio_task"] = row["id"]
        choice = row.get("_choice")
        return PairRecord(
            fields["prompt"],
            fields["answer1"],
            fields["answer2"],
            choice,
            None,
            f"labelstudio:{who}" if choice is not None and who is not None else None,
            {**meta(row), **extra},
        )

    def prodigy(row: dict, loc: int) -> PairRecord:
        sides = {}
        for name in ("A", "B"):
            side = need(row, loc, name)
            if not isinstance(side, dict) or side.get("text") is None:
                raise src.error(loc, 'expected an object with a "text"', name)
            sides[name] = side
        accept = row.get("accept") or []
        choice = None
        if row.get("answer", "accept") == "accept" and isinstance(accept, list) and len(accept) == 1:
            if accept[0] not in ("A", "B"):
                raise src.error(loc, f'expected ["A"] or ["B"], got {accept!r}', "accept")
            choice = "a" if accept[0] == "A" else "b"
        who = row.get("_annotator_id")
        extra = {f"model_{k.lower()}": v["id"] for k, v in sides.items() if v.get("id") is not None}
        return PairRecord(
            _text(src, need(row, loc, "prompt"), loc, "prompt"),
            _text(src, sides["A"]["text"], loc, "A.text"),
            _text(src, sides["B"]["text"], loc, "B.text"),
            choice,
            None,
            str(who) if choice is not None and who else None,
            {**meta(row), **extra},
        )

    return {"arena": arena, "helpsteer2": helpsteer2, "shp": shp, "labelstudio": labelstudio, "prodigy": prodigy}[shape]


def _turns(src: _Source, value: Any, loc: int, name: str) -> list:
    """A field that may be a JSON-encoded list of turns (the arena data's ``'["Hi"]'``) as a list."""
    if isinstance(value, str) and value.startswith("["):
        try:
            decoded = json.loads(value)
        except ValueError:
            return [value]
        if isinstance(decoded, list) and decoded and all(isinstance(t, str) or t is None for t in decoded):
            return decoded
        return [value]
    if isinstance(value, list):
        if not value:
            raise src.error(loc, "expected at least one turn, got an empty list", name)
        return value
    return [value]


def _turn(src: _Source, value: Any, loc: int, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise src.error(loc, f"a turn must be a non-empty string, got {value!r}"[:200], name)
    return value


def _side(src: _Source, prompt: list, side: list, loc: int, name: str) -> list[dict]:
    """One side of a multi-turn arena conversation after its first user turn, as messages."""
    messages = [{"role": "assistant", "content": _turn(src, side[0], loc, name)}]
    for user, answer in zip(prompt[1:], side[1:]):
        messages.append({"role": "user", "content": _turn(src, user, loc, "prompt")})
        messages.append({"role": "assistant", "content": _turn(src, answer, loc, name)})
    return messages


def _flag(src: _Source, value: Any, loc: int, name: str) -> bool:
    if value is None:
        return False
    level = _int(value)
    if level not in (0, 1):
        raise src.error(loc, f"expected 0 or 1, got {value!r}", name)
    return level == 1


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ============================================================================================= export
def export_splits(
    project: Project,
    out_dir: str | os.PathLike,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    with_margin: bool | str = False,
) -> dict[str, int]:
    """Write a dataset folder: ``train.jsonl`` and ``test.jsonl`` (split by prompt), ``ties.jsonl`` (ties and
    both-bad, outside the card's ``data_files`` so ``load_dataset`` does not read them as preferences) and a
    ``README.md`` whose YAML makes ``datasets.load_dataset(DIR)`` a ``DatasetDict``. Returns rows per file.

    The test split is the project's own when it has one (:func:`held_out_prompt_ids`), else 10% of the prompts
    drawn with ``seed``; no prompt is on both sides.
    """
    import shutil

    from workbench.core.formats import FormatError, export_pairs
    from workbench.core.outputs import check_output_path

    out = check_output_path(out_dir, kind="dir")
    if out.exists() and not out.is_dir():
        raise FormatError(out, "is a file; give a folder for --splits")
    if out.is_dir() and any(out.iterdir()) and not _is_split_export(out):
        raise FormatError(
            out, "is a folder of other files; give a new or empty folder (an earlier --splits export is replaced)"
        )
    tmp = out.parent / f".{out.name}.splits-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        whole = tmp / "all.jsonl"
        n = export_pairs(project, whole, with_margin=with_margin, include_ties=True, with_prompt_id=True)
        rows = [json.loads(line) for line in whole.read_text(encoding="utf-8").splitlines()]
        whole.unlink()
        test_prompts, source = held_out_prompt_ids(project, [r["prompt_id"] for r in rows], test_fraction, seed)
        files: dict[str, list[dict]] = {"train": [], "test": [], "ties": []}
        for row in rows:
            label = row.pop("label")
            pid = row.pop("prompt_id")
            if label != "chosen":
                files["ties"].append({**row, "label": label})
            else:
                files["test" if pid in test_prompts else "train"].append(row)
        for name, file_rows in files.items():
            with open(tmp / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in file_rows)
        conversational = bool(rows) and isinstance(rows[0]["prompt"], list)
        (tmp / "README.md").write_text(
            dataset_card(project.name, {k: len(v) for k, v in files.items()}, conversational, source, seed),
            encoding="utf-8",
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    assert n == sum(len(v) for v in files.values())
    return {k: len(v) for k, v in files.items()}


def _is_split_export(folder: Path) -> bool:
    """Only an earlier ``--splits`` export (our four files, our card) may be replaced as a whole."""
    names = {p.name for p in folder.iterdir()}
    if not names <= {"README.md", "train.jsonl", "test.jsonl", "ties.jsonl"} or "README.md" not in names:
        return False
    return "preference-workbench" in (read_card_yaml(folder / "README.md").get("tags") or [])


def held_out_prompt_ids(project: Project, prompt_ids: list[int], fraction: float, seed: int) -> tuple[set[int], str]:
    """(prompt ids of the test split, how it was chosen).

    The project's own test split (pairs imported with ``--test``) when it has one, so that an exported
    dataset holds out what the app's runs hold out; else ``fraction`` of the prompts drawn with ``seed``."""
    ids = project.test_prompt_ids()
    if ids:
        return ids, "the project's test split"
    unique = sorted(set(prompt_ids))
    rng = random.Random(seed)
    rng.shuffle(unique)
    k = max(1, round(fraction * len(unique))) if len(unique) > 1 else 0
    return set(unique[:k]), f"{fraction:.0%} of the prompts, drawn with seed {seed}"


def dataset_card(name: str, counts: dict[str, int], conversational: bool, source: str, seed: int) -> str:
    form = "conversational (message lists)" if conversational else "standard (strings)"
    return f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: train.jsonl
  - split: test
    path: test.jsonl
tags:
- preference
- reward-modeling
- preference-workbench
---

# Preference pairs from {name}

Exported by Preference Workbench in TRL's preference format ({form}): `prompt`, `chosen`, `rejected`.
`datasets.load_dataset(folder)` returns a `DatasetDict` with `train` ({counts["train"]} pairs) and `test`
({counts["test"]} pairs), split by prompt (no prompt in both): {source}.

Ties and both-bad judgments ({counts["ties"]} rows) are in `ties.jsonl`, with a `label` column, outside the
splits, so that no trainer reads them as preferences.
"""
