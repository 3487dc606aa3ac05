"""The queue of model loads (issue 24.8, ``models/loads.py``): runs stopped while a slow load is in progress leave
their own queued loads unstarted, runs of one model share one load, and too many waiting loads are refused with a
clear message. Through the run layer (``Runner.start``), with a provider whose models take seconds to open."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from models import ModelRegistry
from models.engine import Engines
from models.loads import LoadQueue
from models.request import RunRequest
from models.run import Finished, Runner
from models.settings import Precision
from tests.apphelpers import case, set_figures
from tests.fakeengine import CannedEngine, CannedEngines


class SlowOpening(CannedEngines):
    """Canned models that take ``seconds`` to open, the first time only; ``opened`` lists each open that started."""

    def __init__(self, *names: str, seconds: float) -> None:
        super().__init__(*names)
        self.seconds, self.opened, self.loaded = seconds, [], set()

    def ready(self, source, precision: Precision) -> CannedEngine | None:
        return self.engines[source.name] if (source.name, precision) in self.loaded else None

    def open(self, source, precision: Precision, on_status: Callable[[str], None]) -> CannedEngine:
        self.opened.append((source.name, precision.value))
        on_status(f"Loading {source.name}")
        time.sleep(self.seconds)
        self.loaded.add((source.name, precision))
        return self.engines[source.name]


def runner_with(loads: LoadQueue, seconds: float = 1.5) -> tuple[Runner, SlowOpening]:
    provider = SlowOpening("slow-a", "slow-b", "slow-c", "slow-d", seconds=seconds)
    registry = ModelRegistry(online=False)
    for source in provider.sources():
        registry.register_endpoint(source)
    return Runner(registry, Engines([provider]), loads=loads), provider


class Started:
    """A run consumed in a thread of its own; ``result`` once it finished."""

    def __init__(self, runner: Runner, model: str, session: str, precision: str = "auto") -> None:
        self.result, self.session = None, session
        request = RunRequest.parse(prompt="Hello", precision=precision)
        run = runner.start(runner.resolve(model), request, session)

        def consume() -> None:
            for event in run.events():
                if isinstance(event, Finished):
                    self.result = event.result
        self.thread = threading.Thread(target=consume, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 10) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run ended"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def test_runs_stopped_while_a_slow_load_is_in_progress_leave_their_queued_loads_unstarted():
    with case("public: model loads"):
        loads = LoadQueue(workers=1, max_waiting=4, per_model=2)
        runner, provider = runner_with(loads)
        first = Started(runner, "slow-a", "s-a")
        wait_for(lambda: loads.started == 1, 5, "the first load to start")
        queued = [Started(runner, name, f"s-{name}") for name in ("slow-b", "slow-c", "slow-d")]
        also = Started(runner, "slow-a", "s-a2")  # the same model: waits on the load in progress
        wait_for(lambda: loads.waiting() == 3, 5, "three loads to wait")
        stopped_at = time.monotonic()
        for run in queued:
            runner.stop(run.session)
        for run in queued:
            run.join()
        stop_s = time.monotonic() - stopped_at
        first.join(), also.join()
        time.sleep(0.3)  # a worker free again: a load still queued would start now
        assert provider.opened == [("slow-a", "auto")], "only the load somebody waited for ran, once for both runs"
        assert loads.dropped == 3 and loads.started == 1 and loads.waiting() == 0
        assert all(run.result.error == f"stopped while loading {run.result.model} (its load was dropped before it "
                                       "started)" for run in queued), [run.result.error for run in queued]
        assert first.result.error is None and also.result.error is None and first.result.text
    set_figures("public: model loads", stopped_runs=len(queued), queued_loads_dropped=loads.dropped,
                loads_started=loads.started, runs_sharing_one_load=2, stopped_runs_ended_within_s=round(stop_s, 2))


def test_too_many_waiting_loads_are_refused_with_a_clear_message():
    with case("public: model loads"):
        loads = LoadQueue(workers=1, max_waiting=2, per_model=1)
        runner, provider = runner_with(loads, seconds=1.0)
        first = Started(runner, "slow-a", "r-a")
        wait_for(lambda: loads.started == 1, 5, "the first load to start")
        waiting = [Started(runner, "slow-b", "r-b"), Started(runner, "slow-c", "r-c")]
        wait_for(lambda: loads.waiting() == 2, 5, "two loads to wait")
        over = Started(runner, "slow-d", "r-d")
        over.join(5)
        assert over.result.error == ("Refused: 2 model loads are already waiting on this server, the most it queues; "
                                     "try again in a minute, or pick a model that is loaded"), over.result.error
        other_precision = Started(runner, "slow-b", "r-b2", precision="float32")
        other_precision.join(5)
        assert other_precision.result.error == (
            "Refused: slow-b already has 1 load waiting (in another precision), the most for one model; try again "
            "once it has loaded, or pick a precision that is loaded"), other_precision.result.error
        for run in (first, *waiting):
            run.join(15)
            assert run.result.error is None, run.result.error
        assert loads.refused == 2 and ("slow-d", "auto") not in provider.opened
        later = Started(runner, "slow-d", "r-d2")  # the queue has room again
        later.join(10)
        assert later.result.error is None
    set_figures("public: model loads", max_waiting_test=2, per_model_test=1, refused=loads.refused,
                refusal=over.result.error)
