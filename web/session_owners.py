"""A session belongs to the address that opened it: its session hash is not a password.

Gradio keeps a page's ``gr.State`` (this session's comparisons, prompts included) under the session hash the
browser sends with every event. Anyone who learns that hash could send events with it from elsewhere and read the
state back. :class:`SessionOwners` records the visitor address (:func:`web.visitors.request_visitor`, the fair
share's) that sent a session's first event; an event carrying that hash from another address is refused with one
line, before any state is read. The check sits in ``Blocks.process_api``, which every event passes (queued or not),
and in :class:`SessionGate` for the routes that name a session in their URL (its event stream, its heartbeat).

Entries are forgotten oldest first beyond ``max_sessions`` (Gradio itself keeps at most ``state_session_capacity``
sessions' state).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from typing import Any, Callable
from urllib.parse import parse_qs

import gradio as gr

from .asgi import scope_visitor, send_json
from .quiet import refuse
from .visitors import request_visitor

MAX_SESSIONS = 50_000
REFUSED = "This session was opened from another address: reload the page to start a session of your own."


class SessionOwners:
    """The address each session hash was first used from.

    Args:
        proxy_hops: see :func:`web.visitors.visitor_address`.
        max_sessions: sessions remembered (the oldest is forgotten first).
    """

    def __init__(self, proxy_hops: int = 0, max_sessions: int = MAX_SESSIONS) -> None:
        self.proxy_hops, self.max_sessions = proxy_hops, max_sessions
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0  # events refused for coming from another address

    def claim(self, session_hash: str | None, visitor: str) -> bool:
        """Whether ``visitor`` may use ``session_hash``: it is new (and now ``visitor``'s) or already theirs."""
        if not session_hash:
            return True
        with self._lock:
            owner = self._owners.get(session_hash)
            if owner is None:
                self._owners[session_hash] = visitor
                while len(self._owners) > self.max_sessions:
                    self._owners.popitem(last=False)
                return True
            return owner == visitor

    def install(self, demo: gr.Blocks) -> None:
        """Check every event of ``demo`` (wraps ``Blocks.process_api``)."""
        process_api: Callable[..., Any] = demo.process_api

        async def owned_process_api(block_fn: Any, *args: Any, **kwargs: Any) -> Any:
            request = kwargs.get("request")
            request = request[0] if isinstance(request, list) and request else request
            session_hash = kwargs.get("session_hash") or getattr(request, "session_hash", None)
            if request is not None and session_hash:
                visitor = request_visitor(request, self.proxy_hops)
                if not self.claim(session_hash, visitor):
                    self.refused += 1
                    fn = block_fn if not isinstance(block_fn, int) else demo.fns.get(block_fn)
                    name = getattr(fn, "api_name", None) or getattr(fn, "name", None) or "?"
                    raise refuse(f"event {name}", REFUSED, visitor)
            return await process_api(block_fn, *args, **kwargs)

        demo.process_api = owned_process_api  # type: ignore[method-assign]
        demo.session_owners = self  # type: ignore[attr-defined]  # read by SessionGate


HEARTBEAT = re.compile(r"/gradio_api/(?:heartbeat|stream)/([^/]+)")
REFUSED_BODY = json.dumps({"detail": REFUSED}).encode()


class SessionGate:
    """ASGI middleware: the routes that carry a session hash in their URL (``GET …/queue/data?session_hash=…``, the
    session's event stream, which would hand another address the session's answers; ``…/heartbeat/<hash>``, whose
    end closes the session; ``…/stream/<hash>/…``) answer 403 to any address but the session's owner. The owners are
    those of the page's :class:`SessionOwners` (``install`` leaves them on the ``gr.Blocks``)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET":
            owners = getattr(getattr(scope.get("app"), "blocks", None), "session_owners", None)
            session_hash = _url_session(scope) if owners is not None else None
            if session_hash:
                visitor = scope_visitor(scope, owners.proxy_hops)
                if not owners.claim(session_hash, visitor):
                    owners.refused += 1
                    refuse(scope.get("path", "?"), REFUSED, visitor)  # the one log line
                    await send_json(send, 403, REFUSED_BODY)
                    return
        await self.app(scope, receive, send)


def _url_session(scope: dict) -> str | None:
    """The session hash a GET carries in its URL, if any."""
    path = scope.get("path", "")
    if path.rstrip("/").endswith("/gradio_api/queue/data"):
        found = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash")
        return found[0] if found else None
    match = HEARTBEAT.search(path)
    return match.group(1) if match else None
