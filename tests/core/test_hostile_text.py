"""Data never reaches the terminal as code: control, bidi and format characters in annotator names,
metadata keys, file names and texts come out of every command as visible escapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from workbench.core.store import Project
from workbench.core.text import dumps_safe, json_safe, terminal_safe, terminal_safe_data

REPO = Path(__file__).resolve().parents[2]
#: ESC sequences (clear screen, title set with BEL), an 8-bit CSI, backspace, CR, DEL, NUL and bidi overrides.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b31m\b\r\x7f\x00\u202eevil\u2066x\u2069\u200b\ufeff\u2028"
ARG = HOSTILE.replace("\x00", "")  # what a command line or a file name can hold
RAW = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))


def raw_controls(text: str) -> list[str]:
    """The characters a terminal would act on (tab and newline are layout, zero-width joiners are text)."""
    return sorted({repr(ch) for ch in text if ch not in "\n\t\u200c\u200d" and unicodedata.category(ch) in RAW})


# ------------------------------------------------------------------ the functions
def test_terminal_safe_escapes_every_control_and_format_character():
    out = terminal_safe(HOSTILE)
    assert raw_controls(out) == []
    assert out.startswith("\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x08\\x0d\\x7f\\x00\\u202eevil\\u2066x\\u2069")
    assert terminal_safe("a\nb\tc") == "a\\x0ab\tc"  # one line stays one line
    assert terminal_safe("a\nb\r\n", multiline=True) == "a\nb\\x0d\n"
    assert terminal_safe("\U000e0041 tag") == "\\U000e0041 tag"
    assert terminal_safe("bad name \udcff") == "bad name \\udcff"  # a lone surrogate would crash print
    # Ordinary text, including non-Latin scripts, emoji sequences and non-breaking spaces, is left alone.
    plain = "naïve 日本語 עברית \u00a0 👩\u200d💻 می\u200cخواهم <b>&amp;</b>"
    assert terminal_safe(plain) == plain
    assert terminal_safe(42) == "42"


def test_json_safe_is_the_same_json_with_no_raw_controls():
    value = {HOSTILE: [HOSTILE, 1, None], "astral": "\U000e0041", "plain": "日本 <b>"}
    text = dumps_safe(value, indent=2)
    assert raw_controls(text) == []
    assert json.loads(text) == value
    assert json_safe("[1, 2]") == "[1, 2]"


def test_terminal_safe_data_reaches_keys_and_nested_values():
    data = terminal_safe_data({"k\x1b": [("\x9b", 3)], 5: {"x": "\u202e"}})
    assert data == {"k\\x1b": [("\\x9b", 3)], 5: {"x": "\\u202e"}}


# ------------------------------------------------------------------ every command, end to end
def workbench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WORKBENCH_DATA_DIR": str(tmp_path / "data"),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-m", "workbench", *args], cwd=tmp_path, env=env, capture_output=True, timeout=300, check=False
    )
    for stream in (result.stdout, result.stderr):
        text = stream.decode("utf-8")  # strict: a lone surrogate written raw would fail here
        assert raw_controls(text) == [], (args, text)
        assert "Traceback" not in text, text
    return result


@pytest.fixture
def hostile_project(tmp_path):
    """A project imported from a file whose name, annotator column, metadata keys and texts are hostile."""
    name = "d\x1b[2J\u202e.jsonl"
    rows = [
        {
            "prompt": f"p{i} {HOSTILE}",
            "chosen": f"a{i} {HOSTILE}",
            "rejected": f"b{i}",
            "annotator": f"{who}{HOSTILE}",
            f"key{HOSTILE}": f"value{HOSTILE}",
        }
        for i, who in enumerate(("ann", "bob", "ann"))
    ]
    rows.append({**rows[0], "annotator": f"bob{HOSTILE}"})  # a second label on one pair: agreement is computed
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = workbench(tmp_path, "import", name, "--project", "p.wbp")
    assert result.returncode == 0, result.stderr
    assert b"\\x1b[2J\\u202e.jsonl" in result.stdout  # the file name is shown, as escapes
    return tmp_path


@pytest.mark.slow
def test_no_command_prints_a_raw_control_character(hostile_project):
    tmp = hostile_project
    with Project.open(tmp / "p.wbp") as project:
        assert f"ann{HOSTILE}".strip() in project.judgment_log()["annotator"].tolist()  # the data is kept as is

    stats = workbench(tmp, "stats", "--project", "p.wbp")
    assert stats.returncode == 0 and b"ann\\x1b[2J" in stats.stdout
    as_json = workbench(tmp, "stats", "--json", "--project", "p.wbp")
    assert as_json.returncode == 0
    names = [row["name"] for row in json.loads(as_json.stdout)["annotators_detail"]]
    assert f"ann{HOSTILE}".strip() in names  # JSON escapes the characters but keeps the value exact

    out = "out\x1b[2J\u202e.jsonl"
    assert workbench(tmp, "export", "--project", "p.wbp", "--out", out).returncode == 0
    assert (
        workbench(
            tmp, "export", "--project", "p.wbp", "--out", out.replace(".jsonl", ".csv"), "--what", "judgments"
        ).returncode
        == 0
    )
    merged = workbench(tmp, "merge", "p.wbp", "--into", "m\x9b2J\u202e.wbp")
    assert merged.returncode == 0 and b"\\x9b2J\\u202e.wbp" in merged.stdout

    # Errors: a field error naming a hostile key, a missing file, a bad output name, a missing project.
    (tmp / "bad.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "annotator": 3}) + "\n")
    for args in (
        ("import", "bad.jsonl", "--project", "p.wbp"),
        ("import", f"absent{ARG}.jsonl", "--project", "p.wbp"),
        ("export", "--project", "p.wbp", "--out", f"x{ARG}.txt"),
        ("stats", "--project", f"none{ARG}.wbp"),
        ("merge", f"none{ARG}.wbp", "--into", "p.wbp"),
        ("import", "bad.jsonl", "--project", "p.wbp", "--annotator", f"x{ARG}"),
        ("train", "--project", f"none{ARG}.wbp"),
    ):
        result = workbench(tmp, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr
