"""The page: the prompt, two panels built by one function, the rate-and-share section, and the events.

:func:`build_page` composes components (``components/``) with handlers (``web/handlers.py``,
``web/share_handlers.py``) and the API (``web/api.py``) over one :class:`models.run.Runner`.
Queue policy (concurrency ids and limits) is set here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from components.export import SIDE_TITLES
from components.evidence import (LeaderboardControls, SharedView, VoteControls, build_leaderboard, build_shared_view,
                                 build_vote_controls)
from components.examples import EXAMPLES, Example
from components.panel import CODE_EMPTY, SIDES, TOKENS_EMPTY, Panels, build_panel, settings_label
from components.score_board import ScoreBoardControls, build_score_board
from components.share import ShareControls, build_share
from models import Kind, SettingsError, check_precision, get_preset, precision_options
from models.settings import setting_ranges
from models.run import Runner

from .api import compare_endpoint, generate_endpoint, models_endpoint
from .blind import BlindView
from .config import AppConfig
from .disk import delete_cache, no_empty_temp_files
from .evidence import Evidence, EvidenceHandlers, open_evidence
from .exports import ExportFolder
from .handlers import run_button_after, run_start_handler, selection_handler, side_handler, stop_handler
from .set_handlers import SetHandlers
from .set_page import build_set_components, wire_prompt_set
from .policy import Policy
from .privacy import no_addresses_in_config, redactor_for
from .score_board import score_board_refresh
from .share_handlers import ShareHandlers, choices_back
from .quiet import quiet_inputs
from .session_owners import SessionOwners
from .visitors import GENERATE, SETS, WORK, FairShare

START_KIND = {"left": Kind.SEQ2SEQ, "right": Kind.CAUSAL}  # the kind of each panel's default model
HEADER = ("# One prompt, two models, side by side\n"
          "Either panel takes any model: an **encoder-decoder** (`AutoModelForSeq2SeqLM`) reads your input and writes a "
          "new text; a **decoder-only** (`AutoModelForCausalLM`) continues your prompt. They start as a seq2seq model on "
          "the left and a causal one on the right; the same model may sit on both sides, e.g. in two precisions. "
          "Both answers stream live.")
OFFLINE = "\n\n**Offline:** the Hugging Face hub cannot be reached; only models on this machine are offered."
PRIVATE = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}  # page-only, constant-time events
QUEUED = {**WORK, "show_progress": "hidden", "api_visibility": "private"}  # page-only events that do real work


@dataclass
class Controls:
    """The components above the panels."""

    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button
    clear: gr.Button
    link: gr.Checkbox  # one set of settings for both sides
    blind: gr.Checkbox  # hide the model names (and shuffle the sides) until the visitor rates
    examples: list[gr.Button]
    how: gr.Markdown  # how the two kinds read the example just picked
    run_token: gr.State  # bumped by the examples to start a run


@dataclass
class Handlers:
    """The functions the page's events call, by what they do."""

    run: Panels  # one side's run, by side
    selection: Panels  # a panel's card and class answer, by side
    share: ShareHandlers  # rate, pair, download, reopen
    stop: Callable
    run_start: Callable  # the first step of Run both: stops this session's run still going, clears the panels
    prompt_set: SetHandlers | None = None  # the "Prompt set" tab
    evidence: EvidenceHandlers | None = None  # comparisons and votes kept, share links, the leaderboard


@dataclass
class Page:
    """The built page and its parts, by name."""

    demo: gr.Blocks
    controls: Controls
    panels: Panels  # by side ("left", "right"; a kind names the panel that starts with it)
    share: ShareControls
    handlers: Handlers
    fair_share: FairShare | None = None  # admits the generating requests, per visitor
    evidence: Evidence | None = None  # the --db store (closed by whoever serves the page)
    vote: VoteControls | None = None  # the task, what is kept, the vote's fate, the share link
    leaderboard: LeaderboardControls | None = None  # the Leaderboard tab
    shared_view: SharedView | None = None  # a ?c=<id> link's comparison, read-only
    scores: ScoreBoardControls | None = None  # the Leaderboard tab's board of automatic scores (prompt sets)

    @property
    def share_handlers(self) -> ShareHandlers:
        return self.handlers.share


def _controls() -> Controls:
    prompt = gr.Textbox(label="Prompt (Ctrl/Cmd+Enter runs)", lines=3, max_lines=12, elem_id="prompt",
                        placeholder="Ask, instruct, or paste a text to summarize or translate…")
    with gr.Row():
        run = gr.Button("Run both", variant="primary", elem_id="run-btn")
        stop = gr.Button("Stop", variant="stop", elem_id="stop-btn")
        clear = gr.Button("Clear", elem_id="clear-btn")
        link = gr.Checkbox(True, label="Same settings for both sides", elem_id="link-settings")
        blind = gr.Checkbox(False, label="Blind: shuffle the sides and hide the models until I rate", elem_id="blind")
    gr.Markdown("**Examples**: a click puts the prompt in and runs both sides at once (a run still going is replaced).",
                elem_id="examples-note")
    with gr.Row(elem_id="examples"):
        examples = [gr.Button(ex.title, size="sm", elem_id=f"example-{i}") for i, ex in enumerate(EXAMPLES)]
    how = gr.Markdown("", elem_id="example-how")
    return Controls(prompt, run, stop, clear, link, blind, examples, how, gr.State(0))


def _panels(runner: Runner, config: AppConfig) -> Panels:
    """Both panels, each offering every generative model; left starts on a seq2seq model, right on a causal one."""
    panels = Panels()
    precision = precision_options()
    limits = setting_ranges(config.limits)
    choices = runner.registry.choices()
    with gr.Row(equal_height=False):
        for side in SIDES:
            kind = START_KIND[side]
            value = runner.default_model(kind, config.seq2seq if kind is Kind.SEQ2SEQ else config.causal)
            preset = get_preset(value or "")
            shown = runner.selected_kind(value) or kind  # the page's load refines what follows the model
            panels[side] = build_panel(side, title=SIDE_TITLES[side], choices=choices, value=value,
                                       allow_custom=runner.registry.allow_custom, precision=precision,
                                       defaults=preset.defaults if preset else {}, limits=limits,
                                       notice=runner.missing_model_notice(shown), show_prefix=shown is Kind.SEQ2SEQ,
                                       show_chat=shown is Kind.CAUSAL)
    return panels


def _handlers(runner: Runner, policy: Policy, config: AppConfig, controls: Controls, panels: Panels,
              share: ShareControls, evidence: EvidenceHandlers | None = None) -> Handlers:
    left, right = panels["left"], panels["right"]
    exports = ExportFolder(share.download_json.GRADIO_CACHE, config.keep_files_s)  # served in place, pruned by age
    other = {"left": right, "right": left}
    return Handlers(run=Panels({side: side_handler(runner, panel, left, other[side], controls.prompt, controls.link,
                                                   share.blind_run, policy)
                                for side, panel in panels.items()}),
                    selection=Panels({side: selection_handler(runner, panel, policy) for side, panel in panels.items()}),
                    share=ShareHandlers(exports, left, right, controls.prompt, share,
                                        BlindView(left, right, share, controls.blind), link=controls.link,
                                        evidence=evidence),
                    stop=stop_handler(runner), run_start=run_start_handler(runner, panels.values(), controls.run),
                    evidence=evidence)


def _wire_run(config: AppConfig, controls: Controls, panels: Panels, handlers: Handlers) -> list[Any]:
    """Run both sides at once; returns each side's run event."""
    share = handlers.share.share
    triggers = [controls.run.click, controls.run_token.change]
    # Registered before the sides' "start" step: the page runs a trigger's listeners in order, one after another.
    gr.on(triggers, handlers.share.run_start, {controls.blind}, handlers.share.run_start_outputs(), **PRIVATE)
    # After the new run's id is set (a run it stops must not pair with it): a run of this session still going is
    # stopped (the new prompt replaces it), both panels cleared, the Run button made busy.
    gr.on(triggers, handlers.run_start, None,
          {controls.run, *[c for p in panels.values() for c in (p.output, p.stats, p.confidence)]}, **PRIVATE)
    # Gradio 6's page runs the listeners of one trigger one after another (it awaits each
    # generator to its end), so the two sides hang off a browser-only "start" step instead:
    # the page starts every .then() of a finished step at once, and both sides stream together.
    start = gr.on(triggers, None, None, None, js="() => {}", queue=False, api_visibility="private")
    events = []
    choices = {c for p in panels.values() for c in (p.model, p.custom, p.precision, p.task_prefix, p.chat_template,
                                                   *p.settings.components())}  # both: a blind run may swap them
    for side, panel in panels.items():
        inputs = {controls.prompt, controls.link, share.blind_run, *choices}
        # "always_last": a start while this side still runs (the run it stops) waits for it to end, then runs with
        # the page as it is then (the new prompt); the default "once" would drop it.
        events.append(start.then(handlers.run[side], inputs=inputs,
                                 outputs={panel.output, panel.stats, panel.card, panel.record, panel.tokens, panel.code,
                                          panel.confidence},
                                 concurrency_id=GENERATE, concurrency_limit=config.concurrency, show_progress="hidden",
                                 trigger_mode="always_last", api_visibility="private"))
    return events


def _wire_panels(demo: gr.Blocks, controls: Controls, panels: Panels, handlers: Handlers) -> None:
    left_settings, right_settings = panels["left"].settings.accordion, panels["right"].settings.accordion
    for trigger in (controls.link.change, demo.load):  # the left panel's settings say when they apply to both sides
        trigger(lambda linked: {right_settings: gr.Accordion(visible=not linked),
                                left_settings: gr.Accordion(label=settings_label("left", shared=linked))},
                controls.link, {left_settings, right_settings}, **PRIVATE)
    for side, panel in panels.items():  # the card, the class answer and what follows the model (see follow_model)
        gr.on([panel.model.change, panel.custom.submit, panel.precision.change, demo.load], handlers.selection[side],
              inputs={panel.model, panel.custom, panel.precision},
              outputs={panel.card, panel.class_info, panel.notice, panel.task_prefix, panel.chat_template},
              concurrency_limit=4, concurrency_id="card", show_progress="hidden", api_visibility="private")


def side_ended(handlers: ShareHandlers, run_button: gr.Button) -> Callable[..., dict[Any, Any]]:
    """After either side ends, in one step: the comparison (:meth:`ShareHandlers.side_done`) and the Run button
    back to "Run both" once both sides of the current run ended (:func:`web.handlers.run_button_after`)."""
    def ended(data: dict[Any, Any], request: gr.Request) -> dict[Any, Any]:
        records = [data[handlers.left.record], data[handlers.right.record]]
        parts = [handlers.side_done(data, request),
                 run_button_after(records, data.get(handlers.share.blind_run), run_button)]
        updates = {k: v for part in parts if part != gr.skip() for k, v in part.items()}
        return updates or gr.skip()
    return ended


def _wire_share(handlers: ShareHandlers, run_events: list[Any], run_button: gr.Button) -> None:
    share, left, right = handlers.share, handlers.left, handlers.right
    outputs = handlers.rate_outputs()
    kept = handlers.evidence.inputs() if handlers.evidence is not None else set()  # the task
    for event in run_events:
        event.then(side_ended(handlers, run_button),
                   inputs={left.record, right.record, share.comparisons, share.rating, share.blind_run, *kept},
                   outputs={*outputs, run_button}, **QUEUED)  # writes the exports, keeps the comparison
    # the records and the run too: a rating given before the run's comparison is saved makes it (``rate``)
    share.rating.input(handlers.rate, inputs={share.rating, share.history, share.comparisons, left.record,
                                              right.record, share.blind_run, *kept}, outputs=outputs, **QUEUED)
    share.history.input(handlers.reopen, inputs={share.history, share.comparisons}, outputs=handlers.reopen_outputs(),
                        **QUEUED)


def example_handler(runner: Runner, example: Example, controls: Controls, panels: Panels) -> Callable:
    """An example button's handler: the prompt, the task prefix, the chat-template switch, the line on how models
    read it, and for a pairing example each panel's model (its kind's default model, or the first of that kind
    available here) and precision; then it bumps the run token, which starts the run. A pairing that cannot run
    here (no model of its kind, a precision this machine lacks) says so instead, and neither runs nor changes models."""
    pair = {side: getattr(example, side) for side in SIDES if getattr(example, side) is not None}
    chosen = {side: runner.default_model(Kind(choice.kind)) for side, choice in pair.items()}
    picked = " · ".join(f"{side}: {chosen[side]} in {choice.precision}" for side, choice in pair.items())
    how = f"ℹ️ {example.how}" + (f"<br>Picked for you: {picked}." if picked else "")
    refusal = next(filter(None, (pairing_refusal(runner, example.title, choice, chosen[side])
                                 for side, choice in pair.items())), None)

    def pick(token: int) -> dict[Any, Any]:
        if refusal is not None:
            return {controls.prompt: example.prompt, controls.how: refusal}
        updates: dict[Any, Any] = {controls.prompt: example.prompt, controls.how: how, controls.run_token: token + 1,
                                   panels["left"].task_prefix: example.task_prefix,
                                   **{panel.chat_template: example.chat_template for panel in panels.values()}}
        for side, choice in pair.items():
            updates.update({panels[side].model: chosen[side], panels[side].custom: "",
                            panels[side].precision: choice.precision, panels[side].task_prefix: example.task_prefix})
        return updates
    return pick


def pairing_refusal(runner: Runner, title: str, choice: Any, model: str | None) -> str | None:
    """Why a pairing example cannot run here (its model cannot be loaded, or its precision cannot run on this
    machine), with how to get a model, as the line under the examples; ``None`` when it can run."""
    kind = Kind(choice.kind)
    if model is None or runner.registry.availability(model) is not None:
        notice = runner.missing_model_notice(kind) or f"No {kind.value} model can be loaded here."
        return f"⚠️ Not run: “{title}” needs a {kind.value} model, and none is on this machine. {notice}"
    try:
        check_precision(choice.precision)
    except SettingsError as exc:
        return f"⚠️ Not run: “{title}” needs {choice.precision}, which cannot run here: {exc}"
    return None


def clear_handler(controls: Controls, panels: Panels) -> Callable[[], dict[Any, Any]]:
    """The Clear button: the prompt, the line on how models read it, and each panel's answer, stats, token view and
    code back to what a fresh page shows (the models, settings and the history of comparisons stay)."""
    def clear() -> dict[Any, Any]:
        updates: dict[Any, Any] = {controls.prompt: "", controls.how: ""}
        for panel in panels.values():
            updates.update({panel.output: "", panel.stats: "", panel.tokens: TOKENS_EMPTY, panel.code: CODE_EMPTY,
                            panel.confidence: ""})
        return updates
    return clear


def _wire_controls(runner: Runner, controls: Controls, panels: Panels, handlers: Handlers) -> None:
    controls.stop.click(handlers.stop, None, None, queue=False, api_name="stop")
    blind = handlers.share.blind
    controls.blind.change(blind.toggled, controls.blind, blind.toggled_outputs(), **PRIVATE)
    clear = clear_handler(controls, panels)
    controls.clear.click(clear, None, set(clear()), **PRIVATE)
    outputs = {controls.prompt, controls.how, controls.run_token,
               *[c for panel in panels.values()
                 for c in (panel.model, panel.custom, panel.precision, panel.task_prefix, panel.chat_template)]}
    for button, example in zip(controls.examples, EXAMPLES):  # queued: Gradio 6 fires a State's .change only then
        button.click(example_handler(runner, example, controls, panels), controls.run_token, outputs,
                     show_progress="hidden", api_visibility="private")


def _wire_evidence(demo: gr.Blocks, tab: gr.Tab, controls: Controls, page_share: ShareControls, vote: VoteControls,
                   board: LeaderboardControls, view: SharedView, handlers: Handlers) -> None:
    """The evidence's events: the share button, a new run clearing the vote line, an example's task, a ``?c=``
    link opened read-only (Run again puts its choices in the panels), the leaderboard's refresh, and the
    ``/vote``, ``/leaderboard`` and ``/comparison`` endpoints."""
    evidence, share = handlers.evidence, handlers.share
    assert evidence is not None
    vote.share.click(evidence.share_clicked, inputs={page_share.history, page_share.comparisons},
                     outputs={vote.link, vote.delete}, **QUEUED)  # the store: queued, as every event that writes it
    vote.delete.click(evidence.delete_clicked, inputs={page_share.history, page_share.comparisons},
                      outputs={vote.link, vote.delete}, **QUEUED)
    gr.on([controls.run.click, controls.run_token.change], evidence.cleared, None, evidence.outputs(), **PRIVATE)
    for button, example in zip(controls.examples, EXAMPLES):
        button.click(_constant(example.task), None, vote.task, **PRIVATE)
    demo.load(evidence.load_shared(view), None, {view.box, view.view, view.comparison}, **QUEUED)

    def run_again(shared: dict[str, Any] | None) -> dict[Any, Any]:
        if not shared:
            return {}
        updates: dict[Any, Any] = {controls.prompt: shared.get("prompt") or "", vote.task: shared.get("task")}
        for panel in (share.left, share.right):
            record = shared.get(panel.side) or {}
            updates.update(choices_back(panel, {"model": record.get("model"), "stats": {"precision": record.get("precision")},
                                                "settings": (shared.get("settings") or {}).get(panel.side) or {}}))
        return updates
    again_outputs = {controls.prompt, vote.task, *[c for p in (share.left, share.right) for c in _panel_choices(p)]}
    view.run_again.click(run_again, view.comparison, again_outputs, **PRIVATE)
    refresh = evidence.leaderboard(board)
    # the vote line changes once a vote on the page is saved (or not): the board follows within seconds.
    # always_last: a switch flipped while a refresh runs is refreshed again after it, with the switch as it is then
    gr.on([tab.select, board.task.change, board.sighted.change, vote.saved.change], refresh,
          [board.task, board.sighted], {board.summary, board.table, board.plot, board.kinds_plot, board.notes},
          concurrency_limit=2, concurrency_id="leaderboard", show_progress="hidden", api_visibility="private",
          trigger_mode="always_last")
    gr.api(evidence.vote_api(), api_name="vote", concurrency_limit=8, concurrency_id="evidence")
    gr.api(evidence.leaderboard_api(), api_name="leaderboard", concurrency_limit=2, concurrency_id="leaderboard")
    gr.api(evidence.comparison_api(), api_name="comparison", concurrency_limit=8, concurrency_id="evidence")


def _constant(value: Any) -> Callable[[], Any]:
    """A handler that always gives ``value`` (an example's task)."""
    return lambda: value


def _panel_choices(panel: Any) -> list[Any]:
    """What Run again may set on a panel (as a reopened comparison does)."""
    return [c for c in (panel.model, panel.custom, panel.precision, panel.task_prefix, panel.chat_template,
                        *panel.settings.components()) if c is not None]


def build_page(runner: Runner, config: AppConfig, evidence: Evidence | None = None) -> Page:
    """Compose the page over ``runner``: components, handlers, events, the API and the queue (with a
    fair share per visitor; the REST routes that would skip the queue closed).

    ``evidence``: the store comparisons and votes are kept in; ``None``: opened from ``config`` (``--db``). Whoever
    serves the page closes it (``page.evidence.close()``)."""
    evidence = evidence if evidence is not None else open_evidence(config)
    fair = FairShare(config.per_visitor, proxy_hops=config.proxy_hops, unread_grace=config.unread_grace,
                     on_abandoned=runner.stop,
                     sets_per_visitor=config.limits.sets_per_visitor if config.limits is not None else None)
    policy = Policy(redactor_for(runner.registry, config.show_paths), config.limits, fair.visitor)
    with gr.Blocks(title="Seq2seq vs causal playground", analytics_enabled=False,
                   delete_cache=delete_cache(config.keep_files_s)) as demo:
        gr.Markdown(HEADER + ("" if runner.registry.online else OFFLINE))
        with gr.Tabs(elem_id="tabs"):  # one tab bar: a visitor sees one tab's page at a time
            with gr.Tab("Single prompt", elem_id="tab-single"):
                view = build_shared_view()
                controls = _controls()
                panels = _panels(runner, config)
                share = build_share()
                vote = build_vote_controls(evidence.line)
            with gr.Tab("Prompt set", elem_id="tab-set"):
                # the same two models as the single-prompt panels, whatever decided those
                set_tab = build_set_components(runner, config, {side: panels[side].model.value for side in SIDES})
            with gr.Tab("Leaderboard", elem_id="tab-leaderboard") as board_tab:
                board = build_leaderboard()
                scores = build_score_board()  # prompt-set scores: a separate table, never mixed with the votes
        kept = EvidenceHandlers(evidence, vote, share, panels["left"], panels["right"], who=policy.who)
        handlers = _handlers(runner, policy, config, controls, panels, share, kept)
        _wire_panels(demo, controls, panels, handlers)
        _wire_share(handlers.share, _wire_run(config, controls, panels, handlers), controls.run)
        _wire_controls(runner, controls, panels, handlers)
        handlers.prompt_set = wire_prompt_set(set_tab, runner, config, policy, demo=demo, exports=handlers.share.exports,
                                              stop=handlers.stop, concurrency_id=SETS, evidence=evidence)
        gr.api(generate_endpoint(runner, policy),
               api_name="generate", concurrency_id=GENERATE, concurrency_limit=config.concurrency)
        gr.api(models_endpoint(runner), api_name="models", queue=False)
        gr.api(compare_endpoint(runner, policy, evidence), api_name="compare", concurrency_id=GENERATE,
               concurrency_limit=config.concurrency)
        _wire_evidence(demo, board_tab, controls, share, vote, board, view, handlers)
        gr.on([board_tab.select, board.task.change], score_board_refresh(evidence, scores), [board.task],
              {scores.note, scores.table}, concurrency_limit=2, concurrency_id="leaderboard", show_progress="hidden",
              api_visibility="private")
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency, api_open=False)
    fair.install(demo)
    quiet_inputs(demo, fair.visitor)  # a crafted value refused by a component: one log line, no traceback
    SessionOwners(config.proxy_hops).install(demo)  # a session hash sent from another address: refused
    no_empty_temp_files(demo)  # Gradio's file input leaves an empty tmp file per event otherwise
    no_addresses_in_config(demo)  # /config would show a function's memory address
    return Page(demo, controls, panels, share, handlers, fair, evidence=evidence, vote=vote, leaderboard=board,
                shared_view=view, scores=scores)
