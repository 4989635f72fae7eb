"""The built-in demo project: made once from ``resources/demo/demo.jsonl`` in the user's data folder.

Every prompt's responses are compared pairwise (K(K-1)/2 comparisons). Prompts marked ``judged`` come
with judgments by ``demo-annotator`` derived from the author's ranking, so that the Train and Inspect
views have something to show before anyone has labelled a pair.
"""

from __future__ import annotations

import importlib.resources
import os
import random
import sys
import time
from importlib.resources.abc import Traversable
from pathlib import Path

from workbench.core.formats import FormatError, read_records
from workbench.core.records import PromptRecord

DEMO_ANNOTATOR = "demo-annotator"
DEMO_FILE_NAME = "demo.wbp"
#: Strength of a demo judgment by how far apart the two responses are in the ranking: neighbours are
#: "slightly better", two places "better", three or more "significantly better".
STRENGTH_BY_DISTANCE = {1: 2, 2: 3, 3: 4}

GUIDELINES = """\
# Labelling guidelines

Pick the response you would rather receive, as the person who asked.

1. **Correct first.** A wrong fact, a bug in code or unsafe advice outweighs style. Check code and
   numbers when you can.
2. **Then helpful.** Prefer the response that answers the actual question, completely, without evasion.
   A needless refusal of a harmless request is a failure; so is help with something harmful.
3. **Then clear.** Well organised, no padding. Longer is not better by itself.

**Strength:** press the number for *better*; hold **Shift** when one response is *much* better.

- **Tie (=):** both are equally good, or differ only in ways that do not matter.
- **Both bad (0):** neither is acceptable (both wrong, both harmful, both off-topic).
- **Skip (S):** you cannot judge it (a topic you do not know). Skips come back at the end.

Add a note (**N**) when a call was hard; flag (**F**) a pair that needs a second look.
"""


def data_dir() -> Path:
    """The user's data folder for the app (``WORKBENCH_DATA_DIR`` overrides the platform's usual one)."""
    override = os.environ.get("WORKBENCH_DATA_DIR")
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "Preference Workbench"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Preference Workbench"
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / "preference-workbench"


def demo_project_path() -> Path:
    return data_dir() / DEMO_FILE_NAME


def demo_data() -> Traversable:
    """The packaged demo data (a Traversable; use ``importlib.resources.as_file`` for a real path).

    Installed, ``workbench.resources`` is the top-level ``resources/`` folder (see pyproject.toml); run
    from a source checkout that was never installed, that package does not exist, so fall back to the
    folder itself.
    """
    try:
        return importlib.resources.files("workbench.resources") / "demo" / "demo.jsonl"
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "resources" / "demo" / "demo.jsonl"


def ensure_demo_project(path: str | os.PathLike | None = None, source: str | os.PathLike | None = None) -> Path:
    """The demo project's path, creating the project first if it does not exist yet.

    It is built under a temporary name and linked into place, so an interrupted build never leaves a
    half-made demo that later runs would take for finished, and two processes building it at once never
    replace the one the other may already have opened. ``source`` replaces the packaged data.
    """
    path = Path(path) if path is not None else demo_project_path()
    if path.exists():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _remove_project_files(tmp)
    try:
        if source is not None:
            build_demo_project(tmp, Path(source))
        else:
            resource = demo_data()
            if not resource.is_file():
                raise FileNotFoundError(f"the demo data is missing from this installation ({resource})")
            with importlib.resources.as_file(resource) as data_path:
                build_demo_project(tmp, data_path)
        try:
            os.link(tmp, path)  # atomic "create unless it exists"
        except FileExistsError:
            pass  # another process finished first: use its demo
        except OSError:  # a file system without hard links
            os.replace(tmp, path)
    finally:
        _remove_project_files(tmp)
    return path


def _remove_project_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def build_demo_project(path: Path, source: Path, seed: int = 0) -> None:
    """Create the demo project at ``path`` from demo data at ``source``, in one transaction."""
    from workbench.core.store import Project, comparison_hash, prompt_hash, response_hash

    records, _ = read_records(source, "unlabeled")
    plans: list[tuple[PromptRecord, list[int], bool]] = []
    for i, record in enumerate(records, 1):
        if not isinstance(record, PromptRecord):  # response_a/response_b columns: nothing to rank
            raise FormatError(source, "expected a list of responses to rank, got one pair", row=i, field="responses")
        plans.append((record, *_ranking(source, i, record)))
    rng = random.Random(seed)
    with Project.create(path, name="Demo", seed=seed) as project:
        with project.transaction():
            project.add_records(records, source=source.name)
            project.guidelines = GUIDELINES
            now = time.time()
            for record, ranking, judged in plans:
                if not judged:
                    continue
                position = {response: place for place, response in enumerate(ranking)}
                p_hash = prompt_hash(record.prompt)
                hashes = [response_hash(p_hash, r) for r in record.responses]
                for i in range(len(hashes)):
                    for j in range(i + 1, len(hashes)):
                        row = project._conn.execute(
                            "SELECT id FROM comparisons WHERE hash = ?", (comparison_hash(hashes[i], hashes[j]),)
                        ).fetchone()
                        if row is None:  # two identical responses: the store keeps no comparison for them
                            continue
                        comparison = project.comparison(row[0])
                        winner = i if position[i] < position[j] else j
                        choice = "a" if comparison.response_a.key == record.responses[winner].key else "b"
                        strength = STRENGTH_BY_DISTANCE[min(abs(position[i] - position[j]), 3)]
                        # Time to answer: reading both at about six words a second, plus a few seconds to decide.
                        words = len(comparison.response_a.text.split()) + len(comparison.response_b.text.split())
                        seconds = 4.0 + words / 6.0 * rng.uniform(0.6, 1.4)
                        project.record_judgment(
                            comparison.id,
                            DEMO_ANNOTATOR,
                            choice,
                            strength,
                            left=comparison.left,
                            shown_at=now - seconds,
                        )
        # Everything into the main file before it is linked into place without its -wal companion.
        project._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _ranking(source: Path, row: int, record: PromptRecord) -> tuple[list[int], bool]:
    """Take ``ranking`` and ``judged`` out of the record's metadata (they are not prompt metadata)."""
    ranking = record.metadata.pop("ranking", None)
    judged = record.metadata.pop("judged", False)
    if not isinstance(ranking, list) or sorted(ranking) != list(range(len(record.responses))):
        raise FormatError(
            source,
            f"expected a ranking of the indices 0 to {len(record.responses) - 1}, got {ranking!r}",
            row=row,
            field="ranking",
        )
    if not isinstance(judged, bool):
        raise FormatError(source, f"expected true or false, got {judged!r}", row=row, field="judged")
    record.metadata["demo"] = True
    return ranking, judged
