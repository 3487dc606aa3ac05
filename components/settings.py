"""Generation-settings controls (one set per panel), their ranges given by the settings schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import gradio as gr

# Order of the shared settings fields: the handlers receive values in this order.
SHARED_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "no_repeat_ngram_size", "seed")
_ELEM_NAMES = {"no_repeat_ngram_size": "no-repeat-ngram"}  # element ids the page has always had


class SliderRange(Protocol):
    """What a control needs to know of a setting (``models.settings.SettingRange`` has it)."""

    high: float
    step: float
    default: float
    info: str
    limit_note: str  # why ``high`` is lower than usual here (a public server), or ""
    label: str  # the setting in plain words, shown before its exact name ("Longest answer · max_new_tokens")

    @property
    def lowest_allowed(self) -> float: ...


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


def control_label(name: str, limit: SliderRange) -> str:
    """A control's label: the plain words, then the exact field name the code and the API use."""
    plain = getattr(limit, "label", "")
    return f"{plain} · {name}" if plain else name


def _slider(name: str, limit: SliderRange, defaults: Mapping[str, Any], elem_prefix: str) -> gr.Slider:
    value = min(defaults.get(name, limit.default), limit.high)  # a preset's default never beyond a public limit
    return gr.Slider(limit.lowest_allowed, limit.high, value=value, step=limit.step, label=control_label(name, limit),
                     info=limit.info or None, elem_id=f"{elem_prefix}-{_ELEM_NAMES.get(name, name.replace('_', '-'))}")


def build_settings(defaults: Mapping[str, Any], limits: Mapping[str, SliderRange], *, label: str,
                   elem_prefix: str) -> SettingsControls:
    """Build one collapsible settings section initialised from ``defaults``, each control spanning
    exactly the range ``limits`` gives for its setting; a public server's limits are stated under the sliders."""
    with gr.Accordion(label, open=False, elem_id=f"{elem_prefix}-settings") as accordion:
        sliders = [_slider(name, limits[name], defaults, elem_prefix) for name in SHARED_FIELDS[:-1]]
        seed_range = limits["seed"]
        # no minimum/maximum on the box: Gradio would refuse a bad seed with a toast that names no field,
        # where the settings check names it in each panel ("seed: must be between 0 and …")
        seed = gr.Number(value=defaults.get("seed", seed_range.default), precision=0, label=control_label("seed", seed_range),
                         info=f"{seed_range.info}; {seed_range.describe()}", elem_id=f"{elem_prefix}-seed")
        notes = [n for n in dict.fromkeys(getattr(limits[name], "limit_note", "") for name in SHARED_FIELDS) if n]
        if notes:
            gr.Markdown("\n\n".join(f"🔒 {n}" for n in notes), elem_id=f"{elem_prefix}-limits")
    return SettingsControls(*sliders, seed, accordion)
