"""Where the page's downloads are written: inside Gradio's cache folder, pruned by age, removed at shutdown."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from components.export import write_exports

from .disk import folder_bytes, on_shutdown, prune

PRUNE_EVERY_S = 60.0  # a write prunes old exports at most this often


class ExportFolder:
    """The folder the JSON and Markdown downloads are written to.

    It lies inside ``root``, Gradio's cache folder (a download button's ``GRADIO_CACHE``): Gradio then
    serves the files where they are, without a copy, and its ``delete_cache`` prunes them. Each
    comparison gets its own sub-folder, named by a keyed hash of its id, so one visitor's download
    address says nothing about another's. Files older than ``max_age_s`` are pruned here too, and the
    folder is removed at exit, on SIGTERM and on SIGINT (:func:`web.disk.on_shutdown`).

    Args:
        root: where the folder is made (default: the system's temporary folder).
        max_age_s: seconds an export is kept.
    """

    def __init__(self, root: str | Path | None = None, max_age_s: float = 3600) -> None:
        self.root, self.max_age_s = root, max_age_s
        self._path: Path | None = None
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._pruned = 0.0

    @property
    def path(self) -> Path:
        """The folder, created the first time it is asked for."""
        with self._lock:
            if self._path is None:
                if self.root is not None:
                    Path(self.root).mkdir(parents=True, exist_ok=True)
                self._path = Path(tempfile.mkdtemp(prefix="playground-exports-", dir=self.root))
                on_shutdown(self.remove)
            return self._path

    def private(self, key: str | None = None) -> Path:
        """A sub-folder only its own download addresses lead to: named by a keyed hash of ``key`` (the same
        folder for the same key, e.g. a re-rated comparison), or at random without one. Old exports are
        pruned first. Write every download into one of these, never into :attr:`path` itself."""
        if time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self.prune()
        name = (hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()[:32] if key is not None
                else secrets.token_hex(16))
        folder = self.path / name
        folder.mkdir(exist_ok=True)
        return folder

    def write(self, comparison: Mapping[str, Any]) -> tuple[Path, Path]:
        """Write ``comparison`` as JSON and Markdown in its own private folder; return both paths."""
        return write_exports(comparison, self.private(str(comparison.get("id", ""))))

    def prune(self, max_age_s: float | None = None) -> int:
        """Delete exports older than ``max_age_s`` (default: the folder's); return the bytes freed."""
        self._pruned = time.monotonic()
        if self._path is None:
            return 0
        return prune(self._path, self.max_age_s if max_age_s is None else max_age_s)

    def bytes(self) -> int:
        """Bytes of every export on disk now."""
        return folder_bytes(self._path) if self._path is not None else 0

    def remove(self) -> None:
        """Remove the folder and everything in it."""
        with self._lock:
            if self._path is not None:
                shutil.rmtree(self._path, ignore_errors=True)
                self._path = None
