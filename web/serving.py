"""Serving: the runner built from the configuration, safe launch options, and an in-process server.

``python app.py`` serves in the foreground; :func:`serving` serves in this process on a loopback
port that Gradio picks, for tests, the benchmark and notebooks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr
from starlette.middleware import Middleware

from models import ModelCache, ModelRegistry, hub_reachable, set_offline
from models.grouping import Grouper
from models.remote import connect_all
from models.run import Runner

from .config import AppConfig
from .disk import MAX_UPLOAD_BYTES, UploadGate
from .headers import middleware
from .page import Page, build_page

KEYBOARD_JS = """
<script>
document.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
    const button = document.getElementById('run-btn');
    if (button) { e.preventDefault(); button.click(); }
  }
});
</script>
"""
CSS = "#left-output textarea, #right-output textarea { font-family: ui-monospace, monospace; }"


def build_registry(config: AppConfig) -> ModelRegistry:
    """The registry the command line asks for: online or not (detected when not said), local folders,
    the packaged SmolLM2 GGUF, the ``--endpoint`` models (each server reached once; a refusal raises
    :class:`models.remote.EndpointError`). Offline, the hub client is switched to offline mode first."""
    online = hub_reachable() if config.online is None else config.online
    if not online:
        set_offline()
    registry = ModelRegistry(allow_custom=config.allow_custom, online=online, max_custom_bytes=config.max_custom_bytes)
    for folder in config.model_dirs:
        registry.register_dir(folder)
    registry.register_packaged()
    for endpoint in connect_all(config.endpoints):
        registry.register_endpoint(endpoint.source)
    return registry


def build_runner(config: AppConfig, *, registry: ModelRegistry | None = None, cache: ModelCache | None = None) -> Runner:
    """The run layer for ``config``; ``registry`` and ``cache`` may be given (tests share them)."""
    registry = registry if registry is not None else build_registry(config)
    cache = cache if cache is not None else ModelCache(config.max_models, allow_pickle=config.allow_pickle)
    return Runner(registry, cache, first_token_timeout=config.first_token_timeout,
                  max_input_tokens=config.limits.max_input_tokens if config.limits else None,
                  grouper=Grouper(config.group_window) if config.group_window > 0 else None)


OPEN_HOST_WARNING = ("warning: listening on {host} without --auth: anyone who can reach this machine can use the "
                     "playground (add --auth USER:PASSWORD or --auth-file FILE to close it)")


def launch_kwargs(config: AppConfig) -> dict[str, Any]:
    """Safe launch options: no share link, no visitor tracebacks, no monitoring endpoint; Gradio's login
    when ``config.auth`` holds credentials; uploads of at most 1 MB, and none unless the page takes them;
    security headers on every response."""
    return {"share": False, "show_error": False, "enable_monitoring": False, "head": KEYBOARD_JS, "css": CSS,
            "ssr_mode": False, "footer_links": ["api"], "auth": list(config.auth) or None,
            "auth_message": "This playground is private: log in to use it." if config.auth else None,
            "max_file_size": MAX_UPLOAD_BYTES,
            "app_kwargs": {"middleware": [*middleware(), Middleware(UploadGate)]}}  # a new dict: Gradio adds to it


def open_host_warning(host: str, config: AppConfig) -> str | None:
    """The one line printed at start when the server listens beyond loopback with no login."""
    if config.auth or host in ("127.0.0.1", "localhost", "::1"):
        return None
    return OPEN_HOST_WARNING.format(host=host)


@dataclass
class Served:
    """An app served in this process."""

    url: str
    page: Page
    runner: Runner

    @property
    def demo(self) -> gr.Blocks:
        return self.page.demo


@contextlib.contextmanager
def serving(config: AppConfig, *, registry: ModelRegistry | None = None,
            cache: ModelCache | None = None) -> Iterator[Served]:
    """The app served in this process on a loopback port Gradio picks; closed on exit."""
    runner = build_runner(config, registry=registry, cache=cache)
    page = build_page(runner, config)
    _app, url, _share = page.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                                         **launch_kwargs(config))
    try:
        yield Served(url, page, runner)
    finally:
        page.demo.close()
        page.share_handlers.exports.remove()
