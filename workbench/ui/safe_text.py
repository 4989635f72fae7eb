"""Dataset text shown safely: Markdown and code rendered, never live HTML, never a resource loaded.

Text from a dataset is data. It is parsed with Qt's Markdown importer with raw HTML turned off (tags
appear as the characters they are), images are replaced by a text placeholder, links are drawn but
never followed, and both the document and the browser refuse every resource request, so nothing is
ever read from the network or the disk because of what a dataset says.

Short data (names, keys, file names, error messages) goes into labels, tooltips and message boxes as
plain text: :func:`tooltip`, :func:`plain` and :func:`message_box` are the one way to put it there, since
Qt guesses rich text (``Qt.mightBeRichText``) for any of them left on its default format.
"""

from __future__ import annotations

import difflib
import html
import re

from PySide6 import QtGui
from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QLabel, QMessageBox, QTextBrowser, QWidget

from workbench.core.records import Text
from workbench.core.text import terminal_safe
from workbench.ui import style

MARKDOWN = QTextDocument.MarkdownFeature.MarkdownNoHTML
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


class SafeDocument(QTextDocument):
    """A QTextDocument that loads no resource of any kind (QTextDocument's default reads local files)."""

    def loadResource(self, type_: int, name: QUrl | str) -> None:  # noqa: N802 (Qt's name)
        return None


class SafeTextBrowser(QTextBrowser):
    """A read-only view of dataset text: no link followed, no resource loaded."""

    painted = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        # Mouse selection only: a browser that takes keyboard selection would eat the arrow keys
        # that the Label view uses as shortcuts.
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setDocument(SafeDocument(self))
        self.document().setDocumentMargin(14)
        self.resource_requests = 0  # for tests: how often something asked for a resource

    def loadResource(self, type_: int, name: QUrl | str) -> None:  # noqa: N802
        self.resource_requests += 1
        return None

    def setSource(self, *args, **kwargs):  # noqa: N802 - never navigate anywhere
        return None

    def paintEvent(self, event):  # noqa: N802
        super().paintEvent(event)
        self.painted.emit()

    def set_text(self, text: Text | str, font: QFont | None = None) -> None:
        self.setDocument(build_document(text, font or style.reading_font(self.font()), parent=self))


# ------------------------------------------------------------------ short data in labels, tooltips, dialogs
def tooltip(text: object) -> str:
    """A tooltip that shows ``text`` as written.

    Qt shows a tooltip as rich text whenever ``Qt.mightBeRichText`` says so (a tag, or ``&lt;``, in its
    first line), and tooltips have no format setting: such text is escaped and wrapped, so that its
    characters are shown, not interpreted; any other text is left as it is.
    """
    text = str(text)
    if not QtGui.Qt.mightBeRichText(text):  # Qt's own test (in QtGui's Qt namespace)
        return text
    return "<p style='white-space:pre-wrap'>" + html.escape(text, quote=False) + "</p>"


def name_text(text: object) -> str:
    """A name from data (project, annotator, file) for one line of a label: control and bidi characters as
    visible escapes, as on the terminal, so that a name cannot reorder or hide the text around it."""
    return terminal_safe(str(text))


def button_text(text: object) -> str:
    """A name for a button's text: ``&`` marks a keyboard mnemonic there, so it is doubled to show as itself."""
    return name_text(text).replace("&", "&&")


def window_title(text: object) -> str:
    """A name for a window title: Qt reads ``[*]`` there as the modified-marker placeholder; ``[*][*]`` shows
    it as written."""
    return name_text(text).replace("[*]", "[*][*]")


def plain(label: QLabel) -> QLabel:
    """``label`` set to show its text as plain text (a label on Qt's AutoText renders tags in data)."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def message_box(
    icon: QMessageBox.Icon,
    title: str,
    text: str,
    informative: str = "",
    detail: str = "",
    parent: QWidget | None = None,
    buttons: QMessageBox.StandardButton = QMessageBox.StandardButton.Ok,
) -> QMessageBox:
    """A message box whose text, informative text and details are plain text, for errors that quote data.

    Shown by the caller (``open()`` or ``exec()``). A plain-text QMessageBox does not wrap its text, so
    the labels are set to wrap, as they would for rich text.
    """
    box = QMessageBox(icon, title, "", buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # the informative label follows the box's format
    box.setText(text)
    if informative:
        box.setInformativeText(informative)
    if detail:
        box.setDetailedText(detail)  # a plain-text box of its own
    for label in box.findChildren(QLabel):
        if label.text():
            label.setWordWrap(True)
    return box


# ------------------------------------------------------------------ building documents
_STRUCTURE = re.compile(r"^(\s|[-*+] |\d{1,9}[.)] |[#>|]|(-{3,}|\*{3,}|_{3,}|={3,})\s*$)")


def prepare_markdown(text: str) -> str:
    """Keep the author's line breaks: a single newline between two plain lines becomes a hard break.

    Lines that carry Markdown structure (list items and their indented continuations, headings,
    quotes, tables, rules, code) are left alone: a hard break there would split a list item in two.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    in_fence = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (
            not in_fence
            and line.strip()
            and nxt.strip()
            and not line.endswith("  ")
            and not _STRUCTURE.match(line)
            and not _STRUCTURE.match(nxt)
            and not _FENCE.match(nxt)
        ):
            line += "  "
        out.append(line)
    return "\n".join(out)


def _monospace() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setFamilies(["DejaVu Sans Mono", "Noto Sans Mono", "Menlo", "Consolas", "monospace"])
    return font


def _polish(doc: QTextDocument, start: int = 0) -> None:
    """Style code, neutralise images and mark links as inert, from position ``start`` on."""
    mono = _monospace()
    code_blocks: list[tuple[int, int]] = []
    inline_code: list[tuple[int, int]] = []
    links: list[tuple[int, int, str]] = []
    images: list[tuple[int, int, str]] = []
    headings: list[tuple[int, int, int]] = []
    block = doc.findBlock(start)
    while block.isValid():
        fmt = block.blockFormat()
        if fmt.headingLevel() > 0:
            headings.append((block.position(), block.length() - 1, fmt.headingLevel()))
        is_code = fmt.nonBreakableLines() or fmt.hasProperty(QTextFormat.Property.BlockCodeFence)
        if is_code:
            code_blocks.append((block.position(), block.length() - 1))
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            cf = frag.charFormat()
            span = (frag.position(), frag.length())
            if cf.isImageFormat():
                images.append((*span, cf.toImageFormat().name()))
            elif cf.isAnchor():
                links.append((*span, cf.anchorHref()))
            elif cf.fontFixedPitch() and not is_code:
                inline_code.append(span)
            it += 1
        block = block.next()

    cursor = QTextCursor(doc)

    def select(pos: int, length: int) -> None:
        cursor.setPosition(pos)
        cursor.setPosition(pos + length, QTextCursor.MoveMode.KeepAnchor)

    base_size = doc.defaultFont().pointSizeF()
    code_size = round(base_size * 0.9, 1) if base_size > 0 else 9.5
    code_char = QTextCharFormat()
    code_char.setFontFamilies(mono.families())
    code_char.setFontFixedPitch(True)
    code_char.setFontPointSize(code_size)
    for pos, length in code_blocks:
        cursor.setPosition(pos)
        fmt = cursor.blockFormat()
        fmt.setBackground(QColor(style.CODE_BG))
        fmt.setLeftMargin(max(fmt.leftMargin(), 4))
        # Wrap long code lines: side by side, a horizontal scroll bar hides half of a line.
        fmt.setNonBreakableLines(False)
        cursor.setBlockFormat(fmt)
        select(pos, length)
        cursor.mergeCharFormat(code_char)
    # Qt draws h1 at twice the text size; dataset text reads better with quieter headings.
    for pos, length, level in headings:
        select(pos, length)
        heading = QTextCharFormat()
        heading.setProperty(QTextFormat.Property.FontSizeAdjustment, 1 if level <= 2 else 0)
        heading.setFontWeight(QFont.Weight.DemiBold)
        cursor.mergeCharFormat(heading)
    inline = QTextCharFormat()
    inline.setBackground(QColor(style.INLINE_CODE_BG))
    inline.setFontFamilies(mono.families())
    inline.setFontPointSize(code_size)
    for pos, length in inline_code:
        select(pos, length)
        cursor.mergeCharFormat(inline)
    for pos, length, href in links:
        select(pos, length)
        tip = QTextCharFormat()
        tip.setToolTip(f"Link, not followed: {href}")
        cursor.mergeCharFormat(tip)
    # Replace images last, back to front, so earlier positions stay valid.
    placeholder = QTextCharFormat()
    placeholder.setForeground(QColor(style.MUTED))
    placeholder.setFontItalic(True)
    for pos, length, name in reversed(images):
        select(pos, length)
        cursor.insertText(f"[image not loaded: {name}]", placeholder)


def _base_document(font: QFont, parent: QObject | None = None) -> SafeDocument:
    doc = SafeDocument(parent)
    doc.setDefaultFont(font)
    doc.setDocumentMargin(14)
    doc.setUndoRedoEnabled(False)
    return doc


def build_document(text: Text | str, font: QFont, parent: QObject | None = None) -> SafeDocument:
    """A document for a prompt or response: Markdown, or one block per turn for a conversation."""
    if isinstance(text, str):
        text = Text(text)
    doc = _base_document(font, parent)
    if text.messages is None:
        doc.setMarkdown(prepare_markdown(text.text), MARKDOWN)
        _polish(doc)
        return doc
    cursor = QTextCursor(doc)
    role_fmt = QTextCharFormat()
    role_fmt.setFontWeight(QFont.Weight.DemiBold)
    role_fmt.setForeground(QColor(style.MUTED))
    role_fmt.setFontPointSize(max(8.0, font.pointSizeF() - 2))
    role_fmt.setFontCapitalization(QFont.Capitalization.AllUppercase)
    role_fmt.setFontLetterSpacing(106)
    for i, message in enumerate(text.messages):
        role = str(message.get("role", "")).strip() or "message"
        frame = QTextFrameFormat()
        frame.setBackground(QColor(style.ROLE_BG.get(role.lower(), "#f7f7f9")))
        frame.setBorder(1)
        frame.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        frame.setBorderBrush(QColor(style.BORDER))
        frame.setPadding(8)
        frame.setTopMargin(0 if i == 0 else 6)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertFrame(frame)
        start = cursor.position()
        cursor.insertText(role, role_fmt)
        cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        cursor.insertMarkdown(prepare_markdown(str(message.get("content", ""))), MARKDOWN)
        _polish(doc, start)
    _squash_gaps(doc)
    return doc


def _squash_gaps(doc: QTextDocument) -> None:
    """The empty blocks Qt keeps between (and before) frames: make them a few pixels high."""
    root = doc.rootFrame()
    cursor = QTextCursor(doc)
    thin = QTextBlockFormat()
    thin.setLineHeight(2, QTextBlockFormat.LineHeightTypes.FixedHeight.value)
    thin.setTopMargin(0)
    thin.setBottomMargin(0)
    tiny = QTextCharFormat()
    tiny.setFontPointSize(1)
    block = doc.begin()
    while block.isValid():
        if block.length() <= 1:
            cursor.setPosition(block.position())
            if cursor.currentFrame() == root:
                cursor.setBlockFormat(thin)
                cursor.setBlockCharFormat(tiny)
        block = block.next()


# ------------------------------------------------------------------ word diff
_TOKEN = re.compile(r"\s+|\S+")


def word_diff(left: str, right: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Split both texts into runs of (text, differs): words present in one text but not matched in the
    other are marked. Whitespace is kept as written and never counts as a difference."""
    lt, rt = _TOKEN.findall(left), _TOKEN.findall(right)
    lw = [i for i, t in enumerate(lt) if not t.isspace()]
    rw = [i for i, t in enumerate(rt) if not t.isspace()]
    matcher = difflib.SequenceMatcher(None, [lt[i] for i in lw], [rt[i] for i in rw], autojunk=False)
    l_diff = [False] * len(lt)
    r_diff = [False] * len(rt)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for k in range(i1, i2):
            l_diff[lw[k]] = True
        for k in range(j1, j2):
            r_diff[rw[k]] = True

    def runs(tokens, marks):
        out: list[tuple[str, bool]] = []
        for tok, mark in zip(tokens, marks):
            if tok.isspace() and out:
                # Whitespace between two differing words stays highlighted, so phrases read as one.
                mark = out[-1][1]
            if out and out[-1][1] == mark:
                out[-1] = (out[-1][0] + tok, mark)
            else:
                out.append((tok, mark))
        # A highlighted run does not end in whitespace.
        fixed: list[tuple[str, bool]] = []
        for text, mark in out:
            if mark and text != text.rstrip():
                stripped = text.rstrip()
                fixed.append((stripped, True))
                fixed.append((text[len(stripped) :], False))
            else:
                fixed.append((text, mark))
        return [r for r in fixed if r[0]]

    return runs(lt, l_diff), runs(rt, r_diff)


def build_diff_document(runs: list[tuple[str, bool]], font: QFont, parent: QObject | None = None) -> SafeDocument:
    """Plain text with the differing words highlighted (inserted as text: nothing is parsed)."""
    doc = _base_document(font, parent)
    cursor = QTextCursor(doc)
    plain = QTextCharFormat()
    marked = QTextCharFormat()
    marked.setBackground(QColor(style.DIFF_BG))
    for text, differs in runs:
        cursor.insertText(text, marked if differs else plain)
    return doc
