"""Streaming generation: a plain generator that yields text as it is produced.

``generate`` runs in a worker thread and feeds one :class:`TextIteratorStreamer`
per request. The consumer polls the streamer's queue with a short timeout, so
it notices a stalled model (no first token, or no token for too long) and
reports it as an error instead of waiting forever. Stopping sets a per-request
``threading.Event`` checked by a ``StoppingCriteria`` after every token, so
the worker thread itself ends, not just the stream.

Example:
    >>> for update in stream(loaded, "Translate to German: Hello", GenerationSettings()):  # doctest: +SKIP
    ...     print(update.delta, end="")
    ...     if update.done:
    ...         print(update.stats.line())
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from .loader import LoadedModel
from .presets import Kind
from .prompt import PreparedPrompt, prepare
from .settings import GenerationSettings, validate_prompt

FIRST_TOKEN_TIMEOUT = 120.0  # seconds before the first token counts as a failure
TOKEN_TIMEOUT = 60.0  # seconds between two tokens before it counts as a failure
JOIN_TIMEOUT = 10.0  # seconds to wait for the worker thread after a stop


class FinishReason(str, Enum):
    """Why a generation ended."""

    EOS = "eos"  # the model produced its end-of-sequence token
    LENGTH = "length"  # max_new_tokens reached
    STOPPED = "stopped"  # the user (or a closed page) stopped it
    ERROR = "error"  # an exception or a timeout


@dataclass
class Stats:
    """Figures for one generation.

    Args:
        input_tokens: tokens fed to the model (after template / prefix / truncation).
        output_tokens: tokens generated, counted from the generated ids.
        time_to_first_token: seconds from start to the first generated token.
        tokens_per_second: output tokens after the first, per second after the first
            (so the prompt's processing time does not dilute the decoding speed).
        total_seconds: start to end.
        finish_reason: why it ended.
        error: the error message when ``finish_reason`` is ``error``.
        notices: truncation and capping notes.
    """

    input_tokens: int
    output_tokens: int = 0
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    total_seconds: float = 0.0
    finish_reason: FinishReason = FinishReason.EOS
    error: str | None = None
    notices: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One human-readable line: ``first token 0.12 s · 35.2 tokens/s · 12 in → 40 out · eos``."""
        ttft = f"first token {self.time_to_first_token:.2f} s" if self.time_to_first_token is not None else "no token"
        tps = f"{self.tokens_per_second:.1f} tokens/s" if self.tokens_per_second is not None else "– tokens/s"
        return f"{ttft} · {tps} · {self.input_tokens} in → {self.output_tokens} out · {self.total_seconds:.2f} s · {self.finish_reason.value}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "time_to_first_token": None if self.time_to_first_token is None else round(self.time_to_first_token, 4),
            "tokens_per_second": None if self.tokens_per_second is None else round(self.tokens_per_second, 2),
            "total_seconds": round(self.total_seconds, 4), "finish_reason": self.finish_reason.value,
            "error": self.error, "notices": list(self.notices),
        }


@dataclass
class StreamUpdate:
    """One step of a stream: the text so far and, on the last step, the stats."""

    text: str
    delta: str
    prepared: PreparedPrompt
    stats: Stats | None = None

    @property
    def done(self) -> bool:
        return self.stats is not None


class StopOnEvent(StoppingCriteria):
    """Stops ``generate`` at the next token once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class TimedStreamer(TextIteratorStreamer):
    """A ``TextIteratorStreamer`` that also records when each generated token arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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


def _eos_ids(loaded: LoadedModel) -> set[int]:
    eos = getattr(loaded.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower():
        return f"ran out of memory while generating ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"generation failed: {type(exc).__name__}: {first}"[:500]


def stream(loaded: LoadedModel, prompt: str, settings: GenerationSettings, *,
           stop_event: threading.Event | None = None,
           prepared: PreparedPrompt | None = None,
           first_token_timeout: float = FIRST_TOKEN_TIMEOUT,
           token_timeout: float = TOKEN_TIMEOUT,
           poll_interval: float = 0.02) -> Iterator[StreamUpdate]:
    """Generate an answer to ``prompt``, yielding the growing text; the last update carries stats.

    The prompt is validated and built before any thread starts (a bad prompt raises
    :class:`~models.settings.SettingsError`). Errors after that never raise: the
    final update has ``finish_reason == "error"``, the message, and the partial text.

    Args:
        loaded: a model from :class:`~models.loader.ModelCache`.
        prompt: the user's text.
        settings: validated generation settings.
        stop_event: set it (from any thread) to stop; also set when this generator is closed.
        prepared: the model input, when the caller already built it with :func:`~models.prompt.prepare`
            for this prompt and these settings (so it is not built twice).
        first_token_timeout: seconds to wait for the first token before giving up.
        token_timeout: seconds to wait between tokens before giving up.
        poll_interval: how often the queue is polled (bounds stop reaction time too).
    """
    prompt = validate_prompt(prompt)
    model, tokenizer = loaded.model, loaded.tokenizer
    if prepared is None:
        prepared = prepare(loaded.kind, tokenizer, model.config, prompt, settings)
    stop_event = stop_event if stop_event is not None else threading.Event()
    streamer = TimedStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    input_ids = torch.tensor([prepared.input_ids], dtype=torch.long, device=model.device)
    gen_kwargs = settings.generate_kwargs()
    gen_kwargs["max_new_tokens"] = prepared.max_new_tokens
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(_eos_ids(loaded)), 0)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            if not settings.greedy:
                torch.manual_seed(settings.seed)
            with torch.inference_mode():
                result["ids"] = model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([StopOnEvent(stop_event)]), pad_token_id=pad_id, **gen_kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported to the consumer, never lost
            result["error"] = exc
        finally:
            streamer.text_queue.put(streamer.stop_signal)  # wake the consumer even after an error

    started = time.perf_counter()
    thread = threading.Thread(target=work, name=f"generate[{loaded.source.name}]", daemon=True)
    thread.start()
    text = ""
    timeout_error: str | None = None
    finished = False
    try:
        while True:
            try:
                chunk = streamer.text_queue.get(timeout=poll_interval)
            except queue.Empty:
                now = time.perf_counter()
                if streamer.first_token_at is None and now - started > first_token_timeout:
                    timeout_error = f"no first token within {first_token_timeout:g} s; generation abandoned"
                elif streamer.last_token_at is not None and now - streamer.last_token_at > token_timeout:
                    timeout_error = f"no new token within {token_timeout:g} s; generation abandoned"
                if timeout_error:
                    stop_event.set()
                    break
                continue
            if chunk is streamer.stop_signal:
                break
            if chunk:
                text += chunk
                yield StreamUpdate(text, chunk, prepared)
        thread.join(JOIN_TIMEOUT if timeout_error is None else 0.5)
        finished = True
        yield StreamUpdate(text, "", prepared, _final_stats(loaded, prepared, streamer, result, stop_event, started, timeout_error))
    finally:
        if not finished:  # closed early: the consumer went away (Stop, closed page)
            stop_event.set()
            thread.join(JOIN_TIMEOUT)


def _final_stats(loaded: LoadedModel, prepared: PreparedPrompt, streamer: TimedStreamer, result: dict[str, Any],
                 stop_event: threading.Event, started: float, timeout_error: str | None) -> Stats:
    ended = time.perf_counter()
    stats = Stats(input_tokens=len(prepared.input_ids), notices=list(prepared.notices), total_seconds=ended - started)
    generated: list[int] = []
    if "ids" in result:
        ids = result["ids"][0].tolist()
        generated = ids[len(prepared.input_ids):] if loaded.kind is Kind.CAUSAL else ids[1:]
        pad = loaded.tokenizer.pad_token_id
        while loaded.kind is Kind.SEQ2SEQ and generated and pad is not None and generated[-1] == pad and pad not in _eos_ids(loaded):
            generated.pop()
        stats.output_tokens = len(generated)
    else:
        stats.output_tokens = streamer.tokens
    if streamer.first_token_at is not None:
        stats.time_to_first_token = streamer.first_token_at - started
        if stats.output_tokens > 1 and streamer.last_token_at and streamer.last_token_at > streamer.first_token_at:
            stats.tokens_per_second = (stats.output_tokens - 1) / (streamer.last_token_at - streamer.first_token_at)
    if "error" in result:
        stats.finish_reason, stats.error = FinishReason.ERROR, _error_message(result["error"])
    elif timeout_error:
        stats.finish_reason, stats.error = FinishReason.ERROR, timeout_error
    elif generated and generated[-1] in _eos_ids(loaded):
        stats.finish_reason = FinishReason.EOS
    elif stop_event.is_set():
        stats.finish_reason = FinishReason.STOPPED
    elif stats.output_tokens >= prepared.max_new_tokens:
        stats.finish_reason = FinishReason.LENGTH
    return stats


def generate_text(loaded: LoadedModel, prompt: str, settings: GenerationSettings, **kwargs: Any) -> tuple[str, Stats]:
    """Run :func:`stream` to the end and return the final text and stats."""
    last: StreamUpdate | None = None
    for last in stream(loaded, prompt, settings, **kwargs):
        pass
    assert last is not None and last.stats is not None
    return last.text, last.stats
