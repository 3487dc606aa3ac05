"""The registry of the benchmark's sections: the one place each section's number, key, title,
target and needs are written. The command line, the runner, the report and the tests read it.

A section is one module here: ``measure(ctx)`` runs it and returns samples (plain data),
``summarize(samples)`` turns them into figures, table rows and notes.
"""

from __future__ import annotations

from . import (confidence, eight_bit, loading, lone_answer, precision_quality, prompt_sets, ratings, side_by_side,
               startup, stop, streaming, ttft, visitors)
from .base import Row, Section, Table, all_met, row

__all__ = ["REGISTRY", "Row", "Section", "Table", "all_met", "by_key", "row"]

#: every section, in the report's order (loading runs first: the others use the models it loads); ``long=True``:
#: minutes even on tiny models, so only ``--full`` or ``--sections`` runs it
REGISTRY: tuple[Section, ...] = (
    Section(1, "streaming_overhead", "Streaming overhead", streaming.TARGET, False, streaming.measure, streaming.summarize),
    Section(2, "time_to_first_token", "End-to-end time to first token", ttft.TARGET, True, ttft.measure, ttft.summarize),
    Section(3, "side_by_side", "Side by side", side_by_side.TARGET, True, side_by_side.measure, side_by_side.summarize),
    Section(4, "stop_latency", "Stop latency", stop.TARGET, True, stop.measure, stop.summarize),
    Section(5, "eight_bit", "8-bit", eight_bit.TARGET, False, eight_bit.measure, eight_bit.summarize),
    Section(6, "loading", "Loading", loading.TARGET, False, loading.measure, loading.summarize, runs_first=True),
    Section(7, "startup", "Start-up", startup.TARGET, False, startup.measure, startup.summarize),
    Section(8, "precision_quality", "Precision quality", precision_quality.TARGET, False, precision_quality.measure,
            precision_quality.summarize, long=True),
    Section(9, "visitors", "Many visitors", visitors.TARGET, False, visitors.measure, visitors.summarize, long=True),
    Section(10, "prompt_sets", "Prompt sets", prompt_sets.TARGET, False, prompt_sets.measure, prompt_sets.summarize,
            long=True),
    Section(11, "confidence", "Token probabilities", confidence.TARGET, False, confidence.measure, confidence.summarize,
            long=True),
    Section(12, "ratings", "Leaderboard", ratings.TARGET, False, ratings.measure, ratings.summarize),
    Section(13, "lone_answer", "One answer on CPU", lone_answer.TARGET, False, lone_answer.measure,
            lone_answer.summarize, long=True),
)


def by_key(key: str) -> Section:
    """The registered section stored under ``key`` in the JSON file (``KeyError`` if none)."""
    for section in REGISTRY:
        if section.key == key:
            return section
    raise KeyError(key)
