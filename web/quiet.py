"""Quiet logs: one line per refused request, never a traceback; real faults keep theirs.

A refusal (bad settings, an unknown model, a visitor over the limit, an answer nobody reads) is
expected traffic on a public server: it gets one line on stderr, ``refused <where> [<visitor>]:
<reason>``, capped in length and stripped of control characters (a prompt cannot forge log lines).
The :class:`gradio.Error` raised to the caller carries ``print_exception=False``, so Gradio prints
no traceback for it. Anything else that escapes a handler is a fault, and Gradio logs its traceback.

Example:
    >>> error = refuse("/generate", "top_p: must be greater than 0 and at most 1, got 0.0", visitor="10.0.0.7")
    >>> error.print_exception
    False
"""

from __future__ import annotations

import logging
import sys

import gradio as gr

MAX_LINE_CHARS = 300  # a refusal line never grows with what the visitor sent

log = logging.getLogger("playground.requests")
log.setLevel(logging.INFO)
log.propagate = False  # one line on stderr, whatever the host application configured for the root logger


class _Stderr(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (a test's capture, or the real one)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


if not log.handlers:
    log.addHandler(_Stderr())


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` on one line, control characters replaced by spaces, at most ``limit`` characters."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def note(action: str, where: str, reason: str, visitor: str | None = None) -> None:
    """Log ``<action> <where> [<visitor>]: <reason>`` as one line."""
    who = f" [{one_line(visitor, 60)}]" if visitor else ""
    log.info(one_line(f"{action} {where}{who}: {reason}"))


def refuse(where: str, reason: str, visitor: str | None = None) -> gr.Error:
    """Log one ``refused`` line and return the :class:`gradio.Error` to raise (no traceback printed)."""
    note("refused", where, reason, visitor)
    return gr.Error(reason, print_exception=False)
