"""What a section is: its identity (number, key, title, target), a step that measures and returns
samples, and a step that turns samples into figures, table rows and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from models import Kind

from ..context import Context

S = TypeVar("S")

Row = dict[str, Any]  # {"measure", "seq2seq", "causal", "target", "met"}: one line of the table


def row(measure: str, cells: dict[Kind, str] | str, target: str, met: bool | None) -> Row:
    """A table line; ``cells`` as one string means a figure for the whole app (not per side)."""
    if isinstance(cells, str):
        return {"measure": measure, "seq2seq": cells, "causal": "(whole app)", "target": target, "met": met}
    return {"measure": measure, "seq2seq": cells.get(Kind.SEQ2SEQ, "–"), "causal": cells.get(Kind.CAUSAL, "–"),
            "target": target, "met": met}


def all_met(values: list[bool | None]) -> bool | None:
    """``True`` when every judged value is; ``None`` when nothing was judged."""
    known = [v for v in values if v is not None]
    return all(known) if known else None


@dataclass
class Table:
    """A section's summary of its samples.

    Args:
        rows: its lines of the report's table.
        results: the figures (medians with their samples), for the JSON file.
        notes: sentences printed under the table.
        target_extra: appended to the section's target (a target that applies only to what ran).
    """

    rows: list[Row]
    results: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    target_extra: str = ""


@dataclass(frozen=True)
class Section(Generic[S]):
    """One measurement of the benchmark.

    Args:
        number: its number in the report's table (and on ``--sections``).
        key: its key in the JSON file.
        title: its name in the report.
        target: what it should reach, in words.
        needs_app: it talks to the app served in-process (``ctx.app``).
        measure: runs it and returns its samples (plain data).
        summarize: turns the samples into a :class:`Table` (no measuring).
        runs_first: run it before the others (they use what it leaves, e.g. loaded models).
        long: takes minutes: left out of the default run (``python -m bench``), run by ``--full`` or ``--sections``.
    """

    number: int
    key: str
    title: str
    target: str
    needs_app: bool
    measure: Callable[[Context], S]
    summarize: Callable[[S], Table]
    runs_first: bool = False
    long: bool = False

    @property
    def heading(self) -> str:
        """``"1. Streaming overhead"``."""
        return f"{self.number}. {self.title}"

    def run(self, ctx: Context) -> dict[str, Any]:
        """Measure, summarize, and return the section's entry of the JSON file."""
        return self.entry(self.summarize(self.measure(ctx)))

    def entry(self, table: Table) -> dict[str, Any]:
        """``{"title", "target", "met", "results", "rows", "notes"}``; ``met`` is ``None`` when no row has a target."""
        return {"title": self.heading, "target": self.target + table.target_extra,
                "met": all_met([r["met"] for r in table.rows]), "results": table.results, "rows": table.rows,
                "notes": table.notes}

    def failure(self, exc: BaseException) -> dict[str, Any]:
        """The entry of a section that raised: its error instead of rows."""
        return {"title": self.heading, "target": self.target, "error": f"{type(exc).__name__}: {exc}"[:500],
                "met": False, "rows": [], "notes": []}
