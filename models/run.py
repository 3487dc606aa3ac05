"""The run layer, with no Gradio: one side's run and a prompt set's run, from a parsed request to a typed result.

A :class:`Runner` is shared by every visitor: it holds the model registry, the engines
(:class:`~models.engine.Engines`: which provider answers for which model) and the runs in progress, per
session. :meth:`Runner.start` gives a :class:`SideRun`; iterating :meth:`SideRun.events` gets the engine
(loading the model, with status lines), builds its input once, streams the answer and ends with a
:class:`Finished` event carrying a :class:`RunResult`. :meth:`Runner.start_set` gives a :class:`SetRun`:
both sides' engines, then the set's progress and its result. The page, the API and the benchmark only
translate these events; nothing here asks which kind of engine it has.

Example:
    >>> runner = Runner(registry, Engines([LocalEngines(cache, registry)]))   # doctest: +SKIP
    >>> request = RunRequest.parse(prompt="Hello")                            # doctest: +SKIP
    >>> for event in runner.start(runner.resolve("tiny-gpt2"), request, session="s1").events():  # doctest: +SKIP
    ...     if isinstance(event, Finished):
    ...         print(event.result.text, event.result.stats.finish_reason)
"""

from __future__ import annotations

import concurrent.futures
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generator, Iterator, Protocol, Sequence, Union

from .detect import UnsupportedModelError
from .engine import Engine, EngineUnavailable, Engines, Selection
from .explain import PromptView
from .loader import ModelLoadError
from .loads import LoadQueue
from .presets import DEFAULT_CAUSAL, DEFAULT_SEQ2SEQ, Kind
from .request import RunRequest, SetRequest
from .settings import GenerationSettings, Precision
from .sets.compare import SIDES, Opener, SetProgress, SetResult, compare_set
from .sources import ModelIdError, ModelRegistry, ModelSource, no_model_notice
from .stream import FIRST_TOKEN_TIMEOUT
from .types import Description, Prepared, Stats

LOAD_POLL_SECONDS = 0.25  # how often a waiting load reports its status (and notices a stop)
LOAD_ERRORS = (ModelLoadError, UnsupportedModelError, EngineUnavailable)  # a model that cannot be had: said, not raised


@dataclass(frozen=True)
class RunResult:
    """What one side's run produced: an answer with its stats, or an error.

    Args:
        model: the model's name as picked.
        prompt: the visitor's (validated) prompt.
        settings: the generation settings used.
        text: the answer (partial when stopped or failed while generating).
        stats: the figures of a generation that started (``None`` when it never did).
        error: why there is no answer (load failure, stopped before generating), else ``None``.
        description: the engine's description of the model (an endpoint's: its name, engine and model id).
        prepared: the engine's input (``prepared.text`` is what the model saw).
        code: a script reproducing the run.
        token_view: the tokens the model received, tagged by origin.
        stopped: the visitor stopped the run before it generated.
    """

    model: str
    prompt: str
    settings: GenerationSettings
    text: str = ""
    stats: Stats | None = None
    error: str | None = None
    description: Description | None = None
    prepared: Prepared | None = None
    code: str | None = None
    token_view: PromptView | None = None
    stopped: bool = False

    @property
    def answered(self) -> bool:
        """True when generation ran (the stats exist, even if it stopped or failed part-way)."""
        return self.stats is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the page's state and in exports (``None`` fields left out)."""
        out: dict[str, Any] = {"model": self.model, "prompt": self.prompt, "settings": self.settings.to_dict(),
                               "text": self.text}
        if self.description is not None:
            out["description"] = self.description.to_dict()
        if self.prepared is not None:
            out["prompt_as_seen"] = self.prepared.text
        if self.stats is not None:
            out["stats"] = self.stats.to_dict()
        if self.error is not None:
            out["error"] = self.error
        if self.token_view is not None:
            out["prompt_view"] = self.token_view.to_dict()
        if self.code is not None:
            out["code"] = self.code
        return out


@dataclass(frozen=True)
class Loading:
    """The model is loading; ``status`` says what is happening and for how long."""

    status: str


@dataclass(frozen=True)
class Ready:
    """The engine is ready (the model loaded, or its server known) and the input built; generation starts next.

    ``description`` is what the card shows; ``token_view_error`` says why the token view could not be made
    (it never stops a run).
    """

    description: Description
    prepared: Prepared
    token_view: PromptView | None
    token_view_error: str | None
    code: str


@dataclass(frozen=True)
class Chunk:
    """The answer so far."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The run ended; ``result`` holds everything it produced."""

    result: RunResult


RunEvent = Union[Loading, Ready, Chunk, Finished]


class SideRun:
    """One model answering one prompt for one session. Iterate :meth:`events` once; :meth:`stop` from anywhere.

    Args:
        runner: the runner that tracks this run's stop event.
        source: the model.
        request: the parsed request (prompt, settings, precision).
        session: the visitor's session (its Stop stops this run).
        load_first: other models (with their precisions) loaded before this run prepares its input, after its
            own: a blind comparison loads both sides' models on each side, so that neither side starts first
            nor says it is loading alone. A companion that cannot be had is skipped (its own run says why).
    """

    def __init__(self, runner: "Runner", source: ModelSource, request: RunRequest, session: str,
                 load_first: Sequence[tuple[ModelSource, Precision]] = ()) -> None:
        self.runner, self.source, self.request, self.session = runner, source, request, session
        self.load_first = tuple(load_first)
        self.prompt, self.settings = request.prompt, request.settings
        self.stop_event = threading.Event()
        self.replaced = False  # stopped for a newer run of the same session (:meth:`RunTracker.replace`)

    def stop(self) -> None:
        """Stop this run: its wait for a load ends (a load nobody waits for is dropped before it starts; one in
        progress finishes in the background), generation ends."""
        self.stop_event.set()

    def _failed(self, message: str, description: Description | None = None) -> Finished:
        return Finished(RunResult(self.source.name, self.prompt, self.settings, error=message, description=description,
                                  stopped=self.stop_event.is_set()))

    def events(self) -> Iterator[RunEvent]:
        """Get the engine, prepare, stream; the last event is :class:`Finished`. Closing the iterator stops the run."""
        self.runner.track(self, True)
        try:
            try:
                engine = yield from self.runner.engine(self.source, self.request.precision, self.stop_event)
            except LOAD_ERRORS as exc:
                yield self._failed(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - nothing raw reaches a visitor
                yield self._failed(f"{self.source.name} could not be loaded ({type(exc).__name__}: {exc})")
                return
            for companion, precision in self.load_first:
                try:
                    yield from self.runner.engine(companion, precision, self.stop_event)
                except Exception:  # noqa: BLE001 - the companion's own run reports its failure
                    pass
            if self.stop_event.is_set():
                yield self._failed("stopped before generating", engine.description)
                return
            prepared = engine.prepare(self.prompt, self.settings, self.request.precision,
                                      max_input_tokens=self.runner.max_input_tokens)
            explained = engine.explain(prepared, self.settings, self.prompt)
            yield Ready(engine.description, prepared, explained.token_view, explained.token_view_error, explained.code)
            text, stats = "", None
            for update in engine.stream(prepared, self.settings, stop_event=self.stop_event,
                                        first_token_timeout=self.runner.first_token_timeout):
                text, stats = update.text, update.stats
                if stats is None:
                    yield Chunk(text)
            yield Finished(RunResult(self.source.name, self.prompt, self.settings, text, stats,
                                     description=engine.description, prepared=prepared, code=explained.code,
                                     token_view=explained.token_view))
        finally:
            self.stop_event.set()  # the consumer went away or the run ended: the worker must end too
            self.runner.track(self, False)


@dataclass(frozen=True)
class SetFinished:
    """The set ended: ``result`` is its JSON form (every row, the summary, its id, time, set, task and models;
    some rows not run when it was stopped; ``unavailable``: per side whose model could not be had, why), or
    ``error`` says why it could not run at all (neither model can be had, naming both sides)."""

    result: dict[str, Any] | None = None
    error: str | None = None


SetEvent = Union[SetProgress, SetFinished]


class SetRun:
    """One prompt set on two models for one session. Iterate :meth:`events` once; :meth:`stop` from anywhere.

    Args:
        runner: the runner that tracks this run (the session's Stop stops it).
        request: the parsed set request.
        session: the visitor's session.
    """

    def __init__(self, runner: "Runner", request: SetRequest, session: str) -> None:
        self.runner, self.request, self.session = runner, request, session
        self.stop_event = threading.Event()
        self.engines: dict[str, Engine] = {}  # each side's, once it is there

    def stop(self) -> None:
        self.stop_event.set()

    def _opener(self, side: str) -> Opener:
        """Gets ``side``'s engine in the set's worker thread, yielding its loading lines; an unexpected failure
        becomes a :class:`ModelLoadError` that names the model, as a single run's does."""
        source, precision = self.request.sources[side], self.request.precision[side]

        def open_engine() -> Generator[str, None, Engine]:
            loading = self.runner.engine(source, precision, self.stop_event)
            while True:
                try:
                    event = next(loading)
                except StopIteration as done:
                    self.engines[side] = done.value
                    return done.value
                except LOAD_ERRORS:
                    raise
                except Exception as exc:  # noqa: BLE001 - nothing raw reaches a visitor
                    raise ModelLoadError(f"{source.name} could not be loaded ({type(exc).__name__}: {exc})") from None
                yield event.status
        return open_engine

    def events(self) -> Iterator[SetEvent]:
        """Progress from the start (each side's loading is its first stage: both load at once, and a side starts
        its rows as soon as its model is there), after every row and every second, then :class:`SetFinished`.
        A side whose model cannot be had fails its rows with the reason while the other runs; when neither can,
        :class:`SetFinished` carries the error, naming both sides. Closing the iterator stops the run."""
        request = self.request
        self.runner.track(self, True)
        try:
            final: SetResult | None = None
            for event in compare_set(self._opener("left"), self._opener("right"), request.rows, request.settings,
                                     task=request.task, batch_size=request.batch_size, stop_event=self.stop_event,
                                     max_seconds=request.max_seconds):
                if isinstance(event, SetResult):
                    final = event
                else:
                    yield event
            assert final is not None
            if len(final.unavailable) == len(SIDES):
                yield SetFinished(error="; ".join(f"{side}: {final.unavailable[side]}" for side in SIDES))
                return
            models = {side: self.engines[side].description.to_dict() if side in self.engines
                      else {"name": request.sources[side].name, "unavailable": final.unavailable.get(side)}
                      for side in SIDES}
            yield SetFinished({"id": secrets.token_hex(8), "created": datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
                               "set": request.name, "task": request.task.value, "batch_size": request.batch_size,
                               "settings": {side: request.settings.to_dict() for side in SIDES},
                               "models": models, **final.to_dict(),
                               **({"unavailable": final.unavailable} if final.unavailable else {})})
        finally:
            self.stop_event.set()
            self.runner.track(self, False)


class Stoppable(Protocol):
    """A run the tracker can stop: a side's or a set's."""

    session: str
    stop_event: threading.Event

    def stop(self) -> None: ...


class RunTracker:
    """The runs in progress, per session: what a session's Stop stops (a single-prompt run or a prompt set)."""

    def __init__(self) -> None:
        self._runs: dict[str, set[Stoppable]] = {}
        self._lock = threading.Lock()

    def track(self, run: Stoppable, running: bool) -> None:
        """Record that ``run`` started (``True``) or ended (``False``)."""
        with self._lock:
            runs = self._runs.setdefault(run.session, set())
            (runs.add if running else runs.discard)(run)
            if not runs:
                self._runs.pop(run.session, None)

    def stop(self, session: str) -> int:
        """Stop every run of ``session``; returns how many were running."""
        with self._lock:
            runs = list(self._runs.get(session, ()))
        for run in runs:
            run.stop()
        return len(runs)

    def replace(self, session: str) -> int:
        """Stop ``session``'s single-prompt runs because a new one replaces them: each is marked ``replaced``
        (what it would show last is not wanted any more); a prompt set runs on. Returns how many were running."""
        with self._lock:
            runs = [run for run in self._runs.get(session, ()) if isinstance(run, SideRun)]
        for run in runs:
            run.replaced = True
            run.stop()
        return len(runs)

    def stop_events(self, session: str) -> list[threading.Event]:
        """The stop events of ``session``'s runs in progress (a benchmark times how fast they are set)."""
        with self._lock:
            return [run.stop_event for run in self._runs.get(session, ())]

    def running(self) -> int:
        """How many runs are in progress, all sessions together."""
        with self._lock:
            return sum(len(runs) for runs in self._runs.values())


class Runner(RunTracker):
    """The models every visitor shares, and the runs in progress per session.

    Args:
        registry: resolves picked or typed names to sources.
        engines: the providers that answer for the sources (the local models, the inference servers…).
        first_token_timeout: seconds before a silent model counts as failed.
        max_input_tokens: most tokens a model reads (longer inputs are cut, with a notice); ``None``: its context.
        loads: the queue of model loads (bounded; a load nobody waits for is dropped); ``None``: one with the
            default bounds (:mod:`models.loads`).
    """

    def __init__(self, registry: ModelRegistry, engines: Engines, *, first_token_timeout: float = FIRST_TOKEN_TIMEOUT,
                 max_input_tokens: int | None = None, loads: LoadQueue | None = None) -> None:
        self.registry, self.engines, self.first_token_timeout = registry, engines, first_token_timeout
        self.max_input_tokens = max_input_tokens
        self.loads = loads if loads is not None else LoadQueue()
        super().__init__()

    # ----- which model -----
    def resolve(self, name: str | None, custom: str | None = None) -> ModelSource:
        """The source for a panel's selection (a typed hub id wins over the dropdown)."""
        if custom and custom.strip():
            return self.registry.resolve(custom, custom=True)
        if not name:
            raise ModelIdError("model: no model selected")
        return self.registry.resolve(name)

    def default_model(self, kind: Kind, wanted: str | None = None) -> str | None:
        """The model a panel starts with: ``wanted``, else the kind's default preset when available,
        else the first available model of that kind."""
        if wanted:
            return wanted
        default = DEFAULT_SEQ2SEQ if kind is Kind.SEQ2SEQ else DEFAULT_CAUSAL
        choices = self.registry.choices(kind)
        available = [name for name, _label, reason in choices if reason is None]
        if default in available:
            return default
        return available[0] if available else (choices[0][0] if choices else None)

    def has_usable_model(self, kind: Kind) -> bool:
        """True if a model of ``kind`` can be loaded now and is not an untrained demo model (a local folder whose
        config cannot be read, of no known kind, does not count either)."""
        local = self.registry.local
        return any(reason is None and not (name in local and (local[name].untrained or local[name].kind is None))
                   for name, _label, reason in self.registry.choices(kind))

    def selected_kind(self, name: str | None, custom: str | None = None) -> Kind | None:
        """The kind of a panel's selection when it is known without reading a file (a preset's, a local model's)."""
        try:
            return self.resolve(name, custom).kind
        except ModelIdError:
            return None

    def missing_model_notice(self, kind: Kind | None) -> str | None:
        """How to get a model of ``kind`` when none that is trained can be loaded here, else ``None``."""
        return None if kind is None or self.has_usable_model(kind) else no_model_notice(kind)

    def inspect(self, name: str | None, custom: str | None = None, precision: Precision = Precision.AUTO) -> Selection:
        """What the page shows for a panel's selection, from one config read (cached per model)."""
        try:
            source = self.resolve(name, custom)
            return self.engines.provider(source).inspect(source, precision)
        except (ModelIdError, *LOAD_ERRORS) as exc:
            return Selection(error=str(exc))

    def engine(self, source: ModelSource, precision: Precision = Precision.AUTO,
               stop_event: threading.Event | None = None) -> Generator[Loading, None, Engine]:
        """The engine for ``source``, yielding :class:`Loading` status lines while it loads
        (``engine = yield from runner.engine(...)``); an engine that is ready returns at once.

        Raises:
            ModelLoadError: unavailable here, failed, stopped (a load that has not started and that no other run
                waits for is dropped; one in progress finishes in the background), or refused because too many
                loads wait already (:class:`models.loads.LoadRefused`).
            UnsupportedModelError: not a seq2seq or causal language model.
            EngineUnavailable: no engine runs that kind of model here.
        """
        provider = self.engines.provider(source)
        ready = provider.ready(source, precision)
        if ready is not None:
            return ready
        reason = provider.unavailable(source)
        if reason:
            raise ModelLoadError(reason)
        ticket = self.loads.join((provider.name, source.name, precision), source.name,
                                 lambda on_status: provider.open(source, precision, on_status))
        started = time.perf_counter()
        try:
            while True:
                try:
                    return ticket.future.result(timeout=LOAD_POLL_SECONDS)
                except concurrent.futures.TimeoutError:
                    pass
                if stop_event is not None and stop_event.is_set():
                    dropped = ticket.release()
                    raise ModelLoadError(f"stopped while loading {source.name} " + (
                        "(its load was dropped before it started)" if dropped else "(it keeps loading in the background)"))
                yield Loading(f"⏳ {ticket.status}… {time.perf_counter() - started:.0f} s")
        finally:
            ticket.release()  # a consumer gone away (the generator closed) stops waiting too

    # ----- runs -----
    def start(self, source: ModelSource, request: RunRequest, session: str = "anonymous",
              load_first: Sequence[tuple[ModelSource, Precision]] = ()) -> SideRun:
        """A run of ``source`` on the parsed ``request``; nothing happens until its events are read.
        ``load_first``: other models this run loads too before it starts (see :class:`SideRun`)."""
        return SideRun(self, source, request, session, load_first)

    def start_set(self, request: SetRequest, session: str = "anonymous") -> SetRun:
        """A prompt set's run on both sides' models; nothing happens until its events are read."""
        return SetRun(self, request, session)

    def preload(self, names: list[str]) -> concurrent.futures.Future:
        """Load ``names`` in the background (those available now) so the first visitor does not wait."""
        def work() -> list[str]:
            failed = []
            for name in names:
                try:
                    source = self.registry.resolve(name)
                    provider = self.engines.provider(source)
                    if provider.unavailable(source) is None:
                        provider.open(source, Precision.AUTO, lambda _status: None)
                except Exception as exc:  # noqa: BLE001 - shown in the panel when a visitor runs it
                    print(f"preload of {name} failed: {exc}")
                    failed.append(name)
            return failed
        return self.loads.submit(work)
