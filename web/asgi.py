"""What the app's raw ASGI middlewares (``web/intake.py``, ``web/sessions.py``, ``web/session_owners.py``,
``web/disk.py``) share: a header of the request, its visitor, and a JSON refusal sent without Starlette."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from .visitors import visitor_address

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def scope_header(scope: Scope, name: bytes) -> str | None:
    """The request's header ``name`` (lower-case bytes, e.g. ``b"origin"``), or ``None``."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def scope_visitor(scope: Scope, proxy_hops: int = 0) -> str:
    """The visitor of an ASGI request, as the fair share names them (:func:`web.visitors.visitor_address`)."""
    client = scope.get("client")
    return visitor_address(client[0] if client else None, scope_header(scope, b"x-forwarded-for"), proxy_hops)


async def send_json(send: Send, status: int, body: bytes, *, close: bool = False,
                    headers: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]] = ()) -> None:
    """Answer ``status`` with the JSON ``body``; ``close``: end the connection too (the body is not read on)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *([(b"connection", b"close")] if close else []), *headers]})
    await send({"type": "http.response.body", "body": body})
