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
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator

import torch
from transformers import (LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria,
                          StoppingCriteriaList, TextIteratorStreamer)
from transformers import generation as hf_generation

from .loader import LoadedModel
from .presets import Kind
from .prompt import GenerateCall, PreparedPrompt, eos_token_ids, generate_call
from .settings import GenerationSettings

if TYPE_CHECKING:
    from .grouping import Grouper

FIRST_TOKEN_TIMEOUT = 120.0  # seconds before the first token counts as a failure
TOKEN_TIMEOUT = 60.0  # seconds between two tokens before it counts as a failure
JOIN_TIMEOUT = 10.0  # seconds to wait for the worker thread after a stop
THREAD_PREFIX = "generate["  # worker threads are named generate[<model name>]


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
        input_tokens: tokens fed to the model (after template / prefix / truncation); ``None`` when
            unknown (an endpoint that reports no counts, with no tokenizer here).
        output_tokens: tokens generated, counted from the generated ids (an endpoint's: from its usage
            report, else its tokenizer here, else stream chunks; see ``count_unit``).
        time_to_first_token: seconds from start to the first generated token.
        tokens_per_second: output tokens after the first, per second after the first
            (so the prompt's processing time does not dilute the decoding speed).
        total_seconds: start to end.
        finish_reason: why it ended.
        error: the error message when ``finish_reason`` is ``error``.
        notices: truncation and capping notes.
        count_unit: ``"tokens"``, or ``"chunks"`` when only stream chunks could be counted (then
            ``tokens_per_second`` is chunks per second).
        precision: the precision the model ran in (``"bfloat16"``, ``"8-bit"``…); ``None`` for an endpoint.
        batch_rows: requests answered by the same ``generate`` (more than 1 when grouped, see
            :mod:`models.grouping`).
    """

    input_tokens: int | None
    output_tokens: int = 0
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    total_seconds: float = 0.0
    finish_reason: FinishReason = FinishReason.EOS
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    count_unit: str = "tokens"
    precision: str | None = None
    batch_rows: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "time_to_first_token": None if self.time_to_first_token is None else round(self.time_to_first_token, 4),
            "tokens_per_second": None if self.tokens_per_second is None else round(self.tokens_per_second, 2),
            "total_seconds": round(self.total_seconds, 4), "finish_reason": self.finish_reason.value,
            "error": self.error, "notices": list(self.notices), "count_unit": self.count_unit,
            "precision": self.precision, "batch_rows": self.batch_rows,
        }


@dataclass
class StreamUpdate:
    """One step of a stream: the text so far and, on the last step, the stats."""

    text: str
    delta: str
    stats: Stats | None = None

    @property
    def done(self) -> bool:
        return self.stats is not None


class GenerationTimeout(Exception):
    """No token came before the deadline; the message says which one was missed."""


def generation_threads() -> list[threading.Thread]:
    """Live worker threads started by :func:`stream` (named ``generate[<model name>]``)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


class StopOnEvent(StoppingCriteria):
    """Stops ``generate`` at the next token once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class SeededSampling(LogitsProcessor):
    """Sampling with the run's own ``torch.Generator``, so that runs overlapping in other threads never
    share (and shift) one random stream.

    transformers samples with ``torch.multinomial`` on torch's global generator: two sampled runs at once
    take turns drawing from it, and neither answer follows from its seed. This processor goes last in a
    greedy ``generate`` (``do_sample=False``): it applies the sampling warpers transformers would apply
    (temperature, top-k, top-p, and min-p / typical / epsilon / eta / top-h when the model's generation
    config sets them, in transformers' order), draws one token per row from the softmax with the run's
    generator, and leaves only that token finite, so greedy decoding picks it. The draws are the ones
    ``torch.manual_seed(seed)`` then ``generate(do_sample=True)`` makes alone (checked on SmolLM2 and the
    tiny models), so the "Show code" script still reproduces the answer.

    Args:
        settings: the run's (sampled) settings: temperature, top_k, top_p, seed.
        model: its generation config supplies the other warpers.
        device: where the generator lives (the model's device).
    """

    def __init__(self, settings: GenerationSettings, model: PreTrainedModel, device: torch.device | str) -> None:
        config = model.generation_config
        warpers: list[LogitsProcessor] = []
        if settings.temperature != 1.0:
            warpers.append(hf_generation.TemperatureLogitsWarper(settings.temperature))
        top_h = getattr(config, "top_h", None)
        if top_h is not None and hasattr(hf_generation, "TopHLogitsWarper"):
            warpers.append(hf_generation.TopHLogitsWarper(top_h=top_h))
        if settings.top_k:
            warpers.append(hf_generation.TopKLogitsWarper(top_k=settings.top_k, min_tokens_to_keep=1))
        if settings.top_p < 1.0:
            warpers.append(hf_generation.TopPLogitsWarper(top_p=settings.top_p, min_tokens_to_keep=1))
        if getattr(config, "min_p", None) is not None:
            warpers.append(hf_generation.MinPLogitsWarper(min_p=config.min_p, min_tokens_to_keep=1))
        if getattr(config, "typical_p", None) is not None and config.typical_p < 1.0:
            warpers.append(hf_generation.TypicalLogitsWarper(mass=config.typical_p, min_tokens_to_keep=1))
        if getattr(config, "epsilon_cutoff", None) is not None and 0.0 < config.epsilon_cutoff < 1.0:
            warpers.append(hf_generation.EpsilonLogitsWarper(epsilon=config.epsilon_cutoff, min_tokens_to_keep=1))
        if getattr(config, "eta_cutoff", None) is not None and 0.0 < config.eta_cutoff < 1.0:
            warpers.append(hf_generation.EtaLogitsWarper(epsilon=config.eta_cutoff, min_tokens_to_keep=1, device=device))
        self.warpers = LogitsProcessorList(warpers)
        self.generator = torch.Generator(device=device).manual_seed(settings.seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = self.warpers(input_ids, scores)
        probs = torch.nn.functional.softmax(scores, dim=-1)
        chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)
        only = torch.full_like(scores, float("-inf"))
        return only.scatter_(1, chosen, 0.0)


def sampling_kwargs(settings: GenerationSettings, model: PreTrainedModel) -> dict[str, Any]:
    """``generate`` arguments that sample with the run's own generator (:class:`SeededSampling`); ``{}`` when greedy."""
    if settings.greedy:
        return {}
    return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None,
            "logits_processor": LogitsProcessorList([SeededSampling(settings, model, model.device)])}


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


class _GenerateThread(threading.Thread):
    """Runs ``model.generate`` once, keeping its output ids or its exception."""

    def __init__(self, loaded: LoadedModel, call: GenerateCall, settings: GenerationSettings,
                 streamer: TimedStreamer, stop_event: threading.Event, threads: int | None = None) -> None:
        super().__init__(name=f"{THREAD_PREFIX}{loaded.source.name}]", daemon=True)
        self.model, self.call, self.settings, self.streamer = loaded.model, call, settings, streamer
        self.stopping = StoppingCriteriaList([StopOnEvent(stop_event)])
        self.threads = threads
        self.output_ids: list[int] | None = None
        self.error: BaseException | None = None
        self.group_size = 1

    def run(self) -> None:
        try:
            if self.threads:  # this thread's OpenMP team (and the default of threads started later); see Runner
                torch.set_num_threads(self.threads)
            with torch.inference_mode():  # a sampled run draws from its own generator: overlapping runs keep their seeds
                output = self.model.generate(**self.call.kwargs(streamer=self.streamer, stopping_criteria=self.stopping,
                                                                **sampling_kwargs(self.settings, self.model)))
            self.output_ids = output[0].tolist()
        except BaseException as exc:  # noqa: BLE001 - reported to the consumer, never lost
            self.error = exc
            self.streamer.end()  # generate ends the streamer when it returns; after an exception, wake the consumer here


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower():
        return f"ran out of memory while generating ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"generation failed: {type(exc).__name__}: {first}"[:500]


def stream(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings, *,
           stop_event: threading.Event | None = None,
           first_token_timeout: float = FIRST_TOKEN_TIMEOUT,
           token_timeout: float = TOKEN_TIMEOUT, grouper: Grouper | None = None,
           threads: int | None = None) -> Iterator[StreamUpdate]:
    """Generate from ``prepared``, yielding the growing text; the last update carries stats.

    Errors never raise: the final update has ``finish_reason == "error"``, the message,
    and the partial text.

    Args:
        loaded: a model from :class:`~models.loader.ModelCache`.
        prepared: the model input, built once by the caller with :func:`~models.prompt.prepare`
            from a validated prompt and these settings.
        settings: validated generation settings.
        stop_event: set it (from any thread) to stop; also set when this generator is closed.
        first_token_timeout: seconds to wait for the first token before giving up.
        token_timeout: seconds to wait between tokens before giving up.
        grouper: when given, a greedy run joins the simultaneous requests for the same model and settings
            in one batched ``generate`` (:mod:`models.grouping`); it streams, stops and ends as its own.
        threads: intra-op threads for this run's ``generate`` (``None``: torch's default).
    """
    stop_event = stop_event if stop_event is not None else threading.Event()
    call = generate_call(loaded, prepared, settings)
    started = time.perf_counter()
    streamer = TimedStreamer(loaded.tokenizer, first_token_timeout=first_token_timeout, token_timeout=token_timeout,
                             started=started)
    worker: Any
    if grouper is not None and grouper.accepts(settings):
        worker = grouper.submit(loaded, prepared, call, streamer, stop_event)
    else:
        worker = _GenerateThread(loaded, call, settings, streamer, stop_event, threads)
        worker.start()
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


def _generated_ids(loaded: LoadedModel, prepared: PreparedPrompt, output_ids: list[int], eos_ids: list[int]) -> list[int]:
    """The new tokens in ``output_ids``: after the prompt (causal) or the decoder start (seq2seq), without end padding."""
    generated = output_ids[len(prepared.input_ids):] if loaded.kind is Kind.CAUSAL else output_ids[1:]
    pad = loaded.tokenizer.pad_token_id
    while loaded.kind is Kind.SEQ2SEQ and generated and pad is not None and generated[-1] == pad and pad not in eos_ids:
        generated.pop()
    return generated


def _final_stats(loaded: LoadedModel, prepared: PreparedPrompt, worker: Any,
                 stop_event: threading.Event, timeout_error: str | None) -> Stats:
    streamer = worker.streamer
    stats = Stats(input_tokens=len(prepared.input_ids), notices=list(prepared.notices),
                  total_seconds=time.perf_counter() - streamer.started, precision=loaded.description.precision,
                  batch_rows=getattr(worker, "group_size", 1))
    eos_ids = eos_token_ids(loaded.model, loaded.tokenizer)
    generated: list[int] = []
    if worker.output_ids is not None:
        generated = _generated_ids(loaded, prepared, worker.output_ids, eos_ids)
        stats.output_tokens = len(generated)
    else:
        stats.output_tokens = streamer.tokens
    if streamer.first_token_at is not None:
        stats.time_to_first_token = streamer.first_token_at - streamer.started
        if stats.output_tokens > 1 and streamer.last_token_at and streamer.last_token_at > streamer.first_token_at:
            stats.tokens_per_second = (stats.output_tokens - 1) / (streamer.last_token_at - streamer.first_token_at)
    if worker.error is not None:
        stats.finish_reason, stats.error = FinishReason.ERROR, _error_message(worker.error)
    elif timeout_error:
        stats.finish_reason, stats.error = FinishReason.ERROR, timeout_error
    elif generated and generated[-1] in eos_ids:
        stats.finish_reason = FinishReason.EOS
    elif stop_event.is_set():
        stats.finish_reason = FinishReason.STOPPED
    elif stats.output_tokens >= prepared.max_new_tokens:
        stats.finish_reason = FinishReason.LENGTH
    return stats
