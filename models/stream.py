"""Streaming generation: a plain generator that yields text as it is produced.

``generate`` runs in a worker thread and feeds one :class:`TextIteratorStreamer`
per request. The consumer iterates the streamer with a timeout that ends at the
current deadline (the first token, then each next token), so it notices a
stalled model and reports it as an error instead of waiting forever. Stopping
sets a per-request ``threading.Event`` checked by a ``StoppingCriteria`` after
every token, so the worker thread itself ends, not just the stream.

The caller validates the prompt and builds the model input once
(:func:`~models.settings.validate_prompt`, :func:`~models.prompt.prepare`);
this module only runs it.

Example:
    >>> prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings)  # doctest: +SKIP
    >>> for update in stream(loaded, prepared, settings):                                          # doctest: +SKIP
    ...     print(update.delta, end="")
    ...     if update.done:
    ...         print(update.stats.to_dict())
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, Protocol

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteriaList, TextIteratorStreamer

from .confidence import NO_TOKENS_NOTE, TokenRecorder
from .generation import StopOnEvents, error_message, new_tokens, sampling_kwargs
from .loader import LoadedModel
from .presets import Kind
from .prompt import GenerateCall, eos_token_ids, generate_call
from .settings import GenerationSettings
from .types import THREAD_PREFIX, PreparedPrompt, Stats, StreamUpdate, finish_reason

FIRST_TOKEN_TIMEOUT = 120.0  # seconds before the first token counts as a failure
TOKEN_TIMEOUT = 60.0  # seconds between two tokens before it counts as a failure
JOIN_TIMEOUT = 10.0  # seconds to wait for the worker thread after a stop


class GenerationTimeout(Exception):
    """No token came before the deadline; the message says which one was missed."""


def generation_threads() -> list[threading.Thread]:
    """Live worker threads started by :func:`stream` (named ``generate[<model name>]``)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


class TimedStreamer(TextIteratorStreamer):
    """A ``TextIteratorStreamer`` that records when generated tokens arrive and waits for text up to a deadline.

    Args:
        tokenizer: decodes the tokens.
        first_token_timeout: seconds from ``started`` to the first token.
        token_timeout: seconds from one token to the next.
        started: when the run started (``time.perf_counter()``).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, first_token_timeout: float, token_timeout: float, started: float) -> None:
        # skip_prompt drops the prompt (causal) or the decoder start token (seq2seq); no <pad> in the text
        super().__init__(tokenizer, skip_prompt=True, timeout=first_token_timeout, skip_special_tokens=True)
        self.first_token_timeout, self.token_timeout, self.started = first_token_timeout, token_timeout, started
        self.tokens = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            now = time.perf_counter()
            self.tokens += int(value.numel())
            if self.first_token_at is None:
                self.first_token_at = now
            self.last_token_at = now
        super().put(value)

    def _deadline(self) -> tuple[float, str]:
        """When the next token is due, and the error message if it does not come."""
        if self.first_token_at is None or self.last_token_at is None:
            return (self.started + self.first_token_timeout,
                    f"no first token within {self.first_token_timeout:g} s; generation abandoned")
        return self.last_token_at + self.token_timeout, f"no new token within {self.token_timeout:g} s; generation abandoned"

    def next_text(self) -> str:
        """The next chunk of text, waiting until the current deadline.

        The streamer queues a chunk for every generated token (``""`` while a word is
        incomplete), so a wait that ends with nothing queued means no token came.

        Raises:
            StopIteration: the generation ended.
            GenerationTimeout: the deadline passed without a token.
        """
        deadline, message = self._deadline()
        self.timeout = max(0.0, deadline - time.perf_counter())
        try:
            return next(self)
        except queue.Empty:  # the iterator's timeout: an error, not the end of the stream
            raise GenerationTimeout(message) from None


class Worker(Protocol):
    """What answers one streamed request: a lone ``generate`` thread, or a row of a group
    (:class:`models.grouping.RowRun`). It feeds its streamer and ends it; :func:`stream` reads what it leaves."""

    streamer: "TimedStreamer"
    generated: list[int] | None  # the new token ids once it ended without an error
    recorder: TokenRecorder | None  # its generate's token probabilities (``row`` says which row is its own)
    row: int
    error: BaseException | None
    group_size: int

    def join(self, timeout: float | None = None) -> None: ...


#: starts a worker for ``(call, streamer, stop_event)``: :func:`lone_worker`, or a grouper's ``submit``
StartWorker = Callable[[GenerateCall, "TimedStreamer", threading.Event], Worker]


class _GenerateThread(threading.Thread):
    """Runs ``model.generate`` once, keeping its new token ids or its exception."""

    def __init__(self, loaded: LoadedModel, prepared: PreparedPrompt, call: GenerateCall, settings: GenerationSettings,
                 streamer: TimedStreamer, stop_event: threading.Event) -> None:
        super().__init__(name=f"{THREAD_PREFIX}{loaded.source.name}]", daemon=True)
        self.loaded, self.prepared, self.call, self.settings, self.streamer = loaded, prepared, call, settings, streamer
        self.recorder: TokenRecorder | None = TokenRecorder(loaded.model)
        self.row = 0
        self.stopping = StoppingCriteriaList([StopOnEvents([stop_event]), self.recorder])
        self.generated: list[int] | None = None
        self.error: BaseException | None = None
        self.group_size = 1

    def run(self) -> None:
        model = self.loaded.model
        try:
            # a sampled run draws from its own generator: overlapping runs keep their seeds
            with torch.inference_mode(), self.recorder:
                output = model.generate(**self.call.kwargs(streamer=self.streamer, stopping_criteria=self.stopping,
                                                           **sampling_kwargs(self.settings, model)))
            eos = set(eos_token_ids(model, self.loaded.tokenizer))
            self.generated = new_tokens(self.loaded.kind, output[0].tolist(), len(self.prepared.input_ids), eos)
        except BaseException as exc:  # noqa: BLE001 - reported to the consumer, never lost
            self.error = exc
            self.streamer.end()  # generate ends the streamer when it returns; after an exception, wake the consumer here


def lone_worker(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings) -> StartWorker:
    """A :data:`StartWorker` that answers the request with its own ``generate`` thread."""
    def start(call: GenerateCall, streamer: TimedStreamer, stop_event: threading.Event) -> Worker:
        worker = _GenerateThread(loaded, prepared, call, settings, streamer, stop_event)
        worker.start()
        return worker
    return start


def stream(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings, *,
           stop_event: threading.Event | None = None,
           first_token_timeout: float = FIRST_TOKEN_TIMEOUT,
           token_timeout: float = TOKEN_TIMEOUT, start: StartWorker | None = None) -> Iterator[StreamUpdate]:
    """Generate from ``prepared``, yielding the growing text; the last update carries stats.

    Errors never raise: the final update has ``finish_reason == "error"``, the message,
    and the partial text.

    Args:
        loaded: a model from :class:`~models.loader.ModelCache`.
        prepared: the model input, built once by the caller with :func:`~models.prompt.prepare`
            from a validated prompt and these settings (its ``call``, when set, is used as it is).
        settings: validated generation settings.
        stop_event: set it (from any thread) to stop; also set when this generator is closed.
        first_token_timeout: seconds to wait for the first token before giving up.
        token_timeout: seconds to wait between tokens before giving up.
        start: what answers the request (default: a lone ``generate`` thread; the local engine passes its
            grouper's ``submit`` to join simultaneous requests, see :mod:`models.grouping`).
    """
    stop_event = stop_event if stop_event is not None else threading.Event()
    call = prepared.call if prepared.call is not None else generate_call(loaded, prepared, settings)
    started = time.perf_counter()
    streamer = TimedStreamer(loaded.tokenizer, first_token_timeout=first_token_timeout, token_timeout=token_timeout,
                             started=started)
    worker = (start or lone_worker(loaded, prepared, settings))(call, streamer, stop_event)
    text = ""
    timeout_error: str | None = None
    finished = False
    try:
        while True:
            try:
                chunk = streamer.next_text()
            except StopIteration:
                break
            except GenerationTimeout as exc:
                timeout_error = str(exc)
                stop_event.set()
                break
            if chunk:
                text += chunk
                yield StreamUpdate(text, chunk)
        worker.join(JOIN_TIMEOUT if timeout_error is None else 0.5)
        finished = True
        yield StreamUpdate(text, "", _final_stats(loaded, prepared, worker, stop_event, timeout_error))
    finally:
        if not finished:  # closed early: the consumer went away (Stop, closed page)
            stop_event.set()
            worker.join(JOIN_TIMEOUT)


def _without_end_padding(loaded: LoadedModel, generated: list[int], eos_ids: set[int]) -> list[int]:
    """A seq2seq answer without the pad tokens a model may leave at its end (an untrained one writes them)."""
    pad = loaded.tokenizer.pad_token_id
    while loaded.kind is Kind.SEQ2SEQ and generated and pad is not None and generated[-1] == pad and pad not in eos_ids:
        generated = generated[:-1]
    return generated


def _final_stats(loaded: LoadedModel, prepared: PreparedPrompt, worker: Worker,
                 stop_event: threading.Event, timeout_error: str | None) -> Stats:
    streamer = worker.streamer
    stats = Stats(input_tokens=len(prepared.input_ids), notices=list(prepared.notices),
                  total_seconds=time.perf_counter() - streamer.started, precision=loaded.description.precision,
                  batch_rows=worker.group_size)
    eos_ids = set(eos_token_ids(loaded.model, loaded.tokenizer))
    generated: list[int] = []
    if worker.generated is not None:
        generated = _without_end_padding(loaded, worker.generated, eos_ids)
        stats.output_tokens = len(generated)
    else:
        stats.output_tokens = streamer.tokens
    recorder = worker.recorder
    if recorder is not None:  # the partial answer of a failed run keeps the tokens it had
        ids = generated if worker.generated is not None else [s[0] for s in recorder.row(worker.row, stats.output_tokens)]
        stats.tokens = recorder.tokens(loaded.tokenizer, worker.row, ids)
    stats.tokens_note = NO_TOKENS_NOTE if stats.tokens is None else None
    if streamer.first_token_at is not None:
        stats.time_to_first_token = streamer.first_token_at - streamer.started
        if stats.output_tokens > 1 and streamer.last_token_at and streamer.last_token_at > streamer.first_token_at:
            stats.tokens_per_second = (stats.output_tokens - 1) / (streamer.last_token_at - streamer.first_token_at)
    error = error_message(worker.error) if worker.error is not None else timeout_error
    stats.error = error
    stats.finish_reason = finish_reason(error=error, eos=bool(generated) and generated[-1] in eos_ids,
                                        length=stats.output_tokens >= prepared.max_new_tokens,
                                        stopped=stop_event.is_set(), otherwise=stats.finish_reason)
    return stats
