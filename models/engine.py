"""One interface for every way a model answers: the engine protocol, and the registry that picks one per model.

An :class:`Engine` is one usable model: it says what it is (``description``), builds a run's input once
(``prepare``), explains that input (token view and reproducing code), streams one answer (``stream``) and
answers the rows of a prompt set (``rows``). An :class:`EngineProvider` makes engines for the models it
owns: it tells whether one is ready now, why it cannot be had, opens it (a load, which may take minutes)
and inspects a selection before any run. :class:`Engines` maps a :class:`~models.sources.ModelSource`'s
``engine`` name to its provider; the run layer (:mod:`models.run`) only talks to these, never asking
which kind of engine it has.

Two providers ship: :class:`models.local.LocalEngines` (transformers on this machine; grouping of
simultaneous visitors is its option, batching its way of answering rows) and
:class:`models.remote.RemoteEngines` (OpenAI-compatible inference servers). Adding one is a new module
with a provider and an engine, and one line where the runner is built (``web/serving.py``).

Example:
    >>> engines = Engines([LocalEngines(cache, registry)])                     # doctest: +SKIP
    >>> engine = engines.provider(source).open(source, Precision.AUTO, print)  # doctest: +SKIP
    >>> prepared = engine.prepare("Hello", settings, Precision.AUTO)           # doctest: +SKIP
    >>> for update in engine.stream(prepared, settings):                       # doctest: +SKIP
    ...     print(update.delta, end="")
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, Sequence

from .explain import ClassReport, PromptView
from .presets import Kind
from .settings import GenerationSettings, Precision
from .sets.rows import PromptRow
from .sources import ModelSource
from .types import Description, Prepared, RowResult, StreamUpdate


class EngineUnavailable(RuntimeError):
    """No engine is registered for a model's source (the message names the model and the engine)."""


@dataclass(frozen=True)
class Explanation:
    """What the page shows about a run's input besides the answer.

    Args:
        token_view: the tokens the model receives, tagged by origin (``None`` when the engine cannot tell).
        token_view_error: why there is no token view, in one line.
        code: a runnable script that reproduces the run.
    """

    token_view: PromptView | None
    token_view_error: str | None
    code: str


@dataclass(frozen=True)
class Selection:
    """A panel's selected model before any run: its class report, its description when already
    loaded, whether it is an untrained demo model, or why it cannot be used.

    An endpoint model has its description at once, ``served_by`` set, and a class report only when
    its model id is a hub id whose config can be read here.
    """

    report: ClassReport | None = None
    description: Description | None = None
    untrained: bool = False
    error: str | None = None
    served_by: str | None = None
    chat_template: bool | None = None  # whether its tokenizer has a chat template; None: not known before a load


class Engine(Protocol):
    """One usable model, whatever runs it.

    ``stream`` and ``rows`` never raise once they start: a failure ends the stream with
    ``finish_reason == "error"`` (and the partial text), or a row with its error.
    """

    description: Description
    kind: Kind

    def prepare(self, prompt: str, settings: GenerationSettings, precision: Precision, *,
                max_input_tokens: int | None = None) -> Prepared:
        """The run's input, built once (template or prefix, caps to the context and to ``max_input_tokens``)."""
        ...

    def explain(self, prepared: Prepared, settings: GenerationSettings, prompt: str) -> Explanation:
        """The token view and the reproducing code of a prepared run (a failure here is reported, not raised)."""
        ...

    def stream(self, prepared: Prepared, settings: GenerationSettings, *, stop_event: threading.Event | None = None,
               first_token_timeout: float = ...) -> Iterator[StreamUpdate]:
        """The growing answer; the last update carries the stats. Setting ``stop_event`` ends it within a token."""
        ...

    def rows(self, rows: Sequence[PromptRow | str], settings: GenerationSettings, *, batch_size: int = 0,
             stop_event: threading.Event | None = None) -> Iterator[RowResult]:
        """One result per row of a prompt set (any order; ``index`` says which), errors included."""
        ...


class EngineProvider(Protocol):
    """Makes the engines of the models whose ``ModelSource.engine`` is its ``name``."""

    name: str

    def ready(self, source: ModelSource, precision: Precision) -> Engine | None:
        """The engine when it can answer at once (loaded, or nothing to load), else ``None``."""
        ...

    def unavailable(self, source: ModelSource) -> str | None:
        """Why ``source`` cannot be had now (offline and not cached…), naming it; ``None`` when it can."""
        ...

    def open(self, source: ModelSource, precision: Precision, on_status: Callable[[str], None]) -> Engine:
        """Make the engine (a load: it may take minutes, reporting what it does through ``on_status``).

        Raises:
            models.loader.ModelLoadError / models.detect.UnsupportedModelError: with a message for the visitor.
        """
        ...

    def inspect(self, source: ModelSource, precision: Precision) -> Selection:
        """What the page shows for a selection before any run (a class report, or why it cannot be used)."""
        ...


class Engines:
    """The registered providers, by engine name: the run layer's one way to an engine.

    Args:
        providers: one per engine name (a later one with the same name replaces the earlier).
    """

    def __init__(self, providers: Iterable[EngineProvider] = ()) -> None:
        self._providers: dict[str, EngineProvider] = {}
        for provider in providers:
            self.register(provider)

    def register(self, provider: EngineProvider) -> None:
        """Add ``provider`` for the sources whose ``engine`` is ``provider.name``."""
        self._providers[provider.name] = provider

    def __getitem__(self, name: str) -> EngineProvider:
        return self._providers[name]

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def provider(self, source: ModelSource) -> EngineProvider:
        """The provider of ``source``'s engine.

        Raises:
            EngineUnavailable: no provider is registered under that name.
        """
        try:
            return self._providers[source.engine]
        except KeyError:
            raise EngineUnavailable(f"{source.name}: no engine {source.engine!r} is running here "
                                    f"(known: {', '.join(sorted(self._providers)) or 'none'})") from None
