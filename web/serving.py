"""Serving: the runner built from the configuration, safe launch options, and an in-process server.

``python app.py`` serves in the foreground; :func:`serving` serves in this process on a loopback
port that Gradio picks, for tests, the benchmark and notebooks. Both start through :func:`launch`,
which returns only once the server answers, and leaves nothing running when it fails.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

import gradio as gr
from starlette.middleware import Middleware

from models import ModelCache, ModelRegistry, hub_reachable, set_offline
from models.engine import Engines
from models.grouping import Grouper
from models.local import LocalEngines
from models.remote import Endpoint, RemoteEngines, connect_all
from models.run import Runner

from .config import LOOPBACK_HOSTS, AppConfig
from .disk import MAX_UPLOAD_BYTES, UploadGate
from .headers import middleware
from .intake import BodyLimit, UploadGuard, bound_connections
from .page import Page, build_page
from .session_owners import SessionGate
from .sessions import VisitorOfRequest, install as bound_sessions, launch_options as session_options

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
    """The registry the command line asks for: online or not (detected when not said), local folders and
    the packaged SmolLM2 GGUF. Offline, the hub client is switched to offline mode first."""
    online = hub_reachable() if config.online is None else config.online
    if not online:
        set_offline()
    registry = ModelRegistry(allow_custom=config.allow_custom, online=online, max_custom_bytes=config.max_custom_bytes)
    for folder in config.model_dirs:
        registry.register_dir(folder)
    registry.register_packaged()
    return registry


def build_runner(config: AppConfig, *, registry: ModelRegistry | None = None, cache: ModelCache | None = None,
                 endpoints: list[Endpoint] | None = None) -> Runner:
    """The run layer for ``config``: its registry, its engines (one line per engine), its limits.

    ``registry``, ``cache`` and ``endpoints`` may be given (tests share them); else they come from ``config``: the
    ``--endpoint`` servers are reached once each (a refusal raises :class:`models.remote.EndpointError`).
    """
    registry = registry if registry is not None else build_registry(config)
    cache = cache if cache is not None else ModelCache(config.max_models, allow_pickle=config.allow_pickle)
    endpoints = endpoints if endpoints is not None else connect_all(config.endpoints)
    for endpoint in endpoints:
        registry.register_endpoint(endpoint.source)
    engines = Engines([
        LocalEngines(cache, registry, grouper=Grouper(config.group_window) if config.group_window > 0 else None,
                     hide_paths=not config.show_paths),  # paths hidden: the code finds the model itself
        RemoteEngines(endpoints),
    ])
    return Runner(registry, engines, first_token_timeout=config.first_token_timeout,
                  max_input_tokens=config.limits.max_input_tokens if config.limits else None)


OPEN_HOST_WARNING = ("warning: listening on {host} without --auth: anyone who can reach this machine can use the "
                     "playground (add --auth USER:PASSWORD or --auth-file FILE to close it)")


def launch_kwargs(config: AppConfig) -> dict[str, Any]:
    """Safe launch options: no share link, no visitor tracebacks, no monitoring endpoint; Gradio's login
    when ``config.auth`` holds credentials; uploads of at most 1 MB, and none unless the page takes them;
    security headers on every response; on a public deployment, fewer sessions kept (:mod:`web.sessions`) and
    bounded uploads and request bodies (:func:`intake_middleware`)."""
    return {**session_options(config.limits is not None), "share": False, "show_error": False, "enable_monitoring": False, "head": KEYBOARD_JS, "css": CSS,
            "ssr_mode": False, "footer_links": ["api"], "auth": list(config.auth) or None,
            "auth_message": "This playground is private: log in to use it." if config.auth else None,
            "max_file_size": MAX_UPLOAD_BYTES,
            "app_kwargs": {"middleware": [*middleware(), Middleware(UploadGate),  # a new dict: Gradio adds to it
                                          Middleware(VisitorOfRequest, proxy_hops=config.proxy_hops),
                                          Middleware(SessionGate),  # a session's stream: its own address only
                                          *intake_middleware(config)]}}


def intake_middleware(config: AppConfig) -> list[Middleware]:
    """On a public deployment, the bounds on what comes in (:mod:`web.intake`): uploads (origin, files, bytes
    per visitor and in all), then every other request body."""
    if config.intake is None:
        return []
    return [Middleware(UploadGuard, limits=config.intake, window_s=config.keep_files_s, proxy_hops=config.proxy_hops),
            Middleware(BodyLimit, max_body_bytes=config.intake.max_body_bytes, proxy_hops=config.proxy_hops)]


def open_host_warning(host: str, config: AppConfig) -> str | None:
    """The one line printed at start when the server listens beyond loopback with no login."""
    if config.auth or host in LOOPBACK_HOSTS:
        return None
    return OPEN_HOST_WARNING.format(host=host)


class LaunchError(RuntimeError):
    """Gradio could not start the server (a taken port, a failed self-check, ...); one line saying why.
    Nothing is left running: a server that had started is closed."""


SELF_CHECK_FAILED = ("the server at {url} did not answer its own start-up check in time (a busy machine, "
                     "or a proxy in the way of localhost); start it again")


def _reason(exc: BaseException, url: str | None) -> str:
    """One line saying why ``launch`` failed. Gradio's failed self-check asks for ``share=True``,
    which this app never wants: that one is said plainly."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "localhost is not accessible" in text:
        return SELF_CHECK_FAILED.format(url=url or "localhost")
    return text


DEFAULT_PORT = 7860  # Gradio's first choice, moved by GRADIO_SERVER_PORT


def ready_line(url: str, asked_port: int | None = None) -> str:
    """The line printed once the page answers: the address to open, and why it is not the usual one when
    Gradio moved on to a free port (the README says 7860)."""
    wanted = asked_port or int(os.environ.get("GRADIO_SERVER_PORT") or DEFAULT_PORT)
    port = urlsplit(url).port
    moved = f" (port {wanted} is taken, so this one is used)" if port not in (None, wanted) else ""
    return f"Playground ready: open {url.rstrip('/')}{moved}. Ctrl+C stops it."


def launch(demo: gr.Blocks, config: AppConfig, *, host: str, port: int | None = None, quiet: bool = False) -> str:
    """Start serving ``demo`` without blocking this thread; return its local URL once it answers.

    Gradio's ``launch`` binds the port, then checks its own URL once (one ``HEAD``, 3 s, no retry
    after a timeout) and raises when that check fails, while its server thread keeps serving. Here
    any failure (or an interrupt, such as a SIGTERM from :func:`web.disk.handle_signals`) closes that
    server before it propagates, so no page is left without the process behind it.

    Raises:
        LaunchError: the server could not start; its message is one line.
        KeyboardInterrupt: interrupted while starting (the server is closed).
    """
    try:
        _app, url, _share = demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=quiet,
                                        **launch_kwargs(config))
    except BaseException as exc:
        url = getattr(demo, "local_url", None)
        with contextlib.suppress(Exception):
            demo.close(verbose=False)  # a no-op unless the server had started
        if isinstance(exc, Exception):
            raise LaunchError(_reason(exc, url)) from exc
        raise
    if config.limits is not None:  # public: each visitor's sessions bounded too
        bound_sessions(demo)
    if config.intake is not None:  # public: slow headers and idle connections closed
        bound_connections(demo.server, config.intake)
    return url


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
def serving(config: AppConfig, *, registry: ModelRegistry | None = None, cache: ModelCache | None = None,
            endpoints: list[Endpoint] | None = None) -> Iterator[Served]:
    """The app served in this process on a loopback port Gradio picks; closed on exit."""
    runner = build_runner(config, registry=registry, cache=cache, endpoints=endpoints)
    page = build_page(runner, config)
    try:
        url = launch(page.demo, config, host="127.0.0.1", quiet=True)
    except BaseException:
        page.share_handlers.exports.remove()
        if page.evidence is not None:
            page.evidence.close()
        raise
    try:
        yield Served(url, page, runner)
    finally:
        page.demo.close()
        page.share_handlers.exports.remove()
        if page.evidence is not None:
            page.evidence.close()  # the database's connections
