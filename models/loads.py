"""The queue of model loads: one load per model and precision however many runs wait for it, bounded, and dropped
before it starts once nobody waits for it any more.

A run that needs a model that is not loaded :meth:`LoadQueue.join` s its load and gets a :class:`Ticket`: the load's
future and its last status line. Runs asking for the same model in the same precision share one load. A run that is
stopped (or whose visitor went away) :meth:`Ticket.release` s its ticket; when the last ticket of a load that has not
started is released, the load is cancelled and never starts (a load in progress finishes: a half-loaded model cannot
be interrupted safely, and the cache keeps it for the next visitor). Loads waiting for a worker are bounded per model
and in total: one more is refused at once with :class:`LoadRefused`, a :class:`~models.loader.ModelLoadError` whose
message says why.

Example:
    >>> loads = LoadQueue(workers=1, max_waiting=2, per_model=1)
    >>> ticket = loads.join(("local", "tiny", "auto"), "tiny", lambda on_status: "the model")
    >>> ticket.future.result(timeout=5)
    'the model'
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from .loader import ModelLoadError

LOAD_WORKERS = 4  # loads that run at once
MAX_WAITING_LOADS = 8  # loads waiting for a worker, all models together
MAX_WAITING_PER_MODEL = 2  # loads of one model (in different precisions) waiting for a worker


class LoadRefused(ModelLoadError):
    """Too many loads are waiting already (for this model, or in total): refused before it is queued."""


@dataclass
class _Load:
    """One queued or running load and the tickets that wait for it."""

    key: Hashable
    model: str
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    waiters: int = 0
    status: str = ""


class Ticket:
    """One run's wait for a load: :attr:`future` gives the result, :attr:`status` the load's last line;
    :meth:`release` when the run stops waiting (any number of times)."""

    def __init__(self, queue: "LoadQueue", load: _Load) -> None:
        self._queue, self._load, self._released = queue, load, False

    @property
    def future(self) -> concurrent.futures.Future:
        return self._load.future

    @property
    def status(self) -> str:
        return self._load.status

    def release(self) -> bool:
        """Stop waiting; ``True`` when this was the load's last ticket and the load, not started, was dropped."""
        if self._released:
            return False
        self._released = True
        return self._queue._release(self._load)


class LoadQueue:
    """The loads of one runner (see the module's docstring).

    Args:
        workers: loads that run at once.
        max_waiting: loads that may wait for a worker, all models together.
        per_model: loads of one model (in different precisions) that may wait for a worker.
    """

    def __init__(self, workers: int = LOAD_WORKERS, *, max_waiting: int = MAX_WAITING_LOADS,
                 per_model: int = MAX_WAITING_PER_MODEL) -> None:
        self.max_waiting, self.per_model = max_waiting, per_model
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
        self._loads: dict[Hashable, _Load] = {}
        self._lock = threading.RLock()  # a cancelled future runs its done callback in the cancelling thread
        self.started = 0  # loads that started
        self.dropped = 0  # loads cancelled before they started: nobody waited for them any more
        self.refused = 0  # loads refused: too many waiting

    def waiting(self, model: str | None = None) -> int:
        """Loads waiting for a worker (of ``model`` only, when given)."""
        with self._lock:
            return sum(1 for load in self._loads.values() if not load.future.running() and not load.future.done()
                       and (model is None or load.model == model))

    def join(self, key: Hashable, model: str, open_model: Callable[[Callable[[str], None]], Any]) -> Ticket:
        """Wait for the load ``key`` (of ``model``), queuing ``open_model(on_status)`` unless it is queued or running.

        Raises:
            LoadRefused: the load is not queued yet and ``per_model`` loads of ``model``, or ``max_waiting`` loads
                in all, wait already.
        """
        with self._lock:
            load = self._loads.get(key)
            if load is None:
                if self.waiting(model) >= self.per_model:
                    self.refused += 1
                    raise LoadRefused(f"Refused: {model} already has {self.per_model} load"
                                      f"{'s' * (self.per_model != 1)} waiting (in another precision), the most for one "
                                      "model; try again once it has loaded, or pick a precision that is loaded")
                if self.waiting() >= self.max_waiting:
                    self.refused += 1
                    raise LoadRefused(f"Refused: {self.max_waiting} model loads are already waiting on this server, "
                                      "the most it queues; try again in a minute, or pick a model that is loaded")
                load = self._loads[key] = _Load(key, model, status=f"Waiting for a free loader for {model}")
                load.future = self._pool.submit(self._run, load, open_model)
                load.future.add_done_callback(lambda _future, load=load: self._forget(load))
            load.waiters += 1
            return Ticket(self, load)

    def submit(self, work: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run ``work(*args)`` on a load worker, outside the bounds (the start-up preload)."""
        return self._pool.submit(work, *args)

    def _run(self, load: _Load, open_model: Callable[[Callable[[str], None]], Any]) -> Any:
        with self._lock:
            self.started += 1
            load.status = f"Loading {load.model}"

        def on_status(line: str) -> None:
            load.status = line
        return open_model(on_status)

    def _release(self, load: _Load) -> bool:
        with self._lock:
            load.waiters -= 1
            if load.waiters > 0 or not load.future.cancel():  # running or done: it finishes, the cache keeps it
                return False
            self.dropped += 1
            self._forget(load)
            return True

    def _forget(self, load: _Load) -> None:
        with self._lock:
            if self._loads.get(load.key) is load:
                del self._loads[load.key]
