"""Generation-settings controls (one set per panel)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import gradio as gr

# Order of the shared settings fields: the handlers receive values in this order.
SHARED_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "no_repeat_ngram_size", "seed")


@dataclass
class SettingsControls:
    """The sliders and numbers of one panel, in :data:`SHARED_FIELDS` order."""

    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    repetition_penalty: gr.Slider
    no_repeat_ngram_size: gr.Slider
    seed: gr.Number
    accordion: gr.Accordion

    def components(self) -> list[gr.components.Component]:
        """The controls in :data:`SHARED_FIELDS` order."""
        return [getattr(self, name) for name in SHARED_FIELDS]


def build_settings(defaults: Mapping[str, Any], *, label: str, elem_prefix: str) -> SettingsControls:
    """Build one collapsible settings section initialised from ``defaults``."""
    with gr.Accordion(label, open=False, elem_id=f"{elem_prefix}-settings") as accordion:
        max_new = gr.Slider(1, 512, value=defaults.get("max_new_tokens", 128), step=1, label="max_new_tokens",
                            info="most tokens to generate", elem_id=f"{elem_prefix}-max-new-tokens")
        temperature = gr.Slider(0.0, 2.0, value=defaults.get("temperature", 0.0), step=0.05, label="temperature",
                                info="0 = greedy (same answer every time)", elem_id=f"{elem_prefix}-temperature")
        top_p = gr.Slider(0.05, 1.0, value=defaults.get("top_p", 1.0), step=0.05, label="top_p", elem_id=f"{elem_prefix}-top-p")
        top_k = gr.Slider(0, 200, value=defaults.get("top_k", 0), step=1, label="top_k", info="0 = off", elem_id=f"{elem_prefix}-top-k")
        rep = gr.Slider(0.5, 2.0, value=defaults.get("repetition_penalty", 1.0), step=0.05, label="repetition_penalty",
                        info="1 = off; above 1 discourages repeats", elem_id=f"{elem_prefix}-repetition-penalty")
        ngram = gr.Slider(0, 10, value=defaults.get("no_repeat_ngram_size", 0), step=1, label="no_repeat_ngram_size",
                          info="0 = off", elem_id=f"{elem_prefix}-no-repeat-ngram")
        seed = gr.Number(value=defaults.get("seed", 0), precision=0, label="seed", info="used when temperature > 0",
                         elem_id=f"{elem_prefix}-seed")
    return SettingsControls(max_new, temperature, top_p, top_k, rep, ngram, seed, accordion)
