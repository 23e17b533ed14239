r"""Telemetry-derived text made safe for one log line: control characters escaped, length cut.

Asset ids, event ids and error details come from devices; a newline or an ANSI escape in
one would forge a log line or repaint a terminal, and a 10 KB id would flood the log.

    >>> loggable("cnc-1\n2024 ERROR forged\x1b[2J")
    'cnc-1\\x0a2024 ERROR forged\\x1b[2J'
    >>> loggable("x" * 500, limit=8)
    'xxxxxxxx…(+492 chars)'
"""

from __future__ import annotations

import re

LOG_CHARS = 120
"""Characters of one telemetry-derived value a log line shows."""

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 controls (newlines, ESC, CSI), DEL and the Unicode line separators."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def loggable(value: object, limit: int = LOG_CHARS) -> str:
    """``value`` as text for a log line: escaped, then cut to ``limit`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    text = _UNSAFE.sub(_escape, value if isinstance(value, str) else str(value))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"
