"""The Inspect view: a run's pairs, most wrong first, and what to do about them.

The table is a ``FrameModel`` over one DataFrame per run, built off the GUI thread (``ProjectTask``)
with every display string computed there, vectorised; filters are numpy masks over the frame and
sorting is one argsort, so 100,000 pairs stay quick. The detail pane shows the prompt and both
responses through ``safe_text`` (dataset text is data: no HTML, no resources), with the run's scores.

Actions write to the project at once: relabel (a judgment of kind "relabel" by the current annotator,
superseding their own earlier label if they had one), flag for review, and exclude from training (the
next run leaves the pair out). The run's test-split pairs (issue 13) are listed too, split "test", with the
margins its final evaluation stored for them (what ``workbench eval`` reads) oriented to their label; every
pair shows p(chosen) = σ(margin / T) at the run's fitted temperature, and a Split filter picks train,
validation or test. "Compare with run N" adds a column and a filter for the pairs whose
margin changed sign between the two runs, and says which of the other run's suspects flipped.

Suspects (issue 12): where the run has out-of-fold scores, each pair gets p(label wrong), a category and a
one-line reason (``core/suspects.py``, computed in the same background task), a "Suspects first" order, a
category filter, a suspects queue, and the review actions (keep / flip / tie / both bad / exclude, each with
a reason: ``Project.review_label``) that take a pair out of the queue. The cartography scatter and the error
map (``ui/inspect_plots.py``) open a pair on click and filter the table to a lasso.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.core import suspects as suspects_rule
from workbench.core.records import STRENGTHS
from workbench.core.store import Project, read_only_message
from workbench.ui import settings, style
from workbench.ui.frame_model import Column, FrameModel, fixed
from workbench.ui.inspect_plots import CartographyPlot, ErrorMap, cartography_data, dynamics_counts, error_map_data
from workbench.ui.safe_text import SafeTextBrowser, plain
from workbench.ui.tasks import ProjectTask
from workbench.ui.why_pane import WhyPane
from workbench.ui.widgets import Card

EXCERPT = 160
CHOICE_TEXT = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad", "skip": "skipped"}
SEARCH_DELAY_MS = 250
#: the delay between the steps of showing a loaded run (``InspectView._next_turn``)
TURN_MS = 1
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
#: categories whose pairs are in the suspects queue until reviewed
QUEUE_CATEGORIES = ("likely mislabelled", "ambiguous")
#: the review actions: (action, button text, tooltip)
REVIEWS = [
    ("keep", "&Keep", "The label is right: a confirmation (an adjudication), so the pair leaves the queue"),
    ("flip", "F&lip", "The other response wins: an adjudication of the other side"),
    ("tie", "T&ie", "An adjudication: a tie (not trained on)"),
    ("both_bad", "&Both bad", "An adjudication: both bad (not trained on)"),
    ("exclude", "E&xclude", "Leave the pair out of training, with the reason"),
]


# ---------------------------------------------------------------------- the frame (built off the GUI thread)
def scored_runs(project: Project) -> pd.DataFrame:
    """Runs that have per-pair scores, newest first (id, mode, status, summary)."""
    ids = project.scored_run_ids()
    runs = project.runs()
    return runs[runs["id"].isin(ids)].iloc[::-1].reset_index(drop=True)


def label_strings(choice: pd.Series, strength: pd.Series) -> np.ndarray:
    """'A · better', 'B', 'tie'..., for whole columns."""
    c = choice.fillna("").astype(str).map(lambda v: CHOICE_TEXT.get(v, v or "—"))
    s = strength.map(lambda v: "" if v is None or pd.isna(v) else f" · {STRENGTHS.get(int(v), '')}")
    return (c + s).to_numpy(dtype=object)


def status_strings(frame: pd.DataFrame) -> np.ndarray:
    """What has happened to a pair since the run: excluded, flagged, label changed."""
    out = np.full(len(frame), "", dtype=object)

    def add(mask: np.ndarray, text: str | np.ndarray) -> None:
        if not mask.any():
            return
        texts = text if isinstance(text, np.ndarray) else np.full(len(frame), text, dtype=object)
        out[mask] = np.where(out[mask] == "", texts[mask], out[mask] + " · " + texts[mask])

    changed = (frame["current_choice"].fillna("?") != frame["choice"].fillna("?")).to_numpy()
    now = (
        "label now "
        + frame["current_choice"].map(
            lambda v: "unresolved" if v is None or (isinstance(v, float) and np.isnan(v)) else CHOICE_TEXT.get(v, v)
        )
    ).to_numpy(dtype=object)
    add(frame["excluded"].to_numpy(dtype=bool), "excluded")
    add(frame["flagged"].to_numpy(dtype=bool), "flagged")
    add(changed, now)
    return out


def flip_strings(flip: pd.Series, other: int | None) -> np.ndarray:
    if other is None:
        return np.full(len(flip), "", dtype=object)
    f = flip.to_numpy()
    out = np.full(len(f), "", dtype=object)
    out[f > 0] = f"▲ fixed (wrong in #{other})"
    out[f < 0] = f"▼ broken (right in #{other})"
    return out


def build_pairs_frame(
    project: Project,
    run_id: int,
    compare_run: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> pd.DataFrame:
    """One row per labelled pair the run scored at its latest evaluation, with texts, labels and marks: its
    training and validation pairs, and its test-split pairs (split "test")."""
    all_scores = project.pair_scores(run_id)
    scores = all_scores[all_scores["split"] != "unlabelled"].reset_index(drop=True)
    run = project.run(run_id)
    snap = run.get("data_snapshot") or {}
    df = scores.rename(columns={"chosen": "chosen_side"})
    # The label the run trained on: from its data snapshot (the judgment, its choice and strength).
    if snap.get("comparison_ids"):
        trained = pd.DataFrame(
            {
                "comparison_id": np.asarray(snap["comparison_ids"], dtype=np.int64),
                "judgment_id": np.asarray(snap["judgment_ids"], dtype=np.int64),
                "strength": pd.array(snap.get("strengths") or [None] * len(snap["comparison_ids"]), dtype="Int64"),
            }
        )
        df = df.merge(trained, on="comparison_id", how="left")
        names = project.judgment_annotators(df["judgment_id"].dropna().astype(int).tolist())
        df["annotator"] = df["judgment_id"].map(names).fillna("")
    else:
        df["judgment_id"] = pd.NA
        df["strength"] = pd.array([None] * len(df), dtype="Int64")
        df["annotator"] = ""
    df["choice"] = df["chosen_side"]
    test_labels = project.test_pairs() if project.split_comparisons("test") else None  # one read, two uses
    test = scored_test_pairs(test_labels, all_scores, set(df["comparison_id"].tolist()))
    if len(test):
        df = pd.concat([df, test], ignore_index=True)
    # The label now (after relabels since the run).
    resolved = project.resolved_labels().set_index("comparison_id")
    df["current_choice"] = df["comparison_id"].map(resolved["choice"]).astype(object)
    df["current_strength"] = df["comparison_id"].map(resolved["strength"]).astype("Int64")
    df["current_choice"] = df["current_choice"].where(df["current_choice"].notna(), None)
    # Texts (plain forms; conversations rendered) for the excerpt and the search.
    texts = project.comparisons_frame().set_index("comparison_id")
    texts = texts.loc[texts.index.intersection(df["comparison_id"])]
    for col in ("prompt", "response_a", "response_b"):
        df[col] = df["comparison_id"].map(texts[col]).fillna("").astype(str)
    df["excerpt"] = df["prompt"].str.slice(0, EXCERPT * 2).str.replace(r"\s+", " ", regex=True).str.strip()
    long = df["excerpt"].str.len() > EXCERPT
    df["excerpt"] = df["excerpt"].str.slice(0, EXCERPT).where(~long, df["excerpt"].str.slice(0, EXCERPT) + "…")
    df["search"] = (df["prompt"] + "\n" + df["response_a"] + "\n" + df["response_b"]).str.lower()
    # Marks.
    flag_marks = project.marked("flag")
    df["flag_mark"] = df["comparison_id"].isin(flag_marks)
    df["flagged"] = df["flag_mark"] | df["comparison_id"].isin(project.flagged_in_labels())
    df["excluded"] = df["comparison_id"].isin(project.marked("exclude"))
    df["wrong"] = df["margin"] <= 0
    temperature = float(((run.get("summary") or {}).get("calibration") or {}).get("temperature") or 1.0)
    df["p_chosen"] = 1.0 / (1.0 + np.exp(-df["margin"].to_numpy(dtype=float) / temperature))
    # Compare with another run: a sign change of the margin.
    if compare_run is not None:
        other_all = project.pair_scores(compare_run)
        other_labelled = other_all[other_all["split"] != "unlabelled"]
        other_test = scored_test_pairs(test_labels, other_all, set(other_labelled["comparison_id"].tolist()))
        parts = [other_labelled] + ([other_test] if len(other_test) else [])
        other = pd.concat(parts, ignore_index=True).set_index("comparison_id")["margin"]  # test pairs too
        df["other_margin"] = df["comparison_id"].map(other)
        right, was_right = df["margin"] > 0, df["other_margin"] > 0
        known = df["other_margin"].notna()
        df["flip"] = np.where(known & right & ~was_right, 1, np.where(known & ~right & was_right, -1, 0))
    else:
        df["other_margin"] = np.nan
        df["flip"] = 0
    # Display strings, once, here (the GUI thread only indexes them).
    df["id_s"] = "#" + df["comparison_id"].astype(str)
    df["label_s"] = label_strings(df["choice"], df["strength"])
    df["split_s"] = df["split"].map({"val": "validation", "train": "train", "test": "test"}).fillna(df["split"])
    df["p_chosen_s"] = fixed(2)(df["p_chosen"])
    for col in ("r_chosen", "r_rejected"):
        df[col + "_s"] = fixed(3, signed=True)(df[col])
    df["margin_s"] = fixed(3, signed=True)(df["margin"])
    df["flip_s"] = flip_strings(df["flip"], compare_run)
    df["status_s"] = status_strings(df)
    for col, empty in (("p_label_wrong", np.nan), ("oof_margin", np.nan), ("category", ""), ("reason", "")):
        df[col] = empty
    df["reviewed"] = False
    df["p_wrong_s"] = df["oof_s"] = ""
    return df


def scored_test_pairs(test: pd.DataFrame | None, scores: pd.DataFrame, known: set[int]) -> pd.DataFrame:
    """The run's test-split pairs (``test``: ``Project.test_pairs()``, None when the project has no test
    split; those not among ``known``) with the rewards stored for them (split "unlabelled": the run did not
    train on them; stored when it was evaluated on them), oriented to their current label, in the columns
    ``build_pairs_frame`` has before its label step. Test pairs it has not scored (a run scores them only when
    asked: ``workbench eval``, the Evaluation panel) are not here: ``unscored_test_pairs`` counts them."""
    if test is None or test.empty:
        return pd.DataFrame()
    test = test[~test["comparison_id"].isin(known)]
    stored = scores[scores["split"] == "unlabelled"].set_index("comparison_id")
    test = test[test["comparison_id"].isin(stored.index)]
    if test.empty:
        return pd.DataFrame()
    rows = stored.loc[test["comparison_id"]]
    is_a = (rows["chosen"] == "a").to_numpy()
    r_a = np.where(is_a, rows["r_chosen"], rows["r_rejected"])
    r_b = np.where(is_a, rows["r_rejected"], rows["r_chosen"])
    a_wins = (test["choice"] == "a").to_numpy()
    r_chosen, r_rejected = np.where(a_wins, r_a, r_b), np.where(a_wins, r_b, r_a)
    return pd.DataFrame(
        {
            "comparison_id": test["comparison_id"].to_numpy(dtype=np.int64),
            "split": "test",
            "chosen_side": test["choice"].to_numpy(),
            "r_chosen": r_chosen,
            "r_rejected": r_rejected,
            "margin": r_chosen - r_rejected,
            "judgment_id": pd.NA,
            "strength": pd.array(test["strength"].tolist(), dtype="Int64"),
            "annotator": test["annotator"].fillna("").to_numpy(),
            "choice": test["choice"].to_numpy(),
        }
    )


def unscored_test_pairs(project: Project, frame: pd.DataFrame) -> int:
    """Labelled test pairs the run has no stored score for (not evaluated yet, or imported after it)."""
    if not project.split_comparisons("test"):
        return 0
    test = set(project.test_pairs()["comparison_id"].tolist())
    return len(test - set(frame["comparison_id"].tolist()))


def add_suspects(project: Project, run_id: int, df: pd.DataFrame, compare_run: int | None) -> pd.DataFrame | None:
    """Fill the suspects columns of a run's frame in place; the suspects table, or None when the run has no
    out-of-fold scores. With ``compare_run``, the Compared column also says which of its suspects flipped."""
    try:
        table = suspects_rule.suspects_for_run(project, run_id)
    except ValueError:
        return None
    by_id = table.set_index("comparison_id")
    ids = df["comparison_id"]
    for col in ("p_label_wrong", "oof_margin", "category", "reason"):
        df[col] = ids.map(by_id[col])
    df["category"] = df["category"].astype(object).fillna("")
    df["reason"] = df["reason"].astype(object).fillna("")
    labels = project.labels()
    df["reviewed"] = ids.isin(labels.loc[labels["kind"] == "adjudication", "comparison_id"])
    df["p_wrong_s"] = fixed(2)(df["p_label_wrong"])
    df["oof_s"] = fixed(3, signed=True)(df["oof_margin"])
    df.loc[df["p_label_wrong"].isna(), ["p_wrong_s", "oof_s"]] = ""
    if compare_run is not None:
        try:
            before = suspects_rule.suspects_for_run(project, compare_run).set_index("comparison_id")
        except ValueError:
            before = None
        if before is not None:
            was = before[before["category"].isin(QUEUE_CATEGORIES)]
            # object dtype: with no pair in the queue the maps are all NaN, float64, and fillna("") warns (pandas 3)
            label_then, cat_then = ids.map(was["label"]).astype(object), ids.map(was["category"]).astype(object)
            label_now = ids.map(by_id["label"]).astype(object)
            text = np.where(
                label_then.notna() & (label_then != label_now),
                "label flipped",
                np.where(cat_then.notna() & (cat_then != df["category"]), "now " + df["category"].astype(str), ""),
            )
            text = np.where(cat_then.notna() & (text == ""), "still " + cat_then.fillna("").astype(str), text)
            marks = np.where(text != "", "suspect in #" + str(compare_run) + ": " + text, "")
            df["flip_s"] = np.where(
                (df["flip_s"] != "") & (marks != ""), df["flip_s"] + " · " + marks, df["flip_s"] + marks
            )
            df["suspect_flipped"] = text != ""
    return table


def build_inspect_data(project: Project, run_id: int, compare_run: int | None = None) -> dict:
    """Everything the view shows for a run, off the GUI thread: the table's frame, the suspects note, and
    the two plots' data (or their messages)."""
    df = build_pairs_frame(project, run_id, compare_run)
    table = add_suspects(project, run_id, df, compare_run)
    unscored = unscored_test_pairs(project, df)
    test_note = (
        f" · {unscored:,} test pairs have no stored score of this run yet (a run scores only its training pairs;"
        f" evaluating it on the test set, in the Train view or with workbench eval --run {run_id}, scores and"
        " stores them)"
        if unscored
        else ""
    )
    if table is None:
        note = (
            f"Run #{run_id} has no out-of-fold scores, so no suspects: compute them with"
            f" python3 -m workbench suspects --project {project.path} --run {run_id} --out suspects.csv"
        )
        return {"frame": df, "note": note + test_note, "cartography": note, "error_map": note}
    counts = table["category"].value_counts()
    note = "Suspects: " + ", ".join(f"{int(counts.get(c, 0))} {c}" for c in suspects_rule.CATEGORIES)
    return {
        "frame": df,
        "note": note + test_note,
        "cartography": cartography_data(table, dynamics_counts(project, run_id)),
        "error_map": error_map_data(project, run_id, table),
    }


COLUMNS = [
    Column("id_s", "Pair", sort_key="comparison_id", width=62, tooltip="Comparison id"),
    Column(
        "margin_s",
        "Margin",
        sort_key="margin",
        align=RIGHT,
        width=86,
        alert="wrong",
        tooltip="r chosen − r rejected; zero or below: mispredicted (red)",
    ),
    Column(
        "p_wrong_s",
        "P(wrong)",
        sort_key="p_label_wrong",
        align=RIGHT,
        width=92,
        tooltip="Probability that the label is wrong (out-of-fold margin and the votes; core/suspects.py)",
    ),
    Column("category", "Category", width=120, tooltip="Likely mislabelled, ambiguous, hard to learn or easy"),
    Column(
        "oof_s",
        "OOF margin",
        sort_key="oof_margin",
        align=RIGHT,
        width=104,
        tooltip="Out-of-fold margin: from a model that never saw the pair, oriented to the label",
    ),
    Column("excerpt", "Prompt", width=300),
    Column(
        "label_s",
        "Label",
        sort_key="choice",
        width=100,
        tooltip="The label this run trained on: which response won, and by how much",
    ),
    Column("annotator", "Annotator", width=100),
    Column("split_s", "Split", sort_key="split", width=76),
    Column(
        "r_chosen_s",
        "r chosen",
        sort_key="r_chosen",
        align=RIGHT,
        width=72,
        tooltip="The model's reward for the chosen response",
    ),
    Column(
        "r_rejected_s",
        "r rejected",
        sort_key="r_rejected",
        align=RIGHT,
        width=76,
        tooltip="The model's reward for the rejected response",
    ),
    Column(
        "p_chosen_s",
        "p(chosen)",
        sort_key="p_chosen",
        align=RIGHT,
        width=78,
        tooltip="σ(margin / T): the model's probability that the chosen response wins, at the temperature fitted "
        "on the run's validation pairs (T = 1 when it has none)",
    ),
    Column(
        "status_s",
        "Since the run",
        sort_key="status_s",
        width=140,
        tooltip="Excluded, flagged, or labelled differently since this run",
    ),
]
FLIP_COLUMN = Column(
    "flip_s", "Compared", sort_key="flip", width=160, tooltip="Pairs whose margin changed sign between the two runs"
)
MARGIN_COLUMN = 1
P_WRONG_COLUMN = 2


# ---------------------------------------------------------------------- the view
class InspectView(QWidget):
    message = Signal(str)
    #: the table is filled for a run (after a load)
    loaded = Signal(int)
    #: a label or mark changed (the Label view may want to refresh)
    labels_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("InspectView")
        self.project: Project | None = None
        self.annotator = ""
        self.run_id: int | None = None
        self.compare_id: int | None = None
        self.current_id: int | None = None
        self._pending_select: int | None = None
        self._tasks: list[ProjectTask] = []
        self._active = False
        self._stale = False
        self._load_token = 0
        #: a loaded run is being shown, in steps (``_next_turn``)
        self._showing = False
        #: comparison ids picked with a plot's lasso (the table's filter), or None
        self.plot_selection: np.ndarray | None = None
        self.has_suspects = False
        self.model = FrameModel(list(COLUMNS), self)
        self._build()
        self.set_project(None)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(14, 12, 14, 12)
        root.setSpacing(8)

        top = QHBoxLayout()
        title = QLabel("Inspect")
        title.setObjectName("Section")
        title.setStyleSheet("font-size: 14pt;")
        top.addWidget(title)
        top.addSpacing(12)
        top.addWidget(QLabel("Run"))
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(240)
        self.run_combo.setToolTip("The run whose per-pair scores are shown (its latest evaluation)")
        self.run_combo.currentIndexChanged.connect(self._on_run_chosen)
        top.addWidget(self.run_combo)
        top.addSpacing(8)
        top.addWidget(QLabel("Compare with"))
        self.compare_combo = QComboBox()
        self.compare_combo.setMinimumWidth(180)
        self.compare_combo.setToolTip("Another run: shows which pairs' margins changed sign between the two")
        self.compare_combo.currentIndexChanged.connect(self._on_compare_chosen)
        top.addWidget(self.compare_combo)
        top.addStretch(1)
        self.count_label = plain(QLabel(""))
        self.count_label.setObjectName("Muted")
        top.addWidget(self.count_label)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the runs and the marks again")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        root.addLayout(top)

        filters = QHBoxLayout()
        filters.setSpacing(10)
        self.wrong_check = QCheckBox("Mispredicted only")
        self.wrong_check.setToolTip("Pairs whose margin is zero or below: the model prefers the rejected response")
        self.annotator_combo = QComboBox()
        self.annotator_combo.setToolTip("Pairs labelled by one annotator")
        self.flagged_check = QCheckBox("Flagged")
        self.flagged_check.setToolTip("Pairs flagged for review (here or with F while labelling)")
        self.flipped_check = QCheckBox("Flipped only")
        self.flipped_check.setToolTip("Pairs whose margin changed sign against the compared run")
        self.margin_min = QLineEdit()
        self.margin_max = QLineEdit()
        for edit, text in ((self.margin_min, "from"), (self.margin_max, "to")):
            edit.setPlaceholderText(text)
            edit.setValidator(QDoubleValidator(edit))
            edit.setFixedWidth(64)
            edit.setToolTip("Margin range (empty: no limit)")
        self.split_combo = QComboBox()
        self.split_combo.setToolTip(
            "The run's training or validation pairs, or the test split's (never trained on; scored at the run's end)"
        )
        self._fill_splits(pd.DataFrame({"split": []}))
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search prompt and responses")
        self.search_edit.setClearButtonEnabled(True)
        filters.addWidget(self.wrong_check)
        filters.addWidget(self.flagged_check)
        filters.addWidget(self.flipped_check)
        filters.addWidget(QLabel("Split"))
        filters.addWidget(self.split_combo)
        filters.addWidget(QLabel("Annotator"))
        filters.addWidget(self.annotator_combo)
        filters.addWidget(QLabel("Margin"))
        filters.addWidget(self.margin_min)
        filters.addWidget(QLabel("–"))
        filters.addWidget(self.margin_max)
        filters.addWidget(self.search_edit, 1)
        root.addLayout(filters)

        suspects_row = QHBoxLayout()
        suspects_row.setSpacing(10)
        self.suspects_first_button = QPushButton("Suspects first")
        self.suspects_first_button.setToolTip("Sort by p(label wrong), most suspect first")
        self.suspects_first_button.clicked.connect(self.sort_suspects_first)
        self.queue_check = QCheckBox("Suspects queue")
        self.queue_check.setToolTip("Likely mislabelled or ambiguous pairs not yet reviewed (keep, flip, …)")
        self.category_combo = QComboBox()
        self.category_combo.setToolTip("Pairs of one suspects category")
        self.category_combo.addItem("All", None)
        for cat in suspects_rule.CATEGORIES:
            self.category_combo.addItem(cat, cat)
        self.lasso_label = plain(QLabel(""))
        self.lasso_clear = QPushButton("Clear plot selection")
        self.lasso_clear.clicked.connect(lambda: self.set_plot_selection(None))
        self.lasso_clear.hide()
        self.suspects_note = plain(QLabel(""))
        self.suspects_note.setObjectName("Muted")
        self.suspects_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        suspects_row.addWidget(self.suspects_first_button)
        suspects_row.addWidget(self.queue_check)
        suspects_row.addWidget(QLabel("Category"))
        suspects_row.addWidget(self.category_combo)
        suspects_row.addWidget(self.lasso_label)
        suspects_row.addWidget(self.lasso_clear)
        suspects_row.addWidget(self.suspects_note, 1)
        root.addLayout(suspects_row)
        self.queue_check.toggled.connect(self.apply_filters)
        self.category_combo.currentIndexChanged.connect(self.apply_filters)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_filters)
        for box in (self.wrong_check, self.flagged_check, self.flipped_check):
            box.toggled.connect(self.apply_filters)
        self.annotator_combo.currentIndexChanged.connect(self.apply_filters)
        self.split_combo.currentIndexChanged.connect(self.apply_filters)
        for edit in (self.margin_min, self.margin_max, self.search_edit):
            edit.textChanged.connect(lambda _=None: self._search_timer.start())

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        self.table = QTableView()
        self.table.setModel(self.model)
        # Most wrong first: the indicator before sorting is enabled (enabling sorts by the indicator).
        self.table.horizontalHeader().setSortIndicator(MARGIN_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        vh = self.table.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # never measure 100,000 rows
        vh.setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setHighlightSections(False)
        self.table.setStyleSheet(
            f"QTableView {{ background: {style.PANEL}; border: 1px solid {style.BORDER}; border-radius: 6px;"
            f" selection-background-color: {style.ACCENT_SOFT}; selection-color: {style.TEXT}; }}"
        )
        self._size_columns()
        self.model.modelReset.connect(self._update_count)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)
        left = QSplitter(Qt.Orientation.Vertical)
        left.setChildrenCollapsible(False)
        left.addWidget(self.table)
        plots = QSplitter(Qt.Orientation.Horizontal)
        self.cartography = CartographyPlot()
        self.error_map = ErrorMap()
        for plot in (self.cartography, self.error_map):
            plot.pair_clicked.connect(self.open_from_plot)
            plot.lassoed.connect(self.set_plot_selection)
            plots.addWidget(plot)
        left.addWidget(plots)
        left.setSizes([420, 300])
        self.plots_splitter = left
        split.addWidget(left)
        split.addWidget(self._build_detail())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        sizes = settings.int_list("inspect/splitter")
        if sizes is None or len(sizes) != 2 or min(sizes) < 200:
            sizes = [760, 480]
        split.setSizes(sizes)
        self.splitter = split
        root.addWidget(split, 1)

    def _build_detail(self) -> QWidget:
        pane = QWidget()
        col = QVBoxLayout(pane)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(8)
        self.detail_title = plain(QLabel("Select a pair"))
        self.detail_title.setObjectName("Section")
        self.detail_title.setWordWrap(True)
        col.addWidget(self.detail_title)
        self.detail_scores = plain(QLabel(""))
        self.detail_scores.setObjectName("Muted")
        self.detail_scores.setWordWrap(True)
        col.addWidget(self.detail_scores)
        self.why_label = plain(QLabel(""))
        self.why_label.setWordWrap(True)
        self.why_label.setStyleSheet("color: #8e2b1f;")
        col.addWidget(self.why_label)
        review = QHBoxLayout()
        review.setSpacing(6)
        review.addWidget(QLabel("Review the suspect:"))
        self.reason_edit = QLineEdit()
        self.reason_edit.setPlaceholderText("Reason for the review (required)")
        self.reason_edit.setToolTip("A short reason, kept with the review record")
        review.addWidget(self.reason_edit, 1)
        self.review_buttons: dict[str, QPushButton] = {}
        for action, text, tip in REVIEWS:
            button = QPushButton(text)
            button.setToolTip(tip + " (Alt + the underlined letter)")
            button.clicked.connect(lambda _=False, a=action: self.review(a))
            review.addWidget(button)
            self.review_buttons[action] = button
        col.addLayout(review)

        actions = QHBoxLayout()
        actions.setSpacing(6)
        actions.addWidget(QLabel("Relabel as yourself:"))
        self.swap_button = QPushButton("Swap label")
        self.swap_button.setToolTip("Relabel: the other response wins (a new judgment by you; history is kept)")
        self.swap_button.clicked.connect(lambda: self.relabel("swap"))
        self.tie_button = QPushButton("Tie")
        self.tie_button.setToolTip("Relabel as a tie (ties are not trained on)")
        self.tie_button.clicked.connect(lambda: self.relabel("tie"))
        self.both_bad_button = QPushButton("Both bad")
        self.both_bad_button.setToolTip("Relabel as both bad (not trained on)")
        self.both_bad_button.clicked.connect(lambda: self.relabel("both_bad"))
        self.flag_button = QPushButton("Flag for review")
        self.flag_button.setCheckable(True)
        self.flag_button.setToolTip("Mark the pair for someone to look at again")
        self.flag_button.clicked.connect(self.toggle_flag)
        self.exclude_button = QPushButton("Exclude from training")
        self.exclude_button.setCheckable(True)
        self.exclude_button.setToolTip("Leave the pair out of the next runs (its labels are kept)")
        self.exclude_button.clicked.connect(self.toggle_exclude)
        for b in (self.swap_button, self.tie_button, self.both_bad_button):
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.flag_button)
        actions.addWidget(self.exclude_button)
        col.addLayout(actions)

        texts = QSplitter(Qt.Orientation.Vertical)
        texts.setChildrenCollapsible(False)
        self.prompt_card = Card("Prompt")
        self.prompt_view = self.prompt_card.set_body(SafeTextBrowser())
        self.a_card = Card("Response A")
        self.a_view = self.a_card.set_body(SafeTextBrowser())
        self.b_card = Card("Response B")
        self.b_view = self.b_card.set_body(SafeTextBrowser())
        for card in (self.prompt_card, self.a_card, self.b_card):
            card.setFrameShape(QFrame.Shape.StyledPanel)
            texts.addWidget(card)
        texts.setSizes([160, 240, 240])
        # "Why" runs attribution jobs in the training process: only for the pair on screen while its tab is open.
        self.detail_tabs = QTabWidget()
        self.detail_tabs.addTab(texts, "Texts")
        self.why_pane = WhyPane()
        self.detail_tabs.addTab(self.why_pane, "Why · What if")
        self.detail_tabs.currentChanged.connect(self._on_detail_tab_changed)
        col.addWidget(self.detail_tabs, 1)
        self._set_actions_enabled(False)
        return pane

    def _on_detail_tab_changed(self, _index: int) -> None:
        self._show_why()

    def _show_why(self) -> None:
        """Attribute the pair on screen with the shown run's model, when the Why tab is open."""
        if self.detail_tabs.currentWidget() is not self.why_pane or self.project is None or self.run_id is None:
            return
        found = self._row_of_current()
        if found is None or found[1]["chosen_side"] not in ("a", "b"):
            return
        comparison = self.project.comparison(int(found[1]["comparison_id"]))
        chosen_is_a = found[1]["chosen_side"] == "a"
        chosen = comparison.response_a if chosen_is_a else comparison.response_b
        rejected = comparison.response_b if chosen_is_a else comparison.response_a
        self.why_pane.show_pair(
            self.project.path,
            self.run_id,
            comparison.id,
            comparison.prompt,
            chosen,
            rejected,
            read_only=self.project.read_only is not None,
        )

    def _size_columns(self) -> None:
        header = self.table.horizontalHeader()
        for i, c in enumerate(self.model.columns):
            header.resizeSection(i, c.width)
        header.setStretchLastSection(True)

    # ------------------------------------------------------------------ view protocol
    def set_project(self, project: Project | None) -> None:
        self._wait_for_tasks()
        self._showing = False
        self.project = project
        self.run_id = self.compare_id = self.current_id = None
        self.has_suspects = False
        self.plot_selection = None
        self.model.set_frame(pd.DataFrame({c.key: [] for c in COLUMNS}))
        self._show_detail(None)
        for plot in (self.cartography, self.error_map):
            plot.show_message("Choose a run with out-of-fold scores.")
        self.refresh_runs()
        enabled = project is not None
        for w in (self.run_combo, self.compare_combo, self.refresh_button):
            w.setEnabled(enabled)

    def set_annotator(self, name: str) -> None:
        self.annotator = name

    def set_active(self, active: bool) -> None:
        self._active = active
        if active and self.project is not None and (self._stale or self.run_combo.count() == 0):
            self._stale = False
            self.refresh_runs()

    def runs_changed(self) -> None:
        """A run ended: re-read the runs now if shown, else when next shown (no work behind a training view)."""
        if self._active:
            self.refresh_runs()
        else:
            self._stale = True

    def save_layout(self) -> None:
        if self.isVisible() and min(self.splitter.sizes()) > 0:  # a never-shown splitter has no real sizes
            settings.set_value("inspect/splitter", self.splitter.sizes())

    def busy(self) -> bool:
        return self._showing or any(t.isRunning() for t in self._tasks)

    # ------------------------------------------------------------------ runs
    def refresh(self) -> None:
        self.refresh_runs(reload=True)

    def refresh_runs(self, reload: bool = False) -> None:
        """Re-read the runs with scores; keep the chosen one (or take the newest)."""
        keep = self.run_id
        with QSignalBlocker(self.run_combo):
            self.run_combo.clear()
            if self.project is not None:
                for row in scored_runs(self.project).itertuples(index=False):
                    acc = (row.summary or {}).get("val_accuracy")
                    text = f"#{row.id} · {row.mode} · {row.status}" + (
                        f" · val. acc. {acc:.3f}" if acc is not None else ""
                    )
                    self.run_combo.addItem(text, int(row.id))
            index = self.run_combo.findData(keep) if keep is not None else -1
            self.run_combo.setCurrentIndex(max(0, index) if self.run_combo.count() else -1)
        self._fill_compare()
        if self.run_combo.count() == 0:
            self.run_id = None
            self.model.set_frame(pd.DataFrame({c.key: [] for c in COLUMNS}))
            self.count_label.setText(
                "No run has scored pairs yet: train one in the Train view." if self.project is not None else ""
            )
            return
        if index < 0 or reload:
            self.load(int(self.run_combo.currentData()), self.compare_id)

    def _fill_compare(self) -> None:
        with QSignalBlocker(self.compare_combo):
            keep = self.compare_id
            self.compare_combo.clear()
            self.compare_combo.addItem("(no other run)", None)
            current = self.run_combo.currentData()
            for i in range(self.run_combo.count()):
                rid = self.run_combo.itemData(i)
                if rid != current:
                    self.compare_combo.addItem(f"run #{rid}", rid)
            index = self.compare_combo.findData(keep) if keep is not None else 0
            self.compare_combo.setCurrentIndex(max(0, index))
            if index < 0:
                self.compare_id = None

    def _on_run_chosen(self, index: int) -> None:
        if index < 0:
            return
        run_id = int(self.run_combo.itemData(index))
        self._fill_compare()
        self.load(run_id, self.compare_combo.currentData())

    def _on_compare_chosen(self, index: int) -> None:
        if self.run_id is not None:
            self.load(self.run_id, self.compare_combo.itemData(index) if index >= 0 else None)

    def load(self, run_id: int, compare_run: int | None = None) -> None:
        """Build the run's frame off the GUI thread; ``loaded`` is emitted when it is shown."""
        if self.project is None:
            return
        self._load_token += 1
        self._showing = False  # a newer load: the steps of the last one stop
        token = self._load_token
        self.count_label.setText(f"Loading run #{run_id}…")
        task = ProjectTask(
            self.project.path,
            lambda p, progress, cancel: build_inspect_data(p, run_id, compare_run),
            "Reading the run's pairs",
            parent=self,
        )
        task.succeeded.connect(lambda out, t=token, r=run_id, c=compare_run: self._on_loaded(t, r, c, out))
        task.failed.connect(lambda text: self.message.emit(f"Cannot show the run: {text}"))
        task.finished.connect(lambda t=task: self._forget_task(t))
        self._tasks.append(task)
        task.start()

    def _forget_task(self, task: ProjectTask) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        task.deleteLater()

    def _wait_for_tasks(self) -> None:
        for task in list(self._tasks):
            task.wait()
        self._tasks.clear()

    def _on_loaded(self, token: int, run_id: int, compare_run: int | None, out: dict) -> None:
        if token != self._load_token or self.project is None:
            return  # a newer load was asked for
        df = out["frame"]
        self._showing = True
        self.has_suspects = bool((df["category"] != "").any()) if len(df) else False
        self.suspects_note.setText(out["note"])
        for plot in (self.cartography, self.error_map):
            plot.show_message("Drawing…")
        for w in (self.suspects_first_button, self.queue_check, self.category_combo):
            w.setEnabled(self.has_suspects)
        self.plot_selection = None
        self._show_lasso_count()
        keep = self._pending_select if self._pending_select is not None else self.current_id
        self._pending_select = None
        self.run_id, self.compare_id = run_id, compare_run
        columns = list(COLUMNS)
        if compare_run is not None:  # beside the margin, where it is seen
            columns.insert(MARGIN_COLUMN + 1, FLIP_COLUMN)
        if len(columns) != len(self.model.columns):
            self.model.set_columns(columns)
            self._size_columns()
        self.flipped_check.setEnabled(compare_run is not None)
        with QSignalBlocker(self.annotator_combo):
            current = self.annotator_combo.currentData()
            self.annotator_combo.clear()
            self.annotator_combo.addItem("All", None)
            for name in sorted(df["annotator"].unique().tolist()):  # unique first: 10,000 rows iterate slowly
                if name:
                    self.annotator_combo.addItem(name, name)
            self.annotator_combo.setCurrentIndex(max(0, self.annotator_combo.findData(current)))
        self._fill_splits(df)
        sort_col = self.model.sort_column if self.model.sort_column >= 0 else MARGIN_COLUMN
        order = self.model.sort_order if self.model.sort_column >= 0 else Qt.SortOrder.AscendingOrder
        self.model.set_frame(df, sort_col, order)
        self.table.horizontalHeader().setSortIndicator(sort_col, order)
        self.apply_filters()
        # The rest in later turns of the event loop, one step each: the selection (it fills the detail
        # pane), then each plot (pyqtgraph's setData styles every point in Python). Done in one call they
        # held the GUI thread 60-120 ms at 3,000-10,000 pairs. ``loaded`` comes when all are done.
        self._next_turn(token, lambda: self._select_loaded(token, keep, out))

    def _next_turn(self, token: int, step: Callable[[], None]) -> None:
        """Run ``step`` in a later turn of the event loop, unless a newer load was asked for meanwhile.

        A timer of ``TURN_MS``, not ``singleShot(0)``: Qt 6 posts a zero-delay call as an event, and a
        chain of them (with the repaint they cause) ran in one pass without the due timers between, so
        three short steps made one long stall (``benchmarks/bench_gui_responsiveness.py``)."""
        QTimer.singleShot(
            TURN_MS, self, lambda: step() if token == self._load_token and self.project is not None else None
        )

    def _select_loaded(self, token: int, keep: int | None, out: dict) -> None:
        if keep is not None:
            self.select_pair(keep)
        elif self.model.rowCount():
            self.table.selectRow(0)
        self._next_turn(token, lambda: self._fill_plot(token, self.cartography, out["cartography"], out))

    def _fill_plot(self, token: int, plot: CartographyPlot | ErrorMap, data: object, out: dict) -> None:
        plot.set_data(data)
        if plot is self.cartography:
            self._next_turn(token, lambda: self._fill_plot(token, self.error_map, out["error_map"], out))
        else:
            self._showing = False
            if self.run_id is not None:
                self.loaded.emit(self.run_id)

    def _fill_splits(self, frame: pd.DataFrame) -> None:
        """All, train, validation, and test when the run has test pairs, each with its count; keeps the pick."""
        counts = frame["split"].value_counts() if len(frame) else pd.Series(dtype=int)
        with QSignalBlocker(self.split_combo):
            current = self.split_combo.currentData()
            self.split_combo.clear()
            self.split_combo.addItem("All", None)
            for key, text in (("train", "train"), ("val", "validation"), ("test", "test")):
                n = int(counts.get(key, 0))
                if n or key != "test":
                    self.split_combo.addItem(f"{text} ({n:,})", key)
            self.split_combo.setCurrentIndex(max(0, self.split_combo.findData(current)))

    # ------------------------------------------------------------------ filters
    def filter_mask(self) -> np.ndarray:
        f = self.model.frame
        n = len(f)
        mask = np.ones(n, dtype=bool)
        if not n:
            return mask
        if self.wrong_check.isChecked():
            mask &= f["wrong"].to_numpy(dtype=bool)
        if self.flagged_check.isChecked():
            mask &= f["flagged"].to_numpy(dtype=bool)
        if self.flipped_check.isChecked() and self.flipped_check.isEnabled():
            mask &= f["flip"].to_numpy() != 0
        name = self.annotator_combo.currentData()
        if name:
            mask &= (f["annotator"] == name).to_numpy()
        split = self.split_combo.currentData()
        if split:
            mask &= (f["split"] == split).to_numpy()
        if self.has_suspects:
            category = self.category_combo.currentData()
            if category:
                mask &= (f["category"] == category).to_numpy()
            if self.queue_check.isChecked():
                mask &= self.queue_mask()
        if self.plot_selection is not None:
            mask &= np.isin(f["comparison_id"].to_numpy(), self.plot_selection)
        margin = f["margin"].to_numpy(dtype=float)
        for edit, above in ((self.margin_min, True), (self.margin_max, False)):
            try:
                bound = float(edit.text().replace(",", "."))
            except ValueError:
                continue
            mask &= margin >= bound if above else margin <= bound
        query = self.search_edit.text().strip().lower()
        if query:
            idx = np.flatnonzero(mask)
            hits = f["search"].iloc[idx].str.contains(query, regex=False).to_numpy(dtype=bool)
            mask[idx[~hits]] = False
        return mask

    def apply_filters(self) -> None:
        keep = self.current_id
        self.model.set_filter(self.filter_mask())
        if keep is not None and not self.select_pair(keep, clear_filters=False):
            self._show_detail(None)
        self._update_count()

    def clear_filters(self) -> None:
        blockers = [
            QSignalBlocker(w)
            for w in (
                self.wrong_check,
                self.flagged_check,
                self.flipped_check,
                self.annotator_combo,
                self.split_combo,
                self.margin_min,
                self.margin_max,
                self.search_edit,
            )
        ]
        self.wrong_check.setChecked(False)
        self.flagged_check.setChecked(False)
        self.flipped_check.setChecked(False)
        self.annotator_combo.setCurrentIndex(0)
        self.split_combo.setCurrentIndex(0)
        for edit in (self.margin_min, self.margin_max, self.search_edit):
            edit.clear()
        with QSignalBlocker(self.queue_check), QSignalBlocker(self.category_combo):
            self.queue_check.setChecked(False)
            self.category_combo.setCurrentIndex(0)
        self.plot_selection = None
        self._show_lasso_count()
        del blockers
        self.model.set_filter(None)
        self._update_count()

    def queue_mask(self) -> np.ndarray:
        """The suspects queue: likely mislabelled or ambiguous, not yet reviewed, not excluded."""
        f = self.model.frame
        return (
            f["category"].isin(QUEUE_CATEGORIES).to_numpy()
            & ~f["reviewed"].to_numpy(dtype=bool)
            & ~f["excluded"].to_numpy(dtype=bool)
        )

    def sort_suspects_first(self) -> None:
        """Most suspect first: p(label wrong), descending."""
        self.table.sortByColumn(P_WRONG_COLUMN, Qt.SortOrder.DescendingOrder)

    def set_plot_selection(self, ids: np.ndarray | None) -> None:
        """Filter the table to the pairs picked with a plot's lasso (None: no such filter)."""
        self.plot_selection = None if ids is None else np.asarray(ids, dtype=np.int64)
        self._show_lasso_count()
        self.apply_filters()

    def _show_lasso_count(self) -> None:
        if self.plot_selection is None:
            self.lasso_label.setText("")
            self.lasso_clear.hide()
        else:
            self.lasso_label.setText(f"{len(self.plot_selection):,} pairs selected in the plot")
            self.lasso_clear.show()

    def open_from_plot(self, comparison_id: int) -> None:
        """A point was clicked: select the pair in the table and show it."""
        self.select_pair(comparison_id)

    def _update_count(self) -> None:
        f = self.model.frame
        if self.run_id is None or not len(f):
            return
        shown = self.model.rowCount()
        if "wrong" not in f:
            self.count_label.setText(f"{shown:,} of {len(f):,} pairs shown")
            return
        wrong = f["wrong"].to_numpy(dtype=bool)
        if 0 < shown < len(f):  # a filter is on (a split, say): how the model does on what is shown
            here = int(wrong[self.model.visible_positions()].sum())
            self.count_label.setText(
                f"{shown:,} of {len(f):,} pairs shown · {here:,} of them mispredicted ({100 * here / shown:.1f}%)"
            )
        else:
            self.count_label.setText(f"{shown:,} of {len(f):,} pairs shown · {int(wrong.sum()):,} mispredicted")

    # ------------------------------------------------------------------ selection and detail
    def show_pair(self, run_id: int, comparison_id: int) -> None:
        """Open a run's pair (e.g. clicked on the Train view's margin plot)."""
        if self.project is None:
            return
        if self.run_combo.findData(run_id) < 0 or self._stale:
            self._stale = False
            self.refresh_runs()
        if run_id == self.run_id and not self.busy():
            self.select_pair(comparison_id)
            return
        self._pending_select = comparison_id
        index = self.run_combo.findData(run_id)
        with QSignalBlocker(self.run_combo):
            self.run_combo.setCurrentIndex(index)
        self._fill_compare()
        self.load(run_id, self.compare_combo.currentData())

    def show_run(self, run_id: int) -> None:
        """Show a run's pairs (e.g. "Inspect pairs" in the Train view)."""
        if self.project is None:
            return
        if self.run_combo.findData(run_id) < 0 or self._stale:
            self._stale = False
            self.refresh_runs()
        index = self.run_combo.findData(run_id)
        if index < 0:
            self.message.emit(f"Run #{run_id} has no per-pair scores to inspect.")
            return
        if run_id == self.run_id:
            return
        with QSignalBlocker(self.run_combo):
            self.run_combo.setCurrentIndex(index)
        self._fill_compare()
        self.load(run_id, self.compare_combo.currentData())

    def select_pair(self, comparison_id: int, clear_filters: bool = True) -> bool:
        f = self.model.frame
        if not len(f):
            return False
        hits = np.flatnonzero(f["comparison_id"].to_numpy() == comparison_id)
        if not len(hits):
            self.message.emit(f"Pair #{comparison_id} is not among run #{self.run_id}'s labelled pairs.")
            return False
        row = self.model.row_of_position(int(hits[0]))
        if row < 0 and clear_filters:
            self.clear_filters()
            row = self.model.row_of_position(int(hits[0]))
        if row < 0:
            return False
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        if self.current_id != comparison_id:  # the current row did not change, so no signal showed it
            self._show_detail(row)
        return True

    def selected_pair(self) -> int | None:
        return self.current_id

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_detail(current.row() if current.isValid() else None)

    def _row_of_current(self) -> tuple[int, pd.Series] | None:
        if self.current_id is None:
            return None
        f = self.model.frame
        hits = np.flatnonzero(f["comparison_id"].to_numpy() == self.current_id)
        if not len(hits):
            return None
        return int(hits[0]), f.iloc[int(hits[0])]

    def _show_detail(self, row: int | None) -> None:
        if row is None or self.project is None or not 0 <= row < self.model.rowCount():
            self.current_id = None
            self.detail_title.setText("Select a pair" if self.model.rowCount() else "No pairs to show")
            self.detail_scores.setText("")
            for view in (self.prompt_view, self.a_view, self.b_view):
                view.clear()
            self.a_card.title.setText("Response A")
            self.b_card.title.setText("Response B")
            self.why_label.setText("")
            self._set_actions_enabled(False)
            return
        pos = self.model.frame_position(row)
        r = self.model.frame.iloc[pos]
        cid = int(r["comparison_id"])
        self.current_id = cid
        try:
            comparison = self.project.comparison(cid)
        except KeyError:
            self._show_detail(None)
            return
        margin = float(r["margin"])
        wrong = margin <= 0
        verdict = "the model prefers the rejected response (mispredicted)" if wrong else "the model agrees"
        self.detail_title.setText(f"Pair #{cid} · {r['split_s']} · margin {margin:+.3f}: {verdict}")
        bits = [f"label: {r['label_s']}", f"p(chosen) {float(r['p_chosen']):.2f}"]
        if r["annotator"]:
            bits.append(f"by {r['annotator']}")
        if r["status_s"]:
            bits.append(str(r["status_s"]))
        if self.compare_id is not None and np.isfinite(r["other_margin"]):
            bits.append(f"margin in run #{self.compare_id}: {float(r['other_margin']):+.3f}")
        self.detail_scores.setText(" · ".join(bits))
        if r["category"]:
            done = " · reviewed" if bool(r["reviewed"]) else ""
            self.why_label.setText(f"Why suspected ({r['category']}{done}): {r['reason']}")
        else:
            self.why_label.setText("")
        side = str(r["chosen_side"])
        r_a = float(r["r_chosen"] if side == "a" else r["r_rejected"])
        r_b = float(r["r_rejected"] if side == "a" else r["r_chosen"])
        for card, view, text, letter, reward in (
            (self.a_card, self.a_view, comparison.response_a, "a", r_a),
            (self.b_card, self.b_view, comparison.response_b, "b", r_b),
        ):
            role = "chosen" if letter == side else "rejected"
            card.title.setText(f"Response {letter.upper()} · {role} in the run's label")
            card.extra.setText(f"reward {reward:+.3f}")
            view.set_text(text)
        self.prompt_view.set_text(comparison.prompt)
        self._set_actions_enabled(True)
        with QSignalBlocker(self.flag_button), QSignalBlocker(self.exclude_button):
            self.flag_button.setChecked(bool(r["flagged"]))
            self.exclude_button.setChecked(bool(r["excluded"]))
        self._show_why()

    def _set_actions_enabled(self, on: bool) -> None:
        for b in (self.swap_button, self.tie_button, self.both_bad_button, self.flag_button, self.exclude_button):
            b.setEnabled(on)
        found = self._row_of_current() if on else None
        suspect = found is not None and bool(found[1]["category"])
        writable = read_only_message(self.project) is None
        for b in self.review_buttons.values():
            b.setEnabled(suspect and writable)
        self.reason_edit.setEnabled(suspect and writable)
        if not writable:
            self.reason_edit.setPlaceholderText("Read only: reviews are off")

    # ------------------------------------------------------------------ actions
    def _pair_to_change(self, doing: str) -> tuple[int, pd.Series] | None:
        """The pair on screen, when it may be changed now: the project is writable and the annotator named
        (each refusal said in the status bar)."""
        found = self._row_of_current()
        if found is None or self.project is None:
            return None
        if (read_only := read_only_message(self.project)) is not None:
            self.message.emit(read_only)
            return None
        if not self.annotator:
            self.message.emit(f"Set your name (status bar) before {doing}.")
            return None
        return found

    def review(self, action: str, reason: str | None = None) -> int | None:
        """Settle the current suspect (keep, flip, tie, both_bad, exclude) with a reason; it leaves the queue."""
        found = self._pair_to_change("reviewing")
        if found is None or self.project is None:
            return None
        why = (reason if reason is not None else self.reason_edit.text()).strip()
        if not why:
            self.message.emit("Give a short reason for the review (the field beside the buttons).")
            self.reason_edit.setFocus()
            return None
        pos, r = found
        cid = int(r["comparison_id"])
        try:
            record = self.project.review_label(cid, action, why, self.annotator)
        except (ValueError, KeyError) as exc:
            self.message.emit(f"Pair #{cid}: {exc}")
            return None
        now, now_strength = self.project.resolved_label(cid)
        changes: dict[str, object] = {
            "reviewed": action != "exclude" or bool(r["reviewed"]),
            "excluded": action == "exclude" or bool(r["excluded"]),
            "current_choice": now,
            "current_strength": pd.NA if now_strength is None else now_strength,
        }
        self.reason_edit.clear()
        self._update_row(pos, **changes)
        self.message.emit(f"Pair #{cid} reviewed: {action.replace('_', ' ')} ({why}).")
        self.labels_changed.emit()
        if self.queue_check.isChecked():
            self._next_in_queue(pos)
        return record

    def _next_in_queue(self, pos: int) -> None:
        """Re-apply the filters (the reviewed pair leaves the queue) and show the next suspect."""
        row = self.model.row_of_position(pos)
        self.current_id = None
        self.apply_filters()
        if self.model.rowCount():
            self.table.selectRow(min(max(row, 0), self.model.rowCount() - 1))

    def relabel(self, what: str) -> int | None:
        """'swap' (the other response wins, same strength), 'tie' or 'both_bad': a relabel judgment."""
        found = self._pair_to_change("relabelling")
        if found is None or self.project is None:
            return None
        pos, r = found
        cid = int(r["comparison_id"])
        current = r["current_choice"] if r["current_choice"] in ("a", "b") else r["choice"]
        if what == "swap":
            choice = "b" if current == "a" else "a"
            strength = r["current_strength"] if r["current_choice"] in ("a", "b") else r["strength"]
            strength = None if strength is None or pd.isna(strength) else int(strength)
        elif what in ("tie", "both_bad"):
            choice, strength = what, None
        else:
            raise ValueError(f"relabel as 'swap', 'tie' or 'both_bad', not {what!r}")
        mine = self.project.current_judgment(cid, self.annotator)
        self.project.record_judgment(cid, self.annotator, choice, strength, kind="relabel")
        now, now_strength = self.project.resolved_label(cid)
        self._update_row(pos, current_choice=now, current_strength=pd.NA if now_strength is None else now_strength)
        text = f"Pair #{cid} relabelled: {CHOICE_TEXT[choice]}" + (f" ({STRENGTHS[strength]})" if strength else "")
        if now != choice:
            text += (
                f"; another annotator's label differs, so the pair is {'unresolved' if now is None else 'still ' + CHOICE_TEXT.get(now, now)}"
                " until adjudicated"
            )
        elif mine is None:
            text += " (your first label on this pair)"
        self.message.emit(text + ". The next run trains on it.")
        self.labels_changed.emit()
        return cid

    def toggle_flag(self) -> None:
        self._toggle_mark("flag", self.flag_button.isChecked())

    def toggle_exclude(self) -> None:
        self._toggle_mark("exclude", self.exclude_button.isChecked())

    def set_mark(self, mark: str, value: bool) -> None:
        button = self.flag_button if mark == "flag" else self.exclude_button
        with QSignalBlocker(button):
            button.setChecked(value)
        self._toggle_mark(mark, value)

    def _toggle_mark(self, mark: str, value: bool) -> None:
        found = self._row_of_current()
        if found is None or self.project is None:
            return
        if (read_only := read_only_message(self.project)) is not None:
            self.message.emit(read_only)
            button = self.flag_button if mark == "flag" else self.exclude_button
            with QSignalBlocker(button):
                button.setChecked(not value)
            return
        pos, r = found
        cid = int(r["comparison_id"])
        self.project.set_mark(cid, mark, value, self.annotator or None)
        if mark == "flag":
            still = value or cid in self.project.flagged_in_labels()
            self._update_row(pos, flag_mark=value, flagged=still)
            self.message.emit(f"Pair #{cid} {'flagged for review' if value else 'no longer flagged'}.")
        else:
            self._update_row(pos, excluded=value)
            self.message.emit(f"Pair #{cid} {'excluded from' if value else 'back in'} the next runs' training data.")
        self.labels_changed.emit()

    def _update_row(self, pos: int, **changes: object) -> None:
        f = self.model.frame
        for key, value in changes.items():
            f.iat[pos, f.columns.get_loc(key)] = value
        one = f.iloc[[pos]]
        status = status_strings(one)[0]
        self.model.update_rows([pos], {**changes, "status_s": status})
        row = self.model.row_of_position(pos)
        if row >= 0:
            self._show_detail(row)
