"""A QAbstractTableModel over a pandas DataFrame that stays fast at 100,000 rows.

- ``data()`` does no formatting: each column's display strings are computed once, vectorised, the
  first time the column is drawn, and ``data()`` indexes into that array.
- Filtering and sorting work on row positions: ``set_filter(mask)`` keeps the rows where a boolean
  array is true, ``sort(column)`` orders them with one numpy argsort over the column's values. There is
  no QSortFilterProxyModel (which would call ``data()`` for every row to sort).
- ``update_rows`` changes a few rows in place (after a relabel) and emits ``dataChanged`` for them only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

Formatter = Callable[[pd.Series], "pd.Series | np.ndarray"]


@dataclass
class Column:
    """One column on screen: the frame column it shows, its title, and how it is drawn and sorted."""

    key: str
    title: str
    #: vectorised: the whole column (a Series) in, strings out; default ``astype(str)``
    fmt: Formatter | None = None
    #: the frame column to sort by (default ``key``)
    sort_key: str | None = None
    align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
    tooltip: str = ""
    width: int = 90
    #: a boolean frame column: rows where it is true are drawn in ``alert_color``
    alert: str | None = None


class FrameModel(QAbstractTableModel):
    """Rows of a DataFrame, filtered and sorted by position; one row per frame row."""

    sorted = Signal(int, object)  # column, Qt.SortOrder

    def __init__(self, columns: list[Column], parent: QObject | None = None):
        super().__init__(parent)
        self.columns = columns
        self.frame = pd.DataFrame()
        self.alert_color = QColor("#c0392b")
        self._order = np.zeros(0, dtype=np.int64)  # all frame positions in the current sort order
        self._mask = np.zeros(0, dtype=bool)
        self._rows = np.zeros(0, dtype=np.int64)  # the visible frame positions, sorted
        self._strings: dict[int, np.ndarray] = {}
        self._alerts: dict[int, np.ndarray] = {}
        self.sort_column = -1
        self.sort_order = Qt.SortOrder.AscendingOrder

    # ------------------------------------------------------------------ contents
    def set_frame(
        self, frame: pd.DataFrame, sort_column: int | None = None, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder
    ) -> None:
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self._strings.clear()
        self._alerts.clear()
        n = len(self.frame)
        self._mask = np.ones(n, dtype=bool)
        self._order = np.arange(n, dtype=np.int64)
        if sort_column is not None:
            self.sort_column, self.sort_order = sort_column, order
        if self.sort_column >= 0 and n:
            self._order = self._sorted_positions(self.sort_column, self.sort_order)
        self._rows = self._order
        self.endResetModel()

    def set_filter(self, mask: np.ndarray | None) -> None:
        """Show only the frame rows where ``mask`` is true (None: all), in the current order."""
        n = len(self.frame)
        mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self.beginResetModel()
        self._mask = mask
        self._rows = self._order[mask[self._order]]
        self.endResetModel()

    def update_rows(self, positions: np.ndarray | list[int], changes: dict[str, object]) -> None:
        """Set frame columns at frame ``positions`` and redraw those rows (filters are not re-applied)."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return
        for key, value in changes.items():
            col = self.frame.columns.get_loc(key)
            self.frame.iloc[positions, col] = value
        for i, c in enumerate(self.columns):  # recompute the changed cells only, not whole columns
            if c.key in changes and i in self._strings:
                sub = self.frame[c.key].iloc[positions]
                self._strings[i][positions] = np.asarray(c.fmt(sub) if c.fmt else sub.astype(str), dtype=object)
            if c.alert in changes and i in self._alerts:
                self._alerts[i][positions] = self.frame[c.alert].to_numpy(dtype=bool)[positions]
        for row in np.flatnonzero(np.isin(self._rows, positions)):
            self.dataChanged.emit(self.index(int(row), 0), self.index(int(row), len(self.columns) - 1))

    def refresh_columns(self, keys: set[str]) -> None:
        """Frame columns ``keys`` were changed wholesale: recompute their strings, redraw."""
        for i, c in enumerate(self.columns):
            if c.key in keys or c.alert in keys:
                self._strings.pop(i, None)
                self._alerts.pop(i, None)
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(self.columns) - 1))

    def set_columns(self, columns: list[Column]) -> None:
        self.beginResetModel()
        self.columns = columns
        self._strings.clear()
        self._alerts.clear()
        if self.sort_column >= len(columns):
            self.sort_column = -1
        self.endResetModel()

    # ------------------------------------------------------------------ positions
    def frame_position(self, row: int) -> int:
        return int(self._rows[row])

    def row_of_position(self, position: int) -> int:
        hits = np.flatnonzero(self._rows == position)
        return int(hits[0]) if len(hits) else -1

    def visible_positions(self) -> np.ndarray:
        return self._rows

    def value(self, row: int, key: str) -> object:
        return self.frame[key].iat[self.frame_position(row)]

    # ------------------------------------------------------------------ Qt model
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        c = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._column_strings(c)[self._rows[index.row()]]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(self.columns[c].align)
        if role == Qt.ItemDataRole.ForegroundRole and self.columns[c].alert:
            return self.alert_color if self._column_alerts(c)[self._rows[index.row()]] else None
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section].tooltip or None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(self.columns[section].align)
        return None

    def flags(self, index):
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable if index.isValid() else Qt.ItemFlag.NoItemFlags

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        self.layoutAboutToBeChanged.emit()
        old_rows = self._rows
        persistent = self.persistentIndexList()
        self.sort_column, self.sort_order = column, order
        self._order = self._sorted_positions(column, order) if len(self.frame) else self._order
        self._rows = self._order[self._mask[self._order]]
        if persistent:  # keep the selection on the same frame rows
            where = np.full(len(self.frame), -1, dtype=np.int64)
            where[self._rows] = np.arange(len(self._rows))
            for idx in persistent:
                row = int(where[old_rows[idx.row()]]) if 0 <= idx.row() < len(old_rows) else -1
                self.changePersistentIndex(idx, self.index(row, idx.column()) if row >= 0 else QModelIndex())
        self.layoutChanged.emit()
        self.sorted.emit(column, order)

    # ------------------------------------------------------------------ vectorised helpers
    def _sorted_positions(self, column: int, order: Qt.SortOrder) -> np.ndarray:
        col = self.columns[column]
        values = self.frame[col.sort_key or col.key]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            arr = values.to_numpy(dtype=float, na_value=np.nan)
            keys = -arr if order == Qt.SortOrder.DescendingOrder else arr
            # NaN last either way
            return np.argsort(np.where(np.isnan(keys), np.inf, keys), kind="stable").astype(np.int64)
        arr = values.astype(str).str.lower().to_numpy(dtype=object)
        pos = np.argsort(arr, kind="stable").astype(np.int64)
        return pos[::-1].copy() if order == Qt.SortOrder.DescendingOrder else pos

    def _column_strings(self, c: int) -> np.ndarray:
        strings = self._strings.get(c)
        if strings is None:
            col = self.columns[c]
            series = self.frame[col.key]
            if col.fmt is not None:
                out = col.fmt(series)
            elif series.dtype == object:
                out = series.to_numpy(dtype=object)
            else:
                out = series.astype(str)
            strings = np.array(out, dtype=object, copy=True)  # writable: update_rows changes cells
            self._strings[c] = strings
        return strings

    def _column_alerts(self, c: int) -> np.ndarray:
        alerts = self._alerts.get(c)
        if alerts is None:
            alerts = np.array(self.frame[self.columns[c].alert].to_numpy(dtype=bool), copy=True)
            self._alerts[c] = alerts
        return alerts


def fixed(decimals: int = 3, signed: bool = False) -> Formatter:
    """A number formatter for a whole column (NaN shown as an em dash); about 0.5 µs a value."""
    spec = f"{'+' if signed else ''}.{decimals}f"

    def fmt(series: pd.Series) -> np.ndarray:
        arr = series.to_numpy(dtype=float, na_value=np.nan)
        out = np.array([format(x, spec) for x in arr.tolist()], dtype=object)
        out[np.isnan(arr)] = "—"
        return out

    return fmt


def as_text(series: pd.Series) -> np.ndarray:
    """Strings as they are (a column the loader already formatted)."""
    return series.to_numpy(dtype=object)
