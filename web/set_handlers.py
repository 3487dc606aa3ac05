"""The prompt-set tab's handlers and the ``/run_set`` API: read the rows, load both models, run the set,
render progress, the table, the summary and the charts; rate rows; write the downloads.

Everything about running lives in :mod:`models.sets.compare` (no Gradio); this module translates.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Iterator

import gradio as gr
import pandas as pd

from components.promptset_tab import SetTab, table_value
from components.render import esc
from components.set_export import summary_markdown, write_set_exports
from evidence.ratings import score_rows
from evidence.store import Side, StoreUnavailable, VoteRefused
from evidence.types import CHOICES, SET_TASKS, TASKS, Contestant
from models import GenerationSettings, ModelIdError, SettingsError, check_precision
from models.request import SetRequest
from models.run import Runner, SetFinished, SetProgress
from models.sets.compare import SIDES, SideProgress, Stage, rate
from models.sets.rows import MAX_FILE_BYTES, PromptRow, PromptSetError, Task, builtin_set, parse_prompt_file, validate_rows

from .evidence import Evidence
from .exports import ExportFolder
from .handlers import slider_settings
from .policy import Policy
from .quiet import note, refuse
from .zerogpu import MAX_SECONDS, on_gpu

Updates = dict[Any, Any]
REFRESH_SECONDS = 0.5  # the table and charts are redrawn at most this often while a set runs
MAX_SET_VOTES = 10_000  # set rows whose store id is remembered (a re-rating replaces the vote)
NO_SCORES = "**Score per side**: no references: no scores (the set's rows carry no reference answer to score against)."


class SetInputError(ValueError):
    """Something about the set, a model or a setting was refused before anything ran."""


class UploadRows:
    """Each uploaded file parsed once: its rows (or its refusal) kept by path, size and modification time.

    The set tab asks for an upload's rows on every change of the tab and again when the set runs; a 1 MB
    file takes about 0.2 s to parse, and six clients re-parsing one file starved another visitor's
    generation (issue 24). The last :data:`MAX_PARSED` files are kept; a changed file is parsed again.
    ``parses`` counts the files really read.
    """

    MAX_PARSED = 16

    def __init__(self) -> None:
        self._parsed: OrderedDict[tuple[str, int, int], tuple[PromptRow, ...] | PromptSetError] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0

    def rows(self, path: str) -> tuple[PromptRow, ...]:
        """The rows of the file at ``path``; raises its :class:`PromptSetError` (the same one each time)."""
        name, info = os.path.basename(path), os.stat(path)
        if info.st_size > MAX_FILE_BYTES:
            raise SetInputError(f"{name}: the file is over {MAX_FILE_BYTES // 1_000_000} MB")
        key = (path, info.st_size, info.st_mtime_ns)
        with self._lock:
            kept = self._parsed.get(key)
            if kept is None:  # parsed under the lock: two events for one new file parse it once
                self.parses += 1
                with open(path, "rb") as handle:
                    try:
                        kept = tuple(parse_prompt_file(name, handle.read()))
                    except PromptSetError as exc:
                        kept = exc
                self._parsed[key] = kept
                while len(self._parsed) > self.MAX_PARSED:
                    self._parsed.popitem(last=False)
            self._parsed.move_to_end(key)
        if isinstance(kept, PromptSetError):  # a new exception each time: a kept one would grow its traceback
            raise PromptSetError(kept.problem, line=kept.line, row=kept.row)
        return kept


UPLOADS = UploadRows()  # one per process: an upload's path is unique to it


def read_rows(builtin: str | None, upload: str | None) -> tuple[str, tuple[PromptRow, ...], Task]:
    """The rows of an uploaded file (it wins, parsed once: :class:`UploadRows`) or of a built-in set, with the set's
    name and task."""
    if upload:
        return os.path.basename(upload), UPLOADS.rows(upload), Task.OTHER
    if not builtin:
        raise SetInputError("set: pick a built-in set or upload a file")
    chosen = builtin_set(builtin)
    return chosen.name, chosen.rows, chosen.task


def build_request(runner: Runner, name: str, rows: tuple[PromptRow, ...], task: Task, models: dict[str, tuple],
                  settings: GenerationSettings, batch_size: Any, policy: Policy | None = None) -> SetRequest:
    """Parse the whole set request once, before anything runs; every refusal names what was wrong.

    ``models``: per side, ``(model, custom hub id, precision, load_in_8bit)`` (the last ``None`` when not given).
    ``policy``: a public server's caps per set (its new tokens, refused here; its wall-clock time, carried).
    """
    try:
        if policy is not None:
            policy.check_set(len(rows), settings)
        size = SetRequest.check_batch_size(batch_size)
        sources, precisions = {}, {}
        for side, (model, custom, precision, load_in_8bit) in models.items():
            precisions[side] = check_precision(precision, load_in_8bit, field=f"precision_{side}",
                                               legacy_field=f"load_in_8bit_{side}")
            try:
                sources[side] = runner.resolve(model, custom)
            except ModelIdError as exc:
                raise SetInputError(f"{side}: {exc}") from None
    except SettingsError as exc:
        raise SetInputError(str(exc)) from None
    # one set of settings for both sides: the task prefix reaches a seq2seq model on either side (prepare() reads it
    # for seq2seq models only), whichever panel it sits on
    return SetRequest(name=name, rows=rows, task=task, sources=sources, precision=precisions, settings=settings,
                      batch_size=size, max_seconds=policy.set_seconds if policy is not None else None)


def first_rows(rows: tuple[PromptRow, ...], value: Any) -> tuple[PromptRow, ...]:
    """The first ``value`` rows (0 or empty: every row); a value that is not a whole number from 0 is refused."""
    if value in (None, ""):
        return rows
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SetInputError(f"first rows: must be a whole number from 0 (every row), got {value!r:.40}")
    return rows[:value] if value else rows


def _side_line(side: str, state: SideProgress, total: int) -> str:
    if state.stage is Stage.FAILED:
        return f"{side} ⚠️ {state.status}"
    if state.stage is Stage.LOADING:
        return f"{side} {state.status}"
    if state.stage is Stage.STARTING:
        return f"{side} ⏳ starting…"
    filled = round(10 * state.done / total) if total else 10
    mark = " ✓" if state.stage is Stage.DONE else ""
    return f"{side} {'▰' * filled}{'▱' * (10 - filled)} {state.done}/{total} rows{mark}"


def progress_line(progress: SetProgress) -> str:
    """``left ▰▰▰▱▱▱▱▱▱▱ 3/10 rows · right ⏳ Loading SmolLM2… 12 s · 14 s · about 8 s left``: each side's stage
    (loading its model, rows done, failed), the time since the set started, and the time left as estimated
    from the rows finished so far."""
    sides = " · ".join(_side_line(side, progress.sides[side], progress.total) for side in SIDES)
    remaining = progress.remaining
    rest = ("" if remaining == 0 else " · time left: after the first rows" if remaining is None
            else f" · about {remaining:.0f} s left")
    return f"{sides} · {progress.elapsed:.0f} s{rest}"


def as_drawn(progress: SetProgress, drawn: SetProgress) -> SetProgress:
    """``progress`` with each side whose rows changed since the table was ``drawn`` shown as it was then: the line
    and the table always count the same rows, and the clock still ticks."""
    sides = {side: state if state.done == drawn.sides[side].done else drawn.sides[side]
             for side, state in progress.sides.items()}
    return replace(progress, sides=sides)


def chart_frames(result: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Data for the three charts: score per side and metric (0–100), time per row per side, output length per row.

    A score bar is one metric of one side (``"chrF · left"``), coloured by side: bars of one x value would stack,
    and chrF stacked on ROUGE-L means nothing. Every frame names both sides, with empty values for a side that has
    nothing yet: Gradio 6's plots fix their colour scale to the sides in the first frame drawn, so a side missing
    from it (the slower one, while the set runs) would never be drawn."""
    summary = result["summary"]
    metrics = list(dict.fromkeys(name for side in SIDES for name in summary[side].get("scores", {})))
    scores = []
    for side in SIDES:
        for name in metrics:
            label, top = summary.get("score_labels", {}).get(name, (name, 1.0))
            value = summary[side].get("scores", {}).get(name)
            scores.append({"bar": f"{label} · {side}", "side": side, "metric": name,
                           "score": None if value is None else value * 100 / top})
    latency = [{"side": side, "seconds per row": summary[side].get("mean_seconds_per_row")} for side in SIDES]
    lengths = [{"row": number, "output tokens": ((row.get(side) or {}).get("stats") or {}).get("output_tokens"),
                "side": side} for number, row in enumerate(result["rows"], 1) for side in SIDES]
    return (pd.DataFrame(scores, columns=["bar", "side", "metric", "score"]),
            pd.DataFrame(latency, columns=["side", "seconds per row"]),
            pd.DataFrame(lengths, columns=["row", "output tokens", "side"]))


def axis_top(values: Any) -> float:
    """A round upper end for a bar chart's axis, above its tallest bar (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten): with
    the axis starting at zero and no upper end, the tallest bar would touch the top and look cut off."""
    highest = max((float(v) for v in values if v is not None and not math.isnan(float(v))), default=0.0)
    if highest <= 0:
        return 1.0
    wanted = highest * 1.1
    power = 10 ** math.floor(math.log10(wanted))
    return next(step * power for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * power >= wanted)


class SetHandlers:
    """Handlers of the prompt-set tab.

    Args:
        runner: loads models (the shared cache) and tracks runs per session for Stop.
        tab: the tab's components.
        exports: where downloads are written.
        policy: what this deployment hides (server paths) and allows (public limits).
        evidence: the page's store (``web.evidence.Evidence``): a rated row is kept as a comparison and its vote
            (source ``"set"``, the set's task), a finished set's scores feed the board of automatic scores;
            ``None`` or no database: nothing is kept and the tab works as without it.
    """

    def __init__(self, runner: Runner, tab: SetTab, exports: ExportFolder, policy: Policy,
                 evidence: Evidence | None = None) -> None:
        self.runner, self.tab, self.exports, self.policy = runner, tab, exports, policy
        self.redact = policy.redact
        self.evidence = evidence
        self._voted: OrderedDict[tuple[str, str, int], str] = OrderedDict()  # (session, run id, row) -> store id
        self._voted_lock = threading.Lock()

    def _request(self, data: dict[Any, Any]) -> SetRequest:
        tab = self.tab
        settings = self.policy.check(slider_settings(data, tab.settings, task_prefix=data[tab.task_prefix] or ""))
        name, rows, task = read_rows(data[tab.builtin], data[tab.upload])
        rows = first_rows(rows, data[tab.first_rows])
        models = {side.side: (data[side.model], data[side.custom], data[side.precision], None) for side in (tab.left, tab.right)}
        return build_request(self.runner, name, rows, task, models, settings, data[tab.batch_size], self.policy)

    def render(self, result: dict[str, Any], final: bool = False, show: str = "all") -> Updates:
        """Table (the rows ``show`` keeps), summary and charts for a (partial or ``final``) result. The charts are
        first drawn once both sides have a row done, or at the end: see :func:`chart_frames` for why the first frame
        must hold both. A set without references (or whose task has no score) shows :data:`NO_SCORES` in the score
        chart's place, from its first frame."""
        tab = self.tab
        scored = bool(result["summary"].get("score_labels")) and any(row.get("reference") for row in result["rows"])
        updates: Updates = {tab.table: table_value(result, show), tab.summary: summary_markdown(result),
                            tab.score_box: gr.Column(visible=scored),
                            tab.score_note: gr.Markdown(NO_SCORES if not scored else "", visible=not scored)}
        if final or all(result["summary"][side].get("rows_done") for side in SIDES):
            scores, latency, lengths = chart_frames(result)
            top = axis_top(latency["seconds per row"])  # from zero: a cut axis makes 0.31 s look 10× 0.27 s
            updates.update({tab.latency_plot: gr.BarPlot(latency, y_lim=[0, top]), tab.length_plot: lengths,
                            **({tab.score_plot: scores} if scored else {})})
        return updates

    def _finished(self, result: dict[str, Any], show: str) -> Updates:
        # the run's own folder, which no other visitor can guess: a rating rewrites the same three files
        csv_path, json_path, md_path = write_set_exports(result, self.exports.private(result.get("id")))
        return {**self.render(result, final=True, show=show), self.tab.result: result,
                self.tab.download_csv: gr.DownloadButton(value=str(csv_path), interactive=True),
                self.tab.download_json: gr.DownloadButton(value=str(json_path), interactive=True),
                self.tab.download_md: gr.DownloadButton(value=str(md_path), interactive=True)}

    def run(self, data: dict[Any, Any], request: gr.Request) -> Iterator[Updates]:
        """Run the set on both models; the table fills row by row; the result and downloads at the end."""
        try:
            set_request = self._request(data)
        except (SetInputError, PromptSetError, SettingsError, OSError) as exc:
            note("refused", "set tab", self.redact(str(exc)), self.policy.who(request))
            yield {self.tab.progress: f"⚠️ {esc(self.redact(str(exc)))}"}
            return
        drawn: SetProgress | None = None  # the progress the table shows
        last_drawn = 0.0
        for update in self.runner.start_set(set_request, request.session_hash or "anonymous").events():
            if isinstance(update, SetFinished) and update.error is not None:
                yield {self.tab.progress: f"⚠️ {esc(self.redact(update.error))}"}
            elif isinstance(update, SetProgress):
                changed = drawn is None or (update.done_left, update.done_right) != (drawn.done_left, drawn.done_right)
                if changed and (drawn is None or time.perf_counter() - last_drawn >= REFRESH_SECONDS):
                    drawn, last_drawn = update, time.perf_counter()
                    yield {self.tab.progress: esc(self.redact(progress_line(update))),
                           **self.render(self.redact(update.snapshot().to_dict()), show=data[self.tab.show])}
                else:  # the clock ticks; the counts stay those of the table until it is redrawn
                    yield {self.tab.progress: esc(self.redact(progress_line(as_drawn(update, drawn))))}
            elif isinstance(update, SetFinished):
                result = self.redact(update.result)
                line = ("✅ done" if not result["stopped"] else f"⏹ stopped: {result['stop_reason']}; the rows done are kept"
                        if result.get("stop_reason") else "⏹ stopped: the rows done are kept")
                line += "".join(f" · {side} ⚠️ {reason}" for side, reason in (result.get("unavailable") or {}).items())
                line += self.keep_scores(result)
                yield {self.tab.progress: esc(line), **self._finished(result, data[self.tab.show])}

    def filter_table(self, data: dict[Any, Any]) -> Any:
        """The finished set's table with the rows the filter keeps (the filter chosen while a set runs applies
        when it ends)."""
        result = data[self.tab.result]
        return table_value(result, data[self.tab.show]) if result else gr.skip()

    def select_row(self, event: gr.SelectData) -> int:
        """Clicking a table row picks it for rating: its number in the set (the ``#`` cell, which a filtered table
        keeps)."""
        return int(event.row_value[0]) if event.row_value else int(event.index[0]) + 1

    def rate(self, data: dict[Any, Any], request: gr.Request | None = None) -> Updates:
        """Store the rating of the picked row and refresh the table, summary and downloads; with a store, the
        row is kept as a comparison and the rating as its vote (the line above the table says whether)."""
        result, number, rating = data[self.tab.result], data[self.tab.rating_row], data[self.tab.rating]
        if not result or not number or not 1 <= int(number) <= len(result["rows"]):
            return gr.skip()
        updates = self._finished(rate(result, int(number) - 1, rating), data[self.tab.show])
        line = self.keep_vote(result, int(number) - 1, rating, getattr(request, "session_hash", None) or "anonymous")
        return {**updates, self.tab.progress: esc(line)} if line else updates

    # -- the evidence: votes and automatic scores ----------------------------------------------------------

    def _kept(self) -> bool:
        return self.evidence is not None and self.evidence.store is not None

    def keep_scores(self, result: dict[str, Any]) -> str:
        """Keep a finished set's per-row scores for the board of automatic scores; what to add to the line
        (nothing when kept or when nothing is kept on this server)."""
        if not self._kept() or not result.get("id"):
            return ""
        try:
            rows = score_rows(result, *(set_contestant(result, side) for side in SIDES), task=set_task(result))
            if rows:
                self.evidence.kept_store().record_set_scores(str(result["id"]), rows)
        except StoreUnavailable as exc:
            return f" · scores not saved: {exc}"
        except (ValueError, KeyError, TypeError) as exc:
            return f" · scores not kept: {exc}"
        return ""

    def keep_vote(self, result: dict[str, Any], index: int, rating: str | None, session: str) -> str:
        """Keep row ``index``'s rating as a vote (source ``"set"``); the line saying what happened ("" when this
        server keeps nothing). A second rating of the same row replaces the vote; a store error only says so."""
        if not self._kept() or rating not in CHOICES:
            return ""
        key = (session, str(result.get("id")), index)
        try:
            with self._voted_lock:
                store_id = self._voted.get(key)
                if store_id is None:
                    store_id = self._voted[key] = self._record_row(result, index, session)
                    while len(self._voted) > MAX_SET_VOTES:
                        self._voted.popitem(last=False)
            self.evidence.vote(store_id, session, rating, source="set")
        except StoreUnavailable as exc:
            return f"⚠️ rating of row {index + 1} not saved: {exc}"
        except (VoteRefused, ValueError) as exc:
            return f"⚠️ rating of row {index + 1} not kept: {exc}"
        return f"✅ rating of row {index + 1} kept as a vote ({set_task(result)})"

    def _record_row(self, result: dict[str, Any], index: int, session: str) -> str:
        row = result["rows"][index]
        sides = [set_side(result, side) for side in SIDES]
        texts = tuple(str((row.get(side) or {}).get("text") or "") for side in SIDES)
        return self.evidence.kept_store().record_comparison(
            owner_session=session, task=set_task(result), prompt=str(row.get("prompt") or ""), outputs=texts,
            left=sides[0], right=sides[1], settings=dict(result.get("settings") or {}, set=str(result.get("set") or "")),
            stats=tuple((row.get(side) or {}).get("stats") for side in SIDES), blind=False)


def set_task(result: dict[str, Any]) -> str:
    """The vote task a set's rows count under (its summary's set task through ``SET_TASKS``; else ``"other"``)."""
    task = result.get("task") or (result.get("summary") or {}).get("task") or "other"
    task = getattr(task, "value", task)
    task = SET_TASKS.get(str(task), str(task))
    return task if task in TASKS else "other"


def set_side(result: dict[str, Any], side: str) -> Side:
    """One side of a set run as the store keeps it, from the result's ``models`` (the engine's description)."""
    description = (result.get("models") or {}).get(side) or {}
    if description.get("kind") is None or description.get("unavailable"):
        raise ValueError(f"{side}: the model gave no answers, so there is nothing to vote on")
    endpoint = description.get("endpoint")
    precision = description.get("precision") or ("endpoint" if endpoint else "unknown")
    return Side(model=str(description.get("name") or "unknown"), kind=str(description["kind"]), precision=str(precision),
                revision=description.get("revision"), model_class=description.get("resolved_class"),
                engine=str(endpoint) if endpoint else "local")


def set_contestant(result: dict[str, Any], side: str) -> Contestant:
    kept = set_side(result, side)
    return Contestant(kept.model, kept.precision, kept.kind)


def run_set_endpoint(runner: Runner, policy: Policy) -> Callable[..., Iterator[dict]]:
    """The ``/run_set`` function: many prompts on two models, progress while it runs, every row at the end."""
    def run_set(left: str, right: str, rows: list, max_new_tokens: int = 128, temperature: float = 0.0,
                top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0, seed: int = 0,
                load_in_8bit_left: bool | None = None, load_in_8bit_right: bool | None = None, batch_size: int = 0,
                precision_left: str = "auto", precision_right: str = "auto",
                request: gr.Request | None = None) -> Iterator[dict]:
        """Run a prompt set on two models at once.

        ``rows``: a list of objects with ``prompt`` and optional ``reference`` and ``task_prefix`` (at most 200).
        ``precision_left`` / ``precision_right``: auto, float32, bfloat16, float16 (GPU only) or 8-bit
        (``load_in_8bit_left`` / ``_right`` = true still mean 8-bit).
        Streams ``{"done_left", "done_right", "total"}`` progress objects, then ends with
        ``{"rows": [{"prompt", "reference", "left": {"text", "stats", "tokens", "tokens_note", "mean_prob",
        "mean_logprob"}, "right": {...}, "scores": {...}, "identical", "differs_at"}], "summary": {...}}``
        with the rows in input order (``tokens``: each generated token's ``id``, ``text``, ``prob`` and ``top``
        alternatives, or ``None`` with ``tokens_note`` saying why; ``identical``: both sides gave the same text;
        ``differs_at``: else the first differing word, from 1; the summary adds ``identical_rows`` and each side's
        ``mean_prob`` over its tokens). Bad rows, models or settings are refused before anything runs, naming what
        was wrong. On a public server a set asking more than its cap of new tokens (rows × ``max_new_tokens``) is
        refused naming the cap; one past its wall-clock cap stops with ``"stopped": true`` and ``stop_reason``.
        """
        try:
            settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                          top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
            policy.check(settings)
            checked = tuple(validate_rows(rows))
            set_request = build_request(runner, "api", checked, Task.OTHER,
                                        {"left": (left, None, precision_left, load_in_8bit_left),
                                         "right": (right, None, precision_right, load_in_8bit_right)},
                                        settings, batch_size, policy)
        except (SetInputError, PromptSetError, SettingsError) as exc:
            raise refuse("/run_set", str(exc)) from None  # one log line, as /generate's refusals, no traceback
        session = (request.session_hash if request is not None else None) or "api"
        last: dict | None = None
        for update in runner.start_set(set_request, session).events():
            if isinstance(update, SetProgress):
                if update.to_dict() != last:  # a new count; the page's clock ticks are not sent
                    last = update.to_dict()
                    yield last
            elif isinstance(update, SetFinished) and update.error is not None:
                raise refuse("/run_set", policy.redact(update.error))
            elif isinstance(update, SetFinished):
                result = policy.redact(update.result)
                yield {"rows": result["rows"], "summary": result["summary"], "models": result["models"],
                       "stopped": result["stopped"], **({"stop_reason": result["stop_reason"]}
                                                        if result.get("stop_reason") else {})}
    return on_gpu(run_set, duration=lambda *args, **kwargs: MAX_SECONDS)  # a set takes ZeroGPU's longest lease


def about_set(builtin: str | None, upload: str | None) -> str:
    """What the chosen set is: its size, its task, and which kind of model it should favour; or why it is refused."""
    try:
        name, rows, task = read_rows(builtin, upload)
    except (SetInputError, PromptSetError, OSError) as exc:
        return f"⚠️ {esc(str(exc))}"
    favours = "" if upload else f" · {esc(builtin_set(name).favours)}"
    scored = sum(1 for row in rows if row.reference is not None)
    return f"**{esc(name)}**: {len(rows)} rows · task {task.value} · {scored} with a reference{favours}"
