"""The app's look: dialog buttons carry no stock icons, set in the style sheet (no Python style in paints)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox, QProxyStyle, QStyle


def test_dialog_buttons_have_no_icons_and_the_style_is_qts_own(qtbot, qapp):
    box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    qtbot.addWidget(box)
    box.show()
    assert box.style().styleHint(QStyle.StyleHint.SH_DialogButtonBox_ButtonsHaveIcons, None, box) == 0
    assert all(b.icon().isNull() for b in box.buttons())
    # Qt asks the style for hints hundreds of times a paint: none of them may go through Python.
    assert not isinstance(qapp.style(), QProxyStyle)
