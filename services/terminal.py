"""Text shown on an operator's terminal, made harmless.

Clients choose their names and messages: an ANSI escape sequence (``\\x1b[2J``), a carriage return
or a bidi override (U+202E) printed as is would let them clear, rewrite or reorder what the
operator reads. :func:`printable` turns every such character into a visible escape.
"""

from __future__ import annotations

import re

# C0 controls and DEL, C1 controls, line/paragraph separators, and the bidi marks, embeddings,
# overrides and isolates. Zero-width joiners stay: emoji sequences use them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """``text`` with control characters and bidi controls shown as escapes (``\\x1b``, ``\\u202e``).

    Idempotent: an escaped text has nothing left to escape.
    """
    return _UNSAFE.sub(_escape, str(text))
