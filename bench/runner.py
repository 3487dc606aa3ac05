"""Run the chosen sections: the one that prepares the models first, the ones that need the app
together while it is served once, each in its own ``try`` so that a failure is reported in its
section without losing the others."""

from __future__ import annotations

import itertools
import traceback
from typing import Any, Callable, ContextManager, Sequence

from .appclient import App, served_app
from .context import Context
from .sections import Section

AppOpener = Callable[[Context], ContextManager[App]]


def run_order(chosen: Sequence[Section]) -> list[Section]:
    """``runs_first`` sections first, then the report's order (those needing the app stay together)."""
    return sorted(chosen, key=lambda s: (not s.runs_first, s.number))


def _attempt(section: Section, ctx: Context, entries: dict[str, dict[str, Any]]) -> bool:
    """Run ``section`` into ``entries``; ``False`` when it failed (its entry then says why)."""
    ctx.log(f"section {section.heading}")
    try:
        entries[section.key] = section.run(ctx)
        return True
    except Exception as exc:  # noqa: BLE001 - one failed section must not hide the others
        traceback.print_exc()
        entries[section.key] = section.failure(exc)
        return False


def _attempt_with_app(group: list[Section], ctx: Context, entries: dict[str, dict[str, Any]],
                      open_app: AppOpener) -> bool:
    """Serve the app once for ``group``; if it cannot be served, each section of the group fails with that."""
    ok = True
    try:
        with open_app(ctx) as app:
            ctx.served = app
            try:
                for section in group:
                    ok = _attempt(section, ctx, entries) and ok
            finally:
                ctx.served = None
    except Exception as exc:  # noqa: BLE001 - the app's failure is each of these sections' failure
        traceback.print_exc()
        for section in group:
            entries.setdefault(section.key, section.failure(exc))
        return False
    return ok


def run_sections(ctx: Context, chosen: Sequence[Section],
                 open_app: AppOpener = served_app) -> tuple[dict[str, dict[str, Any]], bool]:
    """Run ``chosen``; return their entries in the report's order, and whether all of them succeeded."""
    entries: dict[str, dict[str, Any]] = {}
    ok = True
    for needs_app, group in itertools.groupby(run_order(chosen), key=lambda s: s.needs_app):
        sections = list(group)
        if needs_app:
            ok = _attempt_with_app(sections, ctx, entries, open_app) and ok
        else:
            for section in sections:
                ok = _attempt(section, ctx, entries) and ok
    return {s.key: entries[s.key] for s in sorted(chosen, key=lambda s: s.number)}, ok
