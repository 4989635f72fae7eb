"""The Inspect view's two plots of a run's suspects: the cartography scatter and the error map.

It owns their data (built off the GUI thread, torch-free: numpy and the project's stored scores and
embedding cache) and their widgets: pyqtgraph items made once and refilled with ``setData``, one
``ScatterPlotItem`` per colour (no per-point styles), at most ``MAX_POINTS`` points. A click on a point
emits its comparison id; a lasso (drag with Shift, or with the Lasso button down) emits the ids inside
the drawn polygon. Training dynamics need ``MIN_DYNAMICS`` evaluations per pair: with fewer the
cartography says so instead of drawing a scatter whose variability means nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from workbench.core.store import Project
from workbench.core.suspects import CATEGORIES
from workbench.ui import style
from workbench.ui.safe_text import plain

#: the most points a plot draws (the most suspect first): pyqtgraph styles each point in Python when
#: its data is set (~5 µs a point here), and 5,000 keep one plot's fill within ~30 ms of the GUI thread
MAX_POINTS = 5_000
#: evaluations per pair below which training dynamics are not drawn
MIN_DYNAMICS = 5
CATEGORY_COLORS = {
    "likely mislabelled": "#c0392b",
    "ambiguous": "#d68910",
    "hard to learn": "#2e86c1",
    "easy": "#7f8c8d",
}
#: the error map's diverging colours, by out-of-fold margin: against the label (red) to for it (blue)
MARGIN_BINS = np.array([-np.inf, -2.0, -1.0, -0.25, 0.25, 1.0, 2.0, np.inf])
MARGIN_COLORS = ["#b2182b", "#ef8a62", "#fddbc7", "#d9d9d9", "#d1e5f0", "#67a9cf", "#2166ac"]
MARGIN_NAMES = ["≤ −2", "−2 … −1", "−1 … −¼", "≈ 0", "¼ … 1", "1 … 2", "≥ 2"]


# ---------------------------------------------------------------------- data (off the GUI thread)
def points_in_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Which points (x, y) lie inside the polygon (px, py), by the even-odd rule, vectorised over points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    inside = np.zeros(len(x), dtype=bool)
    n = len(px)
    if n < 3:
        return inside
    j = n - 1
    for i in range(n):
        xi, yi, xj, yj = px[i], py[i], px[j], py[j]
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < at)
        j = i
    return inside


def dynamics_counts(project: Project, run_id: int) -> pd.Series:
    """Evaluations per labelled pair (``n_points`` of ``Project.pair_dynamics`` where the store has it, else
    counted from the score history), indexed by comparison id."""
    dynamics = getattr(project, "pair_dynamics", None)
    if dynamics is not None:
        frame = dynamics(run_id)
        if "n_points" in frame and "comparison_id" in frame:
            return frame.set_index("comparison_id")["n_points"].astype(int)
    history = project.pair_score_history(run_id)
    return history.groupby("comparison_id").size().astype(int)


def cartography_data(suspects: pd.DataFrame, counts: pd.Series) -> pd.DataFrame | str:
    """comparison_id, variability, confidence, category of the pairs with enough dynamics, or the message
    to show instead of the scatter."""
    if suspects.empty:
        return "No suspects to draw."
    n = suspects["comparison_id"].map(counts).fillna(0).to_numpy(dtype=int)
    ok = (n >= MIN_DYNAMICS) & np.isfinite(suspects["variability"].to_numpy(dtype=float))
    ok &= np.isfinite(suspects["confidence"].to_numpy(dtype=float))
    if not ok.any() or np.median(n) < MIN_DYNAMICS:
        return (
            f"Too few points per pair (n < {MIN_DYNAMICS}: this run evaluated each pair {int(np.median(n))} times),"
            " so confidence and variability would mislead. Train with more epochs or a smaller eval_every."
        )
    out = suspects.loc[ok, ["comparison_id", "variability", "confidence", "category", "p_label_wrong"]]
    return out.head(MAX_POINTS).reset_index(drop=True)


def _plain_input(prompt: str, response: str) -> str:
    """The string a plain (no chat template) backbone scores: ``PairEncoder.text``'s rule, repeated here
    because the GUI may not import the training package; a chat-template backbone simply finds no vectors."""
    if prompt and response and not prompt[-1].isspace() and not response[0].isspace():
        prompt += "\n"
    return prompt + response


def _hash(text: str) -> str:
    """``training.data.text_hash``: the embedding cache's key of one exact input string."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def error_map_data(project: Project, run_id: int, suspects: pd.DataFrame) -> pd.DataFrame | str:
    """comparison_id, x, y (the first two principal components of e(labelled better) − e(other), from the
    embedding cache) and oof_margin; or the message to show when the run's embeddings are not cached."""
    if len(suspects) < 3:
        return "Too few pairs for an error map."
    rows = suspects.head(MAX_POINTS)
    max_length = (project.run(run_id).get("config") or {}).get("max_length")
    keys = [k for k in project.embedding_keys() if max_length is None or k.endswith(f":{max_length}")]
    chosen = [_hash(_plain_input(p, r)) for p, r in zip(rows["prompt"], rows["chosen"])]
    rejected = [_hash(_plain_input(p, r)) for p, r in zip(rows["prompt"], rows["rejected"])]
    best: dict[str, np.ndarray] = {}
    for key in keys:
        found = project.cached_embeddings(key, list(dict.fromkeys(chosen + rejected)))
        if len(found) > len(best):
            best = found
    have = np.array([c in best and r in best for c, r in zip(chosen, rejected)], dtype=bool)
    if have.sum() < 3:
        return (
            f"No cached embeddings of run #{run_id}'s backbone for these pairs, so no error map: a head-mode run"
            f" stores them (or: python3 -m workbench suspects --project {project.path} --run {run_id} --out s.csv)."
        )
    idx = np.flatnonzero(have)
    diff = np.stack([best[chosen[i]] - best[rejected[i]] for i in idx]).astype(np.float64)
    diff -= diff.mean(axis=0)
    # The principal axes from the d x d scatter matrix (a BLAS product, which lets go of the GIL, and a
    # small eigh) rather than an SVD of the n x d matrix: 10,000 pairs took ~1 s in one call holding the
    # GIL, which stalled the GUI thread beside this task.
    _, vecs = np.linalg.eigh(diff.T @ diff)
    axes = vecs[:, ::-1][:, :2]
    xy = diff @ axes if axes.shape[1] >= 2 else np.column_stack([diff @ axes[:, 0], np.zeros(len(diff))])
    return pd.DataFrame(
        {
            "comparison_id": rows["comparison_id"].to_numpy()[idx],
            "x": xy[:, 0],
            "y": xy[:, 1],
            "oof_margin": rows["oof_margin"].to_numpy(dtype=float)[idx],
        }
    )


# ---------------------------------------------------------------------- widgets
class LassoViewBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a free-form polygon (with Shift, or while ``lasso_on``); otherwise
    the usual pan and zoom."""

    lassoed = Signal(object, object)  # xs, ys of the polygon in data coordinates

    def __init__(self) -> None:
        super().__init__()
        self.lasso_on = False
        self._path: list[QPointF] = []
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(style.ACCENT, width=1.5, style=Qt.PenStyle.DashLine))
        self.addItem(self.curve, ignoreBounds=True)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph's name
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if ev.button() != Qt.MouseButton.LeftButton or not (self.lasso_on or shift):
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():
            self._path = [self.mapSceneToView(ev.buttonDownScenePos())]
        self._path.append(self.mapSceneToView(ev.scenePos()))
        xs = [p.x() for p in self._path] + [self._path[0].x()]
        ys = [p.y() for p in self._path] + [self._path[0].y()]
        self.curve.setData(xs, ys)
        if ev.isFinish():
            self.curve.setData([], [])
            self.lassoed.emit(np.asarray(xs), np.asarray(ys))


class ScatterPanel(QWidget):
    """A titled scatter of pairs in colour groups, or a message instead; click and lasso give comparison ids."""

    pair_clicked = Signal(int)
    #: the comparison ids inside a lasso
    lassoed = Signal(object)

    def __init__(self, title: str, x_label: str, y_label: str, groups: list[tuple[str, str]], note: str = ""):
        super().__init__()
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        head = QHBoxLayout()
        label = QLabel(title)
        label.setObjectName("Section")
        head.addWidget(label)
        head.addStretch(1)
        self.lasso_button = QPushButton("Lasso")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("Drag to draw around points (or Shift-drag): they become the table's filter")
        self.lasso_button.toggled.connect(self._set_lasso)
        head.addWidget(self.lasso_button)
        col.addLayout(head)
        self.stack = QStackedWidget()
        self.view_box = LassoViewBox()
        self.plot = pg.PlotWidget(viewBox=self.view_box)
        self.plot.setBackground(style.PANEL)
        self.plot.setLabel("bottom", x_label)
        self.plot.setLabel("left", y_label)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # no "(x0.001)" on a 0-1 scale
        self.plot.setMinimumHeight(200)
        legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="8pt", labelTextColor=style.TEXT)
        legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.items: dict[str, pg.ScatterPlotItem] = {}
        for name, color in groups:
            item = pg.ScatterPlotItem(
                size=7, pen=pg.mkPen(90, 90, 90, 110), brush=pg.mkBrush(color), hoverable=False, name=name, pxMode=True
            )
            item.sigClicked.connect(self._on_clicked)
            self.plot.addItem(item)
            self.items[name] = item
        self.view_box.lassoed.connect(self.select_polygon)
        self.message = plain(QLabel(""))  # names the project file: data
        self.message.setWordWrap(True)
        self.message.setObjectName("Muted")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.plot)
        self.stack.addWidget(self.message)
        col.addWidget(self.stack, 1)
        self.note = plain(QLabel(note))
        self.note.setObjectName("Muted")
        self.note.setWordWrap(True)
        col.addWidget(self.note)
        self.xs = self.ys = np.zeros(0)
        self.ids = np.zeros(0, dtype=np.int64)

    def _set_lasso(self, on: bool) -> None:
        self.view_box.lasso_on = on
        self.view_box.setMouseEnabled(x=not on, y=not on)

    def show_message(self, text: str) -> None:
        for item in self.items.values():
            item.setData([], [])
        self.xs = self.ys = np.zeros(0)
        self.ids = np.zeros(0, dtype=np.int64)
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self.lasso_button.setEnabled(False)

    def set_points(self, ids: np.ndarray, x: np.ndarray, y: np.ndarray, group: np.ndarray) -> None:
        """Draw pairs ``ids`` at (x, y), each in the item of its ``group`` name."""
        self.ids, self.xs, self.ys = np.asarray(ids, dtype=np.int64), np.asarray(x, float), np.asarray(y, float)
        group = np.asarray(group, dtype=object)
        for name, item in self.items.items():
            mask = group == name
            item.setData(x=self.xs[mask], y=self.ys[mask], data=self.ids[mask])
        self.stack.setCurrentWidget(self.plot)
        self.lasso_button.setEnabled(True)
        self.plot.enableAutoRange()

    def _on_clicked(self, _item: Any, points: Any, _ev: Any = None) -> None:
        if len(points):
            self.pair_clicked.emit(int(points[0].data()))

    def select_polygon(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """The comparison ids inside a polygon in data coordinates (emitted as ``lassoed``)."""
        ids = self.ids[points_in_polygon(self.xs, self.ys, np.asarray(xs, float), np.asarray(ys, float))]
        self.lassoed.emit(ids)
        return ids


class CartographyPlot(ScatterPanel):
    """Confidence against variability, coloured by category (dataset cartography)."""

    def __init__(self) -> None:
        super().__init__(
            "Cartography",
            "variability (std. of p(label) over evaluations)",
            "confidence (mean p(label))",
            [(c, CATEGORY_COLORS[c]) for c in CATEGORIES],
            "Low confidence and low variability: the model never agreed with the label. High variability: ambiguous.",
        )

    def set_data(self, data: pd.DataFrame | str) -> None:
        if isinstance(data, str):
            self.show_message(data)
            return
        self.set_points(data["comparison_id"], data["variability"], data["confidence"], data["category"])


class ErrorMap(ScatterPanel):
    """The pairs' embedding differences in two principal components, coloured by out-of-fold margin."""

    def __init__(self) -> None:
        super().__init__(
            "Error map",
            "PC 1 of e(labelled better) − e(other)",
            "PC 2",
            list(zip(MARGIN_NAMES, MARGIN_COLORS)),
            "Colour: out-of-fold margin for the label (blue) or against it (red). Red clusters: a kind of pair the"
            " model disagrees with the labels on.",
        )

    def set_data(self, data: pd.DataFrame | str) -> None:
        if isinstance(data, str):
            self.show_message(data)
            return
        bins = np.digitize(data["oof_margin"].to_numpy(dtype=float), MARGIN_BINS[1:-1])
        names = np.asarray(MARGIN_NAMES, dtype=object)[bins]
        self.set_points(data["comparison_id"], data["x"], data["y"], names)
