"""A small engine that answers with canned words: what adding an engine takes (this module, and one
registration line: ``runner.engines.register(CannedEngines(...))``), used by ``tests/test_engines.py``.

Like simonw/llm's ``MockModel``: no weights, no server; each answer is the prompt's words reversed,
streamed one word at a time, so a test knows exactly what every panel, API call and set row must show.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from models.engine import Explanation, Selection
from models.presets import Kind
from models.settings import GenerationSettings, Precision
from models.sets.rows import PromptRow, row_prompt
from models.sources import ModelSource
from models.types import RowResult, Stats, StreamUpdate, finish_reason

ENGINE = "canned"


def canned_answer(prompt: str) -> str:
    """What the canned engine answers to ``prompt``: its words, last first."""
    return " ".join(reversed(prompt.split()))


@dataclass(frozen=True)
class CannedDescription:
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": Kind.CAUSAL.value, "architecture": Kind.CAUSAL.architecture,
                "served_by": f"served by {self.name} (canned words)", "origin": "canned", "revision": None}


@dataclass
class CannedInput:
    text: str
    max_new_tokens: int
    notices: list[str] = field(default_factory=list)


class CannedEngine:
    """Answers every prompt with :func:`canned_answer`, one word per step (``delay`` seconds apart)."""

    kind = Kind.CAUSAL

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.description, self.delay = CannedDescription(name), delay
        self.prepared: list[CannedInput] = []  # every input built, in order (a test reads it)

    def prepare(self, prompt: str, settings: GenerationSettings, precision: Precision = Precision.AUTO, *,
                max_input_tokens: int | None = None) -> CannedInput:
        prepared = CannedInput(prompt, settings.max_new_tokens, [f"canned, precision {precision.value}"])
        self.prepared.append(prepared)
        return prepared

    def explain(self, prepared: CannedInput, settings: GenerationSettings, prompt: str) -> Explanation:
        return Explanation(None, "canned words have no tokens", f"print({canned_answer(prompt)!r})\n")

    def stream(self, prepared: CannedInput, settings: GenerationSettings, *, stop_event: threading.Event | None = None,
               first_token_timeout: float = 1.0) -> Iterator[StreamUpdate]:
        words = canned_answer(prepared.text).split()[:prepared.max_new_tokens]
        text, started = "", time.perf_counter()
        stopped = False
        for i, word in enumerate(words):
            if stop_event is not None and stop_event.is_set():
                stopped = True
                break
            delta = word if i == 0 else " " + word
            text += delta
            yield StreamUpdate(text, delta)
            time.sleep(self.delay)
        count = len(text.split())
        reason = finish_reason(error=None, eos=not stopped and count < prepared.max_new_tokens,
                               length=count >= prepared.max_new_tokens, stopped=stopped)
        yield StreamUpdate(text, "", Stats(input_tokens=len(prepared.text.split()), output_tokens=count,
                                           total_seconds=time.perf_counter() - started, finish_reason=reason,
                                           notices=list(prepared.notices)))

    def rows(self, rows: Sequence[PromptRow | str], settings: GenerationSettings, *, batch_size: int = 0,
             stop_event: threading.Event | None = None) -> Iterator[RowResult]:
        for index, row in enumerate(rows):
            row = PromptRow(row) if isinstance(row, str) else row
            final = list(self.stream(self.prepare(row_prompt(self.kind, row), settings), settings, stop_event=stop_event))[-1]
            stats = final.stats
            yield RowResult(index, final.text, stats.output_tokens, stats.input_tokens or 0, stats.total_seconds,
                            stats.finish_reason)


class CannedEngines:
    """The provider: one :class:`CannedEngine` per registered name."""

    name = ENGINE

    def __init__(self, *names: str, delay: float = 0.0) -> None:
        self.engines = {name: CannedEngine(name, delay) for name in names}

    def sources(self) -> list[ModelSource]:
        """What to register in the model registry so visitors can pick these models."""
        return [ModelSource(name, name, "canned words", kind=Kind.CAUSAL, engine=ENGINE, server="canned words")
                for name in self.engines]

    def ready(self, source: ModelSource, precision: Precision) -> CannedEngine:
        return self.engines[source.name]

    def unavailable(self, source: ModelSource) -> str | None:
        return None

    def open(self, source: ModelSource, precision: Precision, on_status: Callable[[str], None]) -> CannedEngine:
        return self.engines[source.name]

    def inspect(self, source: ModelSource, precision: Precision) -> Selection:
        description = self.engines[source.name].description
        return Selection(description=description, served_by=description.to_dict()["served_by"])
