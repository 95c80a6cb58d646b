"""Text from devices made safe to show: one line, visible escapes, bounded length.

A device (or anything on the broker, or a board on a serial line) chooses the strings in its
messages: device ids, model names, reasons, detection labels. Printed raw, an escape sequence
could rewrite the operator's terminal and a newline could forge a line of `keywire fleet
status` or of the agent's log. `printable` is the one rule applied before such text reaches a
terminal or a log: control and other invisible characters (C0/C1 controls, escape, newlines,
bidirectional overrides, zero-width characters, unpaired surrogates) become visible
backslash escapes, a backslash itself is doubled so an escape cannot be faked, and the result is
cut to a bounded length. `SafeLogText` applies the same rule to every log record of a handler.
"""
from __future__ import annotations

import logging
import traceback

DEFAULT_LIMIT = 200
_ELLIPSIS = "..."
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    if ch == " " or ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """`text` (any object, shown as `str`) as one visible line of at most `limit` characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    elif not isinstance(text, str):
        text = str(text)
    out: list[str] = []
    size = 0
    for ch in text:
        piece = _escape(ch)
        if size + len(piece) > limit:
            out.append(_ELLIPSIS)
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


class SafeLogText(logging.Filter):
    """A handler filter that makes each record one visible line (its traceback stays multi-line,
    each of its lines escaped): log text built from remote input cannot forge log lines."""

    def __init__(self, limit: int = 2000) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_keywire_safe", False):
            try:
                message = record.getMessage()
            except Exception:  # a broken format string must not lose the record
                message = f"{record.msg!r} % {record.args!r}"
            record.msg, record.args = printable(message, self.limit), ()
            if record.exc_info and not record.exc_text:
                lines = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n").split("\n")
                record.exc_text = "\n".join(printable(line, self.limit) for line in lines)
            if record.stack_info:
                record.stack_info = "\n".join(printable(line, self.limit) for line in record.stack_info.split("\n"))
            record._keywire_safe = True
        return True


def guard_log_handlers(logger: logging.Logger | None = None) -> None:
    """Attach `SafeLogText` to every handler of `logger` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SafeLogText) for f in handler.filters):
            handler.addFilter(SafeLogText())
