"""The project store: one SQLite file per project (docs/architecture.md#the-project-file).

Judgments are append-only. The current label of an (annotator, comparison) is the latest judgment row;
an undo or a relabel writes a new row that ``supersedes`` the old one, so history is never rewritten.
Every write is one transaction, committed before the call returns; WAL lets readers (the GUI, a trainer
thread, a second app instance) run beside the writer, and ``BEGIN IMMEDIATE`` with a busy timeout
serialises writers from several processes without losing any.

This module owns the connection (private: every SQL statement of the app lives in workbench/core, and the
UI and the trainer ask ``Project`` by name), migrations and transactions, import (add_records), judgments
and undo, marks, labels and their resolution, and statistics. ``Project`` is the one public façade: it also
inherits the label queue (core/queue.py) and runs, metrics, scores and embeddings (core/runs.py).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import sqlite3
import time
import urllib.parse
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd

from workbench.core.queue import ORDERS, LabelQueue  # noqa: F401  (ORDERS: the store's public name)
from workbench.core.records import (
    CHOICES,
    JUDGMENT_KINDS,
    Comparison,
    Judgment,
    PairRecord,
    PromptRecord,
    Text,
    content_hash,
)
from workbench.core.runs import RunStore
from workbench.core.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

#: ``PRAGMA synchronous`` of every connection. With WAL, FULL fsyncs the WAL at every commit, so a judgment
#: is on disk when ``record_judgment`` returns: it survives a killed process *and* a power cut or OS crash.
#: NORMAL fsyncs only at checkpoints (about every 1,000 pages, i.e. every ~200 judgments): a killed app still
#: loses nothing (committed WAL frames are in the OS page cache and are replayed on the next open), but a
#: power cut or OS crash can take back everything since the last checkpoint (the file stays consistent).
#: Measured by benchmarks/bench_store.py on the shared development VM, 100,000 comparisons: FULL 0.2-0.3 ms
#: mean and 0.4-1.7 ms p99 per judgment while an fsync costs ~0.2 ms; NORMAL 0.05 ms mean, 0.25-0.3 ms p99.
#: When other work loads the same disk an fsync costs ~4 ms for a while and FULL's p99 goes to 6-8 ms. FULL
#: stays: the p99 target (5 ms) holds on an unloaded disk, a person cannot see a few ms, and a dead laptop
#: battery should not cost an annotator the last ~200 judgments.
SYNCHRONOUS = "FULL"
#: the splits a comparison can be put in (``comparison_splits``); no row: the ordinary pool
SPLITS = ("test",)


#: which label each comparison trains on (``Project.training_pairs``; the training config's ``labels``)
LABEL_SOURCES = ("adjudicated", "majority", "latest", "posterior")
#: how ties are trained (``ties``): left out, or as P(chosen better) = 1/2
TIE_RULES = ("skip", "half")

#: what every refused write says on a project opened read-only (the label session, the views)
READ_ONLY_MESSAGE = "Read only ({reason}): nothing was changed. Copy the project somewhere writable to change it."


def read_only_message(project: Project | None) -> str | None:
    """The one line for a write refused because ``project`` was opened read-only, or None when it can be
    written (or there is no project)."""
    if project is None or project.read_only is None:
        return None
    return READ_ONLY_MESSAGE.format(reason=project.read_only)


class ProjectError(Exception):
    """A user-facing problem with a project file (missing, not a project, too new)."""


class CreateOptions(TypedDict, total=False):
    """The keyword arguments of ``Project.create`` that ``Project.open_or_create`` passes on."""

    name: str | None
    seed: int


@dataclass
class ImportSummary:
    prompts_added: int = 0
    responses_added: int = 0
    comparisons_added: int = 0
    judgments_added: int = 0
    duplicates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts_added": self.prompts_added,
            "responses_added": self.responses_added,
            "comparisons_added": self.comparisons_added,
            "judgments_added": self.judgments_added,
            "duplicates": self.duplicates,
            **self.extra,
        }


#: The projects this process has open, by file (device, inode). POSIX drops every lock a process holds on a
#: file when it closes any descriptor of that file, SQLite's locks included; so while a project is open here
#: this module never opens the file itself (the header check, the write probe). Otherwise another process's
#: last connection finds the file unlocked, checkpoints and deletes the WAL under ours: "database disk image
#: is malformed" here, and writes that land in a deleted WAL (sqlite.org/howtocorrupt.html, 2.2).
_OPEN: dict[tuple[int, int], weakref.WeakSet[Project]] = {}


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _open_here(path: Path) -> Project | None:
    """A project of this process that has the file at ``path`` open, if any."""
    key = _file_id(path)
    live = _OPEN.get(key) if key is not None else None
    return next(iter(live), None) if live else None


def probe_read_only(path: str | os.PathLike) -> str | None:
    """Why the project file at ``path`` cannot be written (read-only media, no permission), or None.

    Tried, not guessed from permission bits (root may write where the bits say no, but not on read-only
    media): the file is opened for writing, and the folder must take the -wal and -shm files; unless this
    process has it open already, when that connection's answer is the answer (see ``_OPEN``). Tests replace
    this function to simulate read-only media."""
    path = Path(path)
    held = _open_here(path)
    if held is not None:
        return held.read_only
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return exc.strerror.lower() if exc.strerror else "cannot be written"
        return None  # another problem: opening reports it
    os.close(fd)
    folder = path.parent if str(path.parent) else Path(".")
    wal = Path(f"{path}-wal")
    if not wal.exists() and not os.access(folder, os.W_OK | os.X_OK):
        return "its folder cannot be written"
    return None


def _is_read_only_error(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open database file" in text


def _has_content(path: Path) -> bool:
    """True if ``path`` is a non-empty file (or anything else that is not "no project yet")."""
    try:
        return path.stat().st_size > 0 or not path.is_file()
    except FileNotFoundError:
        return False


def remove_new_project(path: str | os.PathLike, was_empty_file: bool = False) -> None:
    """Undo a ``Project.create`` whose first write failed (closed already): remove the file and its -wal
    and -shm, or give back the empty file that was there before."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if was_empty_file:
        with open(path, "wb"):
            pass
    else:
        Path(path).unlink(missing_ok=True)


def _now() -> float:
    return time.time()


def _hash_int(*parts: str) -> int:
    """A 60-bit integer from a content hash: fits SQLite's signed 64-bit integers."""
    return int(content_hash(*parts)[:15], 16)


def prompt_hash(prompt: Text) -> str:
    return content_hash("prompt", prompt.key)


def response_hash(p_hash: str, response: Text) -> str:
    return content_hash("response", p_hash, response.key)


def comparison_hash(ra_hash: str, rb_hash: str) -> str:
    """Order-free: (a, b) and (b, a) are the same comparison."""
    return content_hash("comparison", *sorted((ra_hash, rb_hash)))


class Project(LabelQueue, RunStore):
    """An open project file. One instance per thread: sqlite3 connections are not shared."""

    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection):
        self.path = Path(path)
        self._conn = conn  # private: SQL lives in workbench/core (the queue and runs mixins use it too)
        self._annotator_ids: dict[str, int] = {}
        self._init_queue()
        self._seed: int | None = None
        #: Why the project was opened read-only (read-only media, no permission), or None when writable.
        #: Every write (``transaction``) then raises ProjectError.
        self.read_only: str | None = None
        self._file = _file_id(self.path)
        if self._file is not None:
            _OPEN.setdefault(self._file, weakref.WeakSet()).add(self)

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(cls, path: str | os.PathLike, name: str | None = None, seed: int = 0) -> Project:
        """A new project at ``path``, which must not exist or be an empty file. Only the commands that make
        projects (import, merge --into, the app's "new project", the demo) call this."""
        path = Path(path)
        if path.exists() and not (path.is_file() and path.stat().st_size == 0):
            raise ProjectError(f"{path}: a file already exists there; open it instead")
        path.parent.mkdir(parents=True, exist_ok=True)
        project = cls._connect(path, create=True)
        with project.transaction():
            project._set_meta("name", name or path.stem)
            project._set_meta("seed", str(int(seed)))
            project._set_meta("created_at", str(_now()))
            project._set_meta("guidelines", "")
        return project

    @classmethod
    def open(cls, path: str | os.PathLike) -> Project:
        """An existing project. Never creates or changes a file that is not a project (a missing or empty file
        raises ``ProjectError``); an older project is upgraded when the file is writable. A project that
        cannot be written (read-only media, no permission) opens read-only: ``read_only`` says why."""
        path = Path(path)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "no such project file"
            raise ProjectError(
                f"{path}: {what}, not a Preference Workbench project" if path.exists() else f"{path}: {what}"
            )
        return cls._connect(path)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **kwargs: Unpack[CreateOptions]) -> Project:
        """Open the project at ``path``, or create it when there is none (nothing, or an empty file)."""
        path = Path(path)
        return cls.open(path) if _has_content(path) else cls.create(path, **kwargs)

    @staticmethod
    def _check_header(path: Path, create: bool) -> None:
        """Refuse a missing (unless creating), empty or non-SQLite file before SQLite touches it."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(16)
        except FileNotFoundError:
            if not create:
                raise ProjectError(f"{path}: no such project file") from None
            head = b""
        except OSError as exc:
            raise ProjectError(f"{path}: cannot read the project file ({exc.strerror})") from None
        if not head and not create:
            raise ProjectError(f"{path}: an empty file, not a Preference Workbench project")
        if head and not head.startswith(b"SQLite format 3"):
            raise ProjectError(f"{path}: not a Preference Workbench project (not an SQLite file)")

    @classmethod
    def _connect(cls, path: Path, create: bool = False) -> Project:
        if _open_here(path) is None:  # an open project: no descriptor of ours may touch the file (``_OPEN``)
            cls._check_header(path, create)
        read_only = None if create else probe_read_only(path)
        if read_only is not None:
            return cls._connect_read_only(path, read_only)
        try:
            conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            raise ProjectError(f"{path}: cannot open the project file ({exc})") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 60000")
            # Check what the file is before changing anything in it: a foreign SQLite file or one from a
            # newer app must be left exactly as it was (switching to WAL would rewrite its header).
            cls._check_version(path, conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
            conn.execute("PRAGMA foreign_keys = ON")
            project = cls(path, conn)
            project._migrate()
        except sqlite3.OperationalError as exc:
            conn.close()
            if not create and _is_read_only_error(exc):  # the probe said writable, SQLite found otherwise
                return cls._connect_read_only(path, str(exc))
            raise ProjectError(f"{path}: not a readable Preference Workbench project ({exc})") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ProjectError(f"{path}: not a readable Preference Workbench project ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return project

    @classmethod
    def _connect_read_only(cls, path: Path, reason: str) -> Project:
        """Open without writing anything: SQLite's ``mode=ro``, or ``immutable=1`` where the WAL index (-shm)
        cannot be made (a read-only folder); no journal-mode switch, no migration."""
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        last: Exception | None = None
        for suffix in ("", "&immutable=1"):
            conn = None
            try:
                conn = sqlite3.connect(
                    uri + suffix, uri=True, timeout=60.0, isolation_level=None, check_same_thread=True
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA busy_timeout = 60000")
                cls._check_version(path, conn)
                conn.execute("PRAGMA foreign_keys = ON")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                last = exc
                continue
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
            if version != SCHEMA_VERSION:
                conn.close()
                raise ProjectError(
                    f"{path}: opened read-only ({reason}), but the project needs an upgrade from schema {version} "
                    f"to {SCHEMA_VERSION}, which writes; copy it somewhere writable and open the copy"
                )
            project = cls(path, conn)
            project.read_only = reason
            return project
        raise ProjectError(f"{path}: not a readable Preference Workbench project (read-only: {reason}; {last})")

    @staticmethod
    def _check_version(path: Path, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id not in (0, APPLICATION_ID):
            raise ProjectError(f"{path}: an SQLite file of another application, not a Preference Workbench project")
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"{path}: made by a newer Preference Workbench (schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade the app"
            )
        if version == 0 and conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            raise ProjectError(f"{path}: an SQLite file, but not a Preference Workbench project")

    def _migrate(self) -> None:
        def current() -> bool:
            return (
                self._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
                and self._conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            )

        if current():
            return
        version = None
        try:
            with self.transaction():
                # Re-read under the write lock: another process may have migrated meanwhile.
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                for target in range(version, SCHEMA_VERSION):
                    for statement in _split_sql(MIGRATIONS[target]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {target + 1}")
                # The stamp that recognises a project by content (core/outputs.py); older projects lack it.
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.Error as exc:
            # One transaction: a failed upgrade leaves the file as it was.
            raise ProjectError(
                f"{self.path}: could not upgrade the project from schema {version} to {SCHEMA_VERSION} ({exc}); "
                "the file is unchanged"
            ) from None

    @staticmethod
    def _clock() -> float:
        """The store's clock for the mixins (read through this module, so that one clock serves all)."""
        return _now()

    def close(self) -> None:
        self._conn.close()
        key = self._file
        live = _OPEN.get(key) if key is not None else None
        if key is not None and live is not None:
            live.discard(self)
            if not live:
                del _OPEN[key]

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    @property
    def checkpoint_root(self) -> Path:
        """The folder beside the project file that holds model checkpoints."""
        return self.path.with_name(self.path.name + ".checkpoints")

    def checkpoint_dir(self, run_id: int) -> Path:
        return self.checkpoint_root / f"run-{run_id}"

    def scores_to_compute(self) -> tuple[int, int] | None:
        """(run, how many comparisons it has not scored) when the model queues' run is finished, has a model to
        score with and lacks some scores; None otherwise. The one test the Label view, the Data view's work
        packages and ``assign --with-scores`` make before asking ``evaluate.score_missing`` for them."""
        run_id = self.model_queue_run()
        if run_id is None or self.run(run_id)["status"] != "finished":
            return None
        if not (self.checkpoint_dir(run_id) / "latest.json").is_file():
            return None
        missing = self.unscored_count(run_id)
        return (run_id, missing) if missing else None

    def check_writable(self) -> None:
        """Raise ``ProjectError`` if the project was opened read-only."""
        if self.read_only is not None:
            raise ProjectError(
                f"{self.path}: opened read-only ({self.read_only}); copy it somewhere writable to change it"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; all or nothing. Nested use joins the outer one."""
        self.check_writable()
        if self._conn.in_transaction:
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            # Some errors (SQLITE_FULL, SQLITE_IOERR) roll back by themselves; a second ROLLBACK would
            # raise and hide the original error.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -------------------------------------------------------------------- meta
    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._set_meta(key, value)

    @property
    def name(self) -> str:
        return self.get_meta("name", self.path.stem) or self.path.stem

    @property
    def seed(self) -> int:
        if self._seed is None:
            self._seed = int(self.get_meta("seed", "0") or 0)
        return self._seed

    @property
    def guidelines(self) -> str:
        return self.get_meta("guidelines", "") or ""

    @guidelines.setter
    def guidelines(self, text: str) -> None:
        self.set_meta("guidelines", text)

    # -------------------------------------------------------------- annotators
    def annotator_id(self, name: str, kind: str = "human") -> int:
        """The id of an annotator, registered on first use."""
        name = name.strip()
        if not name:
            raise ValueError("annotator name is empty")
        if name in self._annotator_ids:
            return self._annotator_ids[name]
        row = self._conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is None and self.read_only is not None:
            return -1  # a name a read-only project has never seen: no judgments (and writes are refused)
        if row is None:
            # Inside a caller's transaction the new row may yet be rolled back: do not cache its id then.
            cache = not self._conn.in_transaction
            with self.transaction():
                self._conn.execute(
                    "INSERT OR IGNORE INTO annotators(name, kind, created_at) VALUES (?, ?, ?)",
                    (name, kind, _now()),
                )
                row = self._conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if not cache:
                return row[0]
        self._annotator_ids[name] = row[0]
        return row[0]

    def annotators(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT id, name, kind, created_at FROM annotators ORDER BY id", self._conn)

    # ------------------------------------------------------------ adding data
    def add_records(
        self,
        records: Iterable[PairRecord | PromptRecord],
        source: str,
        annotator: str | None = None,
        split: str | None = None,
    ) -> ImportSummary:
        """Add prompts, responses, comparisons and imported labels in ONE transaction.

        Everything is deduplicated by content hash, so importing a file twice adds nothing. Labelled
        pairs get a judgment from ``annotator`` (default ``import:<source>``) unless that annotator
        already holds the same current label. ``split="test"`` puts every comparison of the records (new
        or already there) in the test split (``SPLITS``): evaluation-only, see ``training_pairs``.
        """
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        with self._large_cache():
            return self._add_records(records, source, annotator, split)

    @contextmanager
    def _large_cache(self, kib: int = 65536) -> Iterator[None]:
        """A bigger page cache for one bulk write, given back afterwards. The unique hash indexes take
        inserts in random order; with SQLite's default 2 MB cache their pages spill to the WAL in the
        middle of the transaction (measured on 100,000 pairs: 2.7 s of SQL with the default, 2.4 s)."""
        old = self._conn.execute("PRAGMA cache_size").fetchone()[0]
        self._conn.execute(f"PRAGMA cache_size = {-int(kib)}")
        try:
            yield
        finally:
            self._conn.execute(f"PRAGMA cache_size = {int(old)}")

    def _add_records(
        self, records: Iterable[PairRecord | PromptRecord], source: str, annotator: str | None, split: str | None
    ) -> ImportSummary:
        summary = ImportSummary()
        now = _now()
        seed = self.seed
        default_annotator = annotator or f"import:{source}"
        with self.transaction():
            conn = self._conn
            prompt_ids = dict(conn.execute("SELECT hash, id FROM prompts"))
            response_ids = dict(conn.execute("SELECT hash, id FROM responses"))
            comparison_rows = {
                h: (cid, ra) for h, cid, ra in conn.execute("SELECT hash, id, response_a FROM comparisons")
            }
            next_prompt = (conn.execute("SELECT MAX(id) FROM prompts").fetchone()[0] or 0) + 1
            next_response = (conn.execute("SELECT MAX(id) FROM responses").fetchone()[0] or 0) + 1
            next_comparison = (conn.execute("SELECT MAX(id) FROM comparisons").fetchone()[0] or 0) + 1
            new_prompts: list[tuple] = []
            new_responses: list[tuple] = []
            new_comparisons: list[tuple] = []
            labels: list[tuple[int, str, str, int | None, str]] = []  # (comparison, choice, annotator, strength, note)
            touched: list[int] = []  # every comparison of the records, for ``split``

            seen_prompts: dict[str, tuple[int, str]] = {}  # a prompt shared by several pairs is hashed once

            def prompt_id_of(prompt: Text, metadata: dict) -> tuple[int, str]:
                nonlocal next_prompt
                key = prompt.key
                known = seen_prompts.get(key)
                if known is not None:
                    return known
                h = content_hash("prompt", key)
                pid = prompt_ids.get(h)
                if pid is None:
                    pid = prompt_ids[h] = next_prompt
                    next_prompt += 1
                    new_prompts.append(
                        (pid, h, prompt.text, _json_or_none(prompt.messages), _json(metadata), source, now)
                    )
                seen_prompts[key] = (pid, h)
                return pid, h

            def response_id_of(pid: int, p_hash: str, response: Text) -> tuple[int, str]:
                nonlocal next_response
                h = response_hash(p_hash, response)
                rid = response_ids.get(h)
                if rid is None:
                    rid = response_ids[h] = next_response
                    next_response += 1
                    new_responses.append((rid, pid, h, response.text, _json_or_none(response.messages), source, now))
                return rid, h

            def comparison_of(pid: int, ra: int, ha: str, rb: int, hb: str) -> tuple[int, bool]:
                """The comparison id and whether it is stored the other way round (b, a)."""
                nonlocal next_comparison
                h = comparison_hash(ha, hb)
                row = comparison_rows.get(h)
                if row is not None:
                    summary.duplicates += 1
                    touched.append(row[0])
                    return row[0], row[1] != ra
                cid = next_comparison
                next_comparison += 1
                comparison_rows[h] = (cid, ra)
                new_comparisons.append((cid, pid, ra, rb, h, _hash_int(str(seed), "order", h), now))
                touched.append(cid)
                return cid, False

            for record in records:
                # Identical responses make no comparison: skip them (counted) before storing anything, so
                # that no prompt or response is left behind that no comparison uses.
                if isinstance(record, PromptRecord):
                    distinct = list({r.key: r for r in record.responses}.values())
                    if len(distinct) < 2:
                        summary.extra["identical_pairs"] = summary.extra.get("identical_pairs", 0) + 1
                        continue
                    pid, ph = prompt_id_of(record.prompt, record.metadata)
                    unique = [response_id_of(pid, ph, r) for r in distinct]
                    for i in range(len(unique)):
                        for j in range(i + 1, len(unique)):
                            comparison_of(pid, *unique[i], *unique[j])
                    continue
                if record.response_a.key == record.response_b.key:
                    summary.extra["identical_pairs"] = summary.extra.get("identical_pairs", 0) + 1
                    continue
                pid, ph = prompt_id_of(record.prompt, record.metadata)
                ra, ha = response_id_of(pid, ph, record.response_a)
                rb, hb = response_id_of(pid, ph, record.response_b)
                cid, flipped = comparison_of(pid, ra, ha, rb, hb)
                if record.choice is not None:
                    choice = {"a": "b", "b": "a"}.get(record.choice, record.choice) if flipped else record.choice
                    labels.append((cid, choice, record.annotator or default_annotator, record.strength, ""))

            conn.executemany(
                "INSERT INTO prompts(id, hash, text, messages, metadata, source, created_at) VALUES (?,?,?,?,?,?,?)",
                new_prompts,
            )
            conn.executemany(
                "INSERT INTO responses(id, prompt_id, hash, text, messages, source, created_at) VALUES (?,?,?,?,?,?,?)",
                new_responses,
            )
            conn.executemany(
                "INSERT INTO comparisons(id, prompt_id, response_a, response_b, hash, rand_key, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                new_comparisons,
            )
            summary.prompts_added = len(new_prompts)
            summary.responses_added = len(new_responses)
            summary.comparisons_added = len(new_comparisons)
            summary.judgments_added = self._add_imported_labels(labels, now)
            if split is not None:
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO comparison_splits(comparison_id, split, created_at) VALUES (?,?,?)",
                    [(cid, split, now) for cid in dict.fromkeys(touched)],
                )
                summary.extra[f"{split}_comparisons"] = len(set(touched))
                summary.extra[f"{split}_added"] = conn.total_changes - before
            if summary.comparisons_added or summary.judgments_added:
                self._bump_queue_epoch()
        self._cursors.clear()
        self._forget_all_memos()
        return summary

    def _add_imported_labels(self, labels: list[tuple[int, str, str, int | None, str]], now: float) -> int:
        if not labels:
            return 0
        conn = self._conn
        annotator_ids = {
            name: self._annotator_in_tx(name, "import" if name.startswith("import:") else "human")
            for name in {label[2] for label in labels}
        }
        current = {
            (a, c): (jid, choice, strength)
            for a, c, jid, choice, strength in conn.execute(
                "SELECT cl.annotator_id, cl.comparison_id, cl.judgment_id, cl.choice, j.strength "
                "FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            )
        }
        next_judgment = (conn.execute("SELECT MAX(id) FROM judgments").fetchone()[0] or 0) + 1
        rows, current_rows = [], []
        for cid, choice, name, strength, note in labels:
            aid = annotator_ids[name]
            previous = current.get((aid, cid))
            if previous is not None and previous[1:] == (choice, strength):
                continue
            jid = next_judgment
            next_judgment += 1
            current[(aid, cid)] = (jid, choice, strength)
            rows.append((jid, cid, aid, choice, strength, "import", note, previous[0] if previous else None, now))
            current_rows.append((aid, cid, jid, choice))
        conn.executemany(
            "INSERT INTO judgments(id, comparison_id, annotator_id, choice, strength, kind, note, supersedes,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.executemany("INSERT OR REPLACE INTO current_labels VALUES (?,?,?,?)", current_rows)
        return len(rows)

    def _annotator_in_tx(self, name: str, kind: str) -> int:
        row = self._conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return row[0]
        cursor = self._conn.execute(
            "INSERT INTO annotators(name, kind, created_at) VALUES (?, ?, ?)", (name, kind, _now())
        )
        assert cursor.lastrowid is not None  # an INSERT sets it
        return cursor.lastrowid

    # ---------------------------------------------------------------- reading
    def comparison(self, comparison_id: int) -> Comparison:
        row = self._conn.execute(
            "SELECT c.id, c.prompt_id, c.hash, p.text AS pt, p.messages AS pm,"
            " ra.id AS ra_id, ra.text AS ra_text, ra.messages AS ra_m,"
            " rb.id AS rb_id, rb.text AS rb_text, rb.messages AS rb_m"
            " FROM comparisons c JOIN prompts p ON p.id = c.prompt_id"
            " JOIN responses ra ON ra.id = c.response_a JOIN responses rb ON rb.id = c.response_b"
            " WHERE c.id = ?",
            (comparison_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no comparison {comparison_id}")
        return Comparison(
            id=row["id"],
            prompt_id=row["prompt_id"],
            prompt=_text(row["pt"], row["pm"]),
            response_a_id=row["ra_id"],
            response_a=_text(row["ra_text"], row["ra_m"]),
            response_b_id=row["rb_id"],
            response_b=_text(row["rb_text"], row["rb_m"]),
            left=self.left_side(row["hash"]),
        )

    def left_side(self, comparison_hash_: str) -> str:
        """Which response is shown on the left: random per comparison, fixed by the project's seed."""
        return "a" if _hash_int(str(self.seed), "left", comparison_hash_) & 1 else "b"

    def comparison_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0]

    def response_count(self, prompt_id: int) -> int:
        """How many responses a prompt has (ranking needs three or more)."""
        return self._conn.execute("SELECT COUNT(*) FROM responses WHERE prompt_id = ?", (prompt_id,)).fetchone()[0]

    def prompt_responses(self, prompt_id: int) -> list[tuple[int, Text]]:
        """The responses of a prompt that take part in at least one comparison, oldest first."""
        rows = self._conn.execute(
            "SELECT r.id, r.text, r.messages FROM responses r WHERE r.prompt_id = ? AND EXISTS"
            " (SELECT 1 FROM comparisons c WHERE c.response_a = r.id OR c.response_b = r.id) ORDER BY r.id",
            (prompt_id,),
        ).fetchall()
        return [(r[0], _text(r[1], r[2])) for r in rows]

    def prompt_comparisons(self, prompt_id: int) -> list[tuple[int, int, int]]:
        """(comparison id, response_a id, response_b id) for every comparison of a prompt."""
        return [
            (r[0], r[1], r[2])
            for r in self._conn.execute(
                "SELECT id, response_a, response_b FROM comparisons WHERE prompt_id = ? ORDER BY id", (prompt_id,)
            )
        ]

    def counts(self) -> dict[str, int]:
        one = lambda sql: self._conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "prompts": one("SELECT COUNT(*) FROM prompts"),
            "responses": one("SELECT COUNT(*) FROM responses"),
            "comparisons": one("SELECT COUNT(*) FROM comparisons"),
            "judgments": one("SELECT COUNT(*) FROM judgments"),
            "annotators": one("SELECT COUNT(*) FROM annotators"),
            "runs": one("SELECT COUNT(*) FROM runs"),
        }

    # -------------------------------------------------------------- judging
    def record_judgment(
        self,
        comparison_id: int,
        annotator: str,
        choice: str,
        strength: int | None = None,
        left: str | None = None,
        shown_at: float | None = None,
        note: str = "",
        flags: Sequence[str] = (),
        kind: str = "label",
    ) -> int:
        """Append a judgment and make it the annotator's current label; durable when this returns."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
        if kind not in JUDGMENT_KINDS or kind == "undo":
            raise ValueError(f"kind must be one of label, relabel, import, adjudication, not {kind!r}")
        if strength is not None:
            if choice not in ("a", "b"):
                raise ValueError("a strength is given only with a choice of a or b")
            if int(strength) not in (1, 2, 3, 4):
                raise ValueError(f"strength must be 1 to 4, not {strength!r}")
            strength = int(strength)
        if left not in (None, "a", "b"):
            raise ValueError(f"left must be 'a' or 'b', not {left!r}")
        aid = self.annotator_id(annotator, "adjudicator" if kind == "adjudication" else "human")
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (comparison_id,)).fetchone() is None:
                raise KeyError(f"no comparison {comparison_id}")
            current = self._conn.execute(
                "SELECT judgment_id, choice FROM current_labels WHERE annotator_id = ? AND comparison_id = ?",
                (aid, comparison_id),
            ).fetchone()
            jid = self._insert_judgment(
                comparison_id,
                aid,
                choice,
                strength,
                left,
                kind,
                note,
                list(flags),
                current[0] if current else None,
                shown_at,
                _now(),
            )
            # A skip puts the comparison into this annotator's "skipped" phase, and back into everyone's
            # "nobody has labelled it" phase when it replaces a real label.
            replaced_label = current is not None and current[1] not in (None, "skip")
            if choice == "skip":
                self._bump_queue_epoch(None if replaced_label else aid)
        if choice == "skip":
            self._forget_exhausted(
                lambda a, phase: (phase == "skipped" and a == aid) or (replaced_label and phase == "nobody")
            )
        return jid

    def _current_judgment_id(self, aid: int, comparison_id: int) -> int | None:
        row = self._conn.execute(
            "SELECT judgment_id FROM current_labels WHERE annotator_id = ? AND comparison_id = ?",
            (aid, comparison_id),
        ).fetchone()
        return row[0] if row else None

    def _insert_judgment(
        self,
        cid: int,
        aid: int,
        choice: str | None,
        strength: int | None,
        left: str | None,
        kind: str,
        note: str,
        flags: list[str],
        supersedes: int | None,
        shown_at: float | None,
        answered_at: float | None,
    ) -> int:
        now = _now()
        jid = self._conn.execute(
            "INSERT INTO judgments(comparison_id, annotator_id, choice, strength, left_side, kind, note, flags,"
            " supersedes, shown_at, answered_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (cid, aid, choice, strength, left, kind, note, json.dumps(flags), supersedes, shown_at, answered_at, now),
        ).lastrowid
        assert jid is not None  # an INSERT sets it
        self._conn.execute(
            "INSERT OR REPLACE INTO current_labels(annotator_id, comparison_id, judgment_id, choice) VALUES (?,?,?,?)",
            (aid, cid, jid, choice),
        )
        return jid

    def undo_last(self, annotator: str) -> Judgment | None:
        """Undo ``annotator``'s most recent judgment that is still in force; repeatable.

        Writes an ``undo`` row that restores what the undone judgment replaced (usually nothing) and
        returns the undone judgment so the caller can show its comparison with the old answer. The undo
        row's ``supersedes`` names the judgment it undoes. Repeated calls walk back through the
        annotator's submits, newest first, including a judgment that an earlier undo brought back (label
        X on 1, label Y on 2, relabel 1: three undos take back the relabel, then Y, then X).
        Imported labels are never undone here.
        """
        aid = self.annotator_id(annotator)
        with self.transaction():
            target = self._undo_target(aid)
            if target is None:
                return None
            restored = None
            if target["supersedes"] is not None:
                restored = self._conn.execute(
                    "SELECT * FROM judgments WHERE id = ?", (target["supersedes"],)
                ).fetchone()
            self._insert_judgment(
                target["comparison_id"],
                aid,
                restored["choice"] if restored else None,
                restored["strength"] if restored else None,
                restored["left_side"] if restored else None,
                "undo",
                restored["note"] if restored else "",
                json.loads(restored["flags"]) if restored else [],
                target["id"],
                None,
                None,
            )
            self._bump_queue_epoch()
        for key in [k for k in self._cursors if k[0] == aid]:
            del self._cursors[key]
        self._forget_all_memos()
        return self._judgment_from_row(target, annotator)

    def _undo_target(self, aid: int) -> sqlite3.Row | None:
        """The annotator's newest own judgment (not an undo, not an import) whose content is in force."""
        in_force: dict[int, int | None] = {}
        rows = self._conn.execute(
            "SELECT * FROM judgments WHERE annotator_id = ? AND kind NOT IN ('undo', 'import') ORDER BY id DESC",
            (aid,),
        )
        for row in rows:
            cid = row["comparison_id"]
            if cid not in in_force:
                in_force[cid] = self._in_force(self._current_judgment_id(aid, cid))
            if in_force[cid] == row["id"]:
                return row
        return None

    def _in_force(self, judgment_id: int | None) -> int | None:
        """The judgment whose content a current-label row carries: itself, or for an undo row what that
        undo restored (followed through earlier undos); None when it carries no label."""
        while judgment_id is not None:
            row = self._conn.execute(
                "SELECT kind, choice, supersedes FROM judgments WHERE id = ?", (judgment_id,)
            ).fetchone()
            if row is None:
                return None
            if row["kind"] != "undo":
                return judgment_id if row["choice"] is not None else None
            if row["supersedes"] is None:
                return None
            undone = self._conn.execute(
                "SELECT supersedes FROM judgments WHERE id = ?", (row["supersedes"],)
            ).fetchone()
            judgment_id = undone[0] if undone else None
        return None

    def judgment(self, judgment_id: int) -> Judgment:
        row = self._conn.execute(
            "SELECT j.*, a.name FROM judgments j JOIN annotators a ON a.id = j.annotator_id WHERE j.id = ?",
            (judgment_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no judgment {judgment_id}")
        return self._judgment_from_row(row, row["name"])

    def current_judgment(self, comparison_id: int, annotator: str) -> Judgment | None:
        """The row that holds ``annotator``'s current label of the comparison, or None when there is no
        label in force (never judged, or every judgment undone)."""
        row = self._conn.execute(
            "SELECT judgment_id, choice FROM current_labels WHERE annotator_id = ? AND comparison_id = ?",
            (self.annotator_id(annotator), comparison_id),
        ).fetchone()
        return None if row is None or row["choice"] is None else self.judgment(row["judgment_id"])

    def judgment_annotators(self, judgment_ids: Sequence[int]) -> dict[int, str]:
        """judgment id -> the name of its annotator, for the ids asked for (one query)."""
        rows = self._conn.execute(
            "SELECT j.id, a.name FROM judgments j JOIN annotators a ON a.id = j.annotator_id"
            " WHERE j.id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(j) for j in judgment_ids]),),
        )
        return dict(rows.fetchall())

    @staticmethod
    def _judgment_from_row(row: sqlite3.Row, annotator: str) -> Judgment:
        return Judgment(
            id=row["id"],
            comparison_id=row["comparison_id"],
            annotator=annotator,
            choice=row["choice"],
            strength=row["strength"],
            left=row["left_side"],
            kind=row["kind"],
            note=row["note"],
            flags=tuple(json.loads(row["flags"])),
            supersedes=row["supersedes"],
            shown_at=row["shown_at"],
            answered_at=row["answered_at"],
        )

    # ------------------------------------------------------ pair-level marks
    def set_mark(
        self, comparison_id: int, mark: str, value: bool, annotator: str | None = None, note: str = ""
    ) -> None:
        """Flag a pair for review or exclude it from training (append-only; the latest mark wins)."""
        if mark not in ("flag", "exclude"):
            raise ValueError(f"mark must be 'flag' or 'exclude', not {mark!r}")
        aid = self.annotator_id(annotator) if annotator else None
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (comparison_id,)).fetchone() is None:
                raise KeyError(f"no comparison {comparison_id}")
            self._conn.execute(
                "INSERT INTO comparison_marks(comparison_id, mark, value, annotator_id, note, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (comparison_id, mark, int(bool(value)), aid, note, _now()),
            )

    def marked(self, mark: str) -> set[int]:
        """Comparisons whose latest ``mark`` is on."""
        rows = self._conn.execute(
            "SELECT m.comparison_id FROM comparison_marks m WHERE m.mark = ? AND m.value = 1 AND m.id ="
            " (SELECT MAX(id) FROM comparison_marks n WHERE n.comparison_id = m.comparison_id AND n.mark = m.mark)",
            (mark,),
        )
        return {r[0] for r in rows}

    # ------------------------------------------------------ reviews (Inspect's suspects queue)
    #: what a review of a suspect label can do
    REVIEW_ACTIONS = ("keep", "flip", "tie", "both_bad", "exclude")
    #: a review's adjudication is recorded under the reviewer's name with this suffix, so that a reviewer who
    #: labelled the pair as an annotator keeps their vote (one current label per annotator and comparison)
    REVIEW_SUFFIX = " (review)"

    def review_label(
        self,
        comparison_id: int,
        action: str,
        reason: str = "",
        reviewer: str = "reviewer",
        *,
        label: str | None = None,
        run_id: int | None = None,
    ) -> int:
        """Review a pair's label from the suspects queue: append a record (table ``reviews``, with the reason)
        and resolve the label the way an adjudication does, so that ``resolved_labels()`` stays the one rule.
        Returns the review's id.

        ``label`` is the label reviewed ('a' or 'b'; default: the pair's resolved label; the suspects queue
        passes the run's). keep: an adjudication of that label (a confirmation: the pair leaves the queue);
        flip: an adjudication of the other side, which resolves the pair even when the annotators split 1-1;
        tie, both_bad: an adjudication of that kind (no longer trained on); exclude: the exclude mark, with
        the reason as its note. The adjudication is the reviewer's under ``reviewer + REVIEW_SUFFIX``. A later
        review replaces an earlier one's decision (the latest adjudication wins); nothing is rewritten."""
        if action not in self.REVIEW_ACTIONS:
            raise ValueError(f"a review is one of {', '.join(self.REVIEW_ACTIONS)}, not {action!r}")
        name = reviewer.strip()
        if not name:
            raise ValueError("reviewer name is empty")
        if label not in (None, "a", "b"):
            raise ValueError(f"label must be 'a' or 'b', not {label!r}")
        judge = name if name.endswith(self.REVIEW_SUFFIX) else name + self.REVIEW_SUFFIX
        note = f"review {action}" + (f": {reason}" if reason else "")
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (comparison_id,)).fetchone() is None:
                raise KeyError(f"no comparison {comparison_id}")
            resolved, strength = self.resolved_label(comparison_id)
            if label is None and resolved in ("a", "b"):
                label = resolved
            judgment_id = None
            if action in ("keep", "flip"):
                if label is None:
                    raise ValueError(
                        f"comparison {comparison_id} has no a/b label to {action} (its annotators split or chose "
                        "tie/both bad); pass the label reviewed, or review it as tie, both_bad or exclude"
                    )
                choice = label if action == "keep" else ("b" if label == "a" else "a")
                kept = strength if action == "keep" and resolved == label else None
                judgment_id = self.record_judgment(
                    comparison_id, judge, choice, strength=kept, note=note, kind="adjudication"
                )
            elif action in ("tie", "both_bad"):
                judgment_id = self.record_judgment(comparison_id, judge, action, note=note, kind="adjudication")
            else:
                self.set_mark(comparison_id, "exclude", True, annotator=name, note=note)
            cursor = self._conn.execute(
                "INSERT INTO reviews(comparison_id, action, label, reason, reviewer, run_id, judgment_id, created_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (comparison_id, action, label, reason, name, run_id, judgment_id, _now()),
            )
            self._bump_queue_epoch()
        self._forget_all_memos()
        assert cursor.lastrowid is not None  # an INSERT sets it
        return cursor.lastrowid

    def reviews(self, comparison_id: int | None = None) -> pd.DataFrame:
        """Every review (all, or one comparison's), oldest first: id, comparison_id, action, label (the label
        reviewed), reason, reviewer, run_id, judgment_id, created_at."""
        sql = "SELECT id, comparison_id, action, label, reason, reviewer, run_id, judgment_id, created_at FROM reviews"
        if comparison_id is None:
            return pd.read_sql_query(sql + " ORDER BY id", self._conn)
        return pd.read_sql_query(sql + " WHERE comparison_id = ? ORDER BY id", self._conn, params=(comparison_id,))

    def reviewed(self) -> dict[int, str]:
        """comparison id -> the action of its latest review, for every reviewed comparison."""
        rows = self._conn.execute(
            "SELECT comparison_id, action FROM reviews r WHERE id = (SELECT MAX(id) FROM reviews s"
            " WHERE s.comparison_id = r.comparison_id)"
        )
        return {int(c): str(a) for c, a in rows}

    def flagged_in_labels(self) -> set[int]:
        """Comparisons whose current label carries a flag (the Label view's F key), apart from flag marks."""
        return {
            r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT cl.comparison_id FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
                " WHERE j.flags IS NOT NULL AND j.flags != '[]'"
            )
        }

    # ------------------------------------------------------------- data frames
    def labels(self) -> pd.DataFrame:
        """Every annotator's current label (one row per annotator and comparison), with the texts."""
        df = pd.read_sql_query(
            "SELECT j.id AS judgment_id, c.id AS comparison_id, c.prompt_id, a.name AS annotator,"
            " a.kind AS annotator_kind, j.kind, j.choice, j.strength, j.left_side AS left, j.note, j.flags,"
            " j.shown_at, j.answered_at, p.text AS prompt, ra.text AS response_a, rb.text AS response_b"
            " FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            " JOIN annotators a ON a.id = cl.annotator_id JOIN comparisons c ON c.id = cl.comparison_id"
            " JOIN prompts p ON p.id = c.prompt_id JOIN responses ra ON ra.id = c.response_a"
            " JOIN responses rb ON rb.id = c.response_b WHERE cl.choice IS NOT NULL ORDER BY j.id",
            self._conn,
        )
        df["strength"] = df["strength"].astype("Int64")
        flagged = self.marked("flag")
        df["flagged"] = df["comparison_id"].isin(flagged) | (df["flags"] != "[]")
        df["excluded"] = df["comparison_id"].isin(self.marked("exclude"))
        return df

    def resolved_labels(self) -> pd.DataFrame:
        """One label per comparison: an adjudication if there is one, else the majority of the current
        labels (a, b, tie, both_bad; skips do not vote). An even split without adjudication stays
        unresolved (choice None) and is not trained on."""
        rows = self._conn.execute(_VOTES_SQL + " ORDER BY cl.comparison_id, j.id").fetchall()
        out = []
        i = 0
        while i < len(rows):
            j = i
            while j < len(rows) and rows[j][0] == rows[i][0]:
                j += 1
            out.append(_resolve(rows[i:j]))
            i = j
        df = pd.DataFrame(
            out,
            columns=["comparison_id", "choice", "strength", "judgment_id", "annotator", "n_labels", "disagreement"],
        )
        df["strength"] = df["strength"].astype("Int64")
        return df

    def resolved_label(self, comparison_id: int) -> tuple[str | None, int | None]:
        """(choice, strength) of one comparison by the rule of ``resolved_labels``; (None, None) when it has no
        label or an even split."""
        rows = self._conn.execute(_VOTES_SQL + " AND cl.comparison_id = ? ORDER BY j.id", (comparison_id,)).fetchall()
        if not rows:
            return None, None
        _, choice, strength, *_ = _resolve(rows)
        return choice, strength

    def comparison_labels(self, comparison_id: int) -> list[dict[str, Any]]:
        """Every annotator's current label of one comparison (adjudicators left out), by name: annotator,
        choice, strength, note."""
        rows = self._conn.execute(
            "SELECT a.name, cl.choice, j.strength, j.note FROM current_labels cl"
            " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators a ON a.id = cl.annotator_id"
            " WHERE cl.comparison_id = ? AND cl.choice IN ('a', 'b', 'tie', 'both_bad')"
            " AND j.kind != 'adjudication' AND a.kind != 'adjudicator' ORDER BY a.name",
            (comparison_id,),
        ).fetchall()
        return [{"annotator": r[0], "choice": r[1], "strength": r[2], "note": r[3] or ""} for r in rows]

    # ------------------------------------------------------------- splits
    def split_comparisons(self, split: str = "test") -> set[int]:
        """Comparisons in ``split`` (``SPLITS``)."""
        return {
            r[0] for r in self._conn.execute("SELECT comparison_id FROM comparison_splits WHERE split = ?", (split,))
        }

    def held_out_comparisons(self) -> set[int]:
        """Comparisons that no run may train or validate on: the test split and every other comparison of a
        prompt that has a test pair (a shared prompt would leak the test set into training)."""
        return {
            r[0]
            for r in self._conn.execute(
                "SELECT c.id FROM comparisons c WHERE c.prompt_id IN"
                " (SELECT c2.prompt_id FROM comparison_splits s JOIN comparisons c2 ON c2.id = s.comparison_id)"
            )
        }

    def test_prompt_ids(self) -> set[int]:
        """Prompts with any test pair: the unit a split by prompt keeps apart (``export --splits``)."""
        return {
            r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT c.prompt_id FROM comparison_splits s JOIN comparisons c ON c.id = s.comparison_id"
                " WHERE s.split = 'test'"
            )
        }

    def split_sizes(self) -> dict[str, int]:
        """Comparisons per split: ``test``, ``held_out`` (other comparisons of test prompts, in no split),
        ``pool`` (the rest, which training may use), and labelled ``test_labelled`` (resolved a or b)."""
        return self._split_sizes(self.resolved_labels())

    def _split_sizes(self, resolved: pd.DataFrame) -> dict[str, int]:
        test = self.split_comparisons("test")
        held = self.held_out_comparisons()
        labelled = set(resolved.loc[resolved["choice"].isin(["a", "b"]), "comparison_id"].tolist())
        return {
            "test": len(test),
            "test_labelled": len(test & labelled),
            "held_out": len(held - test),
            "pool": self.comparison_count() - len(held),
        }

    def test_pairs(self) -> pd.DataFrame:
        """The labelled pairs of the test split as ``training_pairs`` gives them, with the slicing facts:
        ``source`` (the prompt's file), ``subset`` (a ``subset`` metadata column, or None) and
        ``chosen_side`` (which stored response is the chosen one: "a" or "b"). Excluded pairs stay in: the
        test set is what it is; the label decides."""
        resolved = self.resolved_labels()
        resolved = resolved[resolved["choice"].isin(["a", "b"])]
        resolved = resolved[resolved["comparison_id"].isin(self.split_comparisons("test"))]
        df = self._pairs_frame(resolved)
        meta = pd.read_sql_query(
            "SELECT c.id AS comparison_id, p.source, p.metadata FROM comparisons c"
            " JOIN prompts p ON p.id = c.prompt_id WHERE c.id IN (SELECT comparison_id FROM comparison_splits)",
            self._conn,
        )
        meta["subset"] = [json.loads(m).get("subset") if m else None for m in meta["metadata"]]
        df = df.merge(meta[["comparison_id", "source", "subset"]], on="comparison_id", how="left")
        df["chosen_side"] = df["choice"]
        return df

    def training_pairs(self, labels: str = "adjudicated", ties: str = "skip") -> pd.DataFrame:
        """Pairs to train on, excluded pairs left out, texts as chosen/rejected, and ``target``: the
        probability that chosen is better (the soft target of the loss; 1 for a hard label).

        ``labels`` (``LABEL_SOURCES``) says which label each comparison trains on: ``adjudicated`` (an
        adjudication, else the majority: ``resolved_labels``), ``majority`` (the annotators' majority,
        adjudications ignored), ``latest`` (the most recent current label of anyone, adjudications included),
        ``posterior`` (P(a ≻ b) of the annotator-reliability model, ``core/reliability.py``: chosen is the
        more likely side, target its probability; an adjudicated comparison keeps its decision as a hard
        label). ``ties``: ``skip`` leaves ties out; ``half`` trains a comparison whose label is a tie (or, for ``posterior``, that has only tie labels) with target ½.
        Test-split pairs and every comparison of a prompt with a test pair are left out
        (``held_out_comparisons``)."""
        return self.labelled_pairs(labels, ties, held_out=False)

    def labelled_pairs(self, labels: str = "adjudicated", ties: str = "skip", held_out: bool = True) -> pd.DataFrame:
        """``training_pairs`` with, when ``held_out``, the test split and its prompts' other pairs kept (what an
        export of the whole project holds)."""
        if labels not in LABEL_SOURCES:
            raise ValueError(f"labels must be one of {', '.join(LABEL_SOURCES)}, got {labels!r}")
        if ties not in TIE_RULES:
            raise ValueError(f"ties must be one of {', '.join(TIE_RULES)}, got {ties!r}")
        resolved = self.resolved_labels() if labels != "posterior" else self._posterior_labels()
        if labels in ("majority", "latest"):
            resolved = self._labels_by(labels)
        keep = ["a", "b", "tie"] if ties == "half" else ["a", "b"]
        resolved = resolved[resolved["choice"].isin(keep)].copy()
        drop = self.marked("exclude") | (set() if held_out else self.held_out_comparisons())
        resolved = resolved[~resolved["comparison_id"].isin(drop)]
        if "target" not in resolved:
            resolved["target"] = 1.0
        resolved.loc[resolved["choice"] == "tie", "target"] = 0.5
        resolved.loc[resolved["choice"] == "tie", "strength"] = pd.NA
        resolved["choice"] = resolved["choice"].replace("tie", "a")  # a tie trains both ways: either side chosen
        return self._pairs_frame(resolved)

    def _pairs_frame(self, resolved: pd.DataFrame) -> pd.DataFrame:
        """Resolved a/b labels joined with their texts, as chosen and rejected (``target`` 1 unless given)."""
        if "target" not in resolved:
            resolved = resolved.assign(target=1.0)
        texts = self._comparison_texts(resolved["comparison_id"].tolist())
        df = resolved.merge(texts, on="comparison_id", how="left")
        a_wins = df["choice"] == "a"
        df["chosen"] = np.where(a_wins, df["response_a"], df["response_b"])
        df["rejected"] = np.where(a_wins, df["response_b"], df["response_a"])
        df["chosen_messages"] = np.where(a_wins, df["response_a_messages"], df["response_b_messages"])
        df["rejected_messages"] = np.where(a_wins, df["response_b_messages"], df["response_a_messages"])
        for col in ("prompt_messages", "chosen_messages", "rejected_messages"):
            df[col] = [json.loads(v) if isinstance(v, str) else None for v in df[col]]
        return df[
            [
                "comparison_id",
                "prompt_id",
                "prompt",
                "prompt_messages",
                "chosen",
                "rejected",
                "chosen_messages",
                "rejected_messages",
                "choice",
                "strength",
                "annotator",
                "judgment_id",
                "target",
            ]
        ].reset_index(drop=True)

    def _labels_by(self, rule: str) -> pd.DataFrame:
        """``resolved_labels``' columns under the rule ``majority`` (annotators' votes, adjudications and
        adjudicators left out; an even split stays unresolved) or ``latest`` (the current label written last)."""
        rows = self._conn.execute(
            "SELECT cl.comparison_id, j.id, j.choice, j.strength, j.kind, a.name, a.kind, j.created_at"
            " FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            " JOIN annotators a ON a.id = cl.annotator_id WHERE cl.choice IS NOT NULL AND cl.choice != 'skip'"
            " ORDER BY cl.comparison_id, j.created_at, j.id"
        ).fetchall()
        out = []
        for _, group in itertools.groupby(rows, key=lambda r: r[0]):
            votes = list(group)
            if rule == "latest":
                last = votes[-1]
                out.append((last[0], last[2], last[3], last[1], last[5], len(votes), len({v[2] for v in votes}) > 1))
                continue
            votes = [v for v in votes if v[4] != "adjudication" and v[6] != "adjudicator"]
            if votes:
                out.append(_resolve([v[:6] for v in votes]))
        df = pd.DataFrame(
            out, columns=["comparison_id", "choice", "strength", "judgment_id", "annotator", "n_labels", "disagreement"]
        )
        df["strength"] = df["strength"].astype("Int64")
        return df

    def _posterior_labels(self) -> pd.DataFrame:
        """``resolved_labels``' columns plus ``target`` from the reliability model's P(a ≻ b); comparisons with
        only tie labels get choice "tie" (trained with ``ties="half"``)."""
        from workbench.core.reliability import posteriors  # crowd-kit: imported only when asked for

        post = posteriors(self)
        latest = dict(
            self._conn.execute(
                "SELECT cl.comparison_id, MAX(cl.judgment_id) FROM current_labels cl"
                " WHERE cl.choice IN ('a', 'b', 'tie') GROUP BY cl.comparison_id"
            ).fetchall()
        )
        a_wins = post["p_a"].to_numpy() >= 0.5
        df = pd.DataFrame(
            {
                "comparison_id": post["comparison_id"].to_numpy(),
                "choice": np.where(a_wins, "a", "b"),
                "strength": pd.array([pd.NA] * len(post), dtype="Int64"),
                "judgment_id": [latest[c] for c in post["comparison_id"]],
                "annotator": "posterior",
                "n_labels": post["n_labels"].to_numpy(),
                "disagreement": False,
                "target": np.where(a_wins, post["p_a"], 1.0 - post["p_a"]),
            }
        )
        # An adjudication settles its comparison: its decision, as a hard label, instead of the posterior.
        settled = {
            cid: (jid, choice)
            for cid, jid, choice in self._conn.execute(
                "SELECT cl.comparison_id, j.id, j.choice FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
                " WHERE j.kind = 'adjudication' AND cl.choice IS NOT NULL AND cl.choice != 'skip' ORDER BY j.id"
            )
        }
        if settled:
            df = df[~df["comparison_id"].isin(list(settled))]
            decided = pd.DataFrame(
                {
                    "comparison_id": list(settled),
                    "choice": [c for _, c in settled.values()],
                    "strength": pd.array([pd.NA] * len(settled), dtype="Int64"),
                    "judgment_id": [j for j, _ in settled.values()],
                    "annotator": "adjudication",
                    "n_labels": 0,
                    "disagreement": False,
                    "target": 1.0,
                }
            )
            df = pd.concat([df, decided], ignore_index=True)
        with_ab = set(post["comparison_id"].tolist()) | set(settled)
        tie_only = [(c, j) for c, j in latest.items() if c not in with_ab]
        if tie_only:
            ties = pd.DataFrame(
                {
                    "comparison_id": [c for c, _ in tie_only],
                    "choice": "tie",
                    "strength": pd.array([pd.NA] * len(tie_only), dtype="Int64"),
                    "judgment_id": [j for _, j in tie_only],
                    "annotator": "posterior",
                    "n_labels": 0,
                    "disagreement": False,
                    "target": 0.5,
                }
            )
            df = pd.concat([df, ties], ignore_index=True)
        return df.sort_values("comparison_id", ignore_index=True)

    def _comparison_texts(self, comparison_ids: list[int] | None = None) -> pd.DataFrame:
        sql = (
            "SELECT c.id AS comparison_id, c.prompt_id, p.text AS prompt, p.messages AS prompt_messages,"
            " ra.text AS response_a, ra.messages AS response_a_messages,"
            " rb.text AS response_b, rb.messages AS response_b_messages"
            " FROM comparisons c JOIN prompts p ON p.id = c.prompt_id"
            " JOIN responses ra ON ra.id = c.response_a JOIN responses rb ON rb.id = c.response_b"
        )
        if comparison_ids is None:
            return pd.read_sql_query(sql + " ORDER BY c.id", self._conn)
        # Only the rows asked for: one JSON parameter instead of reading every text and filtering.
        return pd.read_sql_query(
            sql + " WHERE c.id IN (SELECT value FROM json_each(?)) ORDER BY c.id",
            self._conn,
            params=(json.dumps([int(i) for i in comparison_ids]),),
        )

    def comparisons_frame(self, comparison_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Comparisons (all, or those asked for) with their texts (conversations as JSON strings)."""
        return self._comparison_texts(None if comparison_ids is None else list(comparison_ids))

    def judgment_log(self) -> pd.DataFrame:
        """Every judgment ever written, history included, oldest first."""
        df = pd.read_sql_query(
            "SELECT j.id AS judgment_id, j.comparison_id, c.hash AS comparison_hash, a.name AS annotator,"
            " j.kind, j.choice, j.strength, j.left_side AS left, j.note, j.flags, j.supersedes,"
            " j.shown_at, j.answered_at, j.created_at, p.text AS prompt, ra.text AS response_a, rb.text AS response_b"
            " FROM judgments j JOIN annotators a ON a.id = j.annotator_id JOIN comparisons c ON c.id = j.comparison_id"
            " JOIN prompts p ON p.id = c.prompt_id JOIN responses ra ON ra.id = c.response_a"
            " JOIN responses rb ON rb.id = c.response_b ORDER BY j.id",
            self._conn,
        )
        for col in ("strength", "supersedes"):
            df[col] = df[col].astype("Int64")
        return df

    # -------------------------------------------------------------- statistics
    def statistics(self) -> dict[str, Any]:
        counts = self.counts()
        by_choice = dict(
            self._conn.execute(
                "SELECT choice, COUNT(*) FROM current_labels WHERE choice IS NOT NULL GROUP BY choice"
            ).fetchall()
        )
        judged = self._conn.execute(
            "SELECT COUNT(DISTINCT comparison_id) FROM current_labels WHERE choice IS NOT NULL AND choice != 'skip'"
        ).fetchone()[0]
        per_annotator = []
        for row in self._conn.execute(
            "SELECT a.name, a.kind,"
            " SUM(cl.choice IS NOT NULL AND cl.choice != 'skip') AS judged,"
            " SUM(cl.choice IN ('a', 'b')) AS preferences,"
            " SUM(cl.choice = 'tie') AS ties, SUM(cl.choice = 'both_bad') AS both_bad,"
            " SUM(cl.choice = 'skip') AS skips,"
            " AVG(CASE WHEN j.shown_at IS NOT NULL AND j.answered_at IS NOT NULL"
            "     THEN j.answered_at - j.shown_at END) AS seconds_per_item"
            " FROM annotators a JOIN current_labels cl ON cl.annotator_id = a.id"
            " JOIN judgments j ON j.id = cl.judgment_id GROUP BY a.id ORDER BY a.name"
        ):
            per_annotator.append({k: row[k] for k in row.keys()})  # noqa: SIM118 - a Row iterates values
        resolved = self.resolved_labels()
        return {
            "project": self.name,
            "path": str(self.path),
            "schema_version": self.schema_version,
            **counts,
            "judged_comparisons": judged,
            # a and b pooled: which response was stored first says nothing (imports store the chosen one as a),
            # so a count per stored side would only describe the storage order.
            "labels": {
                "a_or_b": int(by_choice.get("a", 0)) + int(by_choice.get("b", 0)),
                **{c: int(by_choice.get(c, 0)) for c in CHOICES if c not in ("a", "b")},
            },
            "trainable_pairs": int(
                (
                    resolved["choice"].isin(["a", "b"])
                    & ~resolved["comparison_id"].isin(self.marked("exclude") | self.held_out_comparisons())
                ).sum()
            ),
            "test_comparisons": len(self.split_comparisons("test")),
            "splits": self._split_sizes(resolved),
            "excluded": len(self.marked("exclude")),
            "flagged": len(self.marked("flag")),
            "annotators_detail": per_annotator,
        }

    def integrity_check(self) -> str:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]


#: The votes of ``resolved_labels``: current non-skip labels, (comparison, judgment, choice, strength, kind, name).
_VOTES_SQL = (
    "SELECT cl.comparison_id, j.id, j.choice, j.strength, j.kind, a.name FROM current_labels cl"
    " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators a ON a.id = cl.annotator_id"
    " WHERE cl.choice IS NOT NULL AND cl.choice != 'skip'"
)


def _resolve(group: Sequence) -> tuple:
    """The resolution rule for the votes of one comparison (rows of ``_VOTES_SQL``, oldest judgment first):
    (comparison_id, choice, strength, judgment_id, annotator, n_labels, disagreement)."""
    adjudicated = [r for r in group if r[4] == "adjudication"]
    if adjudicated:
        chosen = adjudicated[-1]
        choice = chosen[2]
    else:
        votes: dict[str, int] = {}
        for r in group:
            votes[r[2]] = votes.get(r[2], 0) + 1
        best = max(votes.values())
        winners = [c for c, n in votes.items() if n == best]
        choice = winners[0] if len(winners) == 1 else None
        chosen = next((r for r in reversed(group) if r[2] == choice), group[-1])
    return (
        group[0][0],
        choice,
        chosen[3] if choice in ("a", "b") else None,
        chosen[1],
        chosen[5],
        len(group),
        len({r[2] for r in group}) > 1,
    )


def _split_sql(script: str) -> list[str]:
    """Complete statements of a script, one by one (``executescript`` would commit the migration's
    transaction half way); ``complete_statement`` keeps semicolons in strings and triggers intact."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return [st for st in statements if st.rstrip(";").strip()]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else _json(value)


def _text(text: str, messages: str | None) -> Text:
    return Text(text, json.loads(messages) if messages else None)
