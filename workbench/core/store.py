"""The project store: one SQLite file per project (DESIGN.md §2).

Judgments are append-only. The current label of an (annotator, comparison) is the latest judgment row;
an undo or a relabel writes a new row that ``supersedes`` the old one, so history is never rewritten.
Every write is one transaction, committed before the call returns; WAL lets readers (the GUI, a trainer
thread, a second app instance) run beside the writer, and ``BEGIN IMMEDIATE`` with a busy timeout
serialises writers from several processes without losing any.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
from workbench.core.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

ORDERS = ("new", "random", "prompt", "uncertain", "disagree")
_ORDER_KEYS = {"new": ("id",), "random": ("rand_key", "id"), "prompt": ("prompt_id", "id")}

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
_QUEUE_EPOCH = "queue_epoch"
_SKIP_EPOCH = "skip_epoch:"
_SCORES_EPOCH = "scores_epoch"


class ProjectError(Exception):
    """A user-facing problem with a project file (missing, not a project, too new)."""


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


def probe_read_only(path: str | os.PathLike) -> str | None:
    """Why the project file at ``path`` cannot be written (read-only media, no permission), or None.

    Tried, not guessed from permission bits (root may write where the bits say no, but not on read-only
    media): the file is opened for writing, and the folder must take the -wal and -shm files. Tests replace
    this function to simulate read-only media."""
    path = Path(path)
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


class Project:
    """An open project file. One instance per thread: sqlite3 connections are not shared."""

    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection):
        self.path = Path(path)
        self.conn = conn
        self._annotator_ids: dict[str, int] = {}
        # Per (annotator, order, phase name): the key of the last comparison handed out. Answered ones are
        # skipped by the query itself, so a cursor only saves re-scanning the finished prefix.
        self._cursors: dict[tuple[int, str, str], tuple] = {}
        # ((annotator, order, phase), exclude) found empty by a full scan, so that the end of a phase is not
        # scanned again on every call (with 100,000 comparisons a scan takes tens of ms). Only a write that
        # can put a comparison back into a phase ends it: new comparisons, an undo, a skip. Such writes
        # change an epoch token in meta (``queue_epoch``; ``skip_epoch:<annotator id>`` for a skip that
        # reopens only that annotator's skipped phase), which other connections notice
        # (_notice_other_writers). Plain labels only take comparisons out of phases: the memo stays.
        self._exhausted: set[tuple] = set()
        self._data_version: int | None = None
        self._epochs: dict[str, str] | None = None
        # The model orders: comparison ids of one (order, run, step) sorted best first, read once (with the
        # scores token they were read under), and per (annotator, order, run, step) the position before
        # which every pair is answered. Positions are forgotten with the empty-phase memo.
        self._model_queues: dict[tuple[str, int, int], tuple[str | None, list[int]]] = {}
        self._model_positions: dict[tuple[int, str, int, int], int] = {}
        self._seed: int | None = None
        #: Why the project was opened read-only (read-only media, no permission), or None when writable.
        #: Every write (``transaction``) then raises ProjectError.
        self.read_only: str | None = None

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
            raise ProjectError(f"{path}: no such project file")
        return cls._connect(path)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **kwargs) -> Project:
        """Open the project at ``path``, or create it when there is none (nothing, or an empty file)."""
        path = Path(path)
        return cls.open(path) if _has_content(path) else cls.create(path, **kwargs)

    @classmethod
    def _connect(cls, path: Path, create: bool = False) -> Project:
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
                conn = sqlite3.connect(uri + suffix, uri=True, timeout=60.0, isolation_level=None,
                                       check_same_thread=True)
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
                    f"to {SCHEMA_VERSION}, which writes; copy it somewhere writable and open the copy")
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
            return (self.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
                    and self.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID)

        if current():
            return
        version = None
        try:
            with self.transaction():
                # Re-read under the write lock: another process may have migrated meanwhile.
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                for target in range(version, SCHEMA_VERSION):
                    for statement in _split_sql(MIGRATIONS[target]):
                        self.conn.execute(statement)
                    self.conn.execute(f"PRAGMA user_version = {target + 1}")
                # The stamp that recognises a project by content (core/outputs.py); older projects lack it.
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.Error as exc:
            # One transaction: a failed upgrade leaves the file as it was.
            raise ProjectError(
                f"{self.path}: could not upgrade the project from schema {version} to {SCHEMA_VERSION} ({exc}); "
                "the file is unchanged"
            ) from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    @property
    def checkpoint_root(self) -> Path:
        """The folder beside the project file that holds model checkpoints."""
        return self.path.with_name(self.path.name + ".checkpoints")

    def checkpoint_dir(self, run_id: int) -> Path:
        return self.checkpoint_root / f"run-{run_id}"

    def check_writable(self) -> None:
        """Raise ``ProjectError`` if the project was opened read-only."""
        if self.read_only is not None:
            raise ProjectError(f"{self.path}: opened read-only ({self.read_only}); copy it somewhere writable "
                               "to change it")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; all or nothing. Nested use joins the outer one."""
        self.check_writable()
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            # Some errors (SQLITE_FULL, SQLITE_IOERR) roll back by themselves; a second ROLLBACK would
            # raise and hide the original error.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -------------------------------------------------------------------- meta
    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
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
        row = self.conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is None and self.read_only is not None:
            return -1  # a name a read-only project has never seen: no judgments (and writes are refused)
        if row is None:
            # Inside a caller's transaction the new row may yet be rolled back: do not cache its id then.
            cache = not self.conn.in_transaction
            with self.transaction():
                self.conn.execute(
                    "INSERT OR IGNORE INTO annotators(name, kind, created_at) VALUES (?, ?, ?)",
                    (name, kind, _now()),
                )
                row = self.conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if not cache:
                return row[0]
        self._annotator_ids[name] = row[0]
        return row[0]

    def annotators(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT id, name, kind, created_at FROM annotators ORDER BY id", self.conn)

    # ------------------------------------------------------------ adding data
    def add_records(
        self,
        records: Iterable[PairRecord | PromptRecord],
        source: str,
        annotator: str | None = None,
    ) -> ImportSummary:
        """Add prompts, responses, comparisons and imported labels in ONE transaction.

        Everything is deduplicated by content hash, so importing a file twice adds nothing. Labelled
        pairs get a judgment from ``annotator`` (default ``import:<source>``) unless that annotator
        already holds the same current label.
        """
        with self._large_cache():
            return self._add_records(records, source, annotator)

    @contextmanager
    def _large_cache(self, kib: int = 65536) -> Iterator[None]:
        """A bigger page cache for one bulk write, given back afterwards. The unique hash indexes take
        inserts in random order; with SQLite's default 2 MB cache their pages spill to the WAL in the
        middle of the transaction (measured on 100,000 pairs: 2.7 s of SQL with the default, 2.4 s)."""
        old = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size = {-int(kib)}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size = {int(old)}")

    def _add_records(self, records: Iterable[PairRecord | PromptRecord], source: str,
                     annotator: str | None) -> ImportSummary:
        summary = ImportSummary()
        now = _now()
        seed = self.seed
        default_annotator = annotator or f"import:{source}"
        with self.transaction():
            conn = self.conn
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
                    return row[0], row[1] != ra
                cid = next_comparison
                next_comparison += 1
                comparison_rows[h] = (cid, ra)
                new_comparisons.append((cid, pid, ra, rb, h, _hash_int(str(seed), "order", h), now))
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
            if summary.comparisons_added or summary.judgments_added:
                self._bump_queue_epoch()
        self._cursors.clear()
        self._forget_all_memos()
        return summary

    def _add_imported_labels(self, labels: list[tuple[int, str, str, int | None, str]], now: float) -> int:
        if not labels:
            return 0
        conn = self.conn
        annotator_ids = {name: self._annotator_in_tx(name, "import" if name.startswith("import:") else "human")
                         for name in {label[2] for label in labels}}
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
        row = self.conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return row[0]
        return self.conn.execute(
            "INSERT INTO annotators(name, kind, created_at) VALUES (?, ?, ?)", (name, kind, _now())
        ).lastrowid

    # ---------------------------------------------------------------- reading
    def comparison(self, comparison_id: int) -> Comparison:
        row = self.conn.execute(
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

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "prompts": one("SELECT COUNT(*) FROM prompts"),
            "responses": one("SELECT COUNT(*) FROM responses"),
            "comparisons": one("SELECT COUNT(*) FROM comparisons"),
            "judgments": one("SELECT COUNT(*) FROM judgments"),
            "annotators": one("SELECT COUNT(*) FROM annotators"),
            "runs": one("SELECT COUNT(*) FROM runs"),
        }

    # ------------------------------------------------------------- the queue
    def next_comparison(self, annotator: str, order: str = "new", exclude: Sequence[int] = ()) -> int | None:
        """The id of the next comparison ``annotator`` should judge, or None when all are done.

        Phases, in turn: (for ``new``) comparisons nobody has labelled; comparisons this annotator has not
        answered, in the order's sequence (``new``: as imported; ``random``: a fixed shuffle from the
        project's seed; ``prompt``: grouped by prompt); then the ones this annotator skipped, the longest
        skipped first, so that skipping one again sends it to the back. ``uncertain`` and ``disagree``
        order by the latest run's per-pair scores and fall back to ``new`` for pairs it did not score.
        A comparison stays the answer until it is judged (or listed in ``exclude``).
        """
        if order not in ORDERS:
            raise ValueError(f"unknown queue order {order!r}; expected one of {', '.join(ORDERS)}")
        aid = self.annotator_id(annotator)
        if order in ("uncertain", "disagree"):
            found = self._next_by_model(aid, order, exclude)
            return found if found is not None else self.next_comparison(annotator, "new", exclude)
        mine_open = (
            f"NOT EXISTS (SELECT 1 FROM current_labels cl WHERE cl.annotator_id = {aid}"
            " AND cl.comparison_id = c.id AND cl.choice IS NOT NULL)"
        )
        nobody = (
            "NOT EXISTS (SELECT 1 FROM current_labels cl WHERE cl.comparison_id = c.id"
            " AND cl.choice IS NOT NULL AND cl.choice != 'skip')"
        )
        phases = [("nobody", f"{nobody} AND {mine_open}")] if order == "new" else []
        phases += [("open", mine_open), ("skipped", None)]
        keys = _ORDER_KEYS[order]
        columns = ", ".join(f"c.{k}" for k in keys)
        placeholders = ", ".join("?" for _ in keys)
        excluded = tuple(sorted({int(i) for i in exclude}))
        ids = ",".join(map(str, excluded))
        self._notice_other_writers()
        for phase, condition in phases:
            cursor_key = (aid, order, phase)
            if (cursor_key, excluded) in self._exhausted:
                continue
            if condition is None:  # skipped: an index probe on (annotator, choice, judgment)
                row = self.conn.execute(
                    "SELECT comparison_id FROM current_labels WHERE annotator_id = ? AND choice = 'skip'"
                    + (f" AND comparison_id NOT IN ({ids})" if excluded else "")
                    + " ORDER BY judgment_id LIMIT 1",
                    (aid,),
                ).fetchone()
                if row is not None:
                    return row[0]
                self._exhausted.add((cursor_key, excluded))
                continue
            condition += f" AND c.id NOT IN ({ids})" if excluded else ""
            start = self._cursors.get(cursor_key)
            # From the cursor to the end, then from the start up to the cursor: one pass at most. Answered
            # comparisons fail the condition, so the cursor only saves re-reading the finished prefix.
            bounds = [("", ())] if start is None else [(">=", start), ("<", start)]
            for op, bound in bounds:
                where = f"({columns}) {op} ({placeholders}) AND {condition}" if op else condition
                row = self.conn.execute(
                    f"SELECT {columns} FROM comparisons c WHERE {where} ORDER BY {columns} LIMIT 1", bound
                ).fetchone()
                if row is not None:
                    self._cursors[cursor_key] = tuple(row)
                    return row[-1]
            self._exhausted.add((cursor_key, excluded))
        return None

    def _notice_other_writers(self) -> None:
        """Drop what the empty-phase memo no longer knows for sure after other connections' commits
        (``PRAGMA data_version`` changes on any commit by another connection; the epochs say whether it
        reopened anything, and for whom)."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        epochs = dict(self.conn.execute(
            "SELECT key, value FROM meta WHERE key = ? OR (key > ? AND key < ?)",
            (_QUEUE_EPOCH, _SKIP_EPOCH, _SKIP_EPOCH[:-1] + ";"),  # ";" sorts right after ":"
        ).fetchall())
        known = self._epochs
        if known is None or epochs.get(_QUEUE_EPOCH) != known.get(_QUEUE_EPOCH):
            self._forget_all_memos()
        else:
            changed = {int(k[len(_SKIP_EPOCH):]) for k, v in epochs.items() if known.get(k) != v}
            self._forget_exhausted(lambda aid, phase: phase == "skipped" and aid in changed)
        self._epochs = epochs

    def _bump_queue_epoch(self, skipped_by: int | None = None) -> None:
        """Inside a write that can put comparisons back into a queue phase: tell other connections.

        ``skipped_by``: the write only adds to that annotator's skipped phase. The token is random rather
        than a counter so that one from a rolled-back transaction is never mistaken for a later one.
        When this connection had not yet seen an earlier change of the same token, it drops its memo.
        """
        key = _QUEUE_EPOCH if skipped_by is None else f"{_SKIP_EPOCH}{skipped_by}"
        before = self.get_meta(key)
        after = os.urandom(8).hex()
        self._set_meta(key, after)
        if self._epochs is None or self._epochs.get(key) != before:
            self._forget_all_memos()
            self._epochs = self._data_version = None  # re-read all at the next look
        else:
            self._epochs[key] = after

    def _forget_all_memos(self) -> None:
        self._exhausted.clear()
        self._model_positions.clear()

    def _forget_exhausted(self, reopened) -> None:
        self._exhausted = {k for k in self._exhausted if not reopened(k[0][0], k[0][2])}

    def _next_by_model(self, aid: int, order: str, exclude: Sequence[int]) -> int | None:
        """``uncertain``: pairs this annotator has not answered, smallest |margin| under the latest scored
        run first. ``disagree``: labelled pairs the model ranks the other way, most negative margin first,
        until this annotator has looked at them again after that run.

        The sorted list is read once per (run, step) and walked from a per-annotator position, in growing
        chunks with one query each: a full sort per call cost 20-30 ms at 100,000 scored pairs.
        """
        latest = self._latest_scored_run()
        if latest is None:
            return None
        step = self.conn.execute("SELECT MAX(step) FROM pair_scores WHERE run_id = ?", (latest,)).fetchone()[0]
        self._notice_other_writers()
        queue = self._model_queue(order, latest, step)
        answered_sql = (
            "SELECT cl.comparison_id FROM current_labels cl JOIN judgments j ON j.id = cl.judgment_id"
            " WHERE cl.annotator_id = ? AND cl.comparison_id IN (SELECT value FROM json_each(?))"
            " AND cl.choice IS NOT NULL"
        )
        extra: tuple = ()
        if order == "disagree":  # looked at again after the run
            answered_sql += " AND j.created_at > ?"
            extra = (self.conn.execute("SELECT created_at FROM runs WHERE id = ?", (latest,)).fetchone()[0],)
        excluded = {int(i) for i in exclude}
        position_key = (aid, order, latest, step)
        position = self._model_positions.get(position_key, 0)
        advancing, found = True, None
        start, size = position, 8
        while found is None and start < len(queue):
            chunk = queue[start:start + size]
            answered = {r[0] for r in self.conn.execute(answered_sql, (aid, json.dumps(chunk), *extra))}
            for offset, cid in enumerate(chunk):
                if cid in answered:
                    if advancing:
                        position = start + offset + 1
                elif cid in excluded:
                    advancing = False
                else:
                    found = cid
                    break
            start, size = start + len(chunk), min(size * 4, 4096)
        self._model_positions[position_key] = position
        return found

    def _latest_scored_run(self) -> int | None:
        """The run whose scores order the model queues: the latest finished one (a run still in progress
        has scored only some pairs at its latest step), else the latest with any scores."""
        row = self.conn.execute(
            "SELECT MAX(r.id) FROM runs r WHERE r.status = 'finished'"
            " AND EXISTS (SELECT 1 FROM pair_scores s WHERE s.run_id = r.id)"
        ).fetchone()
        if row[0] is not None:
            return row[0]
        return self.conn.execute("SELECT MAX(run_id) FROM pair_scores").fetchone()[0]

    def _model_queue(self, order: str, run_id: int, step: int) -> list[int]:
        token = self.get_meta(_SCORES_EPOCH)
        cached = self._model_queues.get((order, run_id, step))
        if cached is not None and cached[0] == token:
            return cached[1]
        if order == "uncertain":
            where, key = "", "ABS(r_chosen - r_rejected)"
        else:
            where, key = " AND split != 'unlabelled' AND r_chosen - r_rejected <= 0", "r_chosen - r_rejected"
        ids = [r[0] for r in self.conn.execute(
            f"SELECT comparison_id FROM pair_scores WHERE run_id = ? AND step = ?{where} ORDER BY {key}, comparison_id",
            (run_id, step),
        )]
        self._model_queues = {k: v for k, v in self._model_queues.items() if k[0] != order}  # keep one per order
        self._model_queues[(order, run_id, step)] = (token, ids)
        self._model_positions = {k: v for k, v in self._model_positions.items() if k[1:] != (order, run_id, step)}
        return ids

    def queue_position(self, annotator: str) -> tuple[int, int]:
        """(answered, total) for ``annotator``; skips do not count as answered."""
        aid = self.annotator_id(annotator)
        done = self.conn.execute(
            "SELECT COUNT(*) FROM current_labels WHERE annotator_id = ? AND choice IS NOT NULL AND choice != 'skip'",
            (aid,),
        ).fetchone()[0]
        total = self.conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0]
        return done, total

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
            if self.conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (comparison_id,)).fetchone() is None:
                raise KeyError(f"no comparison {comparison_id}")
            current = self.conn.execute(
                "SELECT judgment_id, choice FROM current_labels WHERE annotator_id = ? AND comparison_id = ?",
                (aid, comparison_id),
            ).fetchone()
            jid = self._insert_judgment(
                comparison_id, aid, choice, strength, left, kind, note, list(flags),
                current[0] if current else None, shown_at, _now(),
            )
            # A skip puts the comparison into this annotator's "skipped" phase, and back into everyone's
            # "nobody has labelled it" phase when it replaces a real label.
            replaced_label = current is not None and current[1] not in (None, "skip")
            if choice == "skip":
                self._bump_queue_epoch(None if replaced_label else aid)
        if choice == "skip":
            self._forget_exhausted(lambda a, phase: (phase == "skipped" and a == aid)
                                   or (replaced_label and phase == "nobody"))
        return jid

    def _current_judgment_id(self, aid: int, comparison_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT judgment_id FROM current_labels WHERE annotator_id = ? AND comparison_id = ?",
            (aid, comparison_id),
        ).fetchone()
        return row[0] if row else None

    def _insert_judgment(self, cid, aid, choice, strength, left, kind, note, flags, supersedes, shown_at, answered_at):
        now = _now()
        jid = self.conn.execute(
            "INSERT INTO judgments(comparison_id, annotator_id, choice, strength, left_side, kind, note, flags,"
            " supersedes, shown_at, answered_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (cid, aid, choice, strength, left, kind, note, json.dumps(flags), supersedes, shown_at, answered_at, now),
        ).lastrowid
        self.conn.execute(
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
                restored = self.conn.execute("SELECT * FROM judgments WHERE id = ?", (target["supersedes"],)).fetchone()
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
        rows = self.conn.execute(
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
            row = self.conn.execute(
                "SELECT kind, choice, supersedes FROM judgments WHERE id = ?", (judgment_id,)
            ).fetchone()
            if row is None:
                return None
            if row["kind"] != "undo":
                return judgment_id if row["choice"] is not None else None
            if row["supersedes"] is None:
                return None
            undone = self.conn.execute("SELECT supersedes FROM judgments WHERE id = ?", (row["supersedes"],)).fetchone()
            judgment_id = undone[0] if undone else None
        return None

    def judgment(self, judgment_id: int) -> Judgment:
        row = self.conn.execute(
            "SELECT j.*, a.name FROM judgments j JOIN annotators a ON a.id = j.annotator_id WHERE j.id = ?",
            (judgment_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no judgment {judgment_id}")
        return self._judgment_from_row(row, row["name"])

    def current_judgment(self, comparison_id: int, annotator: str) -> Judgment | None:
        """The row that holds ``annotator``'s current label of the comparison, or None when there is no
        label in force (never judged, or every judgment undone)."""
        row = self.conn.execute(
            "SELECT judgment_id, choice FROM current_labels WHERE annotator_id = ? AND comparison_id = ?",
            (self.annotator_id(annotator), comparison_id),
        ).fetchone()
        return None if row is None or row["choice"] is None else self.judgment(row["judgment_id"])

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
    def set_mark(self, comparison_id: int, mark: str, value: bool, annotator: str | None = None,
                 note: str = "") -> None:
        """Flag a pair for review or exclude it from training (append-only; the latest mark wins)."""
        if mark not in ("flag", "exclude"):
            raise ValueError(f"mark must be 'flag' or 'exclude', not {mark!r}")
        aid = self.annotator_id(annotator) if annotator else None
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (comparison_id,)).fetchone() is None:
                raise KeyError(f"no comparison {comparison_id}")
            self.conn.execute(
                "INSERT INTO comparison_marks(comparison_id, mark, value, annotator_id, note, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (comparison_id, mark, int(bool(value)), aid, note, _now()),
            )

    def marked(self, mark: str) -> set[int]:
        """Comparisons whose latest ``mark`` is on."""
        rows = self.conn.execute(
            "SELECT m.comparison_id FROM comparison_marks m WHERE m.mark = ? AND m.value = 1 AND m.id ="
            " (SELECT MAX(id) FROM comparison_marks n WHERE n.comparison_id = m.comparison_id AND n.mark = m.mark)",
            (mark,),
        )
        return {r[0] for r in rows}

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
            self.conn,
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
        rows = self.conn.execute(
            "SELECT cl.comparison_id, j.id, j.choice, j.strength, j.kind, a.name FROM current_labels cl"
            " JOIN judgments j ON j.id = cl.judgment_id JOIN annotators a ON a.id = cl.annotator_id"
            " WHERE cl.choice IS NOT NULL AND cl.choice != 'skip' ORDER BY cl.comparison_id, j.id"
        ).fetchall()
        out = []
        i = 0
        while i < len(rows):
            j = i
            while j < len(rows) and rows[j][0] == rows[i][0]:
                j += 1
            group = rows[i:j]
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
            out.append(
                (group[0][0], choice, chosen[3] if choice in ("a", "b") else None, chosen[1], chosen[5], len(group),
                 len({r[2] for r in group}) > 1)
            )
            i = j
        df = pd.DataFrame(
            out,
            columns=["comparison_id", "choice", "strength", "judgment_id", "annotator", "n_labels", "disagreement"],
        )
        df["strength"] = df["strength"].astype("Int64")
        return df

    def training_pairs(self) -> pd.DataFrame:
        """Pairs to train on: resolved labels of a or b, excluded pairs left out, texts as chosen/rejected."""
        resolved = self.resolved_labels()
        resolved = resolved[resolved["choice"].isin(["a", "b"])]
        resolved = resolved[~resolved["comparison_id"].isin(self.marked("exclude"))]
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
            ["comparison_id", "prompt_id", "prompt", "prompt_messages", "chosen", "rejected", "chosen_messages",
             "rejected_messages", "choice", "strength", "annotator", "judgment_id"]
        ].reset_index(drop=True)

    def _comparison_texts(self, comparison_ids: list[int] | None = None) -> pd.DataFrame:
        sql = (
            "SELECT c.id AS comparison_id, c.prompt_id, p.text AS prompt, p.messages AS prompt_messages,"
            " ra.text AS response_a, ra.messages AS response_a_messages,"
            " rb.text AS response_b, rb.messages AS response_b_messages"
            " FROM comparisons c JOIN prompts p ON p.id = c.prompt_id"
            " JOIN responses ra ON ra.id = c.response_a JOIN responses rb ON rb.id = c.response_b"
        )
        if comparison_ids is None:
            return pd.read_sql_query(sql + " ORDER BY c.id", self.conn)
        # Only the rows asked for: one JSON parameter instead of reading every text and filtering.
        return pd.read_sql_query(
            sql + " WHERE c.id IN (SELECT value FROM json_each(?)) ORDER BY c.id",
            self.conn,
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
            self.conn,
        )
        for col in ("strength", "supersedes"):
            df[col] = df[col].astype("Int64")
        return df

    # -------------------------------------------------------------- statistics
    def statistics(self) -> dict[str, Any]:
        counts = self.counts()
        by_choice = dict(
            self.conn.execute(
                "SELECT choice, COUNT(*) FROM current_labels WHERE choice IS NOT NULL GROUP BY choice"
            ).fetchall()
        )
        judged = self.conn.execute(
            "SELECT COUNT(DISTINCT comparison_id) FROM current_labels WHERE choice IS NOT NULL AND choice != 'skip'"
        ).fetchone()[0]
        per_annotator = []
        for row in self.conn.execute(
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
            per_annotator.append({k: row[k] for k in row.keys()})
        resolved = self.resolved_labels()
        return {
            "project": self.name,
            "path": str(self.path),
            "schema_version": self.schema_version,
            **counts,
            "judged_comparisons": judged,
            "labels": {c: int(by_choice.get(c, 0)) for c in CHOICES},
            "trainable_pairs": int(
                (resolved["choice"].isin(["a", "b"]) & ~resolved["comparison_id"].isin(self.marked("exclude"))).sum()
            ),
            "excluded": len(self.marked("exclude")),
            "flagged": len(self.marked("flag")),
            "annotators_detail": per_annotator,
        }

    # ------------------------------------------------------------------ runs
    def create_run(self, mode: str, backbone: str, config: dict, data_snapshot: dict | None = None) -> int:
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO runs(created_at, mode, backbone, config, status, data_snapshot) VALUES (?,?,?,?,?,?)",
                (_now(), mode, backbone, json.dumps(config), "running", json.dumps(data_snapshot or {})),
            ).lastrowid

    def update_run(self, run_id: int, status: str | None = None, message: str | None = None,
                   summary: dict | None = None) -> None:
        sets, args = [], []
        if status is not None:
            sets.append("status = ?")
            args.append(status)
            if status in ("finished", "failed", "cancelled", "stopped"):
                sets.append("finished_at = ?")
                args.append(_now())
        if message is not None:
            sets.append("message = ?")
            args.append(message)
        if summary is not None:
            sets.append("summary = ?")
            args.append(json.dumps(summary))
        if not sets:
            return
        with self.transaction():
            self.conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def run(self, run_id: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id}")
        out = dict(row)
        for key in ("config", "data_snapshot", "summary"):
            out[key] = json.loads(out[key])
        return out

    def runs(self) -> pd.DataFrame:
        df = pd.read_sql_query(
            "SELECT id, created_at, mode, backbone, status, message, summary, finished_at FROM runs ORDER BY id",
            self.conn,
        )
        df["summary"] = [json.loads(s) for s in df["summary"]]
        return df

    def add_metrics(self, run_id: int, step: int, split: str, metrics: dict[str, float],
                    epoch: float | None = None) -> None:
        now = _now()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO run_metrics(run_id, step, epoch, split, name, value, created_at) VALUES (?,?,?,?,?,?,?)",
                [(run_id, step, epoch, split, name, float(value), now) for name, value in metrics.items()],
            )

    def truncate_run(self, run_id: int, after_step: int) -> None:
        """Forget the metrics and pair scores a run wrote after ``after_step``: a run resumed from its last
        checkpoint rewrites them, so that its stored curve is one curve."""
        with self.transaction():
            self.conn.execute("DELETE FROM run_metrics WHERE run_id = ? AND step > ?", (run_id, after_step))
            self.conn.execute("DELETE FROM pair_scores WHERE run_id = ? AND step > ?", (run_id, after_step))

    def run_metrics(self, run_id: int) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT step, epoch, split, name, value FROM run_metrics WHERE run_id = ? ORDER BY step, rowid",
            self.conn,
            params=(run_id,),
        )

    def add_pair_scores(self, run_id: int, step: int, rows: Iterable[tuple[int, str, str, float, float]]) -> None:
        """Store per-pair scores: rows of (comparison_id, split, chosen side 'a'/'b', r_chosen, r_rejected)."""
        with self.transaction():
            self._set_meta(_SCORES_EPOCH, os.urandom(8).hex())  # the model orders re-read their lists
            self.conn.executemany(
                "INSERT OR REPLACE INTO pair_scores(run_id, step, comparison_id, split, chosen, r_chosen, r_rejected)"
                " VALUES (?,?,?,?,?,?,?)",
                [(run_id, step, int(c), s, ch, float(rc), float(rr)) for c, s, ch, rc, rr in rows],
            )

    def pair_scores(self, run_id: int, step: int | None = None) -> pd.DataFrame:
        """Per-pair scores of a run at ``step`` (default: its latest evaluation), margin included."""
        if step is None:
            step = self.conn.execute("SELECT MAX(step) FROM pair_scores WHERE run_id = ?", (run_id,)).fetchone()[0]
        return pd.read_sql_query(
            "SELECT comparison_id, split, chosen, r_chosen, r_rejected, r_chosen - r_rejected AS margin"
            " FROM pair_scores WHERE run_id = ? AND step = ? ORDER BY comparison_id",
            self.conn,
            params=(run_id, step if step is not None else -1),
        )

    # ------------------------------------------------------- embedding cache
    def cached_embeddings(self, backbone: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(text_hashes), 900):
            chunk = list(text_hashes[start:start + 900])
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE backbone = ? AND text_hash IN ({marks})",
                (backbone, *chunk),
            )
            for h, blob in rows:
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def store_embeddings(self, backbone: str, vectors: dict[str, np.ndarray]) -> None:
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO embeddings(backbone, text_hash, vector) VALUES (?,?,?)",
                [(backbone, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
            )

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]


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
