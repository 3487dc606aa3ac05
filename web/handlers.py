"""The Gradio handlers of one panel: read component values, hand them to the run layer, render its events.

Each handler is a plain function from a ``{component: value}`` dict to a ``{component: update}``
dict. Everything about a run (load, prepare, stream, stop, result) lives in :mod:`models.run`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

import gradio as gr

from components.panel import Panel
from components.render import card_markdown, class_markdown, error_markdown, prompt_view_html, stats_markdown
from components.settings import SHARED_FIELDS
from models import GenerationSettings, ModelIdError, SettingsError, check_precision, parse_precision, validate_prompt
from models.settings import PublicLimits
from models.run import Chunk, Loading, Ready, Runner, RunEvent
from models.tiny import UNTRAINED_NOTE

from .privacy import NO_REDACTION, PathRedactor
from . import quiet
from .zerogpu import gpu_seconds, on_gpu

GENERATING = stats_markdown(None, status="generating…")
NOT_RUN = error_markdown("not run: the model card above says why")
Updates = dict[Any, Any]


def run_settings(data: Mapping[Any, Any], panel: Panel, settings_panel: Panel) -> GenerationSettings:
    """The generation settings a side runs with: the sliders of ``settings_panel`` (its own, or the left
    panel's when both sides share them) plus this panel's own option (task prefix or chat template)."""
    values = {name: data[control] for name, control in zip(SHARED_FIELDS, settings_panel.settings.components())}
    if panel.task_prefix is not None:
        values["task_prefix"] = data[panel.task_prefix] or ""
    if panel.chat_template is not None:
        values["use_chat_template"] = bool(data[panel.chat_template])
    return GenerationSettings.from_mapping(values)


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
        return {panel.output: "", panel.stats: stats_markdown(None, status=event.status)}
    if isinstance(event, Ready):
        view = prompt_view_html(event.token_view.to_dict() if event.token_view else None, error=event.token_view_error)
        return {panel.output: "", panel.stats: GENERATING, panel.card: card_markdown(event.loaded.description.to_dict(), note=note),
                panel.tokens: view, panel.code: event.code}
    if isinstance(event, Chunk):
        return {panel.output: event.text, panel.stats: GENERATING}
    result = event.result
    record = result.to_dict()
    if result.answered:
        return {panel.output: result.text, panel.stats: stats_markdown(record["stats"]), panel.record: record}
    if result.description is None and not result.stopped:  # never loaded: the reason goes under the model, once
        return {panel.output: "", panel.stats: NOT_RUN, panel.card: card_markdown(error=result.error), panel.record: record}
    return {panel.output: "", panel.stats: error_markdown(result.error or ""), panel.record: record}


def _render_blind(event: RunEvent, panel: Panel, names: Iterable[str]) -> Updates:
    if isinstance(event, Loading):
        elapsed = event.status.rsplit("… ", 1)[-1] if "… " in event.status else ""
        return {panel.output: "", panel.stats: stats_markdown(None, status=f"⏳ loading {HIDDEN_MODEL}… {elapsed}".rstrip())}
    if isinstance(event, Ready):
        return {panel.output: "", panel.stats: GENERATING}
    if isinstance(event, Chunk):
        return {panel.output: event.text, panel.stats: GENERATING}
    result = event.result
    record = result.to_dict()
    if result.answered:
        stats = dict(record["stats"], error=hide_names(record["stats"]["error"], names) if record["stats"].get("error") else None)
        return {panel.output: result.text, panel.stats: stats_markdown(stats, blind=True), panel.record: record}
    return {panel.output: "", panel.stats: error_markdown(hide_names(result.error or "", names)), panel.record: record}


def side_handler(runner: Runner, panel: Panel, shared: Panel, prompt_box: gr.Textbox, link: gr.Checkbox,
                 redact: PathRedactor = NO_REDACTION, *, limits: PublicLimits | None = None,
                 visitor: Callable[[Any], str] | None = None, other: Panel | None = None,
                 blind_run: gr.State | None = None):
    """The handler that runs one side: its own model and option, and its own settings or the shared ones.
    What it shows passes through ``redact`` (no server paths for visitors). With ``limits`` (a public
    server) settings beyond them are refused; each refusal is one log line naming ``visitor(request)``.

    Blind mode (``blind_run``'s value ``{"blind": True, "swapped": ...}``, set when the run starts): when
    swapped, this panel runs the ``other`` panel's choice (model, precision, options, own settings), and
    nothing naming the model is shown until the visitor rates (see :func:`render_event`)."""
    def run_side(data: dict[Any, Any], request: gr.Request) -> Iterator[Updates]:
        assignment = (data.get(blind_run) if blind_run is not None else None) or {}
        blind = bool(assignment.get("blind"))
        chooser = other if blind and assignment.get("swapped") and other is not None else panel
        settings_panel = shared if data[link] else chooser
        try:
            prompt = validate_prompt(data[prompt_box])
            settings = run_settings(data, chooser, settings_panel)
            if limits is not None:
                limits.check(settings)
            source = runner.resolve(data[chooser.model], data[chooser.custom])
            precision = check_precision(data[chooser.precision])
        except (SettingsError, ModelIdError) as exc:
            quiet.note("refused", f"the page ({panel.side})", str(exc), visitor(request) if visitor else None)
            message = hide_names(str(exc), (data[chooser.model], data[chooser.custom])) if blind else str(exc)
            yield {panel.output: "", panel.stats: error_markdown(message), panel.record: {"error": str(exc)}}
            return
        note = UNTRAINED_NOTE if source.untrained else None
        run = runner.start(source, prompt, settings, precision, request.session_hash or "anonymous")
        names = (source.name, data[chooser.model], data[chooser.custom])
        for event in run.events():
            update = render_event(event, panel, note, blind=blind, names=names)
            # a chunk carries only the model's text: nothing of the server to hide, and it is the hot path
            yield update if isinstance(event, Chunk) else redact(update)

    token_limits = {c.settings.max_new_tokens for c in (panel, shared, other) if c is not None}
    return on_gpu(run_side, duration=lambda data, *_: gpu_seconds(max(data.get(c) or 0 for c in token_limits)))


def selection_handler(runner: Runner, panel: Panel, redact: PathRedactor = NO_REDACTION):
    """The handler for a panel's model selection: the card line and the class answer, from one config read."""
    def show_selection(data: dict[Any, Any]) -> Updates:
        try:
            precision = parse_precision(data[panel.precision])
        except SettingsError as exc:
            return {panel.card: card_markdown(error=str(exc)), panel.class_info: ""}
        selection = runner.inspect(data[panel.model], data[panel.custom], precision)
        if selection.error is not None:
            error = redact(selection.error)
            return {panel.card: card_markdown(error=error), panel.class_info: class_markdown(error=error)}
        note = UNTRAINED_NOTE if selection.untrained else None
        card = (card_markdown(redact(selection.description.to_dict()), note=note) if selection.description is not None
                else card_markdown(architecture=_report(selection), note=note))
        return {panel.card: card, panel.class_info: class_answer(selection)}
    return show_selection


def _report(selection: Any) -> dict[str, Any] | None:
    return selection.report.to_dict() if selection.report is not None else None  # None: an endpoint's unseen model


def class_answer(selection: Any) -> str:
    """The class answer for an inspected choice (which Auto class, which concrete class, or what serves it): the
    same on the single-prompt page and in the set tab."""
    return class_markdown(_report(selection), served_by=selection.served_by)


def stop_handler(runner: Runner):
    """The ``/stop`` handler: stops every run of the caller's session (the worker threads end at the next token)."""
    def stop(request: gr.Request) -> None:
        runner.stop(request.session_hash or "")
    return stop
