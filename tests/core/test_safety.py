"""Nothing a user does by mistake can damage a project (issue 10, part 1).

- every command that writes a file or folder refuses a project, whatever the names (the one guard,
  ``workbench.core.outputs``): this test walks the real ``workbench`` parser, so a new subcommand with an
  output option fails here until its output goes through the guard;
- projects carry ``PRAGMA application_id``; commands that only read never create or change a non-project;
- a project that cannot be written opens read-only (stats and export work) instead of failing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import cli
from workbench.core import outputs, store
from workbench.core.records import PairRecord, Text
from workbench.core.schema import APPLICATION_ID, SCHEMA_VERSION
from workbench.core.store import Project, ProjectError

REPO = Path(__file__).resolve().parents[2]


def records(n: int = 6) -> list[PairRecord]:
    return [PairRecord(Text(f"prompt {i}"), Text(f"good {i}"), Text(f"bad {i}"), choice="a") for i in range(n)]


def make_project(path: Path) -> Path:
    with Project.create(path) as project:
        project.add_records(records(), source="test")
    return path


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ every output option, through the real parser
def _looks_like_output(action: argparse.Action) -> bool:
    """Independent of the guard's own list: any option that names what the command writes."""
    if not action.option_strings or action.nargs == 0:  # flags (--no-dropout, --overwrite) name no path
        return False
    words = {s.lstrip("-").lower().replace("_", "-").split("-")[0] for s in action.option_strings}
    help_text = str(action.help or "").lower()
    return (
        bool(words & {"o", "out", "output", "save", "dest", "target"})
        or getattr(action, outputs.OUTPUT_ATTRIBUTE, None) is not None
        or (
            str(action.metavar or "").upper() in ("FILE", "DIR", "FOLDER", "PATH")
            and any(w in help_text for w in ("write", "output", "save"))
        )
    )


def _output_options() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    parser, _ = cli.build_parser()
    found = []
    for name, sub in parser.workbench_subparsers.items():
        for action in sub._actions:
            if _looks_like_output(action):
                found.append((name, sub, action))
    return found


def _argv(
    name: str, sub: argparse.ArgumentParser, out_action: argparse.Action, target: str, project: Path, dummy: Path
) -> list[str]:
    argv = [name]
    for action in sub._actions:
        if action is out_action or isinstance(action, (argparse._HelpAction,)):
            continue
        if action.option_strings and not action.required:
            continue
        value = str(project) if "project" in action.dest or action.dest in ("into", "sources") else str(dummy)
        if action.type is int:
            value = "1"
        elif action.choices:
            value = str(next(iter(action.choices)))
        if action.option_strings:
            argv += [action.option_strings[-1], value]
        else:
            argv.append(value)
    return argv + [out_action.option_strings[-1], target]


def test_the_known_commands_have_output_options():
    names = {(name, action.option_strings[-1]) for name, _, action in _output_options()}
    assert {("export", "--out"), ("export-model", "--out"), ("score", "--out")} <= names, names


@pytest.mark.parametrize("name,option", sorted({(n, a.option_strings[-1]) for n, _, a in _output_options()}))
def test_every_output_option_refuses_a_project(tmp_path, capsys, name, option):
    sub, action = next((s, a) for n, s, a in _output_options() if n == name and a.option_strings[-1] == option)
    # The project has an unusual name, an open connection (so a -wal file exists) and a checkpoints folder.
    project = make_project(tmp_path / "data.jsonl")
    checkpoints = project.with_name(project.name + ".checkpoints") / "run-1"
    checkpoints.mkdir(parents=True)
    (checkpoints / "latest.json").write_text('{"step": 1}')
    dummy = tmp_path / "input.jsonl"
    dummy.write_text('{"prompt": "p", "response": "r"}\n')
    (tmp_path / "link.jsonl").symlink_to(project)
    os.link(project, tmp_path / "hard.jsonl")
    holder = Project.open(project)
    holder.set_meta("note", "keeps a -wal file")
    wal = Path(f"{project}-wal")
    assert wal.is_file()
    targets = [
        project,
        tmp_path / "link.jsonl",
        tmp_path / "hard.jsonl",
        wal,
        Path(f"{project}-shm"),
        checkpoints / "out.jsonl",
        checkpoints,
        tmp_path / "sub" / ".." / "data.jsonl",
    ]
    if getattr(action, outputs.OUTPUT_ATTRIBUTE, None) == "dir" or str(action.metavar).upper() == "DIR":
        targets.append(tmp_path)  # a folder the command would replace, holding the project
    try:
        before = {p: digest(p) for p in (project, wal, checkpoints / "latest.json")}
        for target in targets:
            code, _, err = run_cli(capsys, *_argv(name, sub, action, str(target), project, dummy))
            lines = err.strip().splitlines()
            assert code == 1, (name, target, err)
            assert len(lines) == 1 and lines[0].startswith("workbench: error: ") and "refusing" in lines[0], (
                name,
                target,
                err,
            )
            assert {p: digest(p) for p in before} == before, (name, target)
            assert (tmp_path / "link.jsonl").is_symlink()
        assert holder.integrity_check() == "ok" and holder.get_meta("note") == "keeps a -wal file"
    finally:
        holder.close()


def test_export_onto_its_own_project_is_refused_end_to_end(tmp_path, capsys):
    project = make_project(tmp_path / "proj.jsonl")
    before = digest(project)
    code, _, err = run_cli(capsys, "export", "--project", str(project), "--out", str(project))
    assert code == 1 and "refusing to write" in err and "Preference Workbench project" in err
    assert digest(project) == before
    with Project.open(project) as p:
        assert p.statistics()["comparisons"] == 6


def test_the_guard_allows_ordinary_outputs(tmp_path):
    project = make_project(tmp_path / "p.wbp")
    other = tmp_path / "plain.sqlite"
    sqlite3.connect(other).close()
    for ok in (tmp_path / "out.jsonl", tmp_path / "new" / "dir", other, tmp_path / "p.wbp.checkpointsX"):
        assert outputs.check_output_path(ok) == ok
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    outputs.check_output_path(tmp_path / "model", kind="dir")
    with pytest.raises(outputs.OutputError):
        outputs.check_output_path(tmp_path, kind="dir")  # holds p.wbp
    assert outputs.is_project_file(project) and not outputs.is_project_file(other)


def test_library_writers_use_the_guard(tmp_path):
    from workbench.core.formats import export_pairs

    project = make_project(tmp_path / "p.jsonl")
    before = digest(project)
    with Project.open(project) as p, pytest.raises(outputs.OutputError):
        export_pairs(p, project)
    assert digest(project) == before


# ------------------------------------------------------------------ application_id
def test_projects_are_stamped_and_older_ones_get_the_stamp(tmp_path):
    path = make_project(tmp_path / "p.wbp")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.execute("PRAGMA application_id = 0")  # as an older app left it
    conn.close()
    assert outputs.is_project_file(path)  # still recognised: user_version > 0
    with Project.open(path) as project:
        assert project.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


def test_another_applications_database_is_not_opened_or_changed(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    before = digest(path)
    with pytest.raises(ProjectError, match="another application"):
        Project.open(path)
    assert digest(path) == before and not outputs.is_project_file(path)


# ------------------------------------------------------------------ readers never create
@pytest.mark.parametrize(
    "command",
    [
        ["stats", "--project", "{p}"],
        ["export", "--project", "{p}", "--out", "o.jsonl"],
        ["merge", "{p}", "--into", "{t}"],
        ["export-model", "--project", "{p}", "--run", "1", "--out", "m"],
    ],
)
def test_commands_that_read_never_create_a_project(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty.wbp"
    empty.touch()
    target = tmp_path / "target.wbp"
    argv = [a.format(p=empty, t=target) for a in command]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and "empty file" in err, err
    assert empty.read_bytes() == b"" and not Path(f"{empty}-wal").exists() and not Path(f"{empty}-shm").exists()
    assert not target.exists() and not (tmp_path / "o.jsonl").exists()
    missing = tmp_path / "missing.wbp"
    argv = [a.format(p=missing, t=target) for a in command]
    assert run_cli(capsys, *argv)[0] == 1 and not missing.exists() and not target.exists()


def test_open_of_an_empty_or_missing_file_raises_and_leaves_it(tmp_path):
    empty = tmp_path / "e.wbp"
    empty.touch()
    for path in (empty, tmp_path / "missing.wbp"):
        with pytest.raises(ProjectError):
            Project.open(path)
    assert empty.read_bytes() == b"" and not (tmp_path / "missing.wbp").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.wbp"]


def test_creators_may_fill_an_empty_file(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    data.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    empty = tmp_path / "p.wbp"
    empty.touch()
    assert run_cli(capsys, "import", str(data), "--project", str(empty))[0] == 0
    into = tmp_path / "into.wbp"
    into.touch()
    assert run_cli(capsys, "merge", str(empty), "--into", str(into))[0] == 0
    with Project.open(into) as project:
        assert project.statistics()["comparisons"] == 1


# ------------------------------------------------------------------ read-only projects
@pytest.fixture
def read_only(monkeypatch):
    """Every project opens as if on read-only media (CI runs as root: chmod would not stop it)."""
    monkeypatch.setattr(store, "probe_read_only", lambda path: "read-only file system")


def test_a_read_only_project_reads_and_refuses_writes(tmp_path, capsys, read_only):
    path = make_project(tmp_path / "p.wbp")
    before = digest(path)
    with Project.open(path) as project:
        assert project.read_only == "read-only file system"
        assert project.statistics()["comparisons"] == 6
        with pytest.raises(ProjectError, match="opened read-only .*copy it somewhere writable"):
            project.record_judgment(1, "x", "a", strength=2)
        with pytest.raises(ProjectError, match="opened read-only"):
            project.set_meta("name", "changed")
    code, out, err = run_cli(capsys, "stats", "--project", str(path))
    assert code == 0 and "comparisons" in out, err
    code, out, err = run_cli(capsys, "export", "--project", str(path), "--out", str(tmp_path / "o.jsonl"))
    assert code == 0 and "wrote 6 pairs" in out, err
    code, _, err = run_cli(capsys, "import", str(tmp_path / "o.jsonl"), "--project", str(path))
    assert code == 1 and "opened read-only" in err
    assert digest(path) == before


def test_a_read_only_project_that_needs_an_upgrade_says_so(tmp_path, read_only):
    path = make_project(tmp_path / "p.wbp")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    before = digest(path)
    with pytest.raises(ProjectError, match="needs an upgrade from schema 2"):
        Project.open(path)
    assert digest(path) == before


def _ro_mount_works(folder: Path) -> bool:
    if sys.platform != "linux" or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount --bind '{folder}' '{folder}' && "
            f"mount -o remount,bind,ro '{folder}' && ! touch '{folder}/x' 2>/dev/null",
        ],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def test_a_project_on_a_real_read_only_mount(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    if not _ro_mount_works(folder):
        pytest.skip("no read-only bind mount here (needs unshare and mount privileges)")
    path = make_project(folder / "p.wbp")
    before = digest(path)
    out = tmp_path / "o.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    wb = f"'{sys.executable}' -m workbench"
    script = (
        f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && "
        f"{wb} stats --project '{path}' && {wb} export --project '{path}' --out '{out}' && "
        f"{{ {wb} import '{out}' --project '{path}'; echo import-rc=$?; }}"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "comparisons" in result.stdout and "wrote 6 pairs" in result.stdout and "import-rc=1" in result.stdout
    assert "opened read-only (read-only file system)" in result.stderr
    assert digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["p.wbp"]


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize(
    "command",
    [
        ("stats", "--project", "{p}"),
        ("import", "{data}", "--project", "{p}"),
        ("merge", "{data_project}", "--into", "{p}"),
    ],
)
def test_a_project_path_that_is_no_regular_file_is_refused_at_once(tmp_path, capsys, kind, command):
    """A FIFO as the project would block an open() for ever; a folder is no project either."""
    target = tmp_path / "named"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "p", "chosen": "good", "rejected": "bad"}\n')
    data_project = tmp_path / "other.wbp"
    assert cli.main(["import", str(data), "--project", str(data_project)]) == 0
    capsys.readouterr()
    argv = [part.format(p=target, data=data, data_project=data_project) for part in command]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and err.count("\n") == 1 and "not a Preference Workbench project" in err, err
    assert target.is_fifo() if kind == "fifo" else target.is_dir() and not any(target.iterdir())
