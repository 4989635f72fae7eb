"""Persistent user settings (QSettings, organisation "PreferenceWorkbench").

Tests and portable installs point the settings at a folder with ``WORKBENCH_SETTINGS_DIR``: the
settings then live in ``<dir>/workbench.ini`` instead of the platform's usual place.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANISATION = "PreferenceWorkbench"
APPLICATION = "Preference Workbench"
MAX_RECENT = 8


def settings() -> QSettings:
    folder = os.environ.get("WORKBENCH_SETTINGS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "workbench.ini"), QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)


def annotator() -> str:
    return str(settings().value("annotator", "") or "").strip()


def set_annotator(name: str) -> None:
    s = settings()
    s.setValue("annotator", name.strip())
    s.sync()


def recent_projects() -> list[str]:
    value = settings().value("recent_projects", [])
    if isinstance(value, str):  # QSettings gives a lone string back for a one-item list
        value = [value]
    if not isinstance(value, (list, tuple)):  # None (an empty list read back), or not ours
        return []
    return [str(v) for v in value if v]


def add_recent_project(path: str | os.PathLike) -> None:
    path = str(Path(path).resolve())
    items = [p for p in recent_projects() if p != path]
    items.insert(0, path)
    s = settings()
    s.setValue("recent_projects", items[:MAX_RECENT])
    s.sync()


def remove_recent_project(path: str) -> None:
    s = settings()
    s.setValue("recent_projects", [p for p in recent_projects() if p != path])
    s.sync()


def value(key: str, default: object = None) -> object:
    return settings().value(key, default)


def set_value(key: str, data: object) -> None:
    s = settings()
    s.setValue(key, data)
    s.sync()


def bytes_value(key: str) -> QByteArray | None:
    data = settings().value(key)
    return data if isinstance(data, QByteArray) and not data.isEmpty() else None


def int_list(key: str) -> list[int] | None:
    """A list of ints (splitter sizes); None when absent or unreadable."""
    data = settings().value(key)
    if data is None:
        return None
    if isinstance(data, (str, int)):
        data = [data]
    try:
        out = [int(v) for v in data]
    except (TypeError, ValueError):
        return None
    return out or None
