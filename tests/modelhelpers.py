"""Helpers for tests of the model layer: run a prompt through :func:`models.stream` to its end; hub errors; a hub cache."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub.errors import HfHubHTTPError

from models import GenerationSettings, LoadedModel, PreparedPrompt, Stats, prepare, stream, validate_prompt

__all__ = ["prepared_for", "generate_text", "hub_error", "hub_cache", "HUB_REVISION"]

HUB_REVISION = "0" * 40  # the commit :func:`hub_cache` files its snapshots under


def prepared_for(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> PreparedPrompt:
    """What a run does before streaming: validate ``prompt`` once, build the model input once."""
    return prepare(loaded.kind, loaded.tokenizer, loaded.model.config, validate_prompt(prompt), settings)


def generate_text(loaded: LoadedModel, prompt: str, settings: GenerationSettings, **kwargs: Any) -> tuple[str, Stats]:
    """Validate and prepare ``prompt``, run :func:`models.stream` to the end; return the final text and stats.

    Args:
        loaded: the model.
        prompt: the user's text (refused with :class:`~models.SettingsError` before any thread starts).
        settings: generation settings.
        **kwargs: passed to :func:`models.stream` (``stop_event``, ``first_token_timeout``, ``token_timeout``).
    """
    last = None
    for last in stream(loaded, prepared_for(loaded, prompt, settings), settings, **kwargs):
        pass
    assert last is not None and last.stats is not None
    return last.text, last.stats


def hub_error(error_class: type[Exception], message: str = "404") -> Exception:
    """A ``huggingface_hub`` error built as the library raises it (its HTTP errors carry the response)."""
    if issubclass(error_class, HfHubHTTPError):
        return error_class(message, response=httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co")))
    return error_class(message)


def hub_cache(root: Path, folder: Path, repo_ids: tuple[str, ...]) -> Path:
    """A Hugging Face cache folder holding ``folder``'s files under each of ``repo_ids`` (as if downloaded at
    :data:`HUB_REVISION`); point ``HF_HUB_CACHE`` (or ``HF_HOME``'s ``hub``) at it."""
    for repo_id in repo_ids:
        repo = root / ("models--" + repo_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "blobs").mkdir()
        (repo / "refs" / "main").write_text(HUB_REVISION)
        snapshot = repo / "snapshots" / HUB_REVISION
        snapshot.mkdir(parents=True)
        for file in folder.iterdir():
            shutil.copy(file, snapshot / file.name)
    return root
