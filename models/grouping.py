"""Simultaneous greedy requests for the same model and settings, answered by one batched ``generate``.

On a CPU, decoding one sequence is bound by memory bandwidth: every token reads all the weights
once. A batch reads them once for every row, so eight visitors asking the same model at the same
time are answered several times faster together than one after the other, and far faster than by
eight ``generate`` calls fighting over the same cores (see the benchmark's "visitors" section).

:class:`Grouper` collects the requests that arrive within ``window`` seconds of the first one for
the same loaded model and the same generation arguments (greedy only: a batch shares one random
generator, so a sampled run with its own seed always runs alone), up to ``max_rows``, and runs them
as one ``generate`` in a thread named like a lone run's (``generate[<model>]``). Each request keeps:

- its own stream: :class:`RowsStreamer` (a ``BaseStreamer``) receives one new token per row at each
  step and hands it to that row's own :class:`~models.stream.TimedStreamer`, so every visitor's
  text streams, with its own deadlines, exactly as from a lone run;
- its own end: a row ends at its end-of-sequence token, and its visitor's stream ends at once while
  the other rows go on;
- its own Stop: :class:`StopRowsOnEvents` returns one flag per row (its visitor's stop event).

Rows are padded as for prompt sets (:func:`models.generation.pad_rows`: left for decoder-only models).
In float32 a padded row gives the same greedy tokens as a lone run (measured on SmolLM2); in
bfloat16 the padding can move near-tied logits enough to flip a token, so an answer may depend on
who else asked at the same moment (the benchmark counts how often).

Nothing here schedules beyond that: there is no queue of its own, no preemption, no joining a
batch that already runs; a request arriving after the window starts the next group.

Example:
    >>> engine = LocalEngine(loaded, grouper=Grouper(window=0.05))              # doctest: +SKIP
    >>> for update in engine.stream(engine.prepare("Hi", settings), settings):  # doctest: +SKIP
    ...     print(update.delta, end="")
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from transformers import StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from .confidence import TokenRecorder
from .generation import StopOnEvents, pad_rows
from .loader import LoadedModel
from .prompt import GenerateCall, eos_token_ids
from .settings import GenerationSettings
from .types import THREAD_PREFIX, PreparedPrompt  # grouped threads are named like lone runs': generation_threads() lists both

GROUP_WINDOW = 0.1  # seconds the first request of a group waits for others of the same model and settings
MAX_GROUP_ROWS = 8  # rows in one batched generate at most (a 2-core CPU gains little beyond 8)


class RowRun:
    """One request inside a group: what :func:`models.stream.stream` reads, as from a lone run's thread.

    Args:
        prepared: the request's model input.
        streamer: its own streamer (receives only its row's tokens).
        stop_event: its visitor's stop.
    """

    def __init__(self, prepared: PreparedPrompt, streamer: Any, stop_event: threading.Event) -> None:
        self.prepared, self.streamer, self.stop_event = prepared, streamer, stop_event
        self.streamer.next_tokens_are_prompt = False  # the group skips the prompt once for every row
        self.tokens: list[int] = []
        self.generated: list[int] | None = None  # its new tokens, once it ended without an error
        self.recorder: TokenRecorder | None = None  # the group's token probabilities, its own at ``row``
        self.row = 0
        self.error: BaseException | None = None
        self.group_size = 1  # rows in the generate that answered it
        self._done = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        """Wait until this row has ended (not the whole group)."""
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def finish(self, error: BaseException | None = None) -> None:
        """End this row: its new tokens, or the error; wake its consumer."""
        if self._done.is_set():
            return
        self.error = error
        if error is None:
            self.generated = list(self.tokens)
        self.streamer.end()
        self._done.set()


class RowsStreamer(BaseStreamer):
    """Receives a batched ``generate``'s tokens (one per row per step) and hands each to its row.

    The first ``put`` is the prompt (decoder-only) or the decoder's start token (encoder-decoder):
    skipped, as ``skip_prompt`` does. A row ends at its end-of-sequence token, at its
    ``max_new_tokens``, or when its stop event is set; later tokens for it (padding) are dropped.

    Args:
        rows: the group's rows, in batch order.
        eos: the end-of-sequence ids.
    """

    def __init__(self, rows: Sequence[RowRun], eos: set[int]) -> None:
        self.rows, self.eos = rows, eos
        self.active = [True] * len(rows)
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if not self.active[i]:
                continue
            row = self.rows[i]
            if row.stop_event.is_set():
                self._finish(i)
                continue
            row.tokens.append(int(token))
            row.streamer.put(torch.tensor([int(token)]))
            if token in self.eos or len(row.tokens) >= row.prepared.max_new_tokens:
                self._finish(i)

    def end(self) -> None:
        for i, active in enumerate(self.active):
            if active:
                self._finish(i)

    def _finish(self, i: int) -> None:
        self.active[i] = False
        self.rows[i].finish()


@dataclass
class _Group:
    key: tuple
    loaded: LoadedModel
    call: GenerateCall
    rows: list[RowRun] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


def group_key(loaded: LoadedModel, prepared: PreparedPrompt, call: GenerateCall) -> tuple:
    """Requests with equal keys may share a ``generate``: the same loaded model and the same arguments."""
    options = tuple(sorted((k, repr(v)) for k, v in call.options.items()))
    return id(loaded.model), options, prepared.max_new_tokens, call.pad_token_id


class Grouper:
    """Answers simultaneous greedy requests for the same model and settings with one batched ``generate``.

    Args:
        window (float, default :data:`GROUP_WINDOW`): seconds the first request waits for others.
        max_rows (int, default :data:`MAX_GROUP_ROWS`): rows per group; a full group starts at once.
    """

    def __init__(self, window: float = GROUP_WINDOW, max_rows: int = MAX_GROUP_ROWS) -> None:
        if window < 0 or max_rows < 1:
            raise ValueError("window must be >= 0 and max_rows >= 1")
        self.window, self.max_rows = window, max_rows
        self._open: dict[tuple, _Group] = {}
        self._lock = threading.Lock()
        self.groups = 0  # batched generates started (tests and the benchmark read it)
        self.sizes: list[int] = []  # rows of each group, in start order

    @staticmethod
    def accepts(settings: GenerationSettings) -> bool:
        """Greedy runs only: a sampled run keeps its own seed (see :mod:`models.stream`)."""
        return settings.greedy

    def submit(self, loaded: LoadedModel, prepared: PreparedPrompt, call: GenerateCall, streamer: Any,
               stop_event: threading.Event) -> RowRun:
        """Put a request into the open group for its model and arguments (or open one); returns its row."""
        row = RowRun(prepared, streamer, stop_event)
        key = group_key(loaded, prepared, call)
        with self._lock:
            group = self._open.get(key)
            opened = group is None
            if opened:
                group = self._open[key] = _Group(key, loaded, call)
            group.rows.append(row)
            if len(group.rows) >= self.max_rows:
                del self._open[key]  # full: the next request opens a new group
                group.full.set()
        if opened:
            threading.Thread(target=self._run, args=(group,), daemon=True,
                             name=f"{THREAD_PREFIX}{loaded.source.name}]").start()
        return row

    def _close(self, group: _Group) -> list[RowRun]:
        group.full.wait(self.window)
        with self._lock:
            if self._open.get(group.key) is group:
                del self._open[group.key]
            return list(group.rows)

    def _run(self, group: _Group) -> None:
        rows = self._close(group)
        with self._lock:
            self.groups += 1
            self.sizes.append(len(rows))
        threading.current_thread().name = f"{THREAD_PREFIX}{group.loaded.source.name} ×{len(rows)}]"
        for row in rows:
            row.group_size = len(rows)
        live = [row for row in rows if not row.stop_event.is_set()]
        for row in rows:
            if row.stop_event.is_set():
                row.finish()
        if not live:
            return
        try:
            self._generate(group, live)
        except BaseException as exc:  # noqa: BLE001 - every row's consumer is told; nothing is lost
            for row in live:
                row.finish(exc)

    @staticmethod
    def _generate(group: _Group, rows: list[RowRun]) -> None:
        loaded, call = group.loaded, group.call
        model = loaded.model
        input_ids, mask = pad_rows(loaded.kind, loaded.tokenizer, [row.prepared.input_ids for row in rows], model.device)
        streamer = RowsStreamer(rows, set(eos_token_ids(model, loaded.tokenizer)))
        recorder = TokenRecorder(model)
        for index, row in enumerate(rows):
            row.recorder, row.row = recorder, index
        stopping = StoppingCriteriaList([StopOnEvents([row.stop_event for row in rows]), recorder])
        with torch.inference_mode(), recorder:
            model.generate(input_ids=input_ids, attention_mask=mask, pad_token_id=call.pad_token_id, **call.options,
                           streamer=streamer, stopping_criteria=stopping)
