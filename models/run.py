"""One side's run, with no Gradio: load (with status lines), prepare once, stream, stop, a typed result.

A :class:`Runner` is shared by every visitor: it holds the registry, the process-wide
model cache and the stop events of the runs in progress, per session. :meth:`Runner.start`
gives a :class:`SideRun`; iterating :meth:`SideRun.events` loads the model, builds its
input once, streams the answer and ends with a :class:`Finished` event carrying a
:class:`RunResult`. The page, the API and the benchmark only translate these events.

Example:
    >>> runner = Runner(registry, cache)                                       # doctest: +SKIP
    >>> run = runner.start(runner.resolve("tiny-gpt2"), "Hello", GenerationSettings(), session="s1")
    >>> for event in run.events():                                             # doctest: +SKIP
    ...     if isinstance(event, Finished):
    ...         print(event.result.text, event.result.stats.finish_reason)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Generator, Iterator, Union

from .detect import UnsupportedModelError
from .explain import ClassReport, PromptView, class_report, prompt_view
from .grouping import Grouper
from .loader import LoadedModel, ModelCache, ModelDescription, ModelLoadError
from .presets import DEFAULT_CAUSAL, DEFAULT_SEQ2SEQ, Kind
from .prompt import PreparedPrompt, prepare
from .remote import Endpoint, EndpointDescription, endpoint_snippet
from .settings import GenerationSettings, Precision, parse_precision
from .snippet import build_snippet
from .sources import ModelIdError, ModelRegistry, ModelSource
from .stream import FIRST_TOKEN_TIMEOUT, Stats, stream

LOAD_POLL_SECONDS = 0.25  # how often a waiting load reports its status (and notices a stop)
_LOADS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="load")


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
        description: the loaded model's description (an endpoint's: its name, engine and model id).
        prepared: the model input (``prepared.text`` is what the model saw).
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
    description: ModelDescription | EndpointDescription | None = None
    prepared: PreparedPrompt | None = None
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
    """The model is loaded (or its endpoint known) and its input built; generation starts next.

    ``token_view_error`` says why the token view could not be made (it never stops a run).
    ``loaded.description`` is what the card shows.
    """

    loaded: LoadedModel | Endpoint
    prepared: PreparedPrompt
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


def explain(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings,
            prompt: str) -> tuple[PromptView | None, str | None, str]:
    """``(token view, why it is missing, reproducing code)`` for a run; a failure here never stops the run."""
    view, view_error = None, None
    try:
        view = prompt_view(loaded, prepared, settings, prompt)
    except Exception as exc:  # noqa: BLE001
        view_error = f"could not show the tokens ({type(exc).__name__}: {exc})"
    try:
        code = build_snippet(loaded, prepared, settings, prompt)
    except Exception as exc:  # noqa: BLE001
        code = f"# could not write the code for this run ({type(exc).__name__}: {' '.join(str(exc).split())})\n"
    return view, view_error, code


class SideRun:
    """One model answering one prompt for one session. Iterate :meth:`events` once; :meth:`stop` from anywhere.

    Args:
        runner: the runner that tracks this run's stop event.
        source: the model.
        prompt: the validated prompt.
        settings: validated settings.
        precision: the precision asked for (auto, float32, bfloat16, float16, 8-bit; ``True`` = 8-bit).
        session: the visitor's session (its Stop stops this run).
    """

    def __init__(self, runner: "Runner", source: ModelSource, prompt: str, settings: GenerationSettings,
                 precision: Precision | str | bool, session: str) -> None:
        self.runner, self.source, self.prompt, self.settings = runner, source, prompt, settings
        self.precision, self.session = parse_precision(precision), session
        self.stop_event = threading.Event()

    def stop(self) -> None:
        """Stop this run: a load in progress is abandoned (it finishes in the background), generation ends."""
        self.stop_event.set()

    def _failed(self, message: str, loaded: LoadedModel | None = None) -> Finished:
        return Finished(RunResult(self.source.name, self.prompt, self.settings, error=message,
                                  description=loaded.description if loaded is not None else None,
                                  stopped=self.stop_event.is_set()))

    def events(self) -> Iterator[RunEvent]:
        """Load, prepare, stream; the last event is :class:`Finished`. Closing the iterator stops the run."""
        self.runner.track(self, True)
        try:
            if self.source.endpoint is not None:
                yield from self._served(self.source.endpoint)
                return
            loaded = yield from self._load()
            if loaded is None:
                return
            if self.stop_event.is_set():
                yield self._failed("stopped before generating", loaded)
                return
            prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, self.prompt, self.settings,
                               max_input_tokens=self.runner.max_input_tokens)
            view, view_error, code = explain(loaded, prepared, self.settings, self.prompt)
            yield Ready(loaded, prepared, view, view_error, code)
            text, stats = "", None
            with self.runner.generating() as threads:
                for update in stream(loaded, prepared, self.settings, stop_event=self.stop_event,
                                     first_token_timeout=self.runner.first_token_timeout, grouper=self.runner.grouper,
                                     threads=threads):
                    text, stats = update.text, update.stats
                    if stats is None:
                        yield Chunk(text)
            yield Finished(RunResult(self.source.name, self.prompt, self.settings, text, stats,
                                     description=loaded.description, prepared=prepared, code=code, token_view=view))
        finally:
            self.stop_event.set()  # the consumer went away or the run ended: the worker must end too
            self.runner.track(self, False)

    def _served(self, endpoint: Endpoint) -> Iterator[RunEvent]:
        """A run on an inference engine: nothing loads here; the request is built once, then streamed."""
        request = endpoint.request(self.prompt, self.settings, self.precision)
        prepared, code = request.prepared, endpoint_snippet(endpoint, request)
        yield Ready(endpoint, prepared, None, f"the tokens are made by {endpoint.description.served_by}, "
                    "not on this machine", code)
        text, stats = "", None
        for update in endpoint.stream(request, stop_event=self.stop_event, first_token_timeout=self.runner.first_token_timeout):
            text, stats = update.text, update.stats
            if stats is None:
                yield Chunk(text)
        yield Finished(RunResult(self.source.name, self.prompt, self.settings, text, stats,
                                 description=endpoint.description, prepared=prepared, code=code))

    def _load(self) -> Iterator[RunEvent]:
        """Yield :class:`Loading` events until the model is ready; return it, or ``None`` after a
        :class:`Finished` event with the reason it could not be had."""
        try:
            return (yield from self.runner.load(self.source, self.precision, self.stop_event))
        except (ModelLoadError, UnsupportedModelError) as exc:
            yield self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - nothing raw reaches a visitor
            yield self._failed(f"{self.source.name} could not be loaded ({type(exc).__name__}: {exc})")
        return None


@dataclass(frozen=True)
class Selection:
    """A panel's selected model before any run: its class report, its description when already
    loaded, whether it is an untrained demo model, or why it cannot be used.

    An endpoint model has its description at once, ``served_by`` set, and a class report only when
    its model id is a hub id whose config can be read here.
    """

    report: ClassReport | None = None
    description: ModelDescription | EndpointDescription | None = None
    untrained: bool = False
    error: str | None = None
    served_by: str | None = None


class RunTracker:
    """The runs in progress, per session: what a session's Stop stops (a single-prompt run or a prompt set)."""

    def __init__(self) -> None:
        self._runs: dict[str, set[SideRun]] = {}
        self._lock = threading.Lock()

    def track(self, run: SideRun, running: bool) -> None:
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
        cache: the process-wide model cache (a model is loaded once for all visitors).
        first_token_timeout: seconds before a silent model counts as failed.
        grouper: answers simultaneous greedy requests for the same model and settings with one batched
            ``generate`` (:mod:`models.grouping`); ``None``: every run generates alone.
        share_threads: give each generation ``cores // generations running`` intra-op threads when it
            starts, instead of every core to each (measured in the benchmark's "visitors" section).
        max_input_tokens: most tokens a model reads (longer inputs are cut, with a notice); ``None``: its context.
    """

    def __init__(self, registry: ModelRegistry, cache: ModelCache, *,
                 first_token_timeout: float = FIRST_TOKEN_TIMEOUT, max_input_tokens: int | None = None,
                 grouper: Grouper | None = None, share_threads: bool = False) -> None:
        self.registry, self.cache, self.first_token_timeout = registry, cache, first_token_timeout
        self.grouper, self.share_threads = grouper, share_threads
        self._generating = 0  # generations in progress (for share_threads)
        self.max_input_tokens = max_input_tokens
        super().__init__()
        self._endpoint_reports: dict[str, ClassReport | None] = {}  # endpoint name -> its hub config's class report

    # ----- which model -----
    def resolve(self, name: str | None, custom: str | None = None) -> ModelSource:
        """The source for a panel's selection (a typed hub id wins over the dropdown)."""
        if custom and custom.strip():
            return self.registry.resolve(custom, custom=True)
        if not name:
            raise ModelIdError("model: no model selected")
        return self.registry.resolve(name)

    def unavailable(self, source: ModelSource) -> str | None:
        """Why ``source`` cannot be loaded now (offline and not cached), or ``None``."""
        reason = self.registry.availability(source.name)
        return f"{source.name} {reason}" if reason else None

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
        """True if a model of ``kind`` can be loaded now and is not an untrained demo model."""
        local = self.registry.local
        return any(reason is None and not (name in local and local[name].untrained)
                   for name, _label, reason in self.registry.choices(kind))

    def inspect(self, name: str | None, custom: str | None = None,
                precision: Precision | str | bool = Precision.AUTO) -> "Selection":
        """What the page shows for a panel's selection, from one config read (cached per model)."""
        try:
            source = self.resolve(name, custom)
            if source.endpoint is not None:
                return self._inspect_endpoint(source.endpoint)
            reason = self.unavailable(source)
            if reason:
                raise ModelLoadError(reason)
            report = class_report(source)
        except (ModelIdError, ModelLoadError, UnsupportedModelError) as exc:
            return Selection(error=str(exc))
        loaded = self.cache.peek(source.name, precision)
        return Selection(report, loaded.description if loaded is not None else None, source.untrained)

    def load(self, source: ModelSource, precision: Precision | str | bool = Precision.AUTO,
             stop_event: threading.Event | None = None) -> Generator[Loading, None, LoadedModel]:
        """Load ``source`` through the shared cache, yielding :class:`Loading` status lines meanwhile;
        returns the model (``model = yield from runner.load(...)``); an endpoint model returns its
        :class:`~models.remote.Endpoint` at once (``models.batch.generate_rows`` takes either).

        Raises:
            ModelLoadError: unavailable here, failed, or stopped (the load then finishes in the background).
            UnsupportedModelError: not a seq2seq or causal language model.
        """
        if source.endpoint is not None:  # served by an inference engine: nothing loads here
            return source.endpoint
        cached = self.cache.peek(source.name, precision)
        if cached is not None:
            return cached
        reason = self.unavailable(source)
        if reason:
            raise ModelLoadError(reason)
        messages: queue.Queue[str] = queue.Queue()
        future = _LOADS.submit(self.cache.get, source, precision, on_status=messages.put)
        started, status = time.perf_counter(), f"Loading {source.name}"
        while True:
            try:
                return future.result(timeout=LOAD_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                pass
            while not messages.empty():
                status = messages.get()
            if stop_event is not None and stop_event.is_set():
                raise ModelLoadError(f"stopped while loading {source.name} (it keeps loading in the background)")
            yield Loading(f"⏳ {status}… {time.perf_counter() - started:.0f} s")

    def _inspect_endpoint(self, endpoint: Endpoint) -> "Selection":
        """An endpoint's selection: its description, and the class report of its model id's hub config
        when that can be read here (tried once per endpoint)."""
        if endpoint.name not in self._endpoint_reports:
            report, hub = None, endpoint.hub_source()
            if hub is not None:
                try:
                    report = class_report(hub)
                except Exception:  # noqa: BLE001 - not on the hub, gated, offline and not cached: nothing to show
                    report = None
            self._endpoint_reports[endpoint.name] = report
        return Selection(self._endpoint_reports[endpoint.name], endpoint.description,
                         served_by=endpoint.description.served_by)

    # ----- runs -----
    def start(self, source: ModelSource, prompt: str, settings: GenerationSettings,
              precision: Precision | str | bool = Precision.AUTO, session: str = "anonymous") -> SideRun:
        """A run of ``source`` on the validated ``prompt`` in ``precision``; nothing happens until its events are read."""
        return SideRun(self, source, prompt, settings, precision, session)

    @contextlib.contextmanager
    def generating(self) -> Iterator[int | None]:
        """Count a generation while it runs; yields its intra-op threads (``None``: torch's default, unless
        ``share_threads``: the cores shared by the generations running, this one included)."""
        with self._lock:
            self._generating += 1
            running = self._generating
        try:
            yield max(1, (os.cpu_count() or 1) // running) if self.share_threads else None
        finally:
            with self._lock:
                self._generating -= 1

    def preload(self, names: list[str]) -> concurrent.futures.Future:
        """Load ``names`` in the background (those available now) so the first visitor does not wait."""
        def work() -> list[str]:
            failed = []
            for name in names:
                try:
                    if self.registry.availability(name) is None:
                        self.cache.get(self.registry.resolve(name))
                except Exception as exc:  # noqa: BLE001 - shown in the panel when a visitor runs it
                    print(f"preload of {name} failed: {exc}")
                    failed.append(name)
            return failed
        return _LOADS.submit(work)
