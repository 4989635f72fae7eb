"""Dataset text is data: no HTML executed, no resource loaded, no link followed."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QTextDocument

from workbench.core.records import PairRecord, Text
from workbench.ui.safe_text import (
    SafeDocument,
    SafeTextBrowser,
    build_document,
    prepare_markdown,
    word_diff,
)


@pytest.fixture
def http_server():
    """A local web server that counts every request made to it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()
    thread.join(5)


def unsafe_text(base: str) -> str:
    return (
        f'Look: <img src="{base}/img.png"> and <script>alert("x")</script> done.\n\n'
        f'<div style="color:red" onclick="evil()">raw <b>html</b> block</div>\n\n'
        f'<iframe src="{base}/frame"></iframe>\n\n'
        f'![picture]({base}/md.png) and [x](file:///etc/passwd) and <a href="{base}/a">anchor</a>\n\n'
        f'<link rel="stylesheet" href="{base}/style.css"><style>body {{ background: url({base}/bg.png) }}</style>\n\n'
        "```html\n<script>alert(1)</script>\n```\n"
    )


def test_unsafe_markdown_is_shown_as_text_and_loads_nothing(qtbot, http_server, main_window, make_project):
    base, hits = http_server
    record = PairRecord(
        prompt=Text(f'<img src="{base}/prompt.png"> prompt'),
        response_a=Text(unsafe_text(base)),
        response_b=Text("A plain, safe response."),
    )
    path = make_project(records=[record])
    assert main_window.open_project(path)
    view = main_window.label_view
    browser = view.left_view if view.current.left == "a" else view.right_view
    main_window.grab()  # paint everything
    qtbot.wait(50)
    shown = browser.toPlainText()
    for literal in (
        "<img src=",
        '<script>alert("x")</script>',
        "<div style=",
        "<iframe src=",
        "<a href=",
        "<style>",
        "<script>alert(1)</script>",
    ):
        assert literal in shown, literal
    assert f"[image not loaded: {base}/md.png]" in shown
    assert "<img src=" in view.prompt_view.toPlainText()
    assert [b.resource_requests for b in (view.left_view, view.right_view, view.prompt_view)] == [0, 0, 0]

    # No image remains in any document, and nothing asked for a resource.
    for b in (view.left_view, view.right_view, view.prompt_view):
        doc = b.document()
        block = doc.begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                assert not it.fragment().charFormat().isImageFormat()
                it += 1
            block = block.next()
        for url in (f"{base}/img.png", "file:///etc/passwd", "qrc:/x"):
            assert b.loadResource(QTextDocument.ResourceType.ImageResource.value, QUrl(url)) is None
            assert doc.loadResource(QTextDocument.ResourceType.ImageResource.value, QUrl(url)) is None

    # The link is drawn, but a click on it goes nowhere.
    doc = browser.document()
    link_pos = doc.toPlainText().index(" x ") + 1
    from PySide6.QtGui import QTextCursor

    cursor = QTextCursor(doc)
    cursor.setPosition(link_pos + 1)
    assert cursor.charFormat().isAnchor() and cursor.charFormat().anchorHref() == "file:///etc/passwd"
    rect = browser.cursorRect(cursor)
    clicked = []
    browser.anchorClicked.connect(lambda url: clicked.append(url.toString()))
    before = browser.toPlainText()
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.x() - 2, rect.center().y()))
    qtbot.wait(20)
    assert browser.toPlainText() == before
    assert browser.source().isEmpty()
    assert hits == []


def test_document_without_browser_never_reads_local_files(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not really")
    doc = SafeDocument()
    assert doc.loadResource(QTextDocument.ResourceType.ImageResource.value, QUrl.fromLocalFile(str(secret))) is None
    doc = build_document(Text(f"![s]({QUrl.fromLocalFile(str(secret)).toString()})"), doc.defaultFont())
    assert "[image not loaded:" in doc.toPlainText()


def test_conversation_turns_are_distinct_blocks(qtbot):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi **there**"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Code?\n```\nx = 1\n```"},
    ]
    browser = SafeTextBrowser()
    qtbot.addWidget(browser)
    browser.set_text(Text.of(messages))
    frames = browser.document().rootFrame().childFrames()
    assert len(frames) == 4
    text = browser.toPlainText()
    for role in ("system", "user", "assistant"):
        assert role in text
    assert "Hi there" in text and "x = 1" in text


def test_code_blocks_are_monospace():
    doc = build_document(Text("Intro\n\n```python\ndef f():\n    return 1\n```\n"), SafeTextBrowser().font())
    block = doc.findBlock(doc.toPlainText().index("def f"))
    families = block.begin().fragment().charFormat().fontFamilies()
    assert families and "Mono" in " ".join(families) or "monospace" in families


def test_single_newlines_are_kept_outside_code():
    out = prepare_markdown("line one\nline two\n\n```\na\nb\n```")
    assert out.splitlines()[0].endswith("  ")
    assert "a\nb" in out


def test_word_diff_marks_only_changed_words():
    left, right = word_diff("the cat sat on the mat", "the dog sat on the mat today")
    assert [t for t, d in left if d] == ["cat"]
    assert [t for t, d in right if d] == ["dog", "today"]
    assert "".join(t for t, _ in left) == "the cat sat on the mat"
