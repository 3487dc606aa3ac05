"""Run a prompt set on both sides at once: one thread per side, each batched, one stop for both.

:func:`run_set` yields typed events as rows finish on either side: a
:class:`SetRowUpdate` for each row result (in completion order, carrying the row's
index), then a :class:`SetProgress` (rows done per side, elapsed time, an estimate of
the time left), and finally one :class:`SetResult` with every row in input order,
its scores and a summary per side. The fast side is never held back by the slow one:
each side generates in its own thread and reports through one queue.

Example:
    >>> jobs = {Side.LEFT: SideJob(t5, settings), Side.RIGHT: SideJob(smollm2, settings)}  # doctest: +SKIP
    >>> for event in run_set(jobs, builtin_set("summarize").rows, task=Task.SUMMARY):      # doctest: +SKIP
    ...     if isinstance(event, SetProgress):
    ...         print(event.to_dict())
    >>> event.summary()[Side.LEFT].scores.scores                                          # doctest: +SKIP
    {'chrf': 41.2, 'rouge_l': 0.31}
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator, Mapping, Sequence

from .batch import RowResult, check_batch_size, error_message, generate_rows
from .loader import LoadedModel
from .promptset import PromptRow, Task
from .scores import ScoreSummary, score_row, summarize_scores
from .settings import GenerationSettings
from .stream import FinishReason

RATINGS = ("left", "right", "tie")
_SIDE_DONE = object()  # a worker's last message


class Side(str, Enum):
    """Which panel: the seq2seq model is usually left, the causal model right."""

    LEFT = "left"
    RIGHT = "right"


@dataclass(frozen=True)
class SideJob:
    """What one side runs.

    Args:
        loaded: the side's model.
        settings: its generation settings (a row's ``task_prefix`` overrides theirs).
        batch_size: rows per ``generate`` call; 0 = automatic.
    """

    loaded: LoadedModel
    settings: GenerationSettings
    batch_size: int = 0


@dataclass(frozen=True)
class SetProgress:
    """Rows done per side so far.

    Args:
        done_left / done_right: rows with a result on each side (errors and stopped rows count).
        total: rows in the set (per side).
        elapsed: seconds since the run started.
        remaining_seconds: estimated seconds until the slower side is done (``None`` until a side has a row).
    """

    done_left: int
    done_right: int
    total: int
    elapsed: float
    remaining_seconds: float | None = None

    def to_dict(self) -> dict[str, int]:
        """The API's progress object: ``{"done_left", "done_right", "total"}``."""
        return {"done_left": self.done_left, "done_right": self.done_right, "total": self.total}


@dataclass(frozen=True)
class SetRowUpdate:
    """One row finished on one side."""

    side: Side
    result: RowResult


@dataclass(frozen=True)
class SetRow:
    """One row of the final table.

    Args:
        index: position in the input.
        row: the prompt and its reference.
        results: each side's result (a side that was not run is absent).
        scores: each side's scores for this row (empty without a reference or a finished output).
    """

    index: int
    row: PromptRow
    results: dict[Side, RowResult]
    scores: dict[Side, dict[str, float]]


@dataclass(frozen=True)
class SideSummary:
    """One side's figures over the set.

    Args:
        rows_run: rows that produced an output (finished by ``eos`` or ``length``).
        errors: rows that failed.
        stopped: rows stopped or never started.
        mean_seconds_per_row: mean of the rows' shares of batch time.
        tokens_per_second: output tokens over generation seconds, all rows that ran.
        mean_output_tokens: mean output length of the rows that ran.
        output_tokens: every row's output length (for a spread chart), in input order.
        wall_seconds: the side's time from start to its last row.
        scores: the set's scores (see :func:`~models.scores.summarize_scores`).
        ratings: the rating tally, ``{"left": n, "right": n, "tie": n}``.
    """

    rows_run: int
    errors: int
    stopped: int
    mean_seconds_per_row: float | None
    tokens_per_second: float | None
    mean_output_tokens: float | None
    output_tokens: list[int]
    wall_seconds: float
    scores: ScoreSummary
    ratings: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(x, n)
        return {"rows_run": self.rows_run, "errors": self.errors, "stopped": self.stopped,
                "mean_seconds_per_row": r(self.mean_seconds_per_row), "tokens_per_second": r(self.tokens_per_second, 2),
                "mean_output_tokens": r(self.mean_output_tokens, 2), "output_tokens": list(self.output_tokens),
                "wall_seconds": r(self.wall_seconds), "scores": self.scores.to_dict(), "ratings": dict(self.ratings)}


def finished(result: RowResult | None) -> bool:
    """True when a row ran to its end (``eos`` or ``length``): only those are scored."""
    return result is not None and result.finish_reason in (FinishReason.EOS, FinishReason.LENGTH)


def rating_tally(ratings: Sequence[str | None]) -> dict[str, int]:
    """``{"left": n, "right": n, "tie": n}`` from per-row ratings (``None`` = not rated).

    Raises:
        ValueError: for a rating other than ``left``, ``right``, ``tie`` or ``None``.
    """
    bad = [r for r in ratings if r is not None and r not in RATINGS]
    if bad:
        raise ValueError(f"rating: must be one of {', '.join(RATINGS)} or empty, got {bad[0]!r:.40}")
    counts = Counter(r for r in ratings if r is not None)
    return {name: counts.get(name, 0) for name in RATINGS}


@dataclass(frozen=True)
class SetResult:
    """The whole run: rows in input order and what is needed for each side's summary.

    Args:
        rows: every row, in input order.
        task: the set's task (decides the scores).
        wall_seconds: per side, start to the side's last row.
        stopped: whether the stop event was set during the run.
    """

    rows: list[SetRow]
    task: Task
    wall_seconds: dict[Side, float]
    stopped: bool

    def summary(self, ratings: Sequence[str | None] | None = None) -> dict[Side, SideSummary]:
        """Each side's summary; ``ratings`` (one per row, ``"left"``/``"right"``/``"tie"``/``None``) fill the tally."""
        tally = rating_tally(ratings or [])
        return {side: summarize_side(self, side, tally) for side in self.wall_seconds}


def summarize_side(result: SetResult, side: Side, ratings: dict[str, int] | None = None) -> SideSummary:
    """One side's :class:`SideSummary` from a :class:`SetResult`.

    Args:
        result: the run.
        side: which side.
        ratings: the rating tally to carry (see :func:`rating_tally`).
    """
    results = [row.results.get(side) for row in result.rows]
    ran = [r for r in results if finished(r)]
    seconds = sum(r.seconds for r in ran)
    tokens = sum(r.output_tokens for r in ran)
    scores = summarize_scores(result.task, [r.text if finished(r) else None for r in results],
                              [row.row.reference for row in result.rows])
    return SideSummary(
        rows_run=len(ran), errors=sum(r is not None and r.finish_reason is FinishReason.ERROR for r in results),
        stopped=sum(r is None or r.finish_reason is FinishReason.STOPPED for r in results),
        mean_seconds_per_row=statistics.fmean(r.seconds for r in ran) if ran else None,
        tokens_per_second=tokens / seconds if seconds > 0 else None,
        mean_output_tokens=statistics.fmean(r.output_tokens for r in ran) if ran else None,
        output_tokens=[r.output_tokens if r is not None else 0 for r in results],
        wall_seconds=result.wall_seconds.get(side, 0.0), scores=scores, ratings=dict(ratings or rating_tally([])))


SetEvent = SetRowUpdate | SetProgress | SetResult


def _side_worker(side: Side, job: SideJob, rows: Sequence[PromptRow], stop_event: threading.Event,
                 out: queue.Queue) -> None:
    """Run one side and report every result, then a done marker (an unexpected error fails the rest of its rows)."""
    seen: set[int] = set()
    try:
        for result in generate_rows(job.loaded, rows, job.settings, batch_size=job.batch_size, stop_event=stop_event):
            seen.add(result.index)
            out.put((side, result))
    except Exception as exc:  # noqa: BLE001 - the other side and the finished rows go on
        message = error_message(exc)
        for index in range(len(rows)):
            if index not in seen:
                out.put((side, RowResult(index, "", 0, 0, 0.0, FinishReason.ERROR, message)))
    finally:
        out.put((side, _SIDE_DONE))


def _progress(done: dict[Side, int], total: int, started: float) -> SetProgress:
    now = time.perf_counter()
    estimates = [(now - started) / done[s] * (total - done[s]) for s in done if done[s]]
    remaining = max(estimates) if len(estimates) == len(done) else None
    return SetProgress(done.get(Side.LEFT, 0), done.get(Side.RIGHT, 0), total, now - started, remaining)


def run_set(jobs: Mapping[Side, SideJob], rows: Sequence[PromptRow], *, task: Task | str = Task.OTHER,
            stop_event: threading.Event | None = None) -> Iterator[SetEvent]:
    """Run ``rows`` on every side in ``jobs`` at once; yield row updates and progress, then the result.

    Args:
        jobs: one :class:`SideJob` per side to run (one side alone is fine).
        rows: validated rows (see :func:`~models.promptset.validate_rows`).
        task: decides the scores of each row and of the summary.
        stop_event: set it to stop both sides (the running batches end within one token;
            finished rows are kept). Also set when this generator is closed early.

    Raises:
        ValueError: for a batch size out of range or no rows, before any thread starts.
    """
    for job in jobs.values():
        check_batch_size(job.batch_size)
    if not rows:
        raise ValueError("rows: the set is empty")
    task = Task(task)
    stop_event = stop_event if stop_event is not None else threading.Event()
    out: queue.Queue = queue.Queue()
    results: dict[Side, dict[int, RowResult]] = {side: {} for side in jobs}
    walls: dict[Side, float] = {}
    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, len(jobs)), thread_name_prefix="prompt-set")
    complete = False
    try:
        for side, job in jobs.items():
            pool.submit(_side_worker, side, job, rows, stop_event, out)
        running = set(jobs)
        while running:
            side, item = out.get()
            if item is _SIDE_DONE:
                running.discard(side)
                walls[side] = time.perf_counter() - started
                continue
            results[side][item.index] = item
            yield SetRowUpdate(side, item)
            yield _progress({s: len(r) for s, r in results.items()}, len(rows), started)
        complete = True
    finally:
        if not complete:  # closed early (Stop, closed page): end both sides' threads
            stop_event.set()
        pool.shutdown(wait=True)
    yield _result(rows, task, results, walls, stop_event.is_set())


def _result(rows: Sequence[PromptRow], task: Task, results: dict[Side, dict[int, RowResult]],
            walls: dict[Side, float], stopped: bool) -> SetResult:
    table = []
    for index, row in enumerate(rows):
        per_side = {side: found[index] for side, found in results.items() if index in found}
        scores = {side: score_row(task, r.text, row.reference) if finished(r) else {} for side, r in per_side.items()}
        table.append(SetRow(index, row, per_side, scores))
    return SetResult(table, task, walls, stopped)
