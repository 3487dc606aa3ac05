"""The model layer: presets, detection, loading, prompt building, engines, streaming and the run layer.

Knows transformers and torch; knows nothing of Gradio. ``docs/architecture.md`` maps its files.
"""

from .detect import Architecture, UnsupportedModelError, detect, wrong_class_refusal
from .explain import ClassReport, PromptView, Token, class_report, prompt_view
from .loader import (LoadedModel, ModelCache, ModelDescription, ModelLoadError, architecture_of, eight_bit_status,
                     check_precision, load_config, load_model, pick_device, precision_options,
                     resolve_precision)
from .presets import DEFAULT_CAUSAL, DEFAULT_SEQ2SEQ, PRESETS, Kind, Preset, get_preset
from .prompt import GenerateCall, generate_call, prepare
from .settings import GenerationSettings, Precision, SettingsError, parse_precision, validate_prompt
from .snippet import build_snippet
from .sources import (ModelIdError, ModelRegistry, ModelSource, hub_reachable, scan_model_dir, set_offline, smollm2_gguf,
                      validate_hub_id)
from .stream import generation_threads, stream
from .types import FinishReason, PreparedPrompt, RowResult, Stats, StreamUpdate

__all__ = [
    "Architecture", "UnsupportedModelError", "detect", "wrong_class_refusal",
    "ClassReport", "PromptView", "Token", "class_report", "prompt_view", "build_snippet",
    "LoadedModel", "ModelCache", "ModelDescription", "ModelLoadError", "architecture_of", "eight_bit_status",
    "load_config", "load_model", "pick_device", "precision_options", "resolve_precision", "check_precision", "Precision", "parse_precision",
    "DEFAULT_CAUSAL", "DEFAULT_SEQ2SEQ", "PRESETS", "Kind", "Preset", "get_preset",
    "GenerateCall", "PreparedPrompt", "generate_call", "prepare", "GenerationSettings", "SettingsError", "validate_prompt",
    "ModelIdError", "ModelRegistry", "ModelSource", "hub_reachable", "scan_model_dir", "set_offline", "smollm2_gguf",
    "validate_hub_id",
    "FinishReason", "RowResult", "Stats", "StreamUpdate", "generation_threads", "stream",
]
