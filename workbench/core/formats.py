"""Reading preference data files into records, and writing datasets out (README "Formats").

In: JSONL (also gzipped), JSON, CSV and Parquet files, and dataset folders (``core/hub.py``: ``datasets``'
save_to_disk and Hub downloads, one split at a time), in the app's four shapes below or another tool's
(``FOREIGN_SHAPES``, converted in ``core/hub.py``); ``columns`` renames the data's columns to ours first:

- ``explicit``: ``prompt``, ``chosen``, ``rejected`` (each a string or a list of ``{role, content}``
  messages); optional ``annotator``, ``strength`` and ``margin``; every other column is kept as metadata;
- ``implicit`` (HH-RLHF): ``chosen`` and ``rejected`` whole transcripts. The prompt is their shared
  dialogue up to and including the last ``"\\n\\nAssistant:"`` *before the point where the two sides
  part*, found from their longest common prefix. The last marker of one side is not enough: a response
  may itself contain ``"\\n\\nAssistant:"`` text. The text is kept exactly, so ``prompt + chosen`` and
  ``prompt + rejected`` are the original transcripts, character for character;
- ``conversational``: ``chosen`` and ``rejected`` as message lists; the prompt is an explicit ``prompt``
  column or else their shared leading messages, backed off so that each response starts with an
  assistant message;
- ``unlabeled``: ``prompt`` with ``response_a`` and ``response_b`` (a pair), or with ``responses`` (a list
  of two or more: a PromptRecord, all K(K-1)/2 comparisons).

``strength`` and ``margin``: a ``strength`` column holds Llama 2's levels (1 to 4, or their names in
:data:`workbench.core.records.STRENGTHS`) and becomes the imported judgment's strength. A ``margin``
column is validated as a number and kept in metadata, *not* mapped to a strength: margins in the wild
are on arbitrary scales (Llama 2 "small" {1, 2/3, 1/3, 0} and "large" {3, 2, 1, 0} share values that mean
different levels, UltraFeedback margins are score differences on a 1-10 scale), so any mapping would
guess, and a wrong guess silently changes the training signal. Export ``strength`` to keep it exactly.

Everything is parsed and validated before anything is written; the first problem raises a
:class:`FormatError` whose message is one line naming the file, the line (JSONL) or row (JSON list,
CSV, Parquet; 1-based, header excluded) and the field.

Out: the TRL preference dataset (``prompt``, ``chosen``, ``rejected``, optional ``margin``) as JSONL or
Parquet, and the judgment log as CSV, Parquet or JSONL.
"""

from __future__ import annotations

import csv
import difflib
import gc
import gzip
import io
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.outputs import check_output_path
from workbench.core.records import MARGIN_SCALES, STRENGTHS, PairRecord, PromptRecord, Text

if TYPE_CHECKING:  # the store imports pandas and numpy; keep this module light to import
    import pandas as pd

    from workbench.core.store import ImportSummary, Project

#: The longest text one field may hold (characters). Larger ones are almost always a broken file
#: (a whole document pasted into a cell) and would make every view and the tokenizer crawl.
MAX_TEXT_CHARS = 1_000_000
SHAPES = ("explicit", "implicit", "conversational", "unlabeled")
#: other tools' shapes (``core/hub.py``: Chatbot Arena, HelpSteer2, SHP, Label Studio, Prodigy)
FOREIGN_SHAPES = ("arena", "helpsteer2", "shp", "labelstudio", "prodigy")
FORMATS = ("auto", *SHAPES, *FOREIGN_SHAPES)
ASSISTANT_MARKER = "\n\nAssistant:"

_CONTAINERS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Fields that may hold a message list; in CSV such a list is written as JSON inside the cell.
_LIST_FIELDS = ("prompt", "chosen", "rejected", "response_a", "response_b", "responses")
_KNOWN_FIELDS = (*_LIST_FIELDS, "annotator", "strength", "margin")
_SHAPE_HELP = (
    "explicit (prompt, chosen, rejected), implicit (chosen, rejected as whole transcripts), "
    "conversational (chosen, rejected as lists of {role, content} messages, optional prompt) or "
    "unlabeled (prompt with response_a and response_b, or prompt with a list of responses), or another "
    "tool's: arena (response_a, response_b, winner_model_a/b, winner_tie), helpsteer2 (response_1, "
    "response_2, preference_strength), shp (history, human_ref_A, human_ref_B), a Label Studio pairwise "
    "export or Prodigy ab answers; --columns ours=theirs renames columns"
)
_STRENGTH_NAMES = {name.replace(" ", "_"): level for level, name in STRENGTHS.items()}
_PROGRESS_EVERY = 2000

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
#: (row, location) -> the record of that row, for one shape (``_converter``).
Converter = Callable[[dict[str, Any], int], PairRecord | PromptRecord]


class FormatError(ValueError):
    """A problem with an input (or output) file, told in one line: file, line or row, field, what."""

    def __init__(
        self,
        path: str | os.PathLike,
        message: str,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.path = os.fspath(path)
        self.message = message
        self.line = line
        self.row = row
        self.field = field

    def __str__(self) -> str:
        # A name or value may hold a lone surrogate (a non-UTF-8 file name, an escape in the data): show it
        # escaped, so that the message can always be printed, logged or stored.
        return _printable(self._text())

    def _text(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f'field "{self.field}"')
        return f"{self.path}: {', '.join(where)}: {self.message}" if where else f"{self.path}: {self.message}"


class ImportCancelled(Exception):
    """Raised when ``cancel()`` answers True; the import's transaction is rolled back."""


@dataclass
class ReadInfo:
    """What :func:`read_records` found in a file."""

    path: Path
    container: str  # jsonl, json, csv, parquet, arrow
    shape: str  # one of SHAPES or FOREIGN_SHAPES
    rows: int
    duplicate_rows: int  # rows that repeat an earlier row's comparison (same prompt and responses)
    columns: list[str]
    metadata_columns: list[str] = field(default_factory=list)
    #: the dataset split read from a dataset folder (None for a single file)
    split: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "container": self.container,
            "shape": self.shape,
            "rows": self.rows,
            "duplicate_rows": self.duplicate_rows,
            "columns": self.columns,
            "metadata_columns": self.metadata_columns,
            "split": self.split,
        }


@dataclass
class Rows:
    """A file's rows as the import reads them (any container, gzip), before they are given a shape: for
    readers of other row kinds, such as ``workbench score``'s (prompt, response) rows."""

    path: str
    container: str  # jsonl, json, csv, parquet
    rows: list[dict]
    #: every field name seen, in first-seen order
    columns: list[str]
    _source: _Source = field(repr=False)
    _locs: list[int] | None = field(default=None, repr=False)

    def texts(self, name: str, missing: str = "missing") -> list[Text]:
        """Column ``name`` as texts (strings or message lists; a CSV cell may hold a message list as JSON).
        A bad or missing value raises a FormatError naming the file, the line or row, and the field;
        ``missing`` is its message for a missing one."""
        out = []
        for i, row in enumerate(self.rows):
            loc = self._locs[i] if self._locs else i + 1
            value = row.get(name)
            if isinstance(value, str) and value[:1] == "[" and self.container == "csv":
                value = _json_list_cell(value, name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                keys = ", ".join(repr(k) for k in list(row)[:12])
                raise self._source.error(loc, f"{missing}; this row has {keys}", name)
            out.append(_text(self._source, value, loc, name))
        return out


def read_rows(path: str | os.PathLike) -> Rows:
    """The rows of a JSONL, JSON, CSV or Parquet file (gzipped or not); FormatError when it holds none."""
    src = _Source(path)
    rows, locs = src.load()
    if not rows:
        raise FormatError(path, "the file holds no rows")
    return Rows(src.name, src.container, rows, _columns(rows), src, locs)


# =============================================================================================== reading
def read_records(
    path: str | os.PathLike,
    format: str = "auto",
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    *,
    split: str | None = None,
    columns: dict[str, str] | None = None,
) -> tuple[list[PairRecord | PromptRecord], ReadInfo]:
    """Parse and validate a whole file or dataset folder; raise FormatError at the first problem.

    ``format`` is ``auto`` or one of SHAPES or FOREIGN_SHAPES (``unlabelled`` is accepted too).
    ``progress(done, total)`` is called every few thousand rows; ``cancel()`` returning True raises
    ImportCancelled. A folder (``datasets``' save_to_disk or a Hub download, ``core/hub.py``) is read one
    ``split`` at a time; ``columns`` maps our column names to the file's (``{"prompt": "question"}``).
    """
    shape = _normalize_format(format)
    with _bulk():
        return _read(path, shape, progress, cancel, split, columns or {})


@contextmanager
def _bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while building hundreds of thousands of acyclic objects:
    its repeated full scans of the growing heap cost about a third of the parse (measured: 1.1 s ->
    0.75 s for 100k pairs). Reference counting still frees everything; the previous state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read(
    path: str | os.PathLike,
    shape: str,
    progress: Progress | None,
    cancel: Cancel | None,
    split: str | None = None,
    mapping: dict[str, str] | None = None,
) -> tuple[list[PairRecord | PromptRecord], ReadInfo]:
    from workbench.core import hub

    if os.path.isdir(path):
        src, rows, locs, split = hub.load_folder(path, split)
    else:
        if split is not None:
            raise FormatError(path, "--split applies to a dataset folder; this is a single file")
        src = _Source(path)
        rows, locs = src.load()
    if not rows:
        raise FormatError(path, "the file holds no rows" if src.container != "jsonl" else "the file is empty")
    columns = _columns(rows)
    if mapping:
        columns = hub.rename_columns(src, rows, columns, mapping)
    if shape == "auto":
        shape = hub.detect_foreign(rows, columns) or _detect_shape(src, rows[0], columns)
    convert: Converter
    if shape in FOREIGN_SHAPES:
        rows, locs = hub.expand(src, shape, rows, locs)
        convert, consumed = hub.converter(src, shape, columns), hub.CONSUMED[shape]
    else:
        convert, consumed = _converter(src, shape, columns)
    total = len(rows)
    records: list[PairRecord | PromptRecord] = []
    append = records.append
    seen: set[tuple] = set()
    duplicates = 0
    for i, row in enumerate(rows):
        if i % _PROGRESS_EVERY == 0:
            _tick(progress, cancel, i, total)
        record = convert(row, locs[i] if locs else i + 1)
        key = _record_key(record)
        if key in seen:
            duplicates += 1
        else:
            seen.add(key)
        append(record)
    _tick(progress, cancel, total, total)
    info = ReadInfo(
        path=Path(path),
        container=src.container,
        shape=shape,
        rows=total,
        duplicate_rows=duplicates,
        columns=columns,
        metadata_columns=[c for c in columns if c not in consumed],
        split=split,
    )
    return records, info


def _tick(progress: Progress | None, cancel: Cancel | None, done: int, total: int) -> None:
    if cancel is not None and cancel():
        raise ImportCancelled("import cancelled; nothing was written")
    if progress is not None:
        progress(done, total)


def _normalize_format(format: str) -> str:
    value = (format or "auto").strip().lower()
    if value == "unlabelled":
        value = "unlabeled"
    if value not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    return value


def _record_key(record: PairRecord | PromptRecord) -> tuple:
    """The same comparison(s) whatever the order of the responses: the store's notion of a duplicate."""
    if type(record) is PairRecord:
        a, b = record.response_a.key, record.response_b.key
        return (record.prompt.key, a, b) if a <= b else (record.prompt.key, b, a)
    return (record.prompt.key, *sorted({r.key for r in record.responses}))


def _columns(rows: list[dict]) -> list[str]:
    """Every field name seen, in first-seen order (JSONL rows need not all have the same keys)."""
    first = rows[0]
    names = dict.fromkeys(first)
    n = len(first)
    for row in rows:
        if len(row) != n or row.keys() != first.keys():
            names.update(dict.fromkeys(row))
    return list(names)


class _Source:
    """One input file: how to read it, and how to say where in it a problem is."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.name = os.fspath(path)
        self.container = ""
        self.where = "row"  # "line" for JSONL: its rows are lines
        self.null = "null"  # how a missing value is named: "an empty cell" in CSV
        self.sep = ","

    def error(self, loc: int | None, message: str, field: str | None = None) -> FormatError:
        if loc is None:
            return FormatError(self.name, message, field=field)
        if self.where == "line":
            return FormatError(self.name, message, line=loc, field=field)
        return FormatError(self.name, message, row=loc, field=field)

    # ----------------------------------------------------------------- bytes
    def load(self) -> tuple[list[dict], list[int] | None]:
        """The rows as dicts and, for JSONL, their line numbers (else None: row i is i + 1)."""
        data = self._read_bytes()
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise FormatError(self.name, f"a damaged gzip file ({exc})") from None
        self.container = self._container(data)
        if self.container == "parquet":
            return self._parquet(data), None
        text = self._decode(data)
        if not text.strip():
            raise FormatError(self.name, "the file is empty")
        if self.container == "csv":
            rows, locs = self._csv(text), None
        elif self.container == "json":
            rows, locs = self._json(text)
        else:
            rows, locs = self._jsonl(text)
        # UTF-8 text holds no lone surrogates, but a JSON escape ("\ud800") decodes to one, in any key or
        # value at any depth (a CSV cell's JSON too); SQLite cannot store it. Only a file with such an escape
        # is walked.
        if _SURROGATE_ESCAPE.search(text):
            for i, row in enumerate(rows):
                name = _surrogate_field(row)
                if name is not None:
                    raise self.error(
                        locs[i] if locs else i + 1,
                        "holds a lone surrogate escape (such as "
                        '"\\ud800"), which is not text; remove it or give both halves of the pair',
                        name,
                    )
        return rows, locs

    def _read_bytes(self) -> bytes:
        try:
            return _read_file(self.path)
        except FileNotFoundError:
            raise FormatError(self.name, "no such file") from None
        except IsADirectoryError:
            raise FormatError(self.name, "is a directory, not a data file") from None
        except PermissionError:
            raise FormatError(self.name, "permission denied: the file cannot be read") from None
        except OSError as exc:
            raise FormatError(self.name, f"cannot read the file ({exc.strerror or exc})") from None

    def _container(self, data: bytes) -> str:
        suffixes = [s.lower() for s in Path(self.name).suffixes]
        if suffixes and suffixes[-1] in (".gz", ".gzip"):
            suffixes.pop()
        if suffixes and suffixes[-1] in _CONTAINERS:
            kind = _CONTAINERS[suffixes[-1]]
            if suffixes[-1] == ".tsv":
                self.sep = "\t"
            return kind
        # No telling extension: sniff the content.
        if data[:4] == b"PAR1":
            return "parquet"
        head = data[:4096].lstrip()[:1]
        if head == b"[":
            return "json"
        if head == b"{":
            return "jsonl"
        raise FormatError(
            self.name, "cannot tell the file type from its name; use .jsonl, .json, .csv or .parquet (optionally .gz)"
        )

    def _decode(self, data: bytes) -> str:
        bom = 0
        if data[:3] == b"\xef\xbb\xbf":
            bom = 3
        elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise FormatError(self.name, "the file is UTF-16 encoded; save it as UTF-8", line=1)
        try:
            return data[bom:].decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = bom + exc.start
            line = data.count(b"\n", 0, offset) + 1
            raise FormatError(
                self.name,
                f"not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset} is invalid; save the file as UTF-8",
                line=line,
            ) from None

    # --------------------------------------------------------------- readers
    def _jsonl(self, text: str) -> tuple[list[dict], list[int]]:
        """Line by line with json.loads: exact line numbers, and faster than pandas for this."""
        self.where = "line"
        self.container = "jsonl"
        # raw_decode skips json.loads' per-call wrapper (about a third of the parse); anything it does not
        # take cleanly (leading blanks, trailing data, errors) goes through json.loads for its verdict.
        decode = json.JSONDecoder(object_pairs_hook=_unique_keys).raw_decode
        rows: list[dict] = []
        locs: list[int] = []
        for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON allows raw U+2028
            if not line or line.isspace():
                continue
            try:
                try:
                    obj, end = decode(line)
                    if end != len(line) and not line[end:].isspace():
                        obj = json.loads(line)
                except json.JSONDecodeError:
                    obj = json.loads(line, object_pairs_hook=_unique_keys)
            except (ValueError, RecursionError) as exc:
                raise self._json_error(exc, lineno) from None
            if type(obj) is not dict:
                raise FormatError(self.name, f"expected a JSON object, got {_kind(obj)}", line=lineno)
            rows.append(obj)
            locs.append(lineno)
        return rows, locs

    def _json(self, text: str) -> tuple[list[dict], list[int] | None]:
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":  # one object per line, as `datasets` writes .json files
                return self._jsonl(text)
            raise self._json_error(exc, exc.lineno) from None
        except (ValueError, RecursionError) as exc:
            raise self._json_error(exc, None) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        elif isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise FormatError(self.name, f'expected a list of objects or {{"data": [...]}}, got {_kind(data)}')
        for i, item in enumerate(data):
            if type(item) is not dict:
                raise FormatError(self.name, f"expected an object, got {_kind(item)}", row=i + 1)
        return data, None

    def _json_error(self, exc: Exception, line: int | None) -> FormatError:
        """A JSON parser's complaint as a FormatError: a syntax error, a key given twice in one object (json
        would silently keep the last), nesting too deep, or a number too long to convert."""
        if isinstance(exc, _DuplicateKey):
            return FormatError(self.name, "this key appears twice in one object; keep one", line=line, field=exc.key)
        if isinstance(exc, json.JSONDecodeError):
            return FormatError(self.name, f"not valid JSON: {exc.msg} (column {exc.colno})", line=line)
        if isinstance(exc, RecursionError):
            return FormatError(self.name, "not valid JSON: nested too deeply", line=line)
        return FormatError(self.name, f"not valid JSON: {_one_line(exc)}", line=line)

    def _csv(self, text: str) -> list[dict]:
        import pandas as pd

        self.null = "an empty cell"
        # pandas renames a repeated column ("prompt", "prompt.1") and the data would be taken silently from
        # whichever comes first: read the header ourselves.
        try:
            header = next((r for r in csv.reader(io.StringIO(text), delimiter=self.sep) if r), [])
        except csv.Error:
            header = []  # pandas gives the verdict on a broken file
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise FormatError(
                    self.name, "this column name appears twice in the header; rename or drop one", line=1, field=name
                )
            seen.add(name)
        try:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=self.sep)
        except pd.errors.EmptyDataError:
            raise FormatError(self.name, "the file is empty") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise FormatError(self.name, f"not a readable CSV file ({_one_line(exc)})") from None
        rows = df.to_dict("records")
        list_fields = [c for c in _LIST_FIELDS if c in df.columns]
        for row in rows:
            for key, value in row.items():
                if value == "" or value != value:  # a ragged row's missing cells come back as NaN
                    row[key] = None  # CSV cannot tell an empty string from a missing value
            for key in list_fields:
                value = row[key]
                if value is not None and value[:1] == "[":
                    row[key] = _json_list_cell(value, key)
        return rows

    def _parquet(self, data: bytes) -> list[dict]:
        import pandas as pd

        try:
            df = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
            raise FormatError(self.name, f"not a readable Parquet file ({_one_line(exc)})") from None
        return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _read_file(path: str | os.PathLike) -> bytes:
    """The one place an input file is opened (tests replace it to simulate what root cannot see).

    Only a regular file is read: a FIFO or socket would block forever and /dev/zero never ends. The type
    is checked with os.stat before opening (which never blocks), and again on the descriptor, opened
    non-blocking, in case the path was replaced in between."""
    _require_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as fh:
        _require_regular(path, os.fstat(fd).st_mode)
        return fh.read()


def _require_regular(path: str | os.PathLike, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a special file"
    )
    raise FormatError(path, f"is {kind}, not a data file; give a regular file")


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json's object hook that refuses a key given twice (json.loads keeps the last one silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_field(row: dict) -> str | None:
    """The key of the first field whose name or value (at any depth) holds a lone surrogate."""
    for key, value in row.items():
        stack = [key, value]
        while stack:  # a loop, not recursion: the nesting is the file's to choose
            item = stack.pop()
            if isinstance(item, str):
                if _has_surrogate(item):
                    return key
            elif isinstance(item, dict):
                stack.extend(item)
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def _printable(text: str) -> str:
    """``text`` with any lone surrogate written as an escape (\\udcff), so that it can be encoded."""
    return text if not _has_surrogate(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _json_list_cell(value: str, key: str) -> Any:
    """A CSV cell holding a JSON list: decode it when it is a message list (or, for ``responses``, any
    list). Other text that merely starts with "[" stays text."""
    try:
        decoded = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value
    if not isinstance(decoded, list):
        return value
    if key == "responses" or (decoded and all(isinstance(m, dict) and "role" in m for m in decoded)):
        return decoded
    return value


def _plain(value: Any) -> Any:
    """Plain Python from what pandas hands back for Parquet: arrays to lists, NaN to None."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (str, int, bool, bytes)) or value is None:
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values in nullable columns
        return None  # bytes stay bytes: binary data where text is expected must fail, not turn into "b'...'"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if tolist is not None:
        return _plain(tolist())
    isoformat = getattr(value, "isoformat", None)  # timestamps
    if isoformat is not None:
        return isoformat()
    return str(value)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _kind(value: Any) -> str:
    """How an unexpected value is named in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "null (NaN)" if math.isnan(value) else "float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        keys = ", ".join(f'"{k}"' for k in list(value)[:5])
        return f"an object (keys {keys})" if keys else "an empty object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The nearest candidate to a misspelt field name, if one is near enough."""
    candidates = list(candidates)
    for c in candidates:
        if c.lower() == name.lower() or c.replace("-", "_").lower() == name.lower():
            return c
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
    return close[0] if close else None


# ================================================================================================ shapes
def _detect_shape(src: _Source, first: dict, columns: list[str]) -> str:
    """The shape the columns (and the first row's values) fit, or a FormatError saying what was found."""
    cols = set(columns)
    if {"chosen", "rejected"} <= cols:
        chosen = first.get("chosen")
        if isinstance(chosen, list):
            return "conversational"
        return "explicit" if "prompt" in cols else "implicit"
    if "prompt" in cols and ("responses" in cols or {"response_a", "response_b"} <= cols):
        return "unlabeled"
    found = ", ".join(f'"{c}"' for c in columns[:20]) + (", ..." if len(columns) > 20 else "")
    hints = []
    unknown = [c for c in columns if c not in _KNOWN_FIELDS]
    misspelt_field = None
    for expected in _LIST_FIELDS:
        if expected in cols:
            continue
        near = _suggest(expected, unknown)
        if near is not None:
            hints.append(f'did you mean "{expected}" for "{near}"?')
            misspelt_field = misspelt_field or near
    message = f"the data fits no known shape; found fields {found}; expected {_SHAPE_HELP}"
    if hints:
        message += "; " + " ".join(hints)
    raise src.error(None, message, misspelt_field)


def _converter(src: _Source, shape: str, columns: list[str]) -> tuple[Converter, set[str]]:
    """(row, loc) -> record for ``shape``, and the set of columns that shape consumes.

    This runs once per row, so the common case (plain strings, no extra columns) takes a fast path;
    anything else goes through the checking helpers, which raise with the row's location.
    """
    cols = set(columns)
    labelled = shape != "unlabeled"
    needed: tuple[str, ...]
    if shape == "explicit":
        needed = ("prompt", "chosen", "rejected")
    elif shape in ("implicit", "conversational"):
        needed = ("chosen", "rejected")
    elif "responses" in cols and not {"response_a", "response_b"} <= cols:
        needed = ("prompt", "responses")
    else:
        needed = ("prompt", "response_a", "response_b")
    consumed = set(needed)
    if shape == "conversational" and "prompt" in cols:
        consumed.add("prompt")
    if labelled:
        consumed.update(("annotator", "strength"))  # margin is validated but kept in metadata
    meta_cols = [c for c in columns if c not in consumed]
    has_margin = "margin" in meta_cols
    has_scores = {"score_chosen", "score_rejected"} <= cols
    has_label_fields = labelled and ("annotator" in cols or "strength" in cols)

    def text(row: dict, loc: int, name: str) -> Text:
        value = row.get(name, _MISSING)
        if type(value) is str and 0 < len(value) <= MAX_TEXT_CHARS:
            return Text(value)
        if value is _MISSING:
            raise _missing(src, row, loc, name, shape)
        return _text(src, value, loc, name)

    def require(row: dict, loc: int, name: str) -> Any:
        value = row.get(name, _MISSING)
        if value is _MISSING:
            raise _missing(src, row, loc, name, shape)
        return value

    def metadata(row: dict, loc: int) -> dict:
        if not meta_cols:
            return {}
        meta = {k: row[k] for k in meta_cols if k in row}
        if has_margin and "margin" in meta:
            margin = _margin(src, meta["margin"], loc)
            if margin is None:
                del meta["margin"]
            else:
                meta["margin"] = margin
        return meta

    def label_fields(row: dict, loc: int) -> tuple[str | None, int | None]:
        if not has_label_fields:
            return None, None
        annotator = row.get("annotator")
        if annotator is not None:
            if not isinstance(annotator, str):
                raise src.error(loc, f"expected an annotator name (a string), got {_kind(annotator)}", "annotator")
            annotator = annotator.strip() or None
        return annotator, _strength(src, row.get("strength"), loc)

    convert: Converter
    if shape == "explicit":

        def convert(row: dict, loc: int) -> PairRecord:
            annotator, strength = label_fields(row, loc)
            return PairRecord(
                text(row, loc, "prompt"),
                text(row, loc, "chosen"),
                text(row, loc, "rejected"),
                "a",
                strength,
                annotator,
                metadata(row, loc),
            )

    elif shape == "implicit":

        def convert(row: dict, loc: int) -> PairRecord:
            chosen = _transcript(src, require(row, loc, "chosen"), loc, "chosen")
            rejected = _transcript(src, require(row, loc, "rejected"), loc, "rejected")
            prompt, chosen_response, rejected_response = split_transcripts(chosen, rejected, src, loc)
            annotator, strength = label_fields(row, loc)
            return PairRecord(
                Text(prompt),
                Text(chosen_response),
                Text(rejected_response),
                "a",
                strength,
                annotator,
                metadata(row, loc),
            )

    elif shape == "conversational":

        def convert(row: dict, loc: int) -> PairRecord:
            chosen = _messages(src, require(row, loc, "chosen"), loc, "chosen", strict=True)
            rejected = _messages(src, require(row, loc, "rejected"), loc, "rejected", strict=True)
            annotator, strength = label_fields(row, loc)
            meta = metadata(row, loc)
            prompt_value = row.get("prompt")
            if prompt_value is not None:  # an explicit prompt (text or messages): the responses are whole
                prompt = _text(src, prompt_value, loc, "prompt")
                # UltraFeedback-binarised repeats the prompt as each list's first message(s): drop it there.
                lead = prompt.messages or [{"role": "user", "content": prompt.text}]
                n = len(lead)
                if all(len(side) > n and [_plain_message(m) for m in side[:n]] == lead for side in (chosen, rejected)):
                    chosen, rejected = chosen[n:], rejected[n:]
                    if meta.get("messages") is not None:  # UltraFeedback's copy of the chosen conversation
                        meta.pop("messages")
                choice = "a"
                if has_scores:  # UltraFeedback's scores: equal scores are a tie, not a preference
                    sc, sr = meta.get("score_chosen"), meta.get("score_rejected")
                    if isinstance(sc, (int, float)) and isinstance(sr, (int, float)) and sc == sr:
                        choice = "tie"
                return PairRecord(prompt, Text.of(chosen), Text.of(rejected), choice, strength, annotator, meta)
            shared, chosen_rest, rejected_rest = split_conversations(chosen, rejected, src, loc)
            return PairRecord(
                Text.of(shared), Text.of(chosen_rest), Text.of(rejected_rest), "a", strength, annotator, meta
            )

    elif "responses" in needed:

        def convert(row: dict, loc: int) -> PromptRecord:
            prompt = text(row, loc, "prompt")
            responses = require(row, loc, "responses")
            if not isinstance(responses, list):
                hint = " (in CSV, write the list as JSON)" if src.container == "csv" else ""
                got = src.null if responses is None else _kind(responses)
                raise src.error(loc, f"expected a list of responses, got {got}{hint}", "responses")
            if len(responses) < 2:
                raise src.error(loc, f"expected at least 2 responses to compare, got {len(responses)}", "responses")
            texts = [_text(src, r, loc, f"responses[{i}]") for i, r in enumerate(responses)]
            return PromptRecord(prompt, texts, metadata(row, loc))

    else:

        def convert(row: dict, loc: int) -> PairRecord:
            return PairRecord(
                text(row, loc, "prompt"),
                text(row, loc, "response_a"),
                text(row, loc, "response_b"),
                None,
                None,
                None,
                metadata(row, loc),
            )

    return convert, consumed


_MISSING = object()


def _missing(src: _Source, row: dict, loc: int, name: str, shape: str) -> FormatError:
    others = [k for k in row if k not in _KNOWN_FIELDS]
    near = _suggest(name, others)
    found = ", ".join(f'"{k}"' for k in list(row)[:12])
    message = f"missing (the {shape} shape needs it); this row has {found or 'no fields'}"
    if near is not None:
        message += f'; did you mean "{name}" for "{near}"?'
    return src.error(loc, message, name)


def _text(src: _Source, value: Any, loc: int, field: str) -> Text:
    """A prompt or response: a string, or a list of {role, content} messages."""
    if type(value) is str:
        if len(value) > MAX_TEXT_CHARS:
            raise _too_long(src, loc, field, len(value))
        if not value:  # as a CSV's empty cell is: there is nothing to show or compare
            raise src.error(loc, "expected a text, got an empty string", field)
        return Text(value)
    if isinstance(value, list):
        return Text.of(_messages(src, value, loc, field))
    got = src.null if value is None or (isinstance(value, float) and math.isnan(value)) else _kind(value)
    raise src.error(loc, f"expected a string or a list of messages, got {got}", field)


def _messages(src: _Source, value: Any, loc: int, field: str, strict: bool = False) -> list[dict]:
    if not isinstance(value, list):
        got = src.null if value is None else _kind(value)
        hint = "; for whole transcripts use the implicit shape" if strict and isinstance(value, str) else ""
        raise src.error(loc, f"expected a list of {{role, content}} messages, got {got}{hint}", field)
    if not value:
        raise src.error(loc, "expected a list of {role, content} messages, got an empty list", field)
    total = 0
    for i, message in enumerate(value, 1):
        if not isinstance(message, dict):
            raise src.error(
                loc, f"expected a string or a list of {{role, content}} messages; item {i} is {_kind(message)}", field
            )
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role.strip():
            keys = ", ".join(f'"{k}"' for k in message) or "none"
            raise src.error(loc, f'message {i} has no "role" string (its keys: {keys})', field)
        if not isinstance(content, str):
            raise src.error(loc, f'message {i}: "content" must be a string, got {_kind(content)}', field)
        total += len(content)
        if total > MAX_TEXT_CHARS:
            raise _too_long(src, loc, field, total)
    return value


def _transcript(src: _Source, value: Any, loc: int, field: str) -> str:
    if type(value) is str:
        if len(value) > MAX_TEXT_CHARS:
            raise _too_long(src, loc, field, len(value))
        return value
    if isinstance(value, list):
        raise src.error(
            loc,
            "expected a whole transcript (a string), got a list; use the conversational shape for message lists",
            field,
        )
    got = src.null if value is None or (isinstance(value, float) and math.isnan(value)) else _kind(value)
    raise src.error(loc, f"expected a transcript string, got {got}", field)


def _too_long(src: _Source, loc: int, field: str, n: int) -> FormatError:
    return src.error(loc, f"text of {n:,} characters is over the limit of {MAX_TEXT_CHARS:,}", field)


def _strength(src: _Source, value: Any, loc: int) -> int | None:
    # Only None is "no strength": every reader turns a missing cell into None, so a NaN here was written
    # as such (JSON's NaN), and taking it as "none" would silently drop what the file says.
    if value is None:
        return None
    level = None
    if isinstance(value, bool):
        level = None
    elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        level = int(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "_")
        level = int(text) if text.isascii() and text.isdigit() else _STRENGTH_NAMES.get(text)
    if level not in STRENGTHS:
        names = ", ".join(f'"{n}"' for n in STRENGTHS.values())
        raise src.error(loc, f"expected a strength of 1 to 4 or one of {names}, got {value!r}", "strength")
    return level


def _margin(src: _Source, value: Any, loc: int) -> float | None:
    if value is None:  # as for strength, a NaN is not "no margin"
        return None
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is not None and math.isfinite(number):
        return number
    got = repr(value) if isinstance(value, str) else str(number) if number is not None else _kind(value)
    raise src.error(loc, f"expected a finite number, got {got}", "margin")


def split_transcripts(
    chosen: str, rejected: str, src: _Source | str | None = None, loc: int | None = None
) -> tuple[str, str, str]:
    """(prompt, chosen response, rejected response) of an HH-style pair, text kept exactly.

    The prompt ends with the last "\\n\\nAssistant:" that lies wholly inside the two transcripts'
    common prefix, i.e. the last assistant turn before they part, whatever either response contains.
    """
    if not isinstance(src, _Source):
        src = _Source(src or "<transcripts>")
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if ASSISTANT_MARKER not in text:
            raise src.error(
                loc,
                'no "\\n\\nAssistant:" turn: not an HH-style transcript (use the explicit '
                "shape with a prompt column for other data)",
                name,
            )
    common = _common_prefix_len(chosen, rejected)
    end = chosen.rfind(ASSISTANT_MARKER, 0, common)
    if end < 0:
        raise src.error(
            loc,
            f'"chosen" and "rejected" part at character {common}, before any shared '
            f'"\\n\\nAssistant:" turn, so they have no common prompt',
            "rejected",
        )
    end += len(ASSISTANT_MARKER)
    return chosen[:end], chosen[end:], rejected[end:]


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slice equality (C speed, not a char loop)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def split_conversations(
    chosen: list[dict], rejected: list[dict], src: _Source | str | None = None, loc: int | None = None
) -> tuple[list[dict], list[dict], list[dict]]:
    """(shared prompt messages, chosen rest, rejected rest): the shared leading messages, backed off
    so that both responses start with an assistant message."""
    if not isinstance(src, _Source):
        src = _Source(src or "<conversations>")
    n = min(len(chosen), len(rejected))
    k = 0
    while k < n and _same_message(chosen[k], rejected[k]):
        k += 1
    # Back off to the last assistant turn at or before the parting point that both sides have.
    k = min(k, n - 1)
    while k > 0 and not (chosen[k]["role"].lower() == "assistant" and rejected[k]["role"].lower() == "assistant"):
        k -= 1
    if k == 0:
        raise src.error(
            loc,
            "chosen and rejected share no leading messages before an assistant turn, so "
            "they have no common prompt; add a prompt column",
            "rejected",
        )
    return chosen[:k], chosen[k:], rejected[k:]


def _plain_message(m: dict) -> dict:
    return {"role": m["role"], "content": m["content"]}


def _same_message(a: dict, b: dict) -> bool:
    return a["role"] == b["role"] and a["content"] == b["content"]


# ============================================================================================= importing
def import_file(
    project: Project,
    path: str | os.PathLike,
    format: str = "auto",
    annotator: str | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    *,
    split: str | None = None,
    columns: dict[str, str] | None = None,
    use_for: str | None = None,
) -> ImportSummary:
    """Read and validate the whole file (or one ``split`` of a dataset folder; ``columns`` as for
    :func:`read_records`), then add it to ``project`` in one transaction.

    All or nothing: a bad row, a cancel or an interrupt leaves the project as it was. ``progress`` gets
    (done, total) over both halves (parsing, then storing); the source and the default annotator of
    labelled pairs are the file's name (``import:<name>``); a per-row ``annotator`` column wins over
    ``annotator``. ``use_for="test"`` makes the file's comparisons evaluation-only (``Project.add_records``);
    not to be confused with ``split``, the dataset split read from a folder.
    """

    def read_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(done, 2 * total)  # reading is the first half of the work

    records, info = read_records(path, format, read_progress, cancel, split=split, columns=columns)
    return import_records(project, records, info, annotator, progress, cancel, use_for)


def import_records(
    project: Project,
    records: list[PairRecord | PromptRecord],
    info: ReadInfo,
    annotator: str | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    use_for: str | None = None,
) -> ImportSummary:
    """The storing half of :func:`import_file`, for callers that read first (the CLI creates the
    project only once the file has been read without error)."""
    if annotator is not None:
        annotator = annotator.strip()
        if not annotator:
            raise ValueError("annotator name is empty")
        if _has_surrogate(annotator):  # a command-line argument that was not UTF-8
            raise ValueError(f"annotator name {_printable(annotator)!r} is not valid text (not UTF-8)")
    # The file's name becomes the source and the default annotator; a name that is not UTF-8 (a lone
    # surrogate from the file system) is stored with its bad bytes escaped, as SQLite takes only text.
    source = _printable(info.path.name)
    total = len(records)

    def feed() -> Iterator[PairRecord | PromptRecord]:
        # The store consumes this inside its transaction: raising here rolls the whole import back.
        for i, record in enumerate(records):
            if i % _PROGRESS_EVERY == 0:
                _tick(progress, cancel, total + i, 2 * total)
            yield record

    with _bulk():
        summary = project.add_records(feed(), source=source, annotator=annotator, split=use_for)
    if progress is not None:
        progress(2 * total, 2 * total)
    summary.extra.update(file=source, shape=info.shape, rows=info.rows, duplicate_rows=info.duplicate_rows)
    return summary


# ============================================================================================= exporting
def export_pairs(
    project: Project,
    out_path: str | os.PathLike,
    with_margin: bool | str = False,
    include_ties: bool = False,
    with_prompt_id: bool = False,
) -> int:
    """Write the TRL preference dataset; returns the number of rows.

    Columns ``prompt``, ``chosen``, ``rejected``, plus ``margin`` (from strength on the Llama 2 scale
    named by ``with_margin``, "small" for True; 0.0 where no strength was given) and, with
    ``include_ties``, ``label`` ("chosen", "tie" or "both_bad"; ties keep the stored order), and with
    ``with_prompt_id`` the store's ``prompt_id`` (for splits by prompt, ``hub.export_splits``). Resolved
    labels only; excluded pairs left out, the test split kept (``hub.export_splits`` sets it apart). When every prompt is a conversation the rows use TRL's
    conversational form (message lists, a plain response becoming one assistant message); otherwise,
    since one column cannot mix strings and lists, every field is its plain text.
    """
    kind = _out_kind(out_path, ("jsonl", "parquet"))
    scale = None
    if with_margin:
        scale_name = "small" if with_margin is True else str(with_margin)
        if scale_name not in MARGIN_SCALES:
            raise ValueError(f"unknown margin scale {scale_name!r}; expected one of {', '.join(MARGIN_SCALES)}")
        scale = MARGIN_SCALES[scale_name]

    pairs = project.labelled_pairs()
    ids = pairs["comparison_id"].tolist()
    prompt_ids = [int(p) for p in pairs["prompt_id"]]
    prompts, prompt_msgs = pairs["prompt"].tolist(), pairs["prompt_messages"].tolist()
    chosen, chosen_msgs = pairs["chosen"].tolist(), pairs["chosen_messages"].tolist()
    rejected, rejected_msgs = pairs["rejected"].tolist(), pairs["rejected_messages"].tolist()
    strengths = [None if _is_na(s) else int(s) for s in pairs["strength"].astype(object).tolist()]
    labels = ["chosen"] * len(ids)
    if include_ties:
        resolved = project.resolved_labels()
        ties = resolved[resolved["choice"].isin(["tie", "both_bad"])]
        ties = ties[~ties["comparison_id"].isin(project.marked("exclude"))]
        if len(ties):
            frame = project.comparisons_frame()
            frame = frame[frame["comparison_id"].isin(ties["comparison_id"])].merge(
                ties[["comparison_id", "choice"]], on="comparison_id"
            )
            loads = lambda v: json.loads(v) if isinstance(v, str) else None  # noqa: E731
            ids += frame["comparison_id"].tolist()
            prompt_ids += [int(p) for p in frame["prompt_id"]]
            prompts += frame["prompt"].tolist()
            prompt_msgs += [loads(v) for v in frame["prompt_messages"]]
            chosen += frame["response_a"].tolist()
            chosen_msgs += [loads(v) for v in frame["response_a_messages"]]
            rejected += frame["response_b"].tolist()
            rejected_msgs += [loads(v) for v in frame["response_b_messages"]]
            strengths += [None] * len(frame)
            labels += frame["choice"].tolist()
    order = sorted(range(len(ids)), key=ids.__getitem__)

    conversational = bool(ids) and all(m for m in prompt_msgs)
    columns: dict[str, list] = {}
    if conversational:

        def as_messages(text: str, messages: list | None) -> list[dict]:
            return messages if messages else [{"role": "assistant", "content": text}]

        columns["prompt"] = [prompt_msgs[i] for i in order]
        columns["chosen"] = [as_messages(chosen[i], chosen_msgs[i]) for i in order]
        columns["rejected"] = [as_messages(rejected[i], rejected_msgs[i]) for i in order]
    else:
        columns["prompt"] = [prompts[i] for i in order]
        columns["chosen"] = [chosen[i] for i in order]
        columns["rejected"] = [rejected[i] for i in order]
    if scale is not None:
        columns["margin"] = [0.0 if s is None else scale[s] for s in (strengths[i] for i in order)]
    if include_ties:
        columns["label"] = [labels[i] for i in order]
    if with_prompt_id:
        columns["prompt_id"] = [prompt_ids[i] for i in order]
    _write_table(columns, out_path, kind)
    return len(order)


def export_judgments(project: Project, out_path: str | os.PathLike) -> int:
    """Write the whole judgment log (history included, oldest first) to CSV, Parquet or JSONL."""
    kind = _out_kind(out_path, ("csv", "parquet", "jsonl"))
    log = project.judgment_log()
    if kind == "jsonl":  # JSON has no NaN: missing values become null
        _write_table(
            {c: [None if _is_na(v) else v for v in log[c].astype(object).tolist()] for c in log.columns}, out_path, kind
        )
    else:  # the frame itself, so that Parquet keeps its nullable integer columns
        _write_table(log, out_path, kind)
    return len(log)


def _is_na(value: Any) -> bool:
    """None, NaN or pandas' NA (nullable integer columns)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ == "NAType"


def _out_kind(out_path: str | os.PathLike, allowed: tuple[str, ...]) -> str:
    """The output format, from the file's extension."""
    suffix = Path(out_path).suffix.lower()
    kind = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if kind not in allowed:
        names = " or ".join(f".{k}" for k in allowed)
        raise FormatError(out_path, f"unknown output format {suffix or '(no extension)'}; name the file {names}")
    return kind


def _write_table(columns: dict[str, list[Any]] | pd.DataFrame, out_path: str | os.PathLike, kind: str) -> None:
    """Write a dict of columns (or a DataFrame, for CSV and Parquet) to a temporary file beside the target,
    then rename it over the target: a failed export leaves no half-written file."""
    out = check_output_path(out_path)
    if out.is_dir():
        raise FormatError(out, "is a directory; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if kind == "jsonl":
            names = list(columns)
            encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(**kw) would build one per row
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(
                    encode(dict(zip(names, values, strict=True))) + "\n"
                    for values in zip(*columns.values(), strict=True)
                )
        else:
            import pandas as pd

            df = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(columns)
            if kind == "parquet":
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
