"""Medians over repetitions, and how figures are written in the table."""

from __future__ import annotations

import statistics
from typing import Any, Iterable


def figure(samples: Iterable[float | None], unit: str) -> dict[str, Any]:
    """``{"median", "samples", "n", "unit"}`` over the usable samples (``None`` ones are dropped)."""
    kept = [float(s) for s in samples if s is not None]
    return {"median": statistics.median(kept) if kept else None, "samples": [round(s, 6) for s in kept], "n": len(kept),
            "unit": unit}


def median(samples: Iterable[float | None]) -> float | None:
    return figure(samples, "")["median"]


def ms(seconds: float | None) -> str:
    """``"12 ms"`` / ``"3.4 ms"`` / ``"0.004 ms"``."""
    if seconds is None:
        return "–"
    value = seconds * 1000
    if abs(value) >= 100:
        return f"{value:.0f} ms"
    if abs(value) >= 1:
        return f"{value:.1f} ms"
    return f"{value:.3f} ms"


def secs(seconds: float | None) -> str:
    """``"46.0 s"`` / ``"0.82 s"``; under 0.1 s in ms."""
    if seconds is None:
        return "–"
    if seconds < 0.1:
        return ms(seconds)
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"


def tps(value: float | None) -> str:
    """Tokens per second."""
    if value is None:
        return "–"
    return f"{value:.0f} tok/s" if value >= 100 else f"{value:.1f} tok/s"


def mib(n_bytes: float | None) -> str:
    if n_bytes is None:
        return "–"
    return f"{n_bytes / 2**20:.1f} MiB"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
