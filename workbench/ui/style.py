"""A calm, light, neutral look: Fusion with a soft palette and a small style sheet."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

# Colours used by code as well as by the style sheet.
WINDOW = "#f4f5f7"
PANEL = "#ffffff"
BORDER = "#dcdfe4"
TEXT = "#1f2328"
MUTED = "#5f6771"
ACCENT = "#3565c8"
ACCENT_SOFT = "#e7eefb"
CODE_BG = "#f3f4f6"
INLINE_CODE_BG = "#eef0f3"
ROLE_BG = {"user": "#f1f4f9", "human": "#f1f4f9", "system": "#f6f3ea", "assistant": "#ffffff"}
DIFF_BG = "#fbe6a6"
PREVIOUS = "#c27c0e"

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QWidget#StartPage, QWidget#Workspace {{ background: {WINDOW}; }}
QListWidget#Nav {{
    background: #eceef2; border: none; border-right: 1px solid {BORDER};
    padding-top: 8px; outline: none;
}}
QListWidget#Nav::item {{ padding: 9px 18px; color: {MUTED}; border-radius: 6px; margin: 1px 6px; }}
QListWidget#Nav::item:selected {{ background: {PANEL}; color: {TEXT}; font-weight: 600; }}
QListWidget#Nav::item:hover:!selected {{ background: #e3e6eb; }}
QFrame#Card {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 8px; }}
QFrame#Card[current="true"] {{ border: 1px solid #a9bde6; }}
QLabel#CardTitle {{ color: {MUTED}; font-weight: 600; }}
QLabel#KeyHint {{
    color: {MUTED}; background: #eef0f3; border: 1px solid {BORDER}; border-radius: 4px;
    padding: 0px 5px; font-size: 9pt;
}}
QLabel#Muted, QLabel#Progress {{ color: {MUTED}; }}
QLabel#Title {{ font-size: 20pt; font-weight: 600; color: {TEXT}; }}
QLabel#Subtitle {{ color: {MUTED}; font-size: 11pt; }}
QLabel#Section {{ font-weight: 600; color: {TEXT}; font-size: 10.5pt; }}
QLabel#Banner {{
    background: #fdf3e1; color: #6b4a0b; border: 1px solid #f0d9a8; border-radius: 6px; padding: 5px 10px;
}}
QLabel#Error {{ color: #a8321e; }}
QTextBrowser, QPlainTextEdit, QTextEdit {{
    background: {PANEL}; border: none; selection-background-color: #c9d8f5; selection-color: {TEXT};
}}
QPushButton {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; padding: 5px 12px; color: {TEXT};
}}
QPushButton:hover {{ background: #f7f8fa; border-color: #c4c9d1; }}
QPushButton:pressed {{ background: #eceef2; }}
QPushButton:checked {{ background: {ACCENT_SOFT}; border-color: #9db5e6; color: #1d4596; }}
QPushButton:disabled {{ color: #a3a9b1; background: #f7f8fa; }}
QPushButton:focus {{ border-color: {ACCENT}; }}
QPushButton#Choice {{ padding: 8px 14px; font-weight: 600; }}
QPushButton#Primary {{ background: {ACCENT}; color: white; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#Primary:hover {{ background: #2d59b3; }}
QPushButton[previous="true"] {{ border: 2px dashed {PREVIOUS}; }}
QPushButton#Strength {{ padding: 4px 10px; border-radius: 0px; }}
QPushButton#StatusButton {{ border: none; background: transparent; color: {MUTED}; padding: 2px 8px; }}
QPushButton#StatusButton:hover {{ color: {TEXT}; background: #e7e9ed; }}
QStatusBar {{ background: #eceef2; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QStatusBar::item {{ border: none; }}
QSplitter::handle {{ background: transparent; }}
QSplitter::handle:hover {{ background: #d6dae0; }}
QLineEdit {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 5px; padding: 4px 8px;
}}
QLineEdit:focus {{ border-color: {ACCENT}; }}
QProgressBar {{
    background: #e6e8ec; border: none; border-radius: 3px; height: 6px; text-align: center; color: transparent;
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QProgressBar#Import {{ height: 16px; color: {TEXT}; }}
QTableWidget {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; gridline-color: #eceef1;
    selection-background-color: {ACCENT_SOFT}; selection-color: {TEXT};
}}
QHeaderView::section {{
    background: #f7f8fa; border: none; border-bottom: 1px solid {BORDER}; padding: 6px 8px;
    color: {MUTED}; font-weight: 600;
}}
QGroupBox {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 8px; margin-top: 14px;
    padding: 14px 12px 10px 12px;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {TEXT}; font-weight: 600; }}
QListWidget#RankList {{ background: {PANEL}; border: none; outline: none; padding: 2px; }}
QListWidget#Recent {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 8px; outline: none; padding: 4px;
}}
QListWidget#Recent::item {{ padding: 8px 10px; border-radius: 6px; }}
QListWidget#Recent::item:selected, QListWidget#RankList::item:selected {{ background: {ACCENT_SOFT}; color: {TEXT}; }}
QListWidget#RankList::item {{ padding: 8px 10px; border-bottom: 1px solid #eef0f3; }}
QToolTip {{ background: {PANEL}; color: {TEXT}; border: 1px solid {BORDER}; padding: 4px; }}
/* No stock icons on dialog buttons (a green tick on OK reads as noise). In the style sheet, not in a Python
   QProxyStyle: Qt asks its style for hints hundreds of times a paint, and each answer from Python cost the
   GUI thread (16 ms of the Inspect view's first show). */
QDialogButtonBox {{ dialogbuttonbox-buttons-have-icons: 0; }}
"""


def apply(app: QApplication) -> None:
    """Fusion, a light palette and the style sheet; a readable default font."""
    app.setStyle(QStyleFactory.create("Fusion"))
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, QColor(WINDOW))
    pal.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    pal.setColor(QPalette.ColorRole.Base, QColor(PANEL))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#f8f9fb"))
    pal.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    pal.setColor(QPalette.ColorRole.Button, QColor(PANEL))
    pal.setColor(QPalette.ColorRole.ButtonText, QColor(TEXT))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor(PANEL))
    pal.setColor(QPalette.ColorRole.ToolTipText, QColor(TEXT))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8a919a"))
    pal.setColor(QPalette.ColorRole.Link, QColor(ACCENT))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#a3a9b1"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#a3a9b1"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#a3a9b1"))
    app.setPalette(pal)
    font = QFont(app.font())
    font.setFamilies(["Inter", "Noto Sans", "Segoe UI", "Helvetica Neue", "DejaVu Sans", "Sans Serif"])
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)


def reading_font(base: QFont | None = None) -> QFont:
    """The font for dataset text: a little larger than the interface."""
    font = QFont(base) if base is not None else QFont()
    font.setFamilies(["Inter", "Noto Sans", "Segoe UI", "Helvetica Neue", "DejaVu Sans", "Sans Serif"])
    font.setPointSizeF(max(10.5, (base.pointSizeF() if base is not None else 10) + 0.5))
    return font
