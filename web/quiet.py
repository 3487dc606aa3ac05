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

import contextvars
import logging
import re
import sys
from typing import Any, Callable

import gradio as gr
from gradio.exceptions import ComponentProcessingError

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


_INDEX = re.compile(r"component at index (\d+)")


def _component_name(block: Any) -> str:
    """How the page names a component: its label, else its elem id, else its kind."""
    return str(getattr(block, "label", None) or getattr(block, "elem_id", None) or block.get_block_name())


def _input_refusal(block_fn: Any, inputs: list[Any], exc: Exception) -> str:
    """One line naming the input a component refused, and why (Gradio's own message without its component list)."""
    if isinstance(exc, ComponentProcessingError):
        found = _INDEX.search(str(exc))
        cause = exc.__cause__ or exc
        block = block_fn.inputs[int(found.group(1))] if found and int(found.group(1)) < len(block_fn.inputs) else None
        value = inputs[int(found.group(1))] if found and int(found.group(1)) < len(inputs) else None
        if block is None:
            return one_line(str(cause))
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(block, (gr.Slider, gr.Number)) and not number:
            return f"{_component_name(block)}: must be a number, got {value!r:.60} (a {type(value).__name__})"
        return (f"{_component_name(block)}: cannot read {value!r:.60} (a {type(value).__name__}): "
                f"{type(cause).__name__}: {cause}")
    reason = exc.message if isinstance(exc, gr.Error) else (str(exc).splitlines() or [type(exc).__name__])[0]
    for block, value in zip(block_fn.inputs, inputs):  # the number out of its range: say which one
        if isinstance(block, (gr.Slider, gr.Number)) and isinstance(value, (int, float)):
            try:
                gr.Number.raise_if_out_of_bounds(value, block.minimum, block.maximum)
            except gr.Error:
                return f"{_component_name(block)}: {reason}"
    return str(reason)


def quiet_inputs(demo: gr.Blocks, visitor: Callable[[Any], str] | None = None) -> None:
    """Refuse a value a component cannot take (a slider beyond its range, text for a number, the wrong number of
    inputs) with one ``refused`` line naming the component, instead of Gradio's traceback of its own check.

    Gradio 6 raises those checks from ``Blocks.preprocess_data`` as a :class:`gradio.Error` that prints its
    traceback, or as a ``ComponentProcessingError`` (a ``ValueError``) with the original error chained; both are
    what a crafted request sends, not faults of the app. ``Blocks.process_api`` is wrapped only to know the
    event's request (the visitor for the log line)."""
    process_api, preprocess_data = demo.process_api, demo.preprocess_data
    requests: contextvars.ContextVar[Any] = contextvars.ContextVar("playground_request", default=None)

    async def quiet_process_api(*args: Any, **kwargs: Any) -> Any:
        token = requests.set(kwargs.get("request"))
        try:
            return await process_api(*args, **kwargs)
        finally:
            requests.reset(token)

    async def quiet_preprocess_data(block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess_data(block_fn, inputs, *args, **kwargs)
        except (gr.Error, ValueError, TypeError) as exc:
            if isinstance(exc, gr.Error) and not exc.print_exception:
                raise  # already a quiet refusal
            request = requests.get()
            request = request[0] if isinstance(request, list) and request else request
            where = f"event {block_fn.api_name or block_fn.name}"
            who = visitor(request) if visitor is not None and request is not None else None
            raise refuse(where, _input_refusal(block_fn, list(inputs), exc), who) from None

    demo.process_api = quiet_process_api  # type: ignore[method-assign]
    demo.preprocess_data = quiet_preprocess_data  # type: ignore[method-assign]
