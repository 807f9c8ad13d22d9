"""Text shown on an operator's terminal, made harmless.

Clients choose their names and messages: an ANSI escape sequence (``\\x1b[2J``), a carriage return
or a bidi override (U+202E) printed as is would let them clear, rewrite or reorder what the
operator reads. :func:`printable` turns every such character into a visible escape.
:func:`print_progress` shows a long contacts import going on.
"""

from __future__ import annotations

import re
import sys

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


_progress_state = {"bucket": -1, "done": -1}
_QUIET_BELOW = 100  # rows: below this, no progress lines when stderr is not a terminal


def print_progress(done: int, total: int | None) -> None:
    """Show import progress on stderr: a bar on a terminal, else a line about every 10 %.

    Off a terminal, files under 100 rows print nothing (the final summary is enough).
    """
    stream = sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if done < _progress_state["done"] or done == 0:
        _progress_state["bucket"] = -1
    _progress_state["done"] = done
    if tty:
        if total:
            fraction = min(done / total, 1.0)
            filled = int(30 * fraction)
            stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {done}/{total}")
            if done >= total:
                stream.write("\n")
        else:
            stream.write(f"\r{done} rows")
        stream.flush()
        return
    if total is not None and total < _QUIET_BELOW:
        return  # a small file: the final summary says enough
    bucket = int(10 * min(done / total, 1.0)) if total else done // 1000
    if bucket > _progress_state["bucket"]:
        _progress_state["bucket"] = bucket
        suffix = f"/{total} ({int(100 * min(done / total, 1.0))}%)" if total else ""
        print(f"contacts: {done}{suffix}", file=stream, flush=True)
