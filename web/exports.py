"""Where the page's downloads are written: one temporary folder per app, removed at exit."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from components.export import write_exports


class ExportFolder:
    """The folder the JSON and Markdown downloads are written to (created on the first export;
    Gradio serves its own copies of the files)."""

    def __init__(self) -> None:
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The folder, created the first time it is asked for and removed when the process exits."""
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix="playground-exports-"))
            atexit.register(shutil.rmtree, self._path, True)
        return self._path

    def write(self, comparison: Mapping[str, Any]) -> tuple[Path, Path]:
        """Write ``comparison`` as JSON and Markdown; return both paths."""
        return write_exports(comparison, self.path)
