"""The local engine: a transformers model loaded on this machine (any precision, 8-bit included).

:class:`LocalEngine` answers with one loaded model: ``prepare`` builds the input and the ``generate``
arguments once (:mod:`models.prompt`), ``stream`` runs them (:mod:`models.stream`; with a
:class:`~models.grouping.Grouper`, simultaneous greedy requests share one batched ``generate``),
``rows`` answers a prompt set in batches (:mod:`models.sets.batch`). :class:`LocalEngines` is its
provider: it loads through the process-wide :class:`~models.loader.ModelCache`, so a model is loaded
once for every visitor.

Example:
    >>> engines = LocalEngines(ModelCache(2), registry, grouper=Grouper())       # doctest: +SKIP
    >>> engine = engines.open(registry.resolve("tiny-gpt2"), Precision.AUTO, print)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import threading
from typing import Callable, Iterator, Sequence

from .engine import Explanation, Selection
from .explain import class_report, prompt_view, ships_chat_template
from .grouping import Grouper
from .loader import LoadedModel, ModelCache, ModelLoadError
from .prompt import generate_call, has_chat_template, prepare
from .settings import GenerationSettings, Precision
from .sets.batch import generate_rows
from .sets.rows import PromptRow
from .snippet import build_snippet
from .sources import LOCAL_ENGINE, ModelRegistry, ModelSource
from .stream import FIRST_TOKEN_TIMEOUT, stream
from .types import PreparedPrompt, RowResult, StreamUpdate


class LocalEngine:
    """One loaded model as an :class:`~models.engine.Engine`.

    Args:
        loaded: the model, its tokenizer and description.
        grouper: joins simultaneous greedy requests for this model into one batched ``generate``; ``None``:
            every request generates alone.
        hide_paths: the reproducing code names no path of this machine (see :func:`~models.snippet.build_snippet`).
    """

    def __init__(self, loaded: LoadedModel, *, grouper: Grouper | None = None, hide_paths: bool = False) -> None:
        self.loaded, self.grouper, self.hide_paths = loaded, grouper, hide_paths
        self.description, self.kind = loaded.description, loaded.kind

    def prepare(self, prompt: str, settings: GenerationSettings, precision: Precision = Precision.AUTO, *,
                max_input_tokens: int | None = None) -> PreparedPrompt:
        loaded = self.loaded
        prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings,
                           max_input_tokens=max_input_tokens)
        prepared.call = generate_call(loaded, prepared, settings)  # built once: streamed and shown as code
        return prepared

    def explain(self, prepared: PreparedPrompt, settings: GenerationSettings, prompt: str) -> Explanation:
        view, view_error = None, None
        try:
            view = prompt_view(self.loaded, prepared, settings, prompt)
        except Exception as exc:  # noqa: BLE001 - a view that cannot be made never stops the run
            view_error = f"could not show the tokens ({type(exc).__name__}: {exc})"
        try:
            code = build_snippet(self.loaded, prepared, settings, prompt, hide_paths=self.hide_paths)
        except Exception as exc:  # noqa: BLE001
            code = f"# could not write the code for this run ({type(exc).__name__}: {' '.join(str(exc).split())})\n"
        return Explanation(view, view_error, code)

    def stream(self, prepared: PreparedPrompt, settings: GenerationSettings, *,
               stop_event: threading.Event | None = None,
               first_token_timeout: float = FIRST_TOKEN_TIMEOUT) -> Iterator[StreamUpdate]:
        grouped = self.grouper is not None and self.grouper.accepts(settings)
        start = functools.partial(self.grouper.submit, self.loaded, prepared) if grouped else None
        return stream(self.loaded, prepared, settings, stop_event=stop_event, first_token_timeout=first_token_timeout,
                      start=start)

    def rows(self, rows: Sequence[PromptRow | str], settings: GenerationSettings, *, batch_size: int = 0,
             stop_event: threading.Event | None = None) -> Iterator[RowResult]:
        # in input order: a set's table fills from the top (grouping rows by length saves a little padding only)
        return generate_rows(self.loaded, rows, settings, batch_size=batch_size, stop_event=stop_event,
                             sort_by_length=False)


class LocalEngines:
    """The provider of :class:`LocalEngine` s, for sources whose ``engine`` is ``"transformers"``.

    Args:
        cache: the process-wide model cache (a model is loaded once for all visitors).
        registry: says whether a model can be had now (offline and not cached, it cannot).
        grouper: given to every engine (see :class:`LocalEngine`).
        hide_paths: given to every engine: code that finds the model without this machine's paths (a public server).
    """

    name = LOCAL_ENGINE

    def __init__(self, cache: ModelCache, registry: ModelRegistry, *, grouper: Grouper | None = None,
                 hide_paths: bool = False) -> None:
        self.cache, self.registry, self.grouper, self.hide_paths = cache, registry, grouper, hide_paths

    def _engine(self, loaded: LoadedModel) -> LocalEngine:
        return LocalEngine(loaded, grouper=self.grouper, hide_paths=self.hide_paths)

    def ready(self, source: ModelSource, precision: Precision) -> LocalEngine | None:
        loaded = self.cache.peek(source.name, precision)
        return self._engine(loaded) if loaded is not None else None

    def unavailable(self, source: ModelSource) -> str | None:
        reason = self.registry.availability(source.name)
        return f"{source.name} {reason}" if reason else None

    def open(self, source: ModelSource, precision: Precision, on_status: Callable[[str], None]) -> LocalEngine:
        return self._engine(self.cache.get(source, precision, on_status=on_status))

    def inspect(self, source: ModelSource, precision: Precision) -> Selection:
        reason = self.unavailable(source)
        if reason:
            raise ModelLoadError(reason)
        report = class_report(source)
        loaded = self.cache.peek(source.name, precision)
        chat = has_chat_template(loaded.tokenizer) if loaded is not None else ships_chat_template(source)
        return Selection(report, loaded.description if loaded is not None else None, source.untrained, chat_template=chat)
