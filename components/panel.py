"""One model panel; built twice (left and right). Either panel takes any generative model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import gradio as gr

from .render import CONFIDENCE_CSS, CONFIDENCE_EMPTY, PROMPT_VIEW_EMPTY, TOKENS_CSS, esc

CODE_EMPTY = "# Run to get a script that reproduces this side's answer.\n"
TOKENS_EMPTY = f"<p>{esc(PROMPT_VIEW_EMPTY)}</p>"
from .settings import SettingsControls, SliderRange, build_settings

SIDES = ("left", "right")  # the panels, in page order; also the keys of a comparison's sides
_DEFAULT_KIND_SIDE = {"seq2seq": "left", "causal": "right"}  # where each kind's default model starts


@dataclass
class Panel:
    """The components of one side, by name (never positional lists)."""

    side: str  # "left" or "right"
    heading: gr.Markdown  # "Left", or "Left · model hidden" in blind mode
    identity: gr.Column  # what names the model: the selectors, the card, the class answer (hidden in blind mode)
    model: gr.Dropdown
    custom: gr.Textbox
    precision: gr.Dropdown  # auto, float32, bfloat16, float16 (GPU only), 8-bit
    card: gr.Markdown
    task_prefix: gr.Textbox  # read by seq2seq models: text put before the prompt
    chat_template: gr.Checkbox  # read by causal models: wrap the prompt in the chat template
    output: gr.Textbox
    stats: gr.Markdown
    settings: SettingsControls
    record: gr.State  # the last run of this side, for export
    class_info: gr.Markdown  # which Auto class / concrete class, and what the other Auto class says
    details: gr.Column  # the token probabilities, the token view and the code, which name the model too (hidden in blind mode)
    confidence: gr.HTML  # the answer token by token, shaded by the model's probability for each (after a run)
    tokens: gr.HTML  # how the prompt enters the model, token by token (updated when a run starts)
    code: gr.Code  # a script reproducing the last run
    notice: gr.Markdown | None = None  # how to get a model when none of the selected one's kind is here (follows the model)


class Panels(dict):
    """The two panels (or anything per panel) by side, ``"left"`` / ``"right"``.

    A model kind is accepted as a key too, for the panel that starts with that kind's default model
    (``Kind.SEQ2SEQ`` → left, ``Kind.CAUSAL`` → right): older callers keyed panels by kind.
    """

    @staticmethod
    def _side(key: Any) -> Any:
        value = getattr(key, "value", key)
        return _DEFAULT_KIND_SIDE.get(value, value) if isinstance(value, str) else key

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._side(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._side(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(self._side(key), default)


UNAVAILABLE_MARK = " · not on this machine"  # put after an unavailable model's label; its card says why, in full


def dropdown_choices(choices: Sequence[tuple[str, str, str | None]]) -> list[tuple[str, str]]:
    """``(label, value)`` pairs: the models that can run here first, then those that cannot, each marked in a
    few words (picking one shows the full reason in the card)."""
    ordered = sorted(choices, key=lambda choice: choice[2] is not None)  # stable: each group keeps its order
    return [(label if reason is None else label + UNAVAILABLE_MARK, name) for name, label, reason in ordered]


MODEL_INFO = ("seq2seq = encoder-decoder: reads your input, then writes a new text · "
              "causal = decoder-only: continues your text")
PREFIX_INFO = "seq2seq models only: text put before your prompt, e.g. 'summarize: ' tells T5 the task"
CHAT_INFO = "this model has one: your prompt goes in as a chat message (off: the model continues your words as they are)"


def settings_label(side: str, shared: bool) -> str:
    """The title of a panel's settings: the left panel's apply to both sides while "Same settings" is on."""
    if shared:
        return "Generation settings · both sides (\"Same settings for both sides\" is on)"
    return f"Generation settings · {side} side only"


def build_panel(side: str, *, title: str, choices: Sequence[tuple[str, str, str | None]], value: str | None,
                allow_custom: bool, precision: tuple[Sequence[tuple[str, str]], str], defaults: Mapping[str, Any],
                limits: Mapping[str, SliderRange], notice: str | None = None, show_prefix: bool = True,
                show_chat: bool = True) -> Panel:
    """Build one side's components.

    Args:
        side: ``"left"`` or ``"right"``; also the prefix of every elem_id.
        title: heading text.
        choices: ``(name, label, unavailable_reason)`` rows from the registry (every generative model).
        value: the model selected at start.
        allow_custom: show the custom hub-id box.
        precision: ``(choices, info)``: the precision selector's ``(label, value)`` pairs (a choice that cannot
            run here says so in its label) and the line under it (what auto means here).
        defaults: initial generation settings.
        limits: each setting's slider range (from the settings schema).
        notice: a plain-language line shown under the selector (e.g. no local seq2seq model).
        show_prefix / show_chat: show the task prefix box (seq2seq models read it) and the chat-template
            switch (causal models with a template use it) for the model selected at start.
    """
    with gr.Column(elem_id=f"{side}-panel"):
        heading = gr.Markdown(f"### {esc(title)}", elem_id=f"{side}-heading")
        with gr.Column(elem_id=f"{side}-identity") as identity:
            model = gr.Dropdown(dropdown_choices(choices), value=value, label="Model (any seq2seq or causal model)",
                                info=MODEL_INFO, elem_id=f"{side}-model", allow_custom_value=False, filterable=True)
            custom = gr.Textbox(label="…or a Hugging Face hub id", placeholder="owner/name (hub ids only, no paths)",
                                visible=allow_custom, max_lines=1, max_length=96, elem_id=f"{side}-custom")
            precision_choices, precision_info = precision
            precision_box = gr.Dropdown(list(precision_choices), value="auto", label="Precision", info=precision_info,
                                        allow_custom_value=False, filterable=False, elem_id=f"{side}-precision")
            notice_box = gr.Markdown(notice or "", visible=bool(notice), elem_id=f"{side}-notice")
            card = gr.Markdown("", elem_id=f"{side}-card")
            with gr.Accordion("What is this architecture?", open=False, elem_id=f"{side}-arch"):
                class_info = gr.Markdown("", elem_id=f"{side}-class")
        with gr.Row():
            # each shown only for the models that read it (the selection handler follows the model)
            task_prefix = gr.Textbox(value=defaults.get("task_prefix", ""), label="Task prefix", info=PREFIX_INFO,
                                     placeholder="e.g. summarize: ", max_lines=1, max_length=200, elem_id=f"{side}-prefix",
                                     visible=show_prefix)
            chat_template = gr.Checkbox(value=True, label="Chat template", info=CHAT_INFO, elem_id=f"{side}-chat",
                                        visible=show_chat)
        output = gr.Textbox(label="Output", lines=10, max_lines=20, interactive=False, autoscroll=True,
                            buttons=["copy"], elem_id=f"{side}-output")
        stats = gr.Markdown("", elem_id=f"{side}-stats")
        with gr.Column(elem_id=f"{side}-details") as details:
            confidence = gr.HTML(CONFIDENCE_EMPTY, css_template=CONFIDENCE_CSS, elem_id=f"{side}-confidence")
            with gr.Accordion("How the prompt enters the model (tokens)", open=False, elem_id=f"{side}-tokens-accordion"):
                tokens = gr.HTML(TOKENS_EMPTY, css_template=TOKENS_CSS, elem_id=f"{side}-tokens")
            with gr.Accordion("Show code (reproduce this run in Python)", open=False, elem_id=f"{side}-code-accordion"):
                code = gr.Code(CODE_EMPTY, language="python",
                               interactive=False, label="Python", buttons=["copy", "download"], elem_id=f"{side}-code")
        settings = build_settings(defaults, limits, label=settings_label(side, shared=side == "left"), elem_prefix=side)
        record = gr.State(None)
    return Panel(side, heading, identity, model, custom, precision_box, card, task_prefix, chat_template, output, stats,
                 settings, record, class_info=class_info, details=details, confidence=confidence, tokens=tokens, code=code,
                 notice=notice_box)
