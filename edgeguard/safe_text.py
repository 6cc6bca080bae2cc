"""Text from outside (a request path, a header, a user name, a device's reply) shown in a log
line or an error message: one printable line, bounded. A NUL, an ANSI escape or a newline in it
must not reach the journal or a terminal as such."""

from __future__ import annotations

ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
SURROGATES = range(0xDC80, 0xDD00)  # bytes that are not UTF-8, as surrogateescape decodes them


def preview(value: object, limit: int = 120) -> str:
    """``value`` (text, bytes or anything with a str) as one printable line: control and other
    non-printable characters as backslash escapes (``\\x00``, ``\\u202e``), a backslash doubled
    so an escape is never ambiguous, and past ``limit`` characters cut with a marker."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "surrogateescape")
    else:
        text = str(value)
    shown = "".join(_escaped(ch) for ch in text[:limit])
    if len(text) > limit:
        shown += f"…(+{len(text) - limit} chars)"
    return shown


def _escaped(ch: str) -> str:
    if ch in ESCAPES:
        return ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code in SURROGATES:
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
