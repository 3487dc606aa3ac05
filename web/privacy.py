"""Nothing of the server shown to visitors: absolute paths in cards, errors, code and exports become names.

A ``--model-dir`` model is shown by its folder (or file) name, the GGUF conversion cache and the
Hugging Face cache by a placeholder. It is off on a local start (loopback host, not public, not a Space) and with
``--show-paths``; where it is on, the reproducing code finds the model without paths (``models.snippet``).
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import constants as hub_constants

from models.loader import GGUF_CACHE_DIR, gguf_stand_in_folder
from models.sources import ModelRegistry


class PathRedactor:
    """Replaces the server's paths in any text, list or dict (recursively) with what a visitor may see.

    Args:
        replacements: ``{absolute path: shown instead}``; longer paths are replaced first.
    """

    def __init__(self, replacements: dict[str, str]) -> None:
        self.replacements = sorted(((p, s) for p, s in replacements.items() if p), key=lambda item: -len(item[0]))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for path, shown in self.replacements:
                if path in value:
                    value = value.replace(path, shown)
            return value
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self(item) for item in value)
        return value


NO_REDACTION = PathRedactor({})


def redactor_for(registry: ModelRegistry, show_paths: bool) -> PathRedactor:
    """The redactor for this server: every registered local model's folder (or GGUF file), an endpoint's
    model id when it is a folder path, the GGUF conversion cache and the hub cache; none at all with ``show_paths``."""
    if show_paths:
        return NO_REDACTION
    # square brackets, never angle ones: cards and errors are Markdown, where "<hub cache>" is an HTML tag and vanishes
    replacements = {str(GGUF_CACHE_DIR): "[playground cache]", str(gguf_stand_in_folder()): "[playground cache]",
                    str(hub_constants.HF_HUB_CACHE): "[hub cache]"}  # the stand-in: an unwritable cache's
    for source in registry.local.values():
        if source.gguf_file:
            replacements[f"{source.path}/{source.gguf_file}"] = source.gguf_file
            replacements.setdefault(source.path, f"[folder of {source.gguf_file}]")
        else:
            replacements[source.path] = source.name
    for source in registry.endpoints.values():  # an engine serving a folder by its path (transformers serve)
        if source.path.startswith("/"):
            replacements[source.path] = f"[folder {source.path.rstrip('/').rsplit('/', 1)[-1]} on {source.name}]"
    return PathRedactor(replacements)


class _NoCallback:
    """Gradio's default ``gr.State`` delete callback (it does nothing), named: ``/config`` lists every component's
    arguments as text, and the default function's text is ``<function default_delete_callback at 0x…>``, a memory
    address of this process."""

    def __call__(self, _value: Any) -> None:
        return None

    def __repr__(self) -> str:
        return "none"

    __str__ = __repr__


NO_CALLBACK = _NoCallback()


def no_addresses_in_config(blocks: Any) -> int:
    """Give every ``gr.State`` of ``blocks`` left with Gradio's default delete callback :data:`NO_CALLBACK` instead
    (call before ``launch``, which writes ``/config``); return how many were changed."""
    from gradio.components.state import State, default_delete_callback

    changed = 0
    for block in getattr(blocks, "blocks", {}).values():
        if isinstance(block, State) and block.delete_callback is default_delete_callback:
            block.delete_callback = NO_CALLBACK
            changed += 1
    return changed
