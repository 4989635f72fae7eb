"""The one guard for every file or folder a command writes: never onto a project.

A project may have any name, so a project is recognised by its content (the SQLite header with our
``PRAGMA application_id``, or an older project's header: SQLite with ``user_version`` > 0 and no other
application's id), wherever the path leads (symlinks are resolved; a hard link has the same content). Its
``-wal``, ``-shm`` and ``-journal`` files and its ``<project>.checkpoints`` folder are refused too.

Use it in one of two ways (both, for a library function that a command calls):

- declare a command's output option with :func:`add_output_argument` (``kind="file"`` or ``"dir"``): the
  ``workbench`` command checks every declared output before the handler runs, and options named
  ``--out``/``--output``/``-o`` are declared automatically (see :func:`declare_outputs`);
- call :func:`check_output_path` before writing (``export_pairs``, ``score_file`` and ``export_run`` do).

Qt-free and pandas-free: it only reads a few bytes of files.
"""

from __future__ import annotations

import argparse
import os
import struct
from pathlib import Path
from typing import Any

from workbench.core.schema import APPLICATION_ID

#: The attribute set on an argparse action that is an output (its value: "file" or "dir").
OUTPUT_ATTRIBUTE = "workbench_output"
#: Option strings treated as outputs even when a command forgot to declare them.
OUTPUT_OPTION_NAMES = ("--out", "--output", "-o", "--out-dir", "--output-dir")
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
_CHECKPOINTS = ".checkpoints"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_MAGICS = (0x377F0682, 0x377F0683)
_SHM_VERSION = 3007000
_MAX_FOLDER_ENTRIES = 20000


class OutputError(ValueError):
    """The output path would overwrite a project (a user error: one line, exit status 1)."""


def is_project_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is (by content) a Preference Workbench project, also one still open by an app
    (whose main file may be empty or stale while its changes are in the ``-wal`` file)."""
    head = _head(path, 100)
    if head is None:
        return False
    if head.startswith(_SQLITE_MAGIC) and len(head) >= 72:
        user_version, application_id = struct.unpack(">I", head[60:64])[0], struct.unpack(">I", head[68:72])[0]
        if application_id == APPLICATION_ID or (application_id == 0 and user_version > 0):
            return True
    if head == b"" or head.startswith(_SQLITE_MAGIC):
        # A live database: its header in the main file may not be written yet (WAL mode).
        return _is_wal_file(f"{path}-wal")
    return False


def check_output_path(path: str | os.PathLike, kind: str = "file", what: str = "the output") -> Path:
    """Refuse (``OutputError``) an output that would land on a project, a project's ``-wal``/``-shm``/
    ``-journal`` file, or anything in a project's checkpoints folder. ``kind="dir"``: a folder the command
    writes into (it may be replaced as a whole): refused also when anything inside it is such a file.
    Returns the path as given (as a ``Path``)."""
    given = Path(path).expanduser()
    real = Path(os.path.realpath(given))
    reason = _refusal(real)
    if reason is None and kind == "dir" and real.is_dir():
        reason = _refusal_inside(real)
    if reason is None and kind == "dir":
        # The command may write a temporary sibling and swap it in: the parent must not be a checkpoints folder.
        reason = _checkpoints_reason(real.parent)
    if reason is not None:
        raise OutputError(f"{given}: refusing to write {what} there: {reason}; choose another path")
    return given


def _refusal(real: Path) -> str | None:
    if real.is_file() or (real.exists() and not real.is_dir()):
        if is_project_file(real):
            return "it is a Preference Workbench project"
        if _is_wal_file(real) or _is_shm_file(real):
            return "it is a database's -wal/-shm file"
    for suffix in _SIDE_SUFFIXES:
        if real.name.endswith(suffix):
            main = real.with_name(real.name[: -len(suffix)])
            if main.is_file() and is_project_file(main):
                return f"it is the {suffix} file of the project {main}"
    if real.name.endswith(_CHECKPOINTS):
        reason = _checkpoints_reason(real)
        if reason:
            return reason
    return _checkpoints_reason(real.parent)


def _checkpoints_reason(folder: Path) -> str | None:
    """Why ``folder`` (resolved) is, or is inside, a project's checkpoints folder; else None."""
    for candidate in (folder, *folder.parents):
        if candidate.name.endswith(_CHECKPOINTS) and len(candidate.name) > len(_CHECKPOINTS):
            owner = candidate.with_name(candidate.name[: -len(_CHECKPOINTS)])
            if owner.is_file() and is_project_file(owner):
                return f"it is in the checkpoints folder of the project {owner}"
    return None


def _refusal_inside(folder: Path) -> str | None:
    count = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            if name.endswith(_CHECKPOINTS) and _checkpoints_reason(Path(root) / name):
                return f"it holds the checkpoints folder {Path(root) / name}"
        for name in files:
            count += 1
            if count > _MAX_FOLDER_ENTRIES:
                return f"it holds more than {_MAX_FOLDER_ENTRIES:,} files (not a model folder)"
            reason = _refusal(Path(os.path.realpath(Path(root) / name)))
            if reason is not None:
                return f"{Path(root) / name} inside it: {reason}"
    return None


def _head(path: str | os.PathLike, n: int) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return None


def _is_wal_file(path: str | os.PathLike) -> bool:
    head = _head(path, 32)
    return head is not None and len(head) >= 4 and struct.unpack(">I", head[:4])[0] in _WAL_MAGICS


def _is_shm_file(path: str | os.PathLike) -> bool:
    head = _head(path, 16)
    if not head or len(head) < 16:
        return False
    # The wal-index header: iVersion 3007000 in native byte order, twice (two copies of the header).
    return any(struct.unpack(f"{order}I", head[:4])[0] == _SHM_VERSION for order in "<>")


# ----------------------------------------------------------------------------------------- argparse
def add_output_argument(
    parser: argparse.ArgumentParser, *flags: str, kind: str = "file", **kwargs: Any
) -> argparse.Action:  # kwargs: add_argument's, passed on as they are
    """``parser.add_argument(*flags, **kwargs)`` for an option naming a file (``kind="file"``) or folder
    (``kind="dir"``) the command writes: ``workbench`` checks it with :func:`check_output_path` before the
    handler runs."""
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    action = parser.add_argument(*flags, **kwargs)
    setattr(action, OUTPUT_ATTRIBUTE, kind)
    return action


def output_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The actions of ``parser`` that are outputs: declared ones, and undeclared ones named like an output
    (:data:`OUTPUT_OPTION_NAMES`), which get ``kind="file"``, or ``"dir"`` when their metavar says DIR."""
    found = []
    for action in parser._actions:
        if getattr(action, OUTPUT_ATTRIBUTE, None) is None and set(action.option_strings) & set(OUTPUT_OPTION_NAMES):
            setattr(action, OUTPUT_ATTRIBUTE, "dir" if str(action.metavar or "").upper() == "DIR" else "file")
        if getattr(action, OUTPUT_ATTRIBUTE, None) is not None:
            found.append(action)
    return found


def check_parsed_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check every output option of ``parser`` that ``args`` holds a value for."""
    for action in output_actions(parser):
        value = getattr(args, action.dest, None)
        if value is None or value is argparse.SUPPRESS:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            check_output_path(item, getattr(action, OUTPUT_ATTRIBUTE), what=f"{'/'.join(action.option_strings)}")
