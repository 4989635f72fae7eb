"""Live training plots (pyqtgraph): loss, accuracy, a histogram of per-pair margins and the sorted margins.

Made for speed the way pyqtgraph's own examples are: every plot item is created once and only ever
gets ``setData``; new values go into preallocated arrays that double when full, and nothing is drawn
when they arrive; the owner's timer (every ``suggested_interval()`` ms, 100 at least) calls ``refresh``,
which pushes what changed to the items, so a run that logs hundreds of steps a second costs at most ten
redraws a second. For 100,000 pairs the margin plot draws
the sorted curve downsampled to a few thousand points (lossless: the curve is monotonic) and scatters
only the worst ``MAX_SCATTER`` mispredicted pairs, all with one pen and brush.

Colours come from the widget's palette (background, text, grid), so the plots read in light and dark
themes; the series colours are mid-tones that hold on either background.
"""

from __future__ import annotations

import math
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGraphicsItem, QVBoxLayout, QWidget

LOG2 = math.log(2.0)
#: the sorted-margin curve is drawn with at most this many points
MAX_CURVE_POINTS = 4000
#: mispredicted pairs drawn as points: the worst this many
MAX_SCATTER = 2000
REFRESH_MS = 100
#: during a run the margin plots redraw at most this often (seconds), and never in the same refresh as the
#: step curves: a margin redraw (sort, histogram, setData, paint) takes ~15-20 ms for 10,000 pairs, and in
#: head mode an evaluation can come every 100 ms; with both in one refresh the GUI thread stalled 20-30 ms
#: at each (``benchmarks/bench_gui_responsiveness.py``)
MARGINS_EVERY_S = 0.5
#: the refresh interval grows up to this when paints are slow (see ``suggested_interval``)
MAX_REFRESH_MS = 400
#: weight of the past in the smoothed training curves (TensorBoard's default smoothing is 0.6-0.9)
SMOOTHING = 0.9
#: how near (in pixels) the mouse must be to a pair for hover and click
PICK_RADIUS_PX = 10.0

TRAIN = "#3d7ad6"
VAL = "#e07b24"
WRONG = "#d43f3f"

pg.setConfigOptions(antialias=False, useOpenGL=False, background=None)


class _Series:
    """A growing (x, y) series in preallocated arrays that double when full."""

    def __init__(self, capacity: int = 256):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.resize(self.x, 2 * self.n)
            self.y = np.resize(self.y, 2 * self.n)
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]


class TrainingPlots(QWidget):
    """Four plots in one GraphicsLayoutWidget; feed them with ``add_step``, ``add_evaluation``, ``set_margins``."""

    #: a pair on the margin plot was clicked: its comparison id
    pair_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        #: ``describe_pair(comparison_id) -> str``: the hover text's extra line (e.g. a prompt excerpt),
        #: asked lazily for the one pair under the mouse
        self.describe_pair: Callable[[int], str] | None = None
        self._steps_loss = _Series()
        self._steps_acc = _Series()
        self._smooth_loss = _Series()  # exponential moving averages of the batch values (debiased)
        self._smooth_acc = _Series()
        self._ema = {"loss": (0.0, 0.0), "accuracy": (0.0, 0.0)}  # (average, weight)
        self._val_loss = _Series()
        self._val_acc = _Series()
        self._eval_train_acc = _Series()
        self._margins: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # cids, is_val, margin
        self._dirty_steps = self._dirty_eval = self._dirty_margins = False
        self._total_steps = 0
        # The latest margins, sorted: what the margin plot shows and picks from.
        self.sorted_cids = np.zeros(0, dtype=np.int64)
        self.sorted_margins = np.zeros(0)
        self.sorted_is_val = np.zeros(0, dtype=bool)
        self.refreshes = 0
        self._hover_index: int | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.view = _TimedLayoutWidget()
        self.view.setAntialiasing(False)
        self.view.ci.setSpacing(6)
        self.view.ci.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view)
        self._build()
        self._margins_drawn_at = -math.inf
        self.apply_palette()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        v = self.view
        self.loss_plot = v.addPlot(row=0, col=0)
        self.acc_plot = v.addPlot(row=0, col=1)
        self.hist_plot = v.addPlot(row=1, col=0)
        self.margin_plot = v.addPlot(row=1, col=1)
        for plot in self.plots():
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.showGrid(x=True, y=True, alpha=0.15)
            # Ranges are set by ``_fit`` and move only when the data leaves them (or shrinks to a small
            # part): an axis whose range is unchanged keeps its cached picture, and a repaint that
            # regenerates four axes' tick labels costs 20-70 ms on a software raster.
            plot.disableAutoRange()

        p = self.loss_plot
        p.setDownsampling(auto=True, mode="peak")
        p.setClipToView(True)  # (not for the histogram: clipping a step curve breaks len(x) == len(y) + 1)
        self.loss_legend = p.addLegend(offset=(8, -8), labelTextSize="8pt")  # bottom left: loss falls away from it
        self.train_loss = p.plot(pen=pg.mkPen(_alpha(TRAIN, 90), width=1))  # per batch, faint, no legend entry
        self.train_loss_smooth = p.plot(name="train", pen=pg.mkPen(TRAIN, width=2))
        self.val_loss = p.plot(
            name="validation", pen=pg.mkPen(VAL, width=2), symbol="o", symbolSize=5, symbolPen=None, symbolBrush=VAL
        )
        self.chance_line = pg.InfiniteLine(
            pos=LOG2,
            angle=0,
            movable=False,
            label="log 2 (chance)",
            labelOpts={"position": 0.97, "anchors": [(1, 1), (1, 1)]},
        )
        p.addItem(self.chance_line, ignoreBounds=False)
        p.setLabel("bottom", "step")
        p.setLabel("left", "loss")

        p = self.acc_plot
        p.setDownsampling(auto=True, mode="peak")
        p.setClipToView(True)
        self.acc_legend = p.addLegend(offset=(-8, -8), labelTextSize="8pt")
        self.train_acc = p.plot(pen=pg.mkPen(_alpha(TRAIN, 90), width=1))
        self.train_acc_smooth = p.plot(name="train", pen=pg.mkPen(TRAIN, width=2))
        self.val_acc = p.plot(
            name="validation", pen=pg.mkPen(VAL, width=2), symbol="o", symbolSize=5, symbolPen=None, symbolBrush=VAL
        )
        self.half_line = pg.InfiniteLine(pos=0.5, angle=0, movable=False)
        p.addItem(self.half_line, ignoreBounds=True)
        p.setYRange(0.0, 1.0, padding=0.03)
        p.setLabel("bottom", "step")
        p.setLabel("left", "accuracy")

        p = self.hist_plot
        self.hist_legend = p.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.hist_train = p.plot(
            name="train", stepMode="center", fillLevel=0, pen=pg.mkPen(TRAIN, width=1.5), brush=_alpha(TRAIN, 60)
        )
        self.hist_val = p.plot(
            name="validation", stepMode="center", fillLevel=0, pen=pg.mkPen(VAL, width=1.5), brush=_alpha(VAL, 60)
        )
        self.hist_zero = pg.InfiniteLine(pos=0.0, angle=90, movable=False)
        p.addItem(self.hist_zero, ignoreBounds=True)
        p.setLabel("bottom", "margin r_c − r_r")
        p.setLabel("left", "pairs")

        p = self.margin_plot
        self.margin_curve = p.plot(name="margin", pen=pg.mkPen(TRAIN, width=2))
        self.wrong_curve = p.plot(pen=pg.mkPen(WRONG, width=2), fillLevel=0.0, brush=_alpha(WRONG, 50))
        self.wrong_points = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(WRONG))
        p.addItem(self.wrong_points)
        self.hover_point = pg.ScatterPlotItem(size=11, pen=pg.mkPen("#000000", width=1.5), brush=None)
        p.addItem(self.hover_point)
        self.margin_zero = pg.InfiniteLine(pos=0.0, angle=0, movable=False)
        p.addItem(self.margin_zero, ignoreBounds=True)
        self.hover_label = pg.TextItem("", anchor=(0, 1))
        self.hover_label.setZValue(50)
        p.addItem(self.hover_label, ignoreBounds=True)
        self.hover_label.hide()
        self.margin_note = pg.TextItem("", anchor=(1, 1))
        self.margin_note.setParentItem(p.vb)  # fixed in the corner, not in data coordinates
        p.vb.sigResized.connect(self._place_note)
        p.setLabel("bottom", "pairs, sorted by margin")
        p.setLabel("left", "margin r_c − r_r")

        for plot, title in zip(
            self.plots(),
            (
                "Loss",
                "Accuracy",
                "Margins at the latest evaluation",
                "Per-pair margin (red: mispredicted; click to inspect)",
            ),
        ):
            plot.setTitle(title, size="9.5pt")
        scene = self.view.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    def plots(self) -> list[pg.PlotItem]:
        return [self.loss_plot, self.acc_plot, self.hist_plot, self.margin_plot]

    # ------------------------------------------------------------------ colours
    def apply_palette(self) -> None:
        """Background, axes, grid and text from the palette (light or dark)."""
        pal = self.palette()
        bg = pal.color(QPalette.ColorRole.Base)
        fg = pal.color(QPalette.ColorRole.Text)
        muted = QColor(fg)
        muted.setAlpha(150)
        dark = bg.lightnessF() < 0.5
        self.view.setBackground(bg)
        for plot in self.plots():
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                # Drawn once into a pixmap and blitted on each repaint (replaying its tick labels cost
                # 2-4 ms per axis and paint); a changed range redraws it.
                axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
                axis.enableAutoSIPrefix(False)  # "loss (x0.001)" reads worse than 0.7
                axis.setPen(pg.mkPen(muted))
                axis.setTextPen(pg.mkPen(fg))
                axis.setLabel(axis.labelText, color=fg.name())
            plot.titleLabel.setText(plot.titleLabel.text, color=fg.name(), size="9.5pt")
        for legend in (self.loss_legend, self.acc_legend, self.hist_legend):
            legend.setLabelTextColor(fg)
            for _, label in legend.items:  # the colour above applies to labels added later only
                label.setText(label.text, color=fg.name())
            legend.setBrush(pg.mkBrush(_with_alpha(bg, 200)))
        dashed = pg.mkPen(muted, width=1.2, style=Qt.PenStyle.DashLine)
        for line in (self.chance_line, self.half_line, self.hist_zero, self.margin_zero):
            line.setPen(dashed)
        self.chance_line.label.setColor(muted)
        self.hover_label.fill = pg.mkBrush(_with_alpha(bg, 235))
        self.hover_label.border = pg.mkPen(muted)
        self.hover_label.setColor(fg)
        self.hover_point.setPen(pg.mkPen("#ffffff" if dark else "#000000", width=1.5))
        self.margin_note.setColor(fg)

    def changeEvent(self, event):  # noqa: N802
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.apply_palette()
        super().changeEvent(event)

    # ------------------------------------------------------------------ feeding (no drawing here)
    def clear(self) -> None:
        for s in (
            self._steps_loss,
            self._steps_acc,
            self._val_loss,
            self._val_acc,
            self._eval_train_acc,
            self._smooth_loss,
            self._smooth_acc,
        ):
            s.clear()
        self._ema = {"loss": (0.0, 0.0), "accuracy": (0.0, 0.0)}
        self._total_steps = 0
        self.loss_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.acc_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.03)
        self._margins = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros(0))
        self._dirty_steps = self._dirty_eval = self._dirty_margins = True
        self._set_hover(None)
        self.refresh()

    def set_step_range(self, total_steps: int) -> None:
        """The run's length is known (RunStarted): fix the step axes to it, so they never change."""
        self._total_steps = max(1, int(total_steps))
        for plot in (self.loss_plot, self.acc_plot):
            plot.setXRange(0, self._total_steps, padding=0.02)

    def add_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, raw, smooth in (
            ("loss", self._steps_loss, self._smooth_loss),
            ("accuracy", self._steps_acc, self._smooth_acc),
        ):
            value = metrics.get(key)
            if value is None:
                continue
            raw.append(step, value)
            if math.isfinite(value):
                avg, weight = self._ema[key]
                avg = SMOOTHING * avg + (1 - SMOOTHING) * value
                weight = SMOOTHING * weight + (1 - SMOOTHING)
                self._ema[key] = (avg, weight)
                smooth.append(step, avg / weight)
        self._dirty_steps = True

    def add_evaluation(self, step: int, val: dict[str, float]) -> None:
        if "loss" in val:
            self._val_loss.append(step, val["loss"])
        if "accuracy" in val:
            self._val_acc.append(step, val["accuracy"])
        self._dirty_eval = True

    def set_margins(self, comparison_ids: np.ndarray, split: np.ndarray, margins: np.ndarray) -> None:
        """The per-pair margins of the latest evaluation; "unlabelled" comparisons are left out."""
        split = np.asarray(split)
        if split.dtype == object:  # (from a DataFrame) compare as fixed-width strings: 20x faster
            split = split.astype(str)
        keep = split != "unlabelled"
        self._margins = (np.asarray(comparison_ids)[keep], split[keep] == "val", np.asarray(margins, dtype=float)[keep])
        self._dirty_margins = True

    # ------------------------------------------------------------------ drawing (from the owner's timer)
    def suggested_interval(self) -> int:
        """Milliseconds between refreshes: 100, more when painting is slow (a busy machine), so that
        painting takes at most about an eighth of the GUI thread's time."""
        return int(min(MAX_REFRESH_MS, max(REFRESH_MS, 8 * self.view.paint_ms)))

    def refresh(self, force: bool = True) -> bool:
        """Push what changed since the last call to the plot items; True when anything was.

        ``force=False`` (the live timer) spreads the work: new margins are drawn at most every
        ``MARGINS_EVERY_S``, and a refresh that draws them leaves the step curves to the next one;
        ``pending()`` says whether something is still waiting."""
        now = time.monotonic()
        if (
            self._dirty_margins
            and self._margins is not None
            and (force or now - self._margins_drawn_at >= MARGINS_EVERY_S)
        ):
            self._draw_margins(*self._margins)
            self._dirty_margins, self._margins_drawn_at = False, now
            self.refreshes += 1
            if not force:
                return True
        changed = False
        steps_changed = self._dirty_steps or self._dirty_eval
        if self._dirty_steps:
            self.train_loss.setData(*self._steps_loss.data())
            self.train_acc.setData(*self._steps_acc.data())
            self.train_loss_smooth.setData(*self._smooth_loss.data())
            self.train_acc_smooth.setData(*self._smooth_acc.data())
            self._dirty_steps, changed = False, True
        if self._dirty_eval:
            self.val_loss.setData(*self._val_loss.data())
            self.val_acc.setData(*self._val_acc.data())
            self._dirty_eval, changed = False, True
        if steps_changed:
            self._fit_steps()
        if changed:
            self.refreshes += 1
        return changed

    def pending(self) -> bool:
        """Whether a live refresh left something to draw."""
        return self._dirty_steps or self._dirty_eval or (self._dirty_margins and self._margins is not None)

    def _fit_steps(self) -> None:
        xs = [s.data()[0] for s in (self._steps_loss, self._val_loss, self._steps_acc, self._val_acc) if s.n]
        last = max((float(x[-1]) for x in xs), default=0.0)
        top = max(self._total_steps, last, 1.0)
        if self._total_steps <= 0:  # a stored run: fit what there is
            top = max(last, 1.0)
        for plot in (self.loss_plot, self.acc_plot):
            _fit(plot, "x", 0.0, top, pad=0.02, shrink=False)
        ys = [s.data()[1] for s in (self._steps_loss, self._val_loss) if s.n]
        finite = [y[np.isfinite(y)] for y in ys]
        finite = [y for y in finite if len(y)]
        hi = max([float(y.max()) for y in finite] + [LOG2 * 1.02])  # the chance line stays in sight
        lo = min([float(y.min()) for y in finite] + [LOG2 * 0.9])
        _fit(self.loss_plot, "y", max(0.0, lo), hi, pad=0.08)

    def _draw_margins(self, cids: np.ndarray, is_val: np.ndarray, margins: np.ndarray) -> None:
        finite = np.isfinite(margins)
        if not finite.all():
            cids, is_val, margins = cids[finite], is_val[finite], margins[finite]
        order = np.argsort(margins)  # quicksort: 3x faster than a stable sort at 100k; ties may go either way
        self.sorted_cids = cids[order]
        self.sorted_margins = sm = margins[order]
        self.sorted_is_val = sv = is_val[order]
        n = len(margins)
        self._set_hover(None)
        if n == 0:
            for item in (self.hist_train, self.hist_val):
                item.setData([0.0, 1.0], [0.0])  # stepMode needs len(x) == len(y) + 1
                item.setVisible(False)
            self.margin_curve.setData([], [])
            self.wrong_curve.setData([], [])
            self.wrong_points.setData([], [])
            self.margin_note.setText("")
            return
        # Histogram: shared bins, train and validation drawn as step curves; counted on the sorted values
        # (two binary searches per edge instead of a pass over all of them).
        lo, hi = float(sm[0]), float(sm[-1])
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, int(np.clip(np.sqrt(n) * 2, 10, 60)) + 1)
        top = 1.0
        for item, part in ((self.hist_train, sm[~sv]), (self.hist_val, sm[sv])):
            counts = _sorted_histogram(part, edges)
            item.setData(edges, counts.astype(float))
            item.setVisible(bool(len(part)))
            top = max(top, float(counts.max()) if len(counts) else 1.0)
        _fit(self.hist_plot, "x", min(lo, 0.0), max(hi, 0.0), pad=0.05)
        _fit(self.hist_plot, "y", 0.0, top, pad=0.05)
        _fit(self.margin_plot, "x", 0.0, float(max(n - 1, 1)), pad=0.02)
        _fit(self.margin_plot, "y", min(lo, 0.0), max(hi, 0.0), pad=0.05)
        # The sorted curve, downsampled (monotonic, so keeping evenly spaced ranks loses nothing visible).
        idx = _even_indices(n, MAX_CURVE_POINTS)
        n_wrong = int(np.searchsorted(sm, 0.0, side="right"))  # margin <= 0
        self.margin_curve.setData(idx.astype(float), sm[idx])
        if n_wrong:
            w = _even_indices(n_wrong, MAX_CURVE_POINTS // 2)
            if n_wrong > 1 and w[-1] != n_wrong - 1:
                w = np.append(w, n_wrong - 1)
            self.wrong_curve.setData(w.astype(float), sm[w])
            k = min(n_wrong, MAX_SCATTER)
            self.wrong_points.setData(x=np.arange(k, dtype=float), y=sm[:k])
        else:
            self.wrong_curve.setData([], [])
            self.wrong_points.setData([], [])
        self.margin_note.setText(f"{n_wrong:,} of {n:,} mispredicted ({n_wrong / n:.1%})")
        self._place_note()

    def _place_note(self) -> None:
        rect = self.margin_plot.vb.boundingRect()
        self.margin_note.setPos(rect.right() - 6, rect.bottom() - 4)

    # ------------------------------------------------------------------ hover and click
    def pick(self, scene_pos: QPointF) -> int | None:
        """The rank (index into ``sorted_cids``) of the pair drawn nearest to ``scene_pos``, if near enough."""
        n = len(self.sorted_margins)
        vb = self.margin_plot.vb
        if n == 0 or not vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = vb.mapSceneToView(scene_pos)
        px, py = vb.viewPixelSize()
        if not (px > 0 and py > 0):
            return None
        reach = PICK_RADIUS_PX * px
        lo = max(0, math.floor(p.x() - reach))
        hi = min(n, math.ceil(p.x() + reach) + 1)
        if lo >= hi:
            return None
        xs = np.arange(lo, hi, dtype=float)
        d2 = ((xs - p.x()) / px) ** 2 + ((self.sorted_margins[lo:hi] - p.y()) / py) ** 2
        k = int(np.argmin(d2))
        return lo + k if d2[k] <= PICK_RADIUS_PX**2 else None

    def scene_pos_of(self, comparison_id: int) -> QPointF | None:
        """Where a pair is drawn, in scene coordinates (tests click there)."""
        hits = np.flatnonzero(self.sorted_cids == comparison_id)
        if not len(hits):
            return None
        rank = int(hits[0])
        self.margin_plot.vb.prepareForPaint()  # apply a pending auto-range, as the next paint would
        return self.margin_plot.vb.mapViewToScene(QPointF(float(rank), float(self.sorted_margins[rank])))

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        self._set_hover(self.pick(scene_pos))

    def _on_mouse_clicked(self, event: Any) -> None:  # pyqtgraph's MouseClickEvent (pyqtgraph has no types)
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        rank = self.pick(event.scenePos())
        if rank is not None:
            event.accept()
            self.pair_clicked.emit(int(self.sorted_cids[rank]))

    def _set_hover(self, rank: int | None) -> None:
        if rank == self._hover_index:
            return
        self._hover_index = rank
        if rank is None:
            self.hover_point.setData([], [])
            self.hover_label.hide()
            self.view.setToolTip("")
            return
        cid = int(self.sorted_cids[rank])
        margin = float(self.sorted_margins[rank])
        split = "val" if self.sorted_is_val[rank] else "train"
        text = f"#{cid} · {split} · margin {margin:+.3f}" + ("  (mispredicted)" if margin <= 0 else "")
        if self.describe_pair is not None:
            try:
                extra = self.describe_pair(cid)
            except Exception:  # noqa: BLE001 - a hover never fails loudly
                extra = ""
            if extra:
                text += "\n" + "\n".join(textwrap.wrap(extra, 46, max_lines=2, placeholder=" …"))
        self.hover_point.setData([float(rank)], [margin])
        self.hover_label.setText(text)
        self.hover_label.setPos(float(rank), margin)
        # Keep the label inside the plot: anchor it on the side with room.
        (x0, x1), (y0, y1) = self.margin_plot.vb.viewRange()
        right = rank < x0 + 0.55 * (x1 - x0)
        up = margin < y0 + 0.6 * (y1 - y0)
        self.hover_label.setAnchor((0 if right else 1, 1 if up else 0))
        self.hover_label.show()


class _TimedLayoutWidget(pg.GraphicsLayoutWidget):
    """Remembers how long its paints take (a moving average, in ms)."""

    paint_ms = 0.0

    def paintEvent(self, event):  # noqa: N802
        t0 = time.perf_counter()
        super().paintEvent(event)
        ms = (time.perf_counter() - t0) * 1000
        self.paint_ms = ms if not self.paint_ms else 0.7 * self.paint_ms + 0.3 * ms


def _fit(plot: pg.PlotItem, axis: str, lo: float, hi: float, pad: float = 0.05, shrink: bool = True) -> None:
    """Set an axis range that holds [lo, hi]; leave it alone when it already does and is not more than
    about twice too wide (so that the axis, and its cached tick labels, rarely change)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    (x0, x1), (y0, y1) = plot.vb.viewRange()
    a, b = (x0, x1) if axis == "x" else (y0, y1)
    span = hi - lo
    inside = a <= lo and hi <= b
    too_wide = shrink and (b - a) > 2.5 * span * (1 + 2 * pad)
    if inside and not too_wide:
        return
    # Leave room to grow: a little more than asked on the open sides.
    lo2, hi2 = lo - pad * span, hi + pad * span
    if axis == "x":
        plot.setXRange(lo2, hi2, padding=0)
    else:
        plot.setYRange(lo2, hi2, padding=0)


def _sorted_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for sorted ``values`` (the last bin includes its right edge)."""
    idx = np.searchsorted(values, edges, side="left")
    idx[-1] = np.searchsorted(values, edges[-1], side="right")
    return np.diff(idx)


def _even_indices(n: int, most: int) -> np.ndarray:
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))


def _alpha(color: str, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def _with_alpha(color: QColor, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c
