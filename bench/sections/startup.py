"""7. Start-up: a new ``python app.py`` process until its page answers HTTP 200."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..context import Context
from ..figures import figure, secs
from .base import Table, row

ROOT = Path(__file__).resolve().parent.parent.parent
TARGET_SECONDS = 10.0
TARGET = f"≤ {secs(TARGET_SECONDS)} to HTTP 200"
WAIT = 120.0  # seconds a start may take before it counts as failed
COMMAND = "python app.py --offline --no-preload --port P --model-dir DIR"


@dataclass
class Samples:
    seconds: list[float | None]  # per repetition; None when the page never answered
    errors: list[str]


def _unused_port() -> int:
    """A loopback port free right now. ``python app.py`` takes its port on the command line, so the
    benchmark picks one; should another process take it first, that repetition fails with the app's
    own message in the report's notes (no figure is made up)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_once(ctx: Context, rep: int, env: dict[str, str]) -> tuple[float | None, str | None]:
    """Start the app, poll its page until HTTP 200, stop it: (seconds, or the reason it failed)."""
    port = _unused_port()
    log_path = ctx.work / f"startup-{rep}.log"
    cmd = [sys.executable, str(ROOT / "app.py"), "--offline", "--no-preload", "--port", str(port),
           "--model-dir", str(ctx.model_dir)]
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while time.perf_counter() < started + WAIT and proc.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                        return time.perf_counter() - started, None
                except httpx.HTTPError:
                    pass
                time.sleep(0.025)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    return None, f"rep {rep + 1}: no HTTP 200 (exit code {proc.returncode}): {' / '.join(tail)[:300]}"


def measure(ctx: Context) -> Samples:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PLAYGROUND_CACHE=str(ctx.work / "startup-cache"))
    samples = Samples([], [])
    for rep in range(ctx.reps):
        ctx.rep_log("7 start-up:", rep)
        took, error = _start_once(ctx, rep, env)
        samples.seconds.append(took)
        if error:
            samples.errors.append(error)
    return samples


def summarize(samples: Samples) -> Table:
    fig = figure(samples.seconds, "s")
    met = fig["median"] is not None and fig["median"] <= TARGET_SECONDS and not samples.errors
    results = {"seconds": fig, "command": COMMAND, "errors": samples.errors}
    rows = [row("Start-up: `python app.py --offline --no-preload …` → page answers HTTP 200", secs(fig["median"]),
                f"≤ {secs(TARGET_SECONDS)}", met)]
    notes = ["A new Python process each time (imports of torch, transformers and gradio included; bytecode and OS "
             "file caches warm); no model is loaded (--no-preload)."] + samples.errors
    return Table(rows, results, notes)
