"""Sessions bounded on public deployments: in total and per visitor.

Gradio keeps a :class:`gradio.state_holder.SessionState` for every session hash it is sent: a copy of the
page's configuration and every ``gr.State`` of the page. Measured here (issue 24): a new session costs about
68 ms and 294 KiB, 2,000 sessions took 574 MiB, and Gradio keeps up to ``state_session_capacity`` of them
(10,000 by default: about 2.8 GiB), dropping the least recently used one beyond that. Any client can make a
new one by sending a new session hash.

On a public deployment :func:`launch_options` lowers the total to :data:`MAX_SESSIONS`, and
:func:`install` bounds each visitor (an address, as in :mod:`web.visitors`) to :data:`MAX_SESSIONS_PER_VISITOR`:
a visitor's new session beyond that drops that visitor's least recently made one, so a client minting
session hashes evicts only its own sessions, never other visitors'; and a visitor opens at most
:data:`NEW_SESSIONS_PER_MINUTE` new sessions a minute after a first burst (making one is real work). Gradio 6.31 has no per-visitor bound
and its state holder sees no request, so :class:`VisitorOfRequest` (an ASGI middleware) notes the visitor
of each HTTP request in a context variable, which the holder reads when it makes a session.
``tests/test_public_flood.py`` fails if a Gradio upgrade changes what this relies on.
(Not to be confused with :mod:`web.session_owners`: which address a session belongs to.)
"""

from __future__ import annotations

import contextvars
import time
from collections import OrderedDict
from typing import Any

import gradio as gr
from fastapi import HTTPException, status
from gradio.state_holder import SessionState, StateHolder

from .asgi import scope_visitor
from .quiet import note

MAX_SESSIONS = 1_000  # sessions kept on a public deployment: about 290 MiB at 294 KiB each
MAX_SESSIONS_PER_VISITOR = 32  # per address: tabs of one visitor, or visitors behind one NAT
NEW_SESSIONS_PER_MINUTE = 30  # per address, after a burst of MAX_SESSIONS_PER_VISITOR: a new session costs 68-100 ms
REFUSED = ("Refused: your address opened {count} new sessions in a short time; each costs the server real work, so "
           "a visitor may open {rate} a minute. Wait a few seconds, then reload the page.")

_visitor: contextvars.ContextVar[str | None] = contextvars.ContextVar("playground_visitor", default=None)


class VisitorOfRequest:
    """ASGI middleware: the visitor of the HTTP request being handled, for :class:`BoundedSessions`."""

    def __init__(self, app: Any, proxy_hops: int = 0) -> None:
        self.app, self.proxy_hops = app, proxy_hops

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        token = _visitor.set(scope_visitor(scope, self.proxy_hops))
        try:
            await self.app(scope, receive, send)
        finally:
            _visitor.reset(token)


class BoundedSessions(StateHolder):
    """Gradio's state holder with at most ``per_visitor`` sessions per visitor (the total stays Gradio's
    ``state_session_capacity``), each visitor making new ones at most ``per_minute`` a minute after a burst of
    ``per_visitor`` (a token bucket; ``None``: no rate). A new session over the rate is refused with HTTP 429 and
    one log line, before it is made (the route that asked answers the 429). A session made where no visitor is
    known (inside the queue's own tasks) counts against the total only."""

    def __init__(self, per_visitor: int, per_minute: float | None = NEW_SESSIONS_PER_MINUTE) -> None:
        super().__init__()
        self.per_visitor, self.per_minute = per_visitor, per_minute
        self._by_visitor: dict[str, OrderedDict[str, None]] = {}
        self._tokens: dict[str, tuple[float, float]] = {}  # visitor -> (new sessions it may open now, when counted)
        self.evicted = 0  # sessions dropped for being over their visitor's bound
        self.refused = 0  # new sessions refused for being over the rate

    def _admit(self, visitor: str) -> None:
        """Take one new session from ``visitor``'s bucket, or refuse it (429). Call under the lock."""
        if self.per_minute is None:
            return
        now = time.monotonic()
        tokens, then = self._tokens.get(visitor, (float(self.per_visitor), now))
        tokens = min(float(self.per_visitor), tokens + (now - then) * self.per_minute / 60)
        if tokens < 1:
            self.refused += 1
            note("refused", "new session", f"over {self.per_minute:g} new sessions a minute", visitor)
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                detail=REFUSED.format(count=self.per_visitor, rate=f"{self.per_minute:g}"))
        self._tokens[visitor] = (tokens - 1, now)
        if len(self._tokens) > 2 * self.capacity:  # visitors whose buckets are full again
            horizon = 60 * self.per_visitor / self.per_minute
            self._tokens = {v: (t, at) for v, (t, at) in self._tokens.items() if now - at < horizon}

    def __getitem__(self, session_id: str) -> SessionState:
        visitor = _visitor.get()
        if visitor is not None and session_id not in self.session_data:
            with self.lock:
                self._admit(visitor)
                mine = self._by_visitor.setdefault(visitor, OrderedDict())
                for gone in [s for s in mine if s not in self.session_data]:  # dropped by Gradio's total bound
                    del mine[gone]
                while len(mine) >= self.per_visitor:
                    oldest, _ = mine.popitem(last=False)
                    self.session_data.pop(oldest, None)
                    self.time_last_used.pop(oldest, None)
                    self.evicted += 1
                mine[session_id] = None
                if len(self._by_visitor) > 2 * self.capacity:  # visitors whose sessions are all gone
                    self._by_visitor = {v: s for v, s in self._by_visitor.items()
                                        if any(x in self.session_data for x in s)}
        return super().__getitem__(session_id)

    def sessions_of(self, visitor: str) -> int:
        """Sessions ``visitor`` has kept now."""
        return sum(s in self.session_data for s in self._by_visitor.get(visitor, ()))


def launch_options(public: bool) -> dict[str, Any]:
    """``launch()`` options: the total bound on a public deployment (Gradio's default elsewhere)."""
    return {"state_session_capacity": MAX_SESSIONS} if public else {}


def install(demo: gr.Blocks, per_visitor: int = MAX_SESSIONS_PER_VISITOR) -> BoundedSessions:
    """Replace the launched ``demo``'s state holder with a :class:`BoundedSessions` (call right after ``launch``,
    before the first session; its middleware :class:`VisitorOfRequest` must be in ``app_kwargs``)."""
    holder = BoundedSessions(per_visitor)
    holder.set_blocks(demo)  # the blocks' own reference and its capacity
    demo.server_app.state_holder = holder  # the routes' reference
    return holder
