"""What a public server takes in: request bodies, uploads and connections, each bounded (issue 24, items 2 and 7).

Three guards, all given to Gradio's server by :mod:`web.serving` when the deployment is public
(``AppConfig.intake``):

* :class:`BodyLimit` (ASGI): a request body over ``max_body_bytes`` is refused with 413 before it is
  read: at once when its ``Content-Length`` says so; a chunked body is counted as it streams, at most
  the limit is held, and it reaches the app only once it is known to fit. The upload route is left to
  :class:`UploadGuard`, which has its own limit.
* :class:`UploadGuard` (ASGI, ``POST …/gradio_api/upload``): refuses a foreign ``Origin`` (403: a
  multipart POST needs no CORS preflight, so any site could make its visitors' browsers upload; no
  ``Origin``, as API clients send, is allowed), more than ``files_per_request`` files or a body that
  could not hold only them (413), and more than ``bytes_per_visitor`` (429) or ``bytes_total`` (429)
  uploaded within the time Gradio keeps an upload. The body is read (at most the request's limit)
  and counted before Gradio sees a byte of it, so a refused upload writes nothing.
* :class:`SlowHeaders` (uvicorn's HTTP/1.1 protocol): a connection must finish sending a request's
  headers within ``header_timeout_s`` of opening (or of its previous answer), else it is closed; an
  idle keep-alive connection is closed after ``keep_alive_s``. Gradio builds uvicorn's ``Config``
  itself, but uvicorn reads ``config.http_protocol_class`` for every new connection, so
  :func:`bound_connections` sets it on the running server.

A refusal is one JSON line (``{"detail": "..."}``) for the visitor and one ``refused`` log line
(:func:`web.quiet.note`), and carries ``Connection: close`` so the unread rest of a body is never read.
"""

from __future__ import annotations

import collections
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import h11
from python_multipart.multipart import MultipartParser, parse_options_header
from uvicorn.protocols.http.h11_impl import H11Protocol

from .disk import MAX_UPLOAD_BYTES
from .quiet import note
from .asgi import scope_header as _header
from .asgi import scope_visitor as _visitor
from .asgi import send_json

MULTIPART_OVERHEAD = 16_384  # bytes a multipart body may carry besides its files (boundaries, part headers)
UPLOAD_ROUTE = "/gradio_api/upload"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class IntakeLimits:
    """What a public server takes in (``--public``, or a Space). Sizes in bytes, times in seconds."""

    max_body_bytes: int = 4_000_000  # any request but an upload: /run_set's rows are the largest (a few MB)
    files_per_request: int = 1  # files one upload request may carry: the set tab sends one
    bytes_per_visitor: int = 20 * MAX_UPLOAD_BYTES  # uploaded by one visitor while Gradio keeps the files
    bytes_total: int = 500 * MAX_UPLOAD_BYTES  # uploaded by everybody while Gradio keeps the files
    header_timeout_s: float = 10.0  # to send a request's headers, from the connection's start or last answer
    keep_alive_s: float = 5.0  # an idle connection between requests (uvicorn's default)
    max_header_bytes: int = 16_384  # headers still arriving, h11's check (h11's default; not applied to headers sent whole)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"IntakeLimits.{name}: must be more than 0, got {value}")

    @property
    def upload_body_bytes(self) -> int:
        """The largest upload body: ``files_per_request`` files of Gradio's ``max_file_size``, plus multipart framing."""
        return self.files_per_request * MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD


def _mb(size: int) -> str:
    return f"{size / 1e6:g} MB"


# ----- refusals -----

async def _refuse(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer ``status`` with ``{"detail": message}`` and close the connection (the body is not read on)."""
    await send_json(send, status, json.dumps({"detail": message}).encode(), close=True, headers=headers)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; ``None`` when absent (chunked, or no body) or not a number (h11 refuses those)."""
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _is_upload(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope.get("path", "").rstrip("/").endswith(UPLOAD_ROUTE)


async def _read_body(receive: Receive, limit: int, on_chunk: Callable[[bytes], str | None] = lambda _c: None
                     ) -> tuple[bytes | None, str | None]:
    """The whole body, read while it stays within ``limit`` bytes and ``on_chunk`` finds nothing wrong.

    Returns ``(body, None)``, or ``(None, why)`` as soon as it goes wrong (the rest is not read), or
    ``(None, None)`` when the client went away."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, f"the request body is over {_mb(limit)}"
        why = on_chunk(chunk)
        if why:
            return None, why
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the connection says next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


# ----- request bodies -----

class BodyLimit:
    """ASGI middleware: a request body over ``max_body_bytes`` gets 413 without being read (see the module).

    Args:
        app: the wrapped ASGI application.
        max_body_bytes: the most a request body may hold (the upload route is :class:`UploadGuard`'s).
        proxy_hops: see :func:`web.visitors.visitor_address` (the visitor named in the log line).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, proxy_hops: int = 0) -> None:
        self.app, self.max_body_bytes, self.proxy_hops = app, max_body_bytes, proxy_hops
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_upload(scope):
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length <= self.max_body_bytes:
            await self.app(scope, receive, send)  # h11 delivers no more than Content-Length says
            return
        if length is None and _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body
            return
        why = f"the request body is over {_mb(self.max_body_bytes)}" if length is not None else None
        if why is None:  # chunked: held until it is known to fit
            body, why = await _read_body(receive, self.max_body_bytes)
            if body is not None:
                await self.app(scope, _replay(body, receive), send)
                return
            if why is None:
                return  # the client went away
        self.refused += 1
        note("refused", scope.get("path", "?"), why, _visitor(scope, self.proxy_hops))
        await _refuse(send, 413, f"Refused: {why}; this server takes at most {_mb(self.max_body_bytes)} "
                                 "per request.")


# ----- uploads -----

def own_origin(origin: str, host: str | None) -> bool:
    """True when ``origin`` (a request's ``Origin``) is this app's own page: the same host and port as the
    request's ``Host``, or a Hugging Face Space (``https://*.hf.space``, where Spaces serve apps).

    Example:
        >>> own_origin("http://127.0.0.1:7860", "127.0.0.1:7860"), own_origin("http://evil.example", "127.0.0.1:7860")
        (True, False)
        >>> own_origin("https://someone-playground.hf.space", "10.0.0.5:7860")
        True
    """
    try:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (a sandboxed frame, a file:// page) and anything else
        if parts.scheme == "https" and parts.hostname.endswith(".hf.space") and parts.port is None:
            return True
        return bool(host) and parts.netloc.lower() == host.strip().lower()
    except ValueError:
        return False


class UploadLedger:
    """Bytes uploaded within the last ``window_s`` seconds (the time Gradio keeps an upload), by visitor and in all."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._entries: collections.deque[list] = collections.deque()  # [time, visitor, bytes], oldest first
        self._by_visitor: collections.Counter[str] = collections.Counter()
        self.total = 0

    def _expire(self, now: float) -> None:
        while self._entries and now - self._entries[0][0] >= self.window_s:
            self._drop(self._entries.popleft())

    def _drop(self, entry: list) -> None:
        _when, visitor, size = entry
        self._by_visitor[visitor] -= size
        if self._by_visitor[visitor] <= 0:
            del self._by_visitor[visitor]
        self.total -= size

    def held(self, visitor: str, now: float | None = None) -> int:
        """Bytes ``visitor`` uploaded within the window."""
        self._expire(time.monotonic() if now is None else now)
        return self._by_visitor.get(visitor, 0)

    def free_in(self, visitor: str | None = None, now: float | None = None) -> float:
        """Seconds until the oldest upload (of ``visitor``, or of anybody) leaves the window."""
        now = time.monotonic() if now is None else now
        for when, who, _size in self._entries:
            if visitor is None or who == visitor:
                return max(0.0, self.window_s - (now - when))
        return 0.0

    def charge(self, visitor: str, size: int, now: float | None = None) -> list:
        """Count ``size`` bytes for ``visitor``; the entry to give to :meth:`refund` if the upload fails."""
        entry = [time.monotonic() if now is None else now, visitor, size]
        self._entries.append(entry)
        self._by_visitor[visitor] += size
        self.total += size
        return entry

    def refund(self, entry: list) -> None:
        """Take back a :meth:`charge` (the upload was not kept)."""
        try:
            self._entries.remove(entry)
        except ValueError:
            return  # already out of the window
        self._drop(entry)


class _PartCounter:
    """Counts the parts of a multipart body as it streams (python-multipart's parser, the one Gradio uses)."""

    def __init__(self, boundary: bytes) -> None:
        self.parts = 0
        self.parser = MultipartParser(boundary, {"on_part_begin": self._begin})

    def _begin(self) -> None:
        self.parts += 1

    def feed(self, chunk: bytes) -> int:
        self.parser.write(chunk)
        return self.parts


class UploadGuard:
    """ASGI middleware bounding ``POST …/gradio_api/upload`` (see the module).

    Args:
        app: the wrapped ASGI application.
        limits: the deployment's :class:`IntakeLimits`.
        window_s: how long Gradio keeps an upload (``AppConfig.keep_files_s``): bytes count against the
            caps for that long.
        proxy_hops: see :func:`web.visitors.visitor_address` (the fair share's visitor).
    """

    def __init__(self, app: ASGIApp, limits: IntakeLimits, window_s: float, proxy_hops: int = 0) -> None:
        self.app, self.limits, self.proxy_hops = app, limits, proxy_hops
        self.ledger = UploadLedger(window_s)
        self.refused: collections.Counter[int] = collections.Counter()  # by status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_upload(scope):
            await self.app(scope, receive, send)
            return
        visitor = _visitor(scope, self.proxy_hops)
        refusal = self._before_reading(scope, visitor)
        body = None
        if refusal is None:
            body, refusal = await self._read(scope, receive)
            if body is None and refusal is None:
                return  # the client went away
        if refusal is None:
            refusal = self._over_caps(visitor, len(body))
        if refusal is not None:
            status, why, headers = refusal
            self.refused[status] += 1
            note("refused", "upload", why, visitor)
            await _refuse(send, status, f"Refused: {why}.", headers)
            return
        entry = self.ledger.charge(visitor, len(body))
        kept = False

        async def watch(message: Message) -> None:
            nonlocal kept
            if message["type"] == "http.response.start":
                kept = message["status"] == 200
            await send(message)
        try:
            await self.app(scope, _replay(body, receive), watch)
        finally:
            if not kept:
                self.ledger.refund(entry)

    def _before_reading(self, scope: Scope, visitor: str) -> tuple[int, str, list] | None:
        origin = _header(scope, b"origin")
        if origin is not None and not own_origin(origin, _header(scope, b"host")):
            return 403, f"uploads come only from this app's own page, not from {origin[:80]}", []
        length = _content_length(scope)
        if length is not None and length > self.limits.upload_body_bytes:
            return 413, self._too_large(), []
        return self._over_caps(visitor, length or 0)

    def _too_large(self) -> str:
        files = self.limits.files_per_request
        return (f"an upload takes at most {files} file{'s' * (files != 1)} of at most {_mb(MAX_UPLOAD_BYTES)} "
                f"(a request body of at most {_mb(self.limits.upload_body_bytes)})")

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes | None, tuple[int, str, list] | None]:
        content_type, options = parse_options_header(_header(scope, b"content-type") or "")
        if content_type != b"multipart/form-data" or not options.get(b"boundary"):
            body, why = await _read_body(receive, self.limits.upload_body_bytes)
            return body, (413, self._too_large(), []) if why else None  # Gradio answers the wrong type
        counter = _PartCounter(options[b"boundary"])
        files = self.limits.files_per_request

        def check(chunk: bytes) -> str | None:
            try:
                parts = counter.feed(chunk)
            except Exception:  # noqa: BLE001 - a malformed body: Gradio's parser says what is wrong with it
                return None
            if parts > files:
                return f"an upload takes at most {files} file{'s' * (files != 1)}, this one has more"
            return None
        body, why = await _read_body(receive, self.limits.upload_body_bytes, check)
        if why is not None and "request body" in why:
            why = self._too_large()
        return body, (413, why, []) if why else None

    def _over_caps(self, visitor: str, size: int) -> tuple[int, str, list] | None:
        ledger, limits = self.ledger, self.limits
        hours = ledger.window_s / 3600
        window = f"{hours:g} hour{'s' * (hours != 1)}" if hours >= 1 else f"{ledger.window_s / 60:g} minutes"
        if ledger.held(visitor) + size > limits.bytes_per_visitor:
            wait = ledger.free_in(visitor)
            return (429, f"your address has uploaded {_mb(ledger.held(visitor))} within {window}, and each visitor "
                         f"may upload {_mb(limits.bytes_per_visitor)}; try again in {wait:.0f} s",
                    [(b"retry-after", str(max(1, round(wait))).encode())])
        if ledger.total + size > limits.bytes_total:
            wait = ledger.free_in()
            return (429, f"this server holds its most uploads ({_mb(limits.bytes_total)} within {window}); "
                         f"try again in {wait:.0f} s", [(b"retry-after", str(max(1, round(wait))).encode())])
        return None


# ----- connections -----

class SlowHeaders(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers.

    uvicorn times out an idle keep-alive connection only after a first answer, and never a request whose
    headers trickle in (a byte every few seconds holds a connection for ever). Here a connection must
    have sent a complete request line and headers within ``header_timeout`` seconds of opening, and of
    every answer; else it is closed.
    """

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_timer: Any = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's headers have the same time

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()


def bound_connections(server: Any, limits: IntakeLimits) -> None:
    """Make the running uvicorn ``server`` (``demo.server``) apply ``limits`` to every new connection:
    the header deadline, the keep-alive time and the header size. uvicorn reads these from its config
    for each connection it accepts."""
    config = server.config
    config.timeout_keep_alive = limits.keep_alive_s
    config.h11_max_incomplete_event_size = limits.max_header_bytes
    config.http_protocol_class = functools.partial(SlowHeaders, header_timeout=limits.header_timeout_s)
