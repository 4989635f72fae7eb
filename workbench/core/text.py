"""Dataset text made inert for a terminal: control characters shown as escapes, never executed.

An annotator name, a metadata key or a file name is data. Printed raw, ``"\\x1b[2J"`` clears the screen,
``"\\x9b"`` starts a CSI sequence on some terminals, ``"\\r"`` overwrites what came before and U+202E
reverses the rest of the line. Every command prints data through :func:`terminal_safe` (or
:func:`json_safe` for JSON), so what a user sees is the characters, as escapes like ``\\x1b`` or
``\\u202e``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: Categories shown as escapes: controls (C0, DEL, C1), format characters (bidi overrides and isolates,
#: zero-width spaces, BOM, tag characters), line and paragraph separators, and lone surrogates (a file
#: name that was not UTF-8; printing one raw raises UnicodeEncodeError).
_ESCAPED = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
#: Zero-width (non-)joiners are format characters that scripts and emoji need, and they move nothing.
_KEPT = frozenset("\t\u200c\u200d")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str, multiline: bool) -> bool:
    if ch in _KEPT or (multiline and ch == "\n"):
        return False
    return unicodedata.category(ch) in _ESCAPED


def terminal_safe(text: Any, multiline: bool = False) -> str:
    """``str(text)`` with every control, format and separator character as a visible escape.

    Tabs are kept; newlines too when ``multiline`` (a table of several lines), else they are escaped
    (a one-line message stays one line). Carriage returns are always escaped.
    """
    text = str(text)
    if text.isprintable():  # the common case: nothing to do (isprintable is False for every escaped kind)
        return text
    return "".join(_escape(ch) if not ch.isprintable() and _unsafe(ch, multiline) else ch for ch in text)


def terminal_safe_data(value: Any) -> Any:
    """``value`` with every string in it (keys too, through dicts, lists and tuples) made one-line safe."""
    if isinstance(value, str):
        return terminal_safe(value)
    if isinstance(value, dict):
        return {terminal_safe_data(k): terminal_safe_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(terminal_safe_data(v) for v in value)
    return value


def _json_escape(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with the characters that json leaves raw
    (DEL, C1 controls, bidi and other format characters, separators, lone surrogates) as ``\\uXXXX``.

    The result is the same JSON value: those characters only occur inside strings, where ``\\uXXXX``
    means the character itself.
    """
    if text.isprintable():
        return text
    unsafe = {ch for ch in set(text) if not ch.isprintable() and ch not in "\n\t" and _unsafe(ch, False)}
    if not unsafe:
        return text
    return re.sub("[" + "".join(re.escape(ch) for ch in unsafe) + "]", _json_escape, text)


def dumps_safe(value: Any, **kwargs: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **kwargs)`` made safe for a terminal by :func:`json_safe`."""
    return json_safe(json.dumps(value, ensure_ascii=False, **kwargs))
