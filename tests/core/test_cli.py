"""The `workbench` command end to end (through `python -m workbench`), its error handling, and the demo."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sqlite3
import subprocess
import sys
import types
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from workbench import cli
from workbench.core import commands
from workbench.core.demo import DEMO_ANNOTATOR, GUIDELINES, demo_data, demo_project_path, ensure_demo_project
from workbench.core.store import Project

REPO = Path(__file__).resolve().parents[2]


def workbench(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WORKBENCH_DATA_DIR": str(tmp_path / "data"), **env}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.fixture
def hh_file(tmp_path, hh_rows):
    path = tmp_path / "hh.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in hh_rows).encode()))
    return path


@pytest.mark.slow
@pytest.mark.slow  # the real command in a subprocess
def test_import_stats_export(tmp_path, hh_file, hh_rows):
    n = len(hh_rows)
    result = workbench(tmp_path, "import", hh_file.name, "--project", "p.wbp")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert f"(implicit, {n} rows)" in result.stdout
    assert f"{n} comparisons, {n} judgments; 0 duplicates" in result.stdout

    again = workbench(tmp_path, "import", hh_file.name, "--project", "p.wbp")
    assert again.returncode == 0 and f"0 comparisons, 0 judgments; {n} duplicates" in again.stdout

    stats = workbench(tmp_path, "stats", "--project", "p.wbp")
    assert stats.returncode == 0 and "comparisons" in stats.stdout and "import:hh.jsonl.gz" in stats.stdout
    assert "Chance agreement counts every label both ways round" in stats.stdout  # says what chance is
    assert f"labels       a or b {n:,}," in stats.stdout  # not "a n, b 0": imports store the chosen one as a
    as_json = json.loads(workbench(tmp_path, "stats", "--project", "p.wbp", "--json").stdout)
    assert as_json["comparisons"] == n and as_json["judgments"] == n and as_json["trainable_pairs"] == n

    result = workbench(
        tmp_path, "export", "--project", "p.wbp", "--out", "pairs.jsonl", "--with-margin", "--include-ties"
    )
    assert result.returncode == 0 and f"wrote {n} pairs to pairs.jsonl" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == n and set(rows[0]) == {"prompt", "chosen", "rejected", "margin", "label"}
    assert {(r["prompt"] + r["chosen"], r["prompt"] + r["rejected"]) for r in rows} == {
        (r["chosen"], r["rejected"]) for r in hh_rows
    }

    assert workbench(tmp_path, "export", "--project", "p.wbp", "--out", "pairs.parquet").returncode == 0
    assert len(pd.read_parquet(tmp_path / "pairs.parquet")) == n
    result = workbench(tmp_path, "export", "--project", "p.wbp", "--out", "log.csv", "--what", "judgments")
    assert result.returncode == 0 and len(pd.read_csv(tmp_path / "log.csv")) == n


def test_import_with_format_and_annotator(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    result = workbench(
        tmp_path, "import", "d.jsonl", "--project", "sub/p.wbp", "--format", "explicit", "--annotator", "alice"
    )
    assert result.returncode == 0, result.stderr
    with Project.open(tmp_path / "sub" / "p.wbp") as project:
        assert project.judgment_log()["annotator"].tolist() == ["alice"]


@pytest.mark.parametrize(
    "args, parts, not_created",
    [
        (("stats", "--project", "missing.wbp"), ("missing.wbp: no such project file",), ("missing.wbp",)),
        (
            ("export", "--project", "missing.wbp", "--out", "x.jsonl"),
            ("no such project file",),
            ("missing.wbp", "x.jsonl"),
        ),
        (
            ("import", "bad.jsonl", "--project", "new.wbp"),
            ('bad.jsonl: line 2, field "chosen": expected a string',),
            ("new.wbp", "new.wbp-wal"),
        ),
        (("import", "absent.jsonl", "--project", "new.wbp"), ("absent.jsonl: no such file",), ("new.wbp",)),
        (("import", "good.jsonl", "--project", "notes.txt"), ("not a Preference Workbench project",), ()),
        (("import", "good.jsonl", "--project", "new.wbp", "--annotator", " "), ("--annotator is empty",), ("new.wbp",)),
        (("export", "--project", "p.wbp", "--out", "x.txt"), ("x.txt: unknown output format .txt",), ("x.txt",)),
        (
            ("export", "--project", "p.wbp", "--out", "x.csv", "--what", "judgments", "--with-margin"),
            ("apply to --what pairs only",),
            ("x.csv",),
        ),
    ],
)
@pytest.mark.slow  # the real command in a subprocess
def test_user_errors_are_one_line(tmp_path, args, parts, not_created):
    (tmp_path / "bad.jsonl").write_text(
        '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": 3, "rejected": "b"}\n'
    )
    (tmp_path / "good.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    (tmp_path / "notes.txt").write_text("not a project")
    Project.create(tmp_path / "p.wbp").close()
    one_line_error(workbench(tmp_path, *args), *parts)
    for name in not_created:
        assert not (tmp_path / name).exists(), name


@pytest.mark.slow  # the real command in a subprocess
def test_usage_errors_exit_2(tmp_path):
    result = workbench(tmp_path, "import", "x.jsonl", "--project", "p.wbp", "--format", "bogus")
    assert result.returncode == 2 and "invalid choice: 'bogus'" in result.stderr
    assert workbench(tmp_path, "stats").returncode == 2  # --project is required


@pytest.mark.slow  # the real command in a subprocess
def test_debug_shows_the_traceback(tmp_path):
    for args in (("--debug", "stats", "--project", "missing.wbp"), ("stats", "--project", "missing.wbp", "--debug")):
        result = workbench(tmp_path, *args)
        assert result.returncode == 1 and "Traceback" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("workbench: error: ")


@pytest.mark.slow  # the real command in a subprocess
def test_stats_imports_neither_torch_nor_qt(tmp_path):
    Project.create(tmp_path / "p.wbp").close()
    code = (
        "import sys; from workbench.cli import main; rc = main(['stats', '--project', 'p.wbp']); "
        "print(rc, 'torch' in sys.modules, any(m.startswith('PySide6') for m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "0 False False", result.stderr


# ------------------------------------------------------------------------------------ in-process main
def test_main_returns_exit_codes(tmp_path, monkeypatch, capsys):
    Project.create(tmp_path / "p.wbp").close()
    assert cli.main(["stats", "--project", str(tmp_path / "p.wbp"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparisons"] == 0

    def interrupted(args):
        raise KeyboardInterrupt

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(commands, "cmd_stats", interrupted)
    assert cli.main(["stats", "--project", "p.wbp"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "workbench: error: interrupted\n"
    monkeypatch.setattr(commands, "cmd_stats", broken)
    assert cli.main(["stats", "--project", "p.wbp"]) == cli.EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.startswith("workbench: error: internal error: RuntimeError: boom") and "Traceback" not in err


def test_command_modules_first_registration_wins(monkeypatch):
    def register_gui(subparsers):
        subparsers.add_parser("stats").set_defaults(func=lambda args: 42)

    monkeypatch.setattr(cli, "COMMAND_MODULES", (types.SimpleNamespace(register=register_gui), commands))
    parser, names = cli.build_parser()
    assert names.count("stats") == 1 and "import" in names
    assert cli.main(["stats"]) == 42  # the first module's stats (no --project) shadows the core one


# ----------------------------------------------------------------------------------------------- demo
def demo_source(tmp_path) -> Path:
    """A minimal demo data file in the format of resources/demo/demo.jsonl."""
    rows = [
        {
            "prompt": "Best fruit?",
            "kind": "facts",
            "responses": ["apple", "banana", "cherry"],
            "ranking": [2, 0, 1],
            "judged": True,
        },
        {"prompt": "Say hi.", "kind": "writing", "responses": ["hi", "hello"], "ranking": [1, 0], "judged": False},
        {
            "prompt": [{"role": "user", "content": "Count to three."}],
            "kind": "code",
            "responses": ["1 2 3", "1 2", "one", "3 2 1"],
            "ranking": [0, 1, 3, 2],
            "judged": True,
        },
    ]
    path = tmp_path / "demo-source.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ensure_demo_project(tmp_path):
    path = ensure_demo_project(tmp_path / "demo.wbp", source=demo_source(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-source.jsonl", "demo.wbp"]  # no temporary left
    with Project.open(path) as project:
        stats = project.statistics()
        assert (stats["prompts"], stats["responses"], stats["comparisons"]) == (3, 9, 3 + 1 + 6)
        assert stats["judgments"] == 3 + 6
        assert project.guidelines == GUIDELINES
        log = project.judgment_log()
        assert set(log["annotator"]) == {DEMO_ANNOTATOR}
        assert (log["answered_at"] > log["shown_at"]).all()
        assert ((log["answered_at"] - log["shown_at"]) < 300).all()
        # The winner of every pair is the response ranked higher; strength grows with the rank distance.
        winners = {
            (
                r.prompt,
                r.response_a if r.choice == "a" else r.response_b,
                r.response_b if r.choice == "a" else r.response_a,
            ): r.strength
            for r in log.itertuples()
        }
        assert winners[("Best fruit?", "cherry", "banana")] == 3
        assert winners[("Best fruit?", "cherry", "apple")] == 2
        assert winners[("Best fruit?", "apple", "banana")] == 2
        assert winners[("User: Count to three.", "1 2 3", "one")] == 4
        assert project.comparison(1).prompt.text == "Best fruit?"
        with closing(sqlite3.connect(path)) as conn:  # the test's own connection: the store keeps its private
            prompts = pd.read_sql_query("SELECT metadata FROM prompts ORDER BY id", conn)["metadata"]
        assert json.loads(prompts[0]) == {"kind": "facts", "demo": True}
    mtime = path.stat().st_mtime_ns
    assert ensure_demo_project(path, source=demo_source(tmp_path)) == path
    assert path.stat().st_mtime_ns == mtime  # made once, then left alone


def test_demo_project_path(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "wb"))
    assert demo_project_path() == tmp_path / "wb" / "demo.wbp"
    monkeypatch.delenv("WORKBENCH_DATA_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert demo_project_path() == tmp_path / "xdg" / "preference-workbench" / "demo.wbp"
        monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
        assert demo_project_path() == Path.home() / ".local" / "share" / "preference-workbench" / "demo.wbp"


def test_core_demo_command_with_the_packaged_data(tmp_path, monkeypatch, capsys):
    assert demo_data().is_file(), "the packaged demo data is missing"
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    assert commands.cmd_demo(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "data" / "demo.wbp") in out and DEMO_ANNOTATOR in out
    with Project.open(tmp_path / "data" / "demo.wbp") as project:
        stats = project.statistics()
    assert stats["judgments"] > 0 and stats["comparisons"] > stats["judgments"]
