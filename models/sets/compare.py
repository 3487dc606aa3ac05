"""Compare two models over a prompt set: both sides at once, each in batches, rows in input order, scores.

:func:`compare_set` runs each side in its own thread, from getting its engine (a load can take minutes: loading is
the first stage of a side's progress) through ``Engine.rows``, and merges what they produce into one stream of
events: :class:`SetProgress` at once, after every change (a loading line, finished rows) and at least every
:data:`TICK_SECONDS` between them (the clock ticks while a batch runs), then one :class:`SetResult` with every row
(in input order), its scores and a summary per side. One stop event ends both sides within one token; finished rows
are kept. A side whose model cannot be had fails its rows with the reason while the other side runs.

Each side of a row carries its tokens (probability and alternatives, :class:`models.types.TokenProb` as dicts)
and their mean probability and log-probability; each row says whether both answers are identical and, when not,
the first word where they part (:func:`models.divergence.compare_answers`).

Example:
    >>> for event in compare_set(left, right, rows, GenerationSettings(max_new_tokens=32)):  # doctest: +SKIP
    ...     if isinstance(event, SetProgress):
    ...         print(event.done_left, event.done_right, event.total)
"""

from __future__ import annotations

import concurrent.futures
import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Generator, Iterator, Sequence, Union

from ..divergence import compare_answers
from ..engine import Engine
from ..generation import error_message
from ..settings import GenerationSettings
from ..types import RowResult, confidence_summary
from .rows import PromptRow, Task
from .scores import SCORE_INFO, TASK_SCORES, score_row, summarize_scores

SIDES = ("left", "right")
RATINGS = ("left", "right", "tie")
POLL_SECONDS = 0.1  # how often a waiting consumer wakes (a closed consumer, the tick)
TICK_SECONDS = 1.0  # the longest time between two progress events: the clock ticks while a batch runs

#: gets a side's engine, yielding status lines while it loads (``engine = yield from opener()``); raises with a message
#: for the visitor when the model cannot be had
Opener = Callable[[], Generator[str, None, Engine]]


class Stage(str, Enum):
    """Where one side of a set is."""

    STARTING = "starting"  # its thread has not reported yet
    LOADING = "loading"  # getting its engine (loading the model)
    RUNNING = "running"  # generating rows
    DONE = "done"  # every row has a result
    FAILED = "failed"  # its model cannot be had: every row carries the reason


@dataclass(frozen=True)
class SideProgress:
    """One side's progress: its stage, rows done, what it is doing (a loading line, or why it failed), and the time
    left, estimated from its finished rows only (``None`` until it has one; it changes only when a row finishes)."""

    stage: Stage
    done: int
    status: str = ""
    remaining: float | None = None


@dataclass(frozen=True)
class SetProgress:
    """Each side's progress, the rows in all, the time since the set started, and the time left.

    :meth:`snapshot` gives the rows done so far (scored), for a table that fills row by row.
    """

    sides: dict[str, SideProgress]
    total: int
    elapsed: float
    snapshot_args: tuple = field(default=(), repr=False, compare=False)

    @property
    def done_left(self) -> int:
        return self.sides["left"].done

    @property
    def done_right(self) -> int:
        return self.sides["right"].done

    @property
    def remaining(self) -> float | None:
        """Seconds until both sides are done (the slower side's estimate); ``None`` while a side that is still
        at work has no finished row to estimate from."""
        working = [side for side in self.sides.values() if side.stage not in (Stage.DONE, Stage.FAILED)]
        if any(side.remaining is None for side in working):
            return None
        return max((side.remaining for side in working), default=0.0)

    def snapshot(self) -> "SetResult":
        """Every row as far as it is done (a side that has not reached a row has ``None`` there), without the
        token lists: a table redrawn twice a second needs their means only."""
        rows, results, task, ratings = self.snapshot_args
        return build_result(rows, {side: dict(done) for side, done in results.items()}, task, ratings, tokens=False)

    def to_dict(self) -> dict[str, int]:
        """The API's progress object."""
        return {"done_left": self.done_left, "done_right": self.done_right, "total": self.total}


@dataclass
class SetResult:
    """Every row with both sides' outputs and scores, and a summary per side; ``unavailable``: per side whose
    model could not be had, why (its rows carry the same reason)."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    stopped: bool = False
    unavailable: dict[str, str] = field(default_factory=dict)
    stop_reason: str | None = None  # why it stopped when the visitor did not stop it (its wall-clock cap)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "summary": self.summary, "stopped": self.stopped,
                **({"stop_reason": self.stop_reason} if self.stop_reason else {})}


SetEvent = Union[SetProgress, SetResult]


@dataclass(frozen=True)
class _Status:
    """A side's worker reports its stage (and a loading line, or why it failed)."""

    stage: Stage
    text: str = ""


@dataclass
class _Side:
    """One side's state in the merging loop."""

    stage: Stage = Stage.STARTING
    status: str = ""
    results: dict[int, RowResult] = field(default_factory=dict)
    running_since: float | None = None  # when its engine was ready
    remaining: float | None = None

    def add(self, result: RowResult, total: int, now: float) -> None:
        self.results[result.index] = result
        done = len(self.results)
        busy = now - (self.running_since if self.running_since is not None else now)
        self.remaining = busy / done * (total - done) if self.stage is Stage.RUNNING else 0.0  # finished work only

    def progress(self) -> SideProgress:
        return SideProgress(self.stage, len(self.results), self.status,
                            0.0 if self.stage in (Stage.DONE, Stage.FAILED) else self.remaining)


def ready(engine: Engine) -> Opener:
    """The opener of an engine that is already there."""
    def opener() -> Generator[str, None, Engine]:
        yield from ()  # nothing to load
        return engine
    return opener


def _side_worker(open_engine: Opener, rows: Sequence[PromptRow], settings: GenerationSettings, batch_size: int,
                 stop_event: threading.Event, side: str, out: queue.Queue) -> None:
    """Run one side: get its engine (reporting loading lines), then its rows. If its model cannot be had, every row
    fails with the reason (or is not run, after a stop); if the side fails later (not a row), its remaining rows
    end with that error."""
    try:
        opening = open_engine()
        while True:
            try:
                out.put((side, _Status(Stage.LOADING, next(opening))))
            except StopIteration as opened:
                engine = opened.value
                break
    except Exception as exc:  # noqa: BLE001 - the other side goes on; this side's rows say why
        message = str(exc) or error_message(exc)
        out.put((side, _Status(Stage.FAILED, message)))
        for index in range(len(rows)):
            out.put((side, RowResult.not_run(index) if stop_event.is_set() else RowResult.failed(index, message)))
        return
    out.put((side, _Status(Stage.RUNNING)))
    reported: set[int] = set()
    try:
        for result in engine.rows(rows, settings, batch_size=batch_size, stop_event=stop_event):
            reported.add(result.index)
            out.put((side, result))
    except Exception as exc:  # noqa: BLE001 - the other side goes on; this side's rows say why they failed
        message = error_message(exc)
        for index in sorted(set(range(len(rows))) - reported):
            out.put((side, RowResult.failed(index, message)))
    out.put((side, _Status(Stage.DONE)))


def _opener(engine: Engine | Opener) -> Opener:
    return ready(engine) if hasattr(engine, "rows") else engine  # type: ignore[arg-type]


def compare_set(left: Engine | Opener, right: Engine | Opener, rows: Sequence[PromptRow], settings: GenerationSettings,
                *, task: Task | str = Task.OTHER, batch_size: int = 0,
                stop_event: threading.Event | None = None,
                ratings: dict[int, str] | None = None, max_seconds: float | None = None) -> Iterator[SetEvent]:
    """Run ``rows`` on both models at once; yield progress at once, after every change and every
    :data:`TICK_SECONDS`, then the whole result.

    Args:
        left / right: the two models (any kinds; the same model may sit on both sides): an engine, or an
            :data:`Opener` that gets one (its loading lines become the side's status).
        rows: the validated rows (see :func:`models.sets.rows.parse_prompt_file` / ``validate_rows``).
        settings: generation settings of both sides (a task prefix reaches whichever side is seq2seq).
        task: decides the scores (see :mod:`models.sets.scores`).
        batch_size: rows per ``generate`` call; 0 chooses per model.
        stop_event: set it to stop both sides within one token; closing this generator sets it too.
        ratings: ratings already given, by row index.
        max_seconds: the most wall-clock seconds the set may run, loads included (a public server's cap); past it
            both sides stop as on ``stop_event``, the rows done are kept and the result's ``stop_reason`` says why.
    """
    stop_event = stop_event if stop_event is not None else threading.Event()
    stop_reason: str | None = None
    sides = {side: _Side() for side in SIDES}
    results = {side: sides[side].results for side in SIDES}
    snapshot_args = (rows, results, task, ratings or {})
    arrivals: queue.Queue = queue.Queue()
    started = time.perf_counter()

    def progress() -> SetProgress:
        return SetProgress({side: state.progress() for side, state in sides.items()}, len(rows),
                           time.perf_counter() - started, snapshot_args)

    def take(side: str, item: RowResult | _Status) -> None:
        state, now = sides[side], time.perf_counter()
        if isinstance(item, RowResult):
            state.add(item, len(rows), now)
            return
        if item.stage is Stage.RUNNING:
            state.running_since = now
        if item.stage is not Stage.DONE or state.stage is not Stage.FAILED:
            state.stage, state.status = item.stage, item.text

    with concurrent.futures.ThreadPoolExecutor(len(SIDES), thread_name_prefix="set") as pool:
        futures = [pool.submit(_side_worker, _opener(engine), rows, settings, batch_size, stop_event, side, arrivals)
                   for side, engine in zip(SIDES, (left, right))]
        last = time.perf_counter()
        try:
            yield progress()  # at once: both sides starting
            while not (all(f.done() for f in futures) and arrivals.empty()):
                if (max_seconds is not None and stop_reason is None and not stop_event.is_set()
                        and time.perf_counter() - started > max_seconds):
                    stop_reason = f"it reached this server's cap of {max_seconds:g} s per set"
                    stop_event.set()  # both sides end within one token; what they finished is kept
                try:
                    take(*arrivals.get(timeout=POLL_SECONDS))
                except queue.Empty:
                    if time.perf_counter() - last < TICK_SECONDS:
                        continue
                else:
                    while True:  # a batch's rows arrive together: one event for all of them
                        try:
                            take(*arrivals.get_nowait())
                        except queue.Empty:
                            break
                last = time.perf_counter()
                yield progress()
        finally:
            if not all(f.done() for f in futures):  # the consumer went away: the workers must end too
                stop_event.set()
    unavailable = {side: state.status for side, state in sides.items() if state.stage is Stage.FAILED}
    final = build_result(rows, results, task, ratings or {}, stopped=stop_event.is_set())
    final.unavailable, final.stop_reason = unavailable, stop_reason
    yield final


def _side_dict(result: RowResult | None, tokens: bool) -> dict[str, Any] | None:
    if result is None:
        return None
    confidence = confidence_summary(result.tokens) or {}
    listed = None if result.tokens is None or not tokens else [t.to_dict() for t in result.tokens]
    return {"text": result.text, "stats": result.stats_dict(), "tokens": listed, "tokens_note": result.tokens_note,
            "mean_prob": confidence.get("mean_prob"), "mean_logprob": confidence.get("mean_logprob")}


def _answered(result: RowResult | None) -> bool:
    return result is not None and result.error is None


def agreement(left: RowResult | None, right: RowResult | None) -> dict[str, Any]:
    """``identical``: both sides produced text and it is the same; ``differs_at``: when both answered and the texts
    differ, the first differing word (1-based; ``None`` when only the spacing differs or a side has not answered)."""
    if left is None or right is None or left.error is not None or right.error is not None:
        return {"identical": False, "differs_at": None}
    identical = bool(left.text) and left.text == right.text
    return {"identical": identical, "differs_at": None if identical else compare_answers(left.text, right.text).word}


def build_result(rows: Sequence[PromptRow], results: dict[str, dict[int, RowResult]], task: Task | str,
                 ratings: dict[int, str], *, stopped: bool = False, tokens: bool = True) -> SetResult:
    """The rows in input order with both outputs (with their token lists unless not ``tokens``), whether they agree,
    their scores and ratings, and the per-side summary."""
    out_rows = []
    for index, row in enumerate(rows):
        entry: dict[str, Any] = {"prompt": row.prompt, "reference": row.reference, "scores": {}}
        for side in SIDES:
            result = results[side].get(index)
            entry[side] = _side_dict(result, tokens)
            entry["scores"][side] = score_row(task, result.text if _answered(result) else None, row.reference)
        entry.update(agreement(results["left"].get(index), results["right"].get(index)))
        entry["rating"] = ratings.get(index)
        out_rows.append(entry)
    summary = summarize(rows, results, task, ratings)
    summary["identical_rows"] = sum(1 for entry in out_rows if entry["identical"])
    return SetResult(out_rows, summary, stopped)


def summarize(rows: Sequence[PromptRow], results: dict[str, dict[int, RowResult]], task: Task | str,
              ratings: dict[int, str]) -> dict[str, Any]:
    """Per side: rows done, mean time per row, tokens/s, mean output length, mean probability and log-probability of
    its tokens (over every token of its answered rows), scores; and the rating tally."""
    summary: dict[str, Any] = {"task": Task(task).value, "rows": len(rows)}
    references = [row.reference for row in rows]
    for side in SIDES:
        done = [results[side][i] for i in sorted(results[side])]
        good = [r for r in done if r.error is None]
        seconds = sum(r.seconds for r in done)
        tokens = sum(r.output_tokens for r in good)
        predictions = [results[side][i].text if _answered(results[side].get(i)) else None for i in range(len(rows))]
        confidence = confidence_summary([t for r in good for t in r.tokens or ()]) or {}
        summary[side] = {
            "rows_done": len(done), "errors": len(done) - len(good),
            "mean_seconds_per_row": round(seconds / len(done), 4) if done else None,
            "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else None,
            "mean_output_tokens": round(statistics.fmean(r.output_tokens for r in good), 2) if good else None,
            "mean_prob": confidence.get("mean_prob"), "mean_logprob": confidence.get("mean_logprob"),
            **summarize_scores(task, predictions, references).to_dict(),
        }
    summary["ratings"] = {rating: sum(1 for r in ratings.values() if r == rating) for rating in RATINGS}
    summary["score_labels"] = {name: list(SCORE_INFO[name]) for name in TASK_SCORES[Task(task)]}  # label, top
    return summary


def rate(result: SetResult | dict[str, Any], index: int, rating: str | None) -> dict[str, Any]:
    """A copy of a set result (its JSON form) with row ``index`` rated and the tally updated."""
    data = result.to_dict() if isinstance(result, SetResult) else result
    rows = [dict(row) for row in data["rows"]]
    if not 0 <= index < len(rows):
        raise IndexError(f"row {index + 1}: the set has {len(rows)} rows")
    rows[index]["rating"] = rating if rating in RATINGS else None
    summary = dict(data["summary"])
    summary["ratings"] = {r: sum(1 for row in rows if row.get("rating") == r) for r in RATINGS}
    return dict(data, rows=rows, summary=summary)
