"""The "Prompt set" tab composed: components (``components/promptset_tab.py``), handlers
(``web/set_handlers.py``) and the ``/run_set`` API, sharing the single page's queue policy."""

from __future__ import annotations

from typing import Callable, Mapping

import gradio as gr

from components.promptset_tab import SetTab, build_set_tab
from models import Kind, precision_options
from models.sets.rows import BUILTIN_SETS, MAX_FILE_BYTES, builtin_set
from models.run import Runner
from models.settings import setting_ranges

from .config import AppConfig
from .evidence import Evidence
from .exports import ExportFolder
from .handlers import selection_handler
from .policy import Policy
from .set_handlers import SetHandlers, about_set, run_set_endpoint
from .visitors import WORK, set_slots
from .zerogpu import MAX_SECONDS, on_gpu

PRIVATE = {"show_progress": "hidden", "api_visibility": "private"}


def build_set_components(runner: Runner, config: AppConfig, start: Mapping[str, str | None] | None = None) -> SetTab:
    """The tab's components (call inside its ``gr.Tab``): the sets, both sides' selectors, settings, table, charts.

    ``start``: the model each side starts with: the single-prompt panels' (``web/page.py`` passes them, so both
    tabs open on the same two models); without it, each side's default model."""
    registry = runner.registry
    start = start or {"left": runner.default_model(Kind.SEQ2SEQ, config.seq2seq),
                      "right": runner.default_model(Kind.CAUSAL, config.causal)}
    return build_set_tab(
        sets=[(builtin_set(name).title, name) for name in BUILTIN_SETS],
        choices={"left": registry.choices(), "right": registry.choices()},  # any generative model on either side
        values={"left": start["left"], "right": start["right"]},
        allow_custom=registry.allow_custom, precision=precision_options(), limits=setting_ranges(config.limits),
        max_upload_mb=MAX_FILE_BYTES / 1e6, note=config.limits.set_note() if config.limits is not None else "")


def wire_prompt_set(tab: SetTab, runner: Runner, config: AppConfig, policy: Policy, *, demo: gr.Blocks,
                    exports: ExportFolder, stop: Callable, concurrency_id: str,
                    evidence: Evidence | None = None) -> SetHandlers:
    """Wire the tab's events (inside the page's ``gr.Blocks``) and register ``/run_set``; ``evidence``: the page's
    store, where rated rows are kept as votes and finished sets' scores for the board of automatic scores."""
    handlers = SetHandlers(runner, tab, exports, policy, evidence)
    slots = set_slots(config.concurrency)  # one slot always left to single prompts
    _wire(tab, handlers, runner, policy, stop, slots, concurrency_id, demo.load)
    gr.api(run_set_endpoint(runner, policy), api_name="run_set", concurrency_id=concurrency_id, concurrency_limit=slots)
    return handlers


def gpu_run(handlers: SetHandlers) -> Callable:
    """The tab's run handler as a plain function carrying the ZeroGPU decorator (a set takes the longest lease)."""
    def run_set_tab(data: dict, request: gr.Request):
        yield from handlers.run(data, request)
    return on_gpu(run_set_tab, duration=lambda *args, **kwargs: MAX_SECONDS)


def _wire(tab: SetTab, handlers: SetHandlers, runner: Runner, policy: Policy, stop: Callable,
          concurrency: int, concurrency_id: str, page_load: Callable) -> None:
    # queued (``WORK``): a new upload is parsed here (once: ``UploadRows``); Stop and a row's pick stay outside the queue
    gr.on([tab.builtin.change, tab.upload.change, page_load], about_set, [tab.builtin, tab.upload], tab.about, **WORK,
          **PRIVATE)
    for side in (tab.left, tab.right):
        gr.on([side.model.change, side.custom.submit, side.precision.change, page_load],
              selection_handler(runner, side, policy),
              inputs={side.model, side.custom, side.precision}, outputs={side.class_info}, concurrency_limit=4,
              concurrency_id="card", **PRIVATE)
    inputs = {tab.builtin, tab.upload, tab.task_prefix, tab.batch_size, tab.first_rows, tab.show, *tab.settings.components(),
              *[c for side in (tab.left, tab.right) for c in (side.model, side.custom, side.precision)]}
    finished = {tab.table, tab.summary, tab.score_box, tab.score_plot, tab.score_note, tab.latency_plot, tab.length_plot,
                tab.result,
                tab.download_csv, tab.download_json, tab.download_md}
    tab.run.click(gpu_run(handlers), inputs=inputs, outputs={tab.progress, *finished}, concurrency_id=concurrency_id,
                  concurrency_limit=concurrency, **PRIVATE
                  ).then(handlers.filter_table, inputs={tab.result, tab.show}, outputs=tab.table, **WORK, **PRIVATE)
    tab.show.change(handlers.filter_table, inputs={tab.result, tab.show}, outputs=tab.table, **WORK, **PRIVATE)
    tab.stop.click(stop, None, None, queue=False, api_visibility="private")
    tab.table.select(handlers.select_row, None, tab.rating_row, queue=False, **PRIVATE)
    tab.rating.input(handlers.rate, inputs={tab.result, tab.rating_row, tab.rating, tab.show}, outputs={tab.progress, *finished},
                     **WORK, **PRIVATE)  # rewrites the three downloads and keeps the vote
