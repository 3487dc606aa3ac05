"""Disk kept bounded: uploads only where the page takes them, old files pruned, everything removed at shutdown.

What the app writes, and for how long (the README's "What is kept on disk" says the same):

* **Exports** (the JSON and Markdown downloads) go to one folder inside Gradio's cache folder
  (``GRADIO_TEMP_DIR``, by default ``<tmp>/gradio``), one unguessable sub-folder per comparison
  (:class:`web.exports.ExportFolder`). Gradio serves them from there without a copy, its
  ``delete_cache`` prunes them, and the folder prunes its own files older than the same age.
* **Gradio's cache** (files Gradio copies to serve) is pruned by ``delete_cache`` (:func:`delete_cache`):
  every few minutes, files older than ``keep_files_s``.
* **Uploads**: refused unless a component on the page takes them (:class:`UploadGate`); then at
  most ``MAX_UPLOAD_BYTES`` each (Gradio's ``max_file_size``), pruned like the cache.
* **At shutdown** (normal exit, SIGTERM, SIGINT) the export folder is removed and Gradio deletes the
  cache files it made (:func:`on_shutdown`, :func:`handle_signals`).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import gradio as gr

from models.sets.rows import MAX_FILE_BYTES

from .asgi import send_json

MAX_UPLOAD_BYTES = MAX_FILE_BYTES  # a prompt-set file, the one upload a feature needs (1 MB)
UPLOAD_REFUSED = b'{"detail": "This app takes no uploads."}'

_cleanups: list[Callable[[], Any]] = []
_cleanups_lock = threading.Lock()


def delete_cache(keep_files_s: int) -> tuple[int, int]:
    """Gradio's ``delete_cache`` for ``gr.Blocks``: ``(how often, how old)`` in seconds."""
    return min(keep_files_s, 300), keep_files_s


def folder_bytes(folder: str | Path) -> int:
    """Bytes of every file under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def prune(folder: str | Path, max_age_s: float, *, now: float | None = None) -> int:
    """Delete files under ``folder`` modified more than ``max_age_s`` ago, then empty sub-folders;
    return the bytes freed."""
    now = time.time() if now is None else now
    freed = 0
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
                if now - info.st_mtime > max_age_s:
                    os.remove(path)
                    freed += info.st_size
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(os.path.join(root, name))  # only succeeds when empty
            except OSError:
                pass
    return freed


# ----- shutdown -----

def on_shutdown(cleanup: Callable[[], Any]) -> None:
    """Run ``cleanup`` once when the process ends: at exit, and on SIGTERM or SIGINT once
    :func:`handle_signals` is installed."""
    with _cleanups_lock:
        _cleanups.append(cleanup)
    atexit.register(_run_one, cleanup)


def _run_one(cleanup: Callable[[], Any]) -> None:
    with _cleanups_lock:
        if cleanup not in _cleanups:
            return
        _cleanups.remove(cleanup)
    try:
        cleanup()
    except Exception as exc:  # noqa: BLE001 - shutting down: say it, go on with the others
        print(f"cleanup failed: {type(exc).__name__}: {exc}")


def run_cleanups() -> None:
    """Run every registered cleanup now (each runs once)."""
    for cleanup in list(_cleanups):
        _run_one(cleanup)


def handle_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """On SIGTERM or SIGINT, run the cleanups, then stop as Ctrl+C does: Gradio closes its server
    (and deletes its cache files), and the process exits. Call from the main thread, before ``launch``."""
    def stop(signum: int, _frame: Any) -> None:
        run_cleanups()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in signals:
        signal.signal(signum, stop)


# ----- uploads -----

#: Gradio components a visitor can upload a file through (a download button only serves files)
UPLOADING = tuple(getattr(gr, name) for name in ("File", "UploadButton", "Image", "ImageEditor", "Audio", "Video",
                                                 "Model3D", "Gallery", "MultimodalTextbox") if hasattr(gr, name))


def takes_uploads(blocks: Any) -> bool:
    """True when a component on the page takes a file from the visitor; the page has none today."""
    return any(isinstance(block, UPLOADING) and getattr(block, "interactive", None) is not False
               for block in getattr(blocks, "blocks", {}).values())


class UploadGate:
    """ASGI middleware refusing ``POST …/gradio_api/upload`` (403) when no component on the page takes
    uploads. Where one does, Gradio's ``max_file_size`` (``MAX_UPLOAD_BYTES``) bounds each file."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self._takes: bool | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if (scope["type"] == "http" and scope.get("method") == "POST"
                and scope.get("path", "").rstrip("/").endswith("/gradio_api/upload") and not self._allowed(scope)):
            await send_json(send, 403, UPLOAD_REFUSED)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: dict) -> bool:
        if self._takes is None:
            app = scope.get("app")
            blocks = getattr(app, "blocks", None)
            if blocks is None:
                return True  # not Gradio's app: not ours to judge
            self._takes = takes_uploads(blocks)
        return self._takes


# ----- empty temp files -----

def no_empty_temp_files(blocks: gr.Blocks) -> int:
    """Stop ``blocks``' file inputs leaving an empty ``tmp*`` file in Gradio's cache on every event that carries a
    file; return how many inputs were changed.

    Gradio 6.31's ``gr.File`` (``type="filepath"``) opens a ``NamedTemporaryFile(delete=False)`` in its cache each
    time it preprocesses a file, never writes to it and never removes it (``gradio/components/file.py``,
    ``_process_single_file``); only the uploaded file's own path is used. Here each such input checks the file's type
    as Gradio does and returns that path, without the stray file (``tests/test_public_smaller.py`` counts them)."""
    from gradio_client import utils as client_utils
    from gradio.exceptions import Error
    from gradio.utils import NamedString

    changed = 0
    for block in getattr(blocks, "blocks", {}).values():
        if not isinstance(block, gr.File) or block.type != "filepath":
            continue

        def process(f: Any, _block: gr.File = block) -> NamedString:
            if _block.file_types and not client_utils.is_valid_file(f.path, _block.file_types):
                raise Error("Invalid file type. Please upload a file that is one of these formats: "
                            f"{_block.file_types}", print_exception=False)
            return NamedString(f.path)

        block._process_single_file = process  # type: ignore[method-assign]
        changed += 1
    return changed
