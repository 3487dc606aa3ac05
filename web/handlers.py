"""The Gradio handlers of one panel: read component values, hand them to the run layer, render its events.

Each handler is a plain function from a ``{component: value}`` dict to a ``{component: update}``
dict. Everything about a run (load, prepare, stream, stop, result) lives in :mod:`models.run`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Mapping

import gradio as gr

from components.panel import Panel
from components.render import (CONFIDENCE_HIDDEN, card_markdown, class_markdown, error_markdown, prompt_view_html,
                               record_confidence, stats_markdown)
from components.settings import SHARED_FIELDS
from models import GenerationSettings, Kind, ModelIdError, ModelSource, Precision, SettingsError, parse_precision
from models.request import RunRequest
from models.settings import plain_error
from models.run import Chunk, Loading, Ready, Runner, RunEvent
from models.tiny import UNTRAINED_NOTE

from . import quiet
from .policy import Policy
from .share_handlers import same_run
from .zerogpu import gpu_seconds, on_gpu

GENERATING = stats_markdown(None, status="generating…")
BLIND_LOADING = stats_markdown(None, status="⏳ loading both hidden models (both sides start together)…")
STARTING = stats_markdown(None, status="⏳ starting…")
RESTARTING = stats_markdown(None, status="⏳ stopping the previous run, then starting this one…")
RUN_IDLE = "Run both"
RUN_BUSY = "⏳ Running… (Run again restarts)"  # the Run button's label while this session's sides run
NOT_RUN = error_markdown("not run: the model card above says why")
Updates = dict[Any, Any]


def slider_settings(data: Mapping[Any, Any], sliders: Any, **options: Any) -> GenerationSettings:
    """The generation settings read from a group of sliders (``sliders.components()`` in ``SHARED_FIELDS`` order),
    plus a side's own ``options`` (task prefix, chat template): the page's panels and the set tab alike."""
    values = {name: data[control] for name, control in zip(SHARED_FIELDS, sliders.components())}
    return GenerationSettings.from_mapping({**values, **options})


def run_settings(data: Mapping[Any, Any], panel: Panel, settings_panel: Panel) -> GenerationSettings:
    """The generation settings a side runs with: the sliders of ``settings_panel`` (its own, or the left
    panel's when both sides share them) plus this panel's own option (task prefix or chat template)."""
    options: dict[str, Any] = {}
    if panel.task_prefix is not None:
        options["task_prefix"] = data[panel.task_prefix] or ""
    if panel.chat_template is not None:
        options["use_chat_template"] = bool(data[panel.chat_template])
    return slider_settings(data, settings_panel.settings, **options)


HIDDEN_MODEL = "the hidden model"


def hide_names(text: str, names: Iterable[str]) -> str:
    """``text`` with every model name in ``names`` replaced by "the hidden model" (blind mode)."""
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        text = text.replace(name, HIDDEN_MODEL)
    return text


def render_event(event: RunEvent, panel: Panel, note: str | None, *, blind: bool = False,
                 names: Iterable[str] = ()) -> Updates:
    """The panel's updates for one run event (the card, tokens and code are sent once, when ready).

    ``blind``: nothing that names the model reaches the page (no card, token view or code; the
    precision left out of the stats; ``names`` hidden in status lines and errors). The record keeps
    everything (it stays on the server) for the reveal and the export.
    """
    if blind:
        return _render_blind(event, panel, names)
    if isinstance(event, Loading):
        return {panel.output: "", panel.stats: stats_markdown(None, status=event.status), panel.confidence: ""}
    if isinstance(event, Ready):
        view = prompt_view_html(event.token_view.to_dict() if event.token_view else None, error=event.token_view_error)
        return {panel.output: "", panel.stats: GENERATING, panel.card: card_markdown(event.description.to_dict(), note=note),
                panel.tokens: view, panel.code: event.code, panel.confidence: ""}
    if isinstance(event, Chunk):
        return {panel.output: event.text, panel.stats: GENERATING}
    result = event.result
    record = result.to_dict()
    if result.answered:
        return {panel.output: result.text, panel.stats: stats_markdown(record["stats"]), panel.record: record,
                panel.confidence: record_confidence(record)}
    if result.description is None and not result.stopped:  # never loaded: the reason goes under the model, once
        return {panel.output: "", panel.stats: NOT_RUN, panel.card: card_markdown(error=result.error), panel.record: record}
    return {panel.output: "", panel.stats: error_markdown(result.error or ""), panel.record: record}


def _render_blind(event: RunEvent, panel: Panel, names: Iterable[str]) -> Updates:
    """Until the vote, the same on both sides whatever ran there: one loading line (no timer: only the side whose
    model is not loaded yet would count), the answer, and a stats line that holds the figures back."""
    if isinstance(event, Loading):
        return {panel.output: "", panel.stats: BLIND_LOADING, panel.confidence: CONFIDENCE_HIDDEN}
    if isinstance(event, Ready):
        return {panel.output: "", panel.stats: GENERATING, panel.confidence: CONFIDENCE_HIDDEN}
    if isinstance(event, Chunk):
        return {panel.output: event.text, panel.stats: GENERATING}
    result = event.result
    record = result.to_dict()
    if result.answered:  # the figures wait for the reveal (web/blind.py), which shows them from the record
        return {panel.output: result.text, panel.stats: stats_markdown(record["stats"], blind=True), panel.record: record}
    return {panel.output: "", panel.stats: error_markdown(hide_names(result.error or "", names)), panel.record: record}


def side_handler(runner: Runner, panel: Panel, shared: Panel, other: Panel, prompt_box: gr.Textbox, link: gr.Checkbox,
                 blind_run: gr.State, policy: Policy):
    """The handler that runs one side: its own model and option, and its own settings or the shared ones.
    What it shows passes through ``policy.redact`` (no server paths for visitors). Settings beyond
    ``policy.limits`` (a public server) are refused; each refusal is one log line naming the visitor.

    Blind mode (``blind_run``'s value ``{"blind": True, "swapped": ..., "run": ...}``, set when the run starts):
    when swapped, this panel runs the ``other`` panel's choice (model, precision, options), with this panel's
    settings (a side's own max_new_tokens must not travel with its model), and nothing that names or tells the
    models apart is shown until the visitor rates (see :func:`render_event`): each side loads both models before
    it starts, so that both say the same while loading. The record gets the run's id (``"run"``), so that only
    the two records of one run are paired."""
    def run_side(data: dict[Any, Any], request: gr.Request) -> Iterator[Updates]:
        assignment = data.get(blind_run) or {}
        blind = bool(assignment.get("blind"))
        with contextlib.closing(_run_side(data, request, assignment, blind)) as updates:  # closed: the run stops
            for update in updates:
                record = update.get(panel.record)
                if isinstance(record, dict) and assignment.get("run"):  # which run it belongs to (see same_run)
                    update[panel.record] = {**record, "run": assignment["run"]}
                yield update

    def _run_side(data: dict[Any, Any], request: gr.Request, assignment: Mapping[str, Any],
                  blind: bool) -> Iterator[Updates]:
        # at once: the last run's answer, stats and shading go (a restart's old answer may have just been repainted)
        cleared = {panel.output: "", panel.stats: STARTING, panel.confidence: CONFIDENCE_HIDDEN if blind else ""}
        last = {**cleared, panel.stats: BLIND_LOADING} if blind else cleared
        yield last
        swapped = blind and bool(assignment.get("swapped"))
        chooser = other if swapped else panel
        settings_panel = shared if data[link] else (panel if blind else chooser)
        try:
            run_request = RunRequest.parse(prompt=data[prompt_box], precision=data[chooser.precision],
                                           settings=policy.check(run_settings(data, chooser, settings_panel)))
            source = runner.resolve(data[chooser.model], data[chooser.custom])
        except (SettingsError, ModelIdError) as exc:
            quiet.note("refused", f"the page ({panel.side})", str(exc), policy.who(request))
            message = hide_names(str(exc), (data[chooser.model], data[chooser.custom])) if blind else str(exc)
            yield {panel.output: "", panel.stats: error_markdown(plain_error(message)), panel.record: {"error": str(exc)}}
            return
        note = UNTRAINED_NOTE if source.untrained else None
        partner = _choice(runner, data, panel if swapped else other) if blind else None  # what runs on the other side
        run = runner.start(source, run_request, request.session_hash or "anonymous",
                           load_first=[partner] if partner is not None else [])
        names = (source.name, data[chooser.model], data[chooser.custom], partner[0].name if partner else "")
        for event in run.events():
            if run.replaced:  # a newer run of this session takes the panel: nothing more of this one goes on it
                yield cleared  # Gradio repaints a generator's last update when it ends: not the old answer
                return
            update = render_event(event, panel, note, blind=blind, names=names)
            if blind and not isinstance(event, Chunk):
                if update == last:  # the loading line again: sent once, as on the other side
                    continue
                last = update
            # a chunk carries only the model's text: nothing of the server to hide, and it is the hot path
            yield update if isinstance(event, Chunk) else policy.redact(update)

    token_limits = {c.settings.max_new_tokens for c in (panel, shared, other)}
    return on_gpu(run_side, duration=lambda data, *_: gpu_seconds(max(data.get(c) or 0 for c in token_limits)))


def _choice(runner: Runner, data: Mapping[Any, Any], chooser: Panel) -> tuple[ModelSource, Precision] | None:
    """The model and precision ``chooser``'s selectors pick, or ``None`` when they cannot be read (that side's own
    run says why)."""
    try:
        return runner.resolve(data[chooser.model], data[chooser.custom]), parse_precision(data[chooser.precision])
    except (SettingsError, ModelIdError):
        return None


def selection_handler(runner: Runner, selector: Any, policy: Policy):
    """The handler for a model selection (a panel's, or a set side's): the class answer, and the card line
    when ``selector`` has a card (a panel), from one config read.

    ``selector`` has ``model``, ``custom``, ``precision`` and ``class_info`` components (and maybe ``card``).
    A page panel also gets what follows the model (:func:`follow_model`): its notice, task prefix and chat switch."""
    card_box = getattr(selector, "card", None)

    def show_selection(data: dict[Any, Any]) -> Updates:
        try:
            precision = parse_precision(data[selector.precision])
        except SettingsError as exc:
            return {selector.class_info: class_markdown(error=str(exc)) if card_box is None else "",
                    **({card_box: card_markdown(error=str(exc))} if card_box is not None else {})}
        selection = runner.inspect(data[selector.model], data[selector.custom], precision)
        updates = card_and_class(selection)
        if isinstance(selector, Panel):
            updates.update(follow_model(runner, selector, data[selector.model], data[selector.custom], selection))
        return updates

    def card_and_class(selection: Any) -> Updates:
        if selection.error is not None:
            error = policy.redact(selection.error)
            updates = {selector.class_info: class_markdown(error=error)}
            return {**updates, card_box: card_markdown(error=error)} if card_box is not None else updates
        updates = {selector.class_info: class_answer(selection)}
        if card_box is None:
            return updates
        note = UNTRAINED_NOTE if selection.untrained else None
        card = (card_markdown(policy.redact(selection.description.to_dict()), note=note) if selection.description is not None
                else card_markdown(architecture=_report(selection), note=note))
        return {**updates, card_box: card}
    return show_selection


def follow_model(runner: Runner, panel: Panel, name: str | None, custom: str | None, selection: Any) -> Updates:
    """What of a panel follows its selected model: the notice on how to get a model (shown only while no model of
    the selection's kind can run here), the task prefix (seq2seq models read it) and the chat-template switch
    (causal models whose tokenizer has one). What is not known before a load (a typed hub id's kind, whether a GGUF
    file not yet converted has a template) leaves the control shown."""
    report = getattr(selection, "report", None)
    kind_value = report.kind if report is not None else getattr(runner.selected_kind(name, custom), "value", None)
    notice = runner.missing_model_notice(Kind(kind_value) if kind_value else None)
    updates: Updates = {panel.task_prefix: gr.Textbox(visible=kind_value != Kind.CAUSAL.value),
                        panel.chat_template: gr.Checkbox(visible=kind_value != Kind.SEQ2SEQ.value
                                                         and getattr(selection, "chat_template", None) is not False)}
    if panel.notice is not None:
        updates[panel.notice] = gr.Markdown(notice or "", visible=bool(notice))
    return updates


def _report(selection: Any) -> dict[str, Any] | None:
    return selection.report.to_dict() if selection.report is not None else None  # None: an endpoint's unseen model


def class_answer(selection: Any) -> str:
    """The class answer for an inspected choice (which Auto class, which concrete class, or what serves it): the
    same on the single-prompt page and in the set tab."""
    return class_markdown(_report(selection), served_by=selection.served_by)


def run_start_handler(runner: Runner, panels: Iterable[Panel], run_button: gr.Button):
    """The first step of Run both (the button, Ctrl/Cmd+Enter, an example): a single-prompt run of this session
    still going is stopped, since the new prompt replaces it (its sides' events wait for it to end, then run);
    both panels' answers, stats and shading are cleared at once; the Run button says a run is going until
    both sides end (:func:`run_button_after`). A prompt set of the same session runs on."""
    panels = list(panels)

    def start(request: gr.Request) -> Updates:
        stopped = runner.replace(request.session_hash or "")
        updates: Updates = {run_button: gr.Button(RUN_BUSY, variant="secondary")}
        for panel in panels:
            updates.update({panel.output: "", panel.stats: RESTARTING if stopped else STARTING, panel.confidence: ""})
        return updates
    return start


def run_button_after(records: Iterable[Mapping[str, Any] | None], current: Mapping[str, Any] | None,
                     run_button: gr.Button) -> Updates:
    """After a side ends: the Run button back to "Run both" once both records belong to the current run
    (:func:`web.share_handlers.same_run`), else nothing (the other side runs, or a restarted run ended)."""
    if not same_run(records, current):
        return gr.skip()
    return {run_button: gr.Button(RUN_IDLE, variant="primary")}


def stop_handler(runner: Runner):
    """The ``/stop`` handler: stops every run of the caller's session (the worker threads end at the next token)."""
    def stop(request: gr.Request) -> None:
        runner.stop(request.session_hash or "")
    return stop
