"""The project file's schema as a list of forward migrations.

``MIGRATIONS[i]`` moves a project from ``PRAGMA user_version`` i to i + 1. A migration is never edited
once released: a new need gets a new entry, so that every older project file can still be opened.
"""

MIGRATIONS: list[str] = [
    # 0 -> 1: the concepts of docs/architecture.md#the-project-file.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE annotators (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL DEFAULT 'human',
        created_at REAL NOT NULL
    );
    CREATE TABLE prompts (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        text TEXT NOT NULL,
        messages TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        source TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY,
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        hash TEXT NOT NULL UNIQUE,
        text TEXT NOT NULL,
        messages TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        source TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX responses_prompt ON responses(prompt_id);
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        response_a INTEGER NOT NULL REFERENCES responses(id),
        response_b INTEGER NOT NULL REFERENCES responses(id),
        hash TEXT NOT NULL UNIQUE,
        rand_key INTEGER NOT NULL,
        created_at REAL NOT NULL,
        CHECK (response_a != response_b)
    );
    CREATE INDEX comparisons_rand ON comparisons(rand_key, id);
    CREATE INDEX comparisons_prompt ON comparisons(prompt_id, id);
    CREATE TABLE judgments (
        id INTEGER PRIMARY KEY,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        annotator_id INTEGER NOT NULL REFERENCES annotators(id),
        choice TEXT CHECK (choice IN ('a', 'b', 'tie', 'both_bad', 'skip')),
        strength INTEGER CHECK (strength BETWEEN 1 AND 4),
        left_side TEXT CHECK (left_side IN ('a', 'b')),
        kind TEXT NOT NULL DEFAULT 'label',
        note TEXT NOT NULL DEFAULT '',
        flags TEXT NOT NULL DEFAULT '[]',
        supersedes INTEGER REFERENCES judgments(id),
        shown_at REAL,
        answered_at REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX judgments_comparison ON judgments(comparison_id, annotator_id);
    CREATE INDEX judgments_annotator ON judgments(annotator_id, id);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        mode TEXT NOT NULL,
        backbone TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        data_snapshot TEXT NOT NULL DEFAULT '{}',
        summary TEXT NOT NULL DEFAULT '{}',
        finished_at REAL
    );
    CREATE TABLE run_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        epoch REAL,
        split TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX run_metrics_run ON run_metrics(run_id, step);
    CREATE TABLE pair_scores (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        split TEXT NOT NULL,
        chosen TEXT NOT NULL CHECK (chosen IN ('a', 'b')),
        r_chosen REAL NOT NULL,
        r_rejected REAL NOT NULL,
        PRIMARY KEY (run_id, step, comparison_id)
    ) WITHOUT ROWID;
    """,
    # 1 -> 2: the current label per (annotator, comparison) kept as a table so that the next-comparison
    # query is an index probe instead of a scan of the history; pair-level marks (flag, exclude) that
    # belong to no judgment; the embedding cache of head mode.
    """
    CREATE TABLE current_labels (
        annotator_id INTEGER NOT NULL REFERENCES annotators(id),
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        judgment_id INTEGER NOT NULL REFERENCES judgments(id),
        choice TEXT,
        PRIMARY KEY (annotator_id, comparison_id)
    ) WITHOUT ROWID;
    CREATE INDEX current_labels_comparison ON current_labels(comparison_id, choice);
    INSERT INTO current_labels (annotator_id, comparison_id, judgment_id, choice)
        SELECT j.annotator_id, j.comparison_id, j.id, j.choice FROM judgments j
        WHERE j.id = (SELECT MAX(id) FROM judgments k
                      WHERE k.annotator_id = j.annotator_id AND k.comparison_id = j.comparison_id);
    CREATE TABLE comparison_marks (
        id INTEGER PRIMARY KEY,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        mark TEXT NOT NULL CHECK (mark IN ('flag', 'exclude')),
        value INTEGER NOT NULL,
        annotator_id INTEGER REFERENCES annotators(id),
        note TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE INDEX comparison_marks_comparison ON comparison_marks(comparison_id, mark, id);
    CREATE TABLE embeddings (
        backbone TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (backbone, text_hash)
    ) WITHOUT ROWID;
    """,
    # 2 -> 3: an annotator's skipped comparisons, oldest skip first, for the last phase of the queue.
    """
    CREATE INDEX current_labels_annotator ON current_labels(annotator_id, choice, judgment_id);
    """,
    # 3 -> 4: out-of-fold scores of a run's labelled pairs (each from a model that never saw the pair's
    # prompt), kept apart from the in-sample ``pair_scores`` so that neither overwrites the other. ``source``
    # says how they were made: "head-folds" (heads on cached embeddings) or "finetune-folds".
    """
    CREATE TABLE oof_scores (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        chosen TEXT NOT NULL CHECK (chosen IN ('a', 'b')),
        fold INTEGER NOT NULL,
        r_chosen REAL NOT NULL,
        r_rejected REAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('head-folds', 'finetune-folds')),
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, comparison_id)
    ) WITHOUT ROWID;
    """,
    # 4 -> 5: training dynamics (data cartography) of a run's training pairs, aggregated from the margins its
    # training steps computed: how many steps saw the pair, the mean of p(label) (confidence) and its standard
    # deviation (variability). And reviews of suspect labels from Inspect: append-only, each with its reason;
    # the effect on the label is an adjudication judgment (``judgment_id``) or an exclude mark.
    """
    CREATE TABLE pair_dynamics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        n_points INTEGER NOT NULL,
        confidence REAL NOT NULL,
        variability REAL NOT NULL,
        PRIMARY KEY (run_id, comparison_id)
    ) WITHOUT ROWID;
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        action TEXT NOT NULL CHECK (action IN ('keep', 'flip', 'tie', 'both_bad', 'exclude')),
        label TEXT CHECK (label IN ('a', 'b')),
        reason TEXT NOT NULL DEFAULT '',
        reviewer TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        judgment_id INTEGER REFERENCES judgments(id),
        created_at REAL NOT NULL
    );
    CREATE INDEX reviews_comparison ON reviews(comparison_id, id);
    """,
    # 5 -> 6: split membership of a comparison. A comparison in the "test" split is evaluation-only: never
    # trained on, never in validation, and no other comparison of its prompt is trained on either
    # (``Project.training_pairs``). Comparisons without a row are in the ordinary pool.
    """
    CREATE TABLE comparison_splits (
        comparison_id INTEGER PRIMARY KEY REFERENCES comparisons(id),
        split TEXT NOT NULL CHECK (split IN ('test')),
        created_at REAL NOT NULL
    );
    """,
    # 6 -> 7: work packages (``workbench assign``): an assignment (its id is a content hash, so that the same
    # assignment merged from several annotators' files is one) with its design, and which annotator has which
    # comparison. The project assigned from holds all of it; each annotator's file holds its own rows; merge
    # brings them together.
    """
    CREATE TABLE assignments (
        id TEXT PRIMARY KEY,
        design TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE TABLE assignment_items (
        assignment_id TEXT NOT NULL REFERENCES assignments(id),
        annotator TEXT NOT NULL,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        PRIMARY KEY (assignment_id, annotator, comparison_id)
    ) WITHOUT ROWID;
    CREATE INDEX assignment_items_annotator ON assignment_items(annotator, comparison_id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

#: ``PRAGMA application_id`` of a project file ("PWBw"): a project is recognised by its content, whatever
#: its name. Stamped on create, and on the first writable open of an older project (which has 0 there).
APPLICATION_ID = 0x50574277
