"""Security headers on every response: a Content-Security-Policy, framing rules, ``nosniff``.

:class:`SecurityHeaders` is a plain ASGI middleware (it never buffers a body, so the event streams
pass through untouched), given to Gradio's FastAPI app through ``launch(app_kwargs=...)``
(:func:`middleware`). The policy allows what Gradio's page needs and nothing more:

* scripts and styles from the app itself, plus inline ones (Gradio's page carries its config and
  the keyboard shortcut inline, and Svelte sets inline styles) and ``eval`` (Gradio runs an event's
  ``js=`` through ``new Function``);
* the theme's web fonts from Google Fonts (Gradio's default theme loads them; offline they fail
  quietly);
* images, media and workers from the app, ``data:`` and ``blob:``;
* connections (``fetch`` and the event streams) to the app only;
* framing by the app itself and by Hugging Face (Spaces shows an app in an iframe on huggingface.co),
  nobody else; no plugins; forms post to the app only.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from starlette.middleware import Middleware

FRAME_ANCESTORS = "'self' https://huggingface.co https://*.huggingface.co https://*.hf.space"
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
    "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
    "font-src 'self' data: https://fonts.gstatic.com",
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "worker-src 'self' blob:",
    "connect-src 'self'",
    f"frame-ancestors {FRAME_ANCESTORS}",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
])
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response (a header the app set itself is kept).

    Args:
        app: the wrapped ASGI application.
        headers: the headers to add (default :data:`HEADERS`).
    """

    def __init__(self, app: ASGIApp, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in (headers or HEADERS).items()]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def middleware() -> list[Middleware]:
    """The middleware for ``launch(app_kwargs={"middleware": ...})``."""
    return [Middleware(SecurityHeaders)]
