"""Running the model directly, as the sections measure it: streamed, plain ``generate``, and the
generation threads ``models.stream`` starts (named ``generate[<model name>]``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch

from models import GenerationSettings, Kind, LoadedModel, stream, validate_prompt
from models.prompt import PreparedPrompt, generate_call, prepare
from models.stream import generation_threads
from models.types import THREAD_PREFIX

T = TypeVar("T")

THREAD_NOTE = ("The plain baseline calls model.generate in a fresh thread, as models.stream does: while writing this "
               "benchmark, generate called from the main thread ran 3-4× slower than from a worker thread on this "
               "busy 2-core machine (torch's OpenMP thread team of the main thread under CPU contention; equal with "
               "OMP_NUM_THREADS=1), which would have flattered streaming.")


def order(rep: int, items: Sequence[T]) -> tuple[T, ...]:
    """Alternate the order each repetition so neither path always runs first."""
    return tuple(items) if rep % 2 == 0 else tuple(reversed(items))


@dataclass
class StreamRun:
    """One run of ``models.stream`` to its end.

    Args:
        seconds: from the call to the end.
        first_text: from the call to the first text chunk (``None`` when no text came).
        stats: the stream's final stats, as a dict.
    """

    seconds: float
    first_text: float | None
    stats: dict[str, Any]


def prepared(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> PreparedPrompt:
    """The model input for ``prompt``, built as the app builds it."""
    return prepare(loaded.kind, loaded.tokenizer, loaded.model.config, validate_prompt(prompt), settings)


def streamed(loaded: LoadedModel, prompt: str, settings: GenerationSettings,
             stop_event: threading.Event | None = None, on_text: Callable[[], None] | None = None) -> StreamRun:
    """Build the input and run ``models.stream`` to its end, timing the first text chunk (``on_text`` is
    called then); times run from before the input is built."""
    started = time.perf_counter()
    first = None
    last = None
    for update in stream(loaded, prepared(loaded, prompt, settings), settings, stop_event=stop_event):
        if update.delta and first is None:
            first = time.perf_counter() - started
            if on_text:
                on_text()
        last = update
    seconds = time.perf_counter() - started
    assert last is not None and last.stats is not None
    return StreamRun(seconds, first, last.stats.to_dict())


def plain_generate(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> tuple[float, int]:
    """``model.generate`` with the exact input and settings ``models.stream`` uses, but no streamer
    and no stopping criteria, in a fresh thread as ``models.stream`` runs it (see :data:`THREAD_NOTE`).
    Returns (seconds including prompt preparation, new tokens)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-plain-generate") as pool:
        tokens = pool.submit(_generate, loaded, prompt, settings).result()
    return time.perf_counter() - started, tokens


def _generate(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> int:
    call = generate_call(loaded, prepared(loaded, prompt, settings), settings)
    with torch.inference_mode():
        out = loaded.model.generate(**call.kwargs())
    return int(out.shape[1] - (call.input_ids.shape[1] if loaded.kind is Kind.CAUSAL else 1))


def _runs(thread: threading.Thread, model_name: str) -> bool:
    """Whether ``thread`` generates with ``model_name``: a lone run's ``generate[<name>]``, or a group's, which
    renames itself ``generate[<name> ×<rows>]`` once it knows its rows (:mod:`models.grouping`)."""
    return thread.name == f"{THREAD_PREFIX}{model_name}]" or thread.name.startswith(f"{THREAD_PREFIX}{model_name} ×")


def new_generation_thread(model_name: str, before: set[threading.Thread], timeout: float = 0.0,
                          interval: float = 0.002) -> threading.Thread | None:
    """The generation thread of ``model_name`` that is not in ``before``, looked for every ``interval``
    seconds for up to ``timeout`` seconds; ``None`` if none showed up (or it already ended)."""
    deadline = time.perf_counter() + timeout
    while True:
        found = next((t for t in generation_threads() if _runs(t, model_name) and t not in before), None)
        if found is not None or time.perf_counter() >= deadline:
            return found
        time.sleep(interval)


def ended_at(thread: threading.Thread | None, timeout: float = 60.0) -> float | None:
    """``time.perf_counter()`` when ``thread`` ended (waiting up to ``timeout`` s); ``None`` without a
    thread or when it is still running."""
    if thread is None:
        return None
    thread.join(timeout)
    return None if thread.is_alive() else time.perf_counter()
