"""A fair share per visitor: nobody holds more than N generation requests, running or waiting.

A *visitor* is a client address (:func:`visitor_address`): any number of tabs, sessions or API
clients from one address are one visitor. Every generating event of the page and ``/generate``
shares the concurrency id :data:`GENERATE`; :class:`FairShare` sits where Gradio's queue accepts
such a request and refuses it at once (HTTP 429, with a message saying why and how many of the
visitor's requests are running and waiting) when the visitor already holds ``per_visitor``.
Prompt sets (the set tab, ``/run_set``) queue under :data:`SETS`, in :func:`set_slots` slots of their own so
that a single prompt never waits behind them; each counts in ``per_visitor`` and, on a public server, a
visitor may have ``sets_per_visitor`` of them (one) at a time.

The count is read from Gradio's own queue, the one record of every request waiting or running, so a
request that ends in any way (finished, stopped, cancelled, its tab closed) frees its place without
bookkeeping of ours. When a visitor's page or stream disconnects, Gradio drops the waiting requests
and closes the running ones. What Gradio does not notice is a request whose answer nobody reads
(``POST /gradio_api/call/generate`` with no ``GET`` of its stream): it would run to the end. A
watcher cancels any generating request whose messages sit unread for ``unread_grace`` seconds.

Gradio 6.31 exposes no public hook at that point, so :meth:`FairShare.install` wraps the queue's
``push`` on the app's own :class:`gradio.Blocks` and reads the queue's fields; ``tests/test_public.py``
fails if a Gradio upgrade changes them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import gradio as gr
from fastapi import HTTPException, status

from .quiet import note

GENERATE = "generate"  # the concurrency id of every generating event (``web/page.py``)
SETS = "sets"  # the concurrency id of prompt sets (the set tab's Run, ``/run_set``): slots of their own, see set_slots
# Page events that do real work but generate nothing (parse an upload, write exports, read or write the store) run
# in the queue under this id, a few at a time: outside it (``queue=False``) a flood of them from a few clients took
# every core from generation (issue 24). Only constant-time events (Stop, toggles, clearing) stay outside the queue.
WORK = {"concurrency_id": "work", "concurrency_limit": 2}
POLL_SECONDS = 0.5  # how often unread answers are looked for


def set_slots(concurrency: int) -> int:
    """How many prompt sets run at once (the rest wait in their queue): all but one of ``concurrency``, at least one.

    Sets queue under :data:`SETS`, apart from the single prompts' :data:`GENERATE`: however many sets run or wait,
    a single prompt never queues behind one (four visitors with two 4-hour sets each once held every slot).
    """
    return max(1, concurrency - 1)


def visitor_address(client_host: str | None, forwarded_for: str | None, proxy_hops: int = 0) -> str:
    """The address a visitor is known by.

    Args:
        client_host: the connection's address, as uvicorn resolved it (it already trusts
            ``X-Forwarded-For`` from loopback proxies, or from ``FORWARDED_ALLOW_IPS``).
        forwarded_for: the ``X-Forwarded-For`` header, or ``None``.
        proxy_hops: proxies in front of the app that append to ``X-Forwarded-For``. The visitor is the
            address the outermost one saw: the ``proxy_hops``-th entry from the right. Entries further
            left are whatever the client wrote, so they are never used. 0: ``client_host``.

    Example:
        >>> visitor_address("10.16.3.80", "1.2.3.4, 203.0.113.9", proxy_hops=1)
        '203.0.113.9'
        >>> visitor_address("127.0.0.1", "203.0.113.9")
        '127.0.0.1'
    """
    if proxy_hops > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxy_hops, len(hops))]
    return client_host or "unknown"


def request_visitor(request: Any, proxy_hops: int = 0) -> str:
    """The visitor of a Starlette/FastAPI request or a :class:`gradio.Request` (``"unknown"`` without one)."""
    if request is None:
        return "unknown"
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    return visitor_address(getattr(client, "host", None) if client else None, headers.get("x-forwarded-for"), proxy_hops)


class FairShare:
    """Per-visitor admission to the generating events, and cancellation of unread answers.

    Args:
        per_visitor: requests one visitor may have running or waiting; ``None`` = no limit
            (unread answers are still cancelled).
        proxy_hops: see :func:`visitor_address`.
        unread_grace: seconds a request's messages may sit unread before it is cancelled.
        on_abandoned: called with the session hash of a cancelled request (the runner stops its
            runs at once, instead of at the next chunk Gradio fails to deliver).
        concurrency_id: the single-prompt events this applies to.
        sets_per_visitor: prompt sets (``sets_id``) one visitor may have running or waiting; ``None`` = no limit.
            A set counts in ``per_visitor`` too.
        sets_id: the prompt sets' concurrency id.
    """

    def __init__(self, per_visitor: int | None, *, proxy_hops: int = 0, unread_grace: float = 10.0,
                 on_abandoned: Callable[[str], Any] | None = None, concurrency_id: str = GENERATE,
                 sets_per_visitor: int | None = None, sets_id: str = SETS) -> None:
        self.per_visitor, self.proxy_hops, self.unread_grace = per_visitor, proxy_hops, unread_grace
        self.on_abandoned, self.concurrency_id = on_abandoned, concurrency_id
        self.sets_per_visitor, self.sets_id = sets_per_visitor, sets_id
        self._queue: Any = None
        self._lock: asyncio.Lock | None = None
        self._watcher: asyncio.Task | None = None
        self.refused = 0  # requests refused for being over the limit
        self.cancelled = 0  # requests cancelled because their answer went unread

    def visitor(self, request: Any) -> str:
        """The visitor of ``request`` (see :func:`request_visitor`)."""
        return request_visitor(request, self.proxy_hops)

    # ----- counting, from Gradio's queue -----
    def _limited(self, fn: Any) -> bool:
        return fn is not None and fn.concurrency_id in (self.concurrency_id, self.sets_id)

    def _is_set(self, fn: Any) -> bool:
        return fn is not None and fn.concurrency_id == self.sets_id

    def held(self, visitor: str, *, sets: bool = False) -> tuple[int, int]:
        """``(running, waiting)``: the generating requests ``visitor`` has in Gradio's queue (single prompts and
        sets; only sets with ``sets``)."""
        if self._queue is None:
            return 0, 0
        running = [event for job in list(self._queue.active_jobs) if job for event in job]
        waiting = [event for line in list(self._queue.event_queue_per_concurrency_id.values()) for event in line.queue]
        wanted = self._is_set if sets else self._limited

        def count(events: list[Any]) -> int:
            return sum(wanted(event.fn) and self.visitor(event.request) == visitor for event in events)
        return count(running), count(waiting)

    def set_message(self, running: int, waiting: int) -> str:
        """Why a prompt set is refused, for the visitor."""
        held = "running" if running else "waiting"
        return (f"Refused: your address already has a prompt set {held}, and each visitor may have "
                f"{self.sets_per_visitor} at a time on this public server so that others get a turn. Wait for it to "
                "finish (or press Stop), then try again.")

    def message(self, running: int, waiting: int) -> str:
        """Why a request is refused, for the visitor."""
        return (f"Refused: your address already has {running} request{'s' * (running != 1)} running and {waiting} "
                f"waiting, and each visitor may have {self.per_visitor} at a time so that others get a turn. "
                "Wait for one to finish (or press Stop), then try again.")

    # ----- the hook -----
    def install(self, demo: gr.Blocks) -> None:
        """Admit ``demo``'s generating requests through this fair share (call after ``demo.queue()``)."""
        queue = self._queue = demo._queue
        original = queue.push

        async def push(body: Any, request: Any, username: str | None) -> Any:
            fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
            if not self._limited(fn):
                return await original(body=body, request=request, username=username)
            self._start_watcher()
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:  # count and enqueue as one step: a burst cannot slip through together
                if self.sets_per_visitor is not None and self._is_set(fn):
                    running, waiting = self.held(self.visitor(request), sets=True)
                    if running + waiting >= self.sets_per_visitor:
                        self.refused += 1
                        note("refused", _where(fn), f"over the sets per visitor ({running} running, {waiting} waiting)",
                             self.visitor(request))
                        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=self.set_message(running, waiting))
                if self.per_visitor is not None:
                    visitor = self.visitor(request)
                    running, waiting = self.held(visitor)
                    if running + waiting >= self.per_visitor:
                        self.refused += 1
                        message = self.message(running, waiting)
                        note("refused", _where(fn), f"over the per-visitor limit ({running} running, {waiting} waiting)",
                             visitor)
                        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=message)
                return await original(body=body, request=request, username=username)

        queue.push = push

    # ----- unread answers -----
    def _start_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_unread())

    async def _watch_unread(self) -> None:
        """Cancel generating requests whose messages sit unread for ``unread_grace`` seconds.

        A reader empties its session's message queue within milliseconds; a slow one at least
        shrinks it. A queue that has neither emptied nor shrunk for the grace period has no reader.
        """
        queue = self._queue
        seen: dict[str, tuple[float, int]] = {}  # event id -> (unread since, messages waiting then)
        while not queue.stopped:
            await asyncio.sleep(min(POLL_SECONDS, self.unread_grace / 4))
            now, still = time.monotonic(), {}
            for event in list(queue.event_ids_to_events.values()):
                if not self._limited(event.fn) or not event.alive:
                    continue
                messages = queue.pending_messages_per_session.get(event.session_hash)
                waiting = messages.qsize() if messages is not None else 0
                if waiting == 0:
                    continue
                since, before = seen.get(event._id, (now, waiting))
                if waiting < before:
                    since = now  # read from since the last look
                if now - since < self.unread_grace:
                    still[event._id] = (since, waiting)
                    continue
                self.cancelled += 1
                note("cancelled", _where(event.fn), f"its answer went unread for {self.unread_grace:g} s",
                     self.visitor(event.request))
                await queue.clean_events(event_id=event._id)  # a waiting request leaves, a running one is closed
                if self.on_abandoned is not None:
                    self.on_abandoned(event.session_hash)
            seen = still


def _where(fn: Any) -> str:
    return f"/{fn.api_name}" if getattr(fn, "api_name", None) else "the page"
