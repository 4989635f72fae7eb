"""Property tests of the formats (hypothesis): what goes in comes out exactly, and no input at all, however
broken, gets past the importer as a traceback or a change to the project.

Hypothesis generates the cases (and shrinks a failure to its smallest form) instead of more hand-written
ones; the example counts are kept small so that the file runs in seconds on a slow machine.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench import cli
from workbench.core.formats import export_judgments, export_pairs, import_file
from workbench.core.records import STRENGTHS
from workbench.core.store import Project

pytestmark = pytest.mark.slow  # hypothesis examples, hundreds of imports

REPO = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Valid text: any characters but lone surrogates (Cs), which are not text; at least one character.
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system"]),
            "content": st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
        }
    ),
    min_size=1,
    max_size=3,
)
strength = st.one_of(st.none(), st.sampled_from(sorted(STRENGTHS)))


def dump(path: Path) -> str:
    """The whole database as SQL text (every table): the measure of "unchanged"."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return "\n".join(conn.iterdump())


def write_rows(path: Path, rows: list[dict]) -> None:
    if path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]  # not splitlines: U+0085


@st.composite
def explicit_rows(draw, value=text):
    """Rows of distinct prompts, each with two different responses and maybe a strength."""
    prompts = draw(st.lists(value, min_size=1, max_size=4, unique_by=lambda v: json.dumps(v, sort_keys=True)))
    rows = []
    for prompt in prompts:
        chosen = draw(value)
        # Different as content: key order inside a message does not make another response.
        rejected = draw(
            value.filter(lambda v, c=json.dumps(chosen, sort_keys=True): json.dumps(v, sort_keys=True) != c)
        )
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "strength": draw(strength)})
    return rows


def import_and_export(rows: list[dict], name: str) -> tuple[list[dict], list]:
    """Import rows written as ``name`` into a new project; the exported pairs and the logged strengths."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_rows(tmp / name, rows)
        with Project.create(tmp / "p.wbp") as project:
            import_file(project, tmp / name)
            export_pairs(project, tmp / "out.jsonl")
            export_judgments(project, tmp / "log.jsonl")
        return read_jsonl(tmp / "out.jsonl"), [r["strength"] for r in read_jsonl(tmp / "log.jsonl")]


@FAST
@given(rows=explicit_rows(), name=st.sampled_from(["d.jsonl", "d.json", "d.parquet"]))
def test_explicit_text_survives_import_and_export(rows, name):
    pairs, strengths = import_and_export(rows, name)
    assert pairs == [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    assert strengths == [r["strength"] for r in rows]


@FAST
@given(rows=explicit_rows(messages), name=st.sampled_from(["d.jsonl", "d.json"]))
def test_conversations_survive_import_and_export(rows, name):
    pairs, strengths = import_and_export(rows, name)
    assert pairs == [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    assert strengths == [r["strength"] for r in rows]


@FAST
@given(turns=st.lists(st.tuples(text, text), min_size=1, max_size=3), chosen=text, rejected=text, level=strength)
def test_hh_transcripts_survive_exactly(turns, chosen, rejected, level):
    """Implicit shape: prompt + chosen and prompt + rejected are the original transcripts, to the character,
    whatever the responses hold (their own "Assistant:" markers included)."""
    dialogue = "".join(f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in turns[:-1])
    dialogue += f"\n\nHuman: {turns[-1][0]}\n\nAssistant:"
    row = {"chosen": dialogue + chosen, "rejected": dialogue + rejected, "strength": level}
    if chosen == rejected:
        rejected += "!"
        row["rejected"] += "!"
    pairs, strengths = import_and_export([row], "hh.jsonl")
    assert [p["prompt"] + p["chosen"] for p in pairs] == [row["chosen"]]
    assert [p["prompt"] + p["rejected"] for p in pairs] == [row["rejected"]]
    assert strengths == [level]


# ------------------------------------------------------------------------------ anything at all as input
FIELDS = [
    "prompt",
    "chosen",
    "rejected",
    "annotator",
    "strength",
    "margin",
    "responses",
    "response_a",
    "response_b",
    "role",
    "content",
    "meta",
]
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "\n\nHuman: q\n\nAssistant: a", "\ud800", "\x00", "[", "NaN"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
row = st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=6)


def encode_rows(rows: list[dict], ascii_only: bool) -> bytes:
    lines = (json.dumps(r, ensure_ascii=ascii_only) for r in rows)
    return "\n".join(lines).encode("utf-8", "surrogatepass")  # a raw surrogate makes bytes that are not UTF-8


any_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(encode_rows, st.lists(row, min_size=1, max_size=4), st.booleans()),
    # a valid file with some bytes put in or cut out
    st.builds(
        lambda cut, junk: b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'[:cut] + junk,
        st.integers(0, 48),
        st.binary(max_size=8),
    ),
    st.builds(lambda t: t.encode("utf-8", "surrogatepass"), st.text(max_size=100)),
)
NAMES = ["in.jsonl", "in.json", "in.csv", "in.tsv", "in.parquet", "in.jsonl.gz", "in.txt", "in"]


class Workspace:
    """A folder with a project that holds data and history, copied afresh for each example."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wb-props-"))
        seed = self.dir / "seed.jsonl"
        seed.write_text(
            "".join(json.dumps({"prompt": f"s{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(3))
        )
        with Project.create(self.dir / "seed.wbp") as project:
            import_file(project, seed)
            project.record_judgment(1, "alice", "tie")
        self.seed_dump = dump(self.dir / "seed.wbp")

    def import_(self, data: bytes, name: str, *extra: str) -> tuple[int, str, Path]:
        """Run `workbench import` in this process on ``data``; (exit status, stderr, project)."""
        project = self.dir / "work.wbp"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{project}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.dir / "seed.wbp", project)
        path = self.dir / name
        path.write_bytes(data)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["import", str(path), "--project", str(project), *extra])
        return code, err.getvalue(), project


WORK: Workspace | None = None


def workspace() -> Workspace:
    global WORK
    if WORK is None:
        WORK = Workspace()
    return WORK


def check_one_line_or_import(code: int, err: str, project: Path) -> None:
    assert code in (0, 1), err  # 70 would be an internal error: a bug
    event(f"exit {code}")  # --hypothesis-show-statistics: both outcomes are reached
    if code == 1:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("workbench: error: "), err
        assert "Traceback" not in err
        assert dump(project) == workspace().seed_dump  # nothing changed, byte for byte
    else:
        assert err == ""
        with contextlib.closing(sqlite3.connect(project)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=any_bytes, name=st.sampled_from(NAMES))
def test_any_bytes_give_one_line_or_an_import(data, name):
    check_one_line_or_import(*workspace().import_(data, name))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row, min_size=1, max_size=4),
    name=st.sampled_from(["in.jsonl", "in.json", "in.csv"]),
    fmt=st.sampled_from(["auto", "explicit", "implicit", "conversational", "unlabeled"]),
)
def test_any_rows_in_any_shape_give_one_line_or_an_import(rows, name, fmt):
    if name.endswith(".csv"):
        columns = list(dict.fromkeys(k for r in rows for k in r))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([json.dumps(r[c]) if isinstance(r.get(c), (list, dict)) else r.get(c, "") for c in columns])
        data = out.getvalue().encode("utf-8", "surrogatepass")  # a raw surrogate: bytes that are not UTF-8
    else:
        data = encode_rows(rows, ascii_only=True)
    check_one_line_or_import(*workspace().import_(data, name, "--format", fmt))


@FAST
@given(frame=st.lists(st.fixed_dictionaries({}, optional={k: json_value for k in FIELDS[:8]}), min_size=1, max_size=3))
def test_any_parquet_gives_one_line_or_an_import(frame):
    buffer = io.BytesIO()
    try:
        pd.DataFrame(frame).to_parquet(buffer)
    except Exception:  # noqa: BLE001 - pyarrow cannot store every mix of types; such a file cannot exist
        return
    check_one_line_or_import(*workspace().import_(buffer.getvalue(), "in.parquet"))


@pytest.mark.slow
def test_the_real_command_on_generated_inputs(tmp_path):
    """The same promise through `python -m workbench`: a process of its own, as a user runs it."""
    cases = {
        "surrogate.jsonl": b'{"prompt": "p", "chosen": "a", "rejected": "\\ud800"}\n',
        "dup.csv": b"prompt,chosen,rejected,chosen\np,a,b,c\n",
        "noise.jsonl.gz": bytes(range(256)),
    }
    os.mkfifo(tmp_path / "pipe.jsonl")
    Project.create(tmp_path / "p.wbp").close()
    before = dump(tmp_path / "p.wbp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for name in [*cases, "pipe.jsonl"]:
        if name in cases:
            (tmp_path / name).write_bytes(cases[name])
        result = subprocess.run(
            [sys.executable, "-m", "workbench", "import", name, "--project", "p.wbp"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"workbench: error: {name}: "), result.stderr
        assert dump(tmp_path / "p.wbp") == before
