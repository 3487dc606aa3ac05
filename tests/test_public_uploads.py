"""Public deployments (issue 24, items 2 and 7): uploads bounded (files per request, bytes per visitor and in all,
the app's own origin only), request bodies bounded, slow headers and idle connections closed.

The app runs in-process (``tests.apphelpers.running_app``) with ``intake=IntakeLimits(...)``, small caps where
a test must reach them. Visitors are told apart with ``X-Forwarded-For`` from loopback, as in
``tests/test_public.py``. Requests whose body must stay unsent (a declared 100 MB) go through a raw socket,
so that the test sees what the server answers before it has read the body. Figures go to
``artifacts/reliability.json`` under ``public: …`` sections.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.apphelpers import case, running_app, set_figures
from web.api import generate_payload
from web.config import parse_args
from web.disk import MAX_UPLOAD_BYTES, folder_bytes
from web.intake import IntakeLimits, own_origin

XFF = "X-Forwarded-For"
CHROMIUM = "/usr/bin/chromium"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def rss_mib() -> float:
    """This process's resident memory now (the server runs in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_request(url: str, head: str, body_chunks=(), *, timeout: float = 20) -> tuple[int, bytes, int, float]:
    """Send ``head`` (request line and headers) then ``body_chunks`` until the server answers or closes.

    Returns ``(status, response bytes, body bytes the server let us send, seconds to the answer)``."""
    sock = socket.create_connection(address(url), timeout=timeout)
    start, sent, answer = time.monotonic(), 0, b""
    try:
        sock.sendall(head.encode("latin-1"))
        for chunk in body_chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server has answered: stop sending
            try:
                sock.sendall(chunk)
            except OSError:
                break  # it closed the connection on us
            sent += len(chunk)
        sock.settimeout(timeout)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        elapsed = time.monotonic() - start
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head_part.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        return status, head_part + b"\r\n\r\n" + rest, sent, elapsed
    finally:
        sock.close()


def detail(response: bytes | httpx.Response) -> str:
    body = response.content if isinstance(response, httpx.Response) else response.partition(b"\r\n\r\n")[2]
    return json.loads(body)["detail"]


def multipart(files: list[tuple[str, bytes]], boundary: str = "playgroundboundary") -> tuple[str, bytes]:
    """A multipart body as Gradio's client sends it (every part a ``files`` field)."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
             f"Content-Type: text/plain\r\n\r\n".encode() + data + b"\r\n" for name, data in files]
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def upload(http: httpx.Client, url: str, files: list[tuple[str, bytes]], visitor: str = "10.9.0.1",
           origin: str | None = None) -> httpx.Response:
    headers = {XFF: visitor, **({"Origin": origin} if origin else {})}
    return http.post(f"{url}gradio_api/upload", files=[("files", file) for file in files], headers=headers)


class Logged(logging.Handler):
    """The log records of the request log (``web.quiet``) and of uvicorn's error log (where a traceback would go)."""

    NAMES = ("playground.requests", "uvicorn.error")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "Logged":
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)

    def lines(self, containing: str) -> list[str]:
        return [record.getMessage() for record in self.records if containing in record.getMessage()]

    def tracebacks(self) -> int:
        return sum(record.exc_info is not None or "Traceback" in record.getMessage() for record in self.records)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


# ----- uploads -----

def test_an_upload_takes_one_file_and_only_from_the_apps_own_page(registry, cache, cache_dir):
    with case("public: upload caps"):
        with running_app(registry, cache, intake=IntakeLimits()) as app, httpx.Client(timeout=60) as http, \
                Logged() as logged:
            host, port = address(app.url)
            sixty_small = upload(http, app.url, [(f"f{i}.txt", b"x" * 1000) for i in range(60)])
            kept_after_sixty = folder_bytes(cache_dir)
            content_type, body = multipart([(f"f{i}.txt", b"x" * MAX_UPLOAD_BYTES) for i in range(60)])
            status_big, answer_big, sent_big, seconds_big = raw_request(
                app.url, f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n", [body[i:i + 65536] for i in range(0, len(body), 65536)])
            kept_after_big = folder_bytes(cache_dir)

            one = upload(http, app.url, [("set.txt", b"x" * 1000)])
            own = upload(http, app.url, [("set.txt", b"y" * 1000)], origin=f"http://{host}:{port}")
            space = upload(http, app.url, [("set.txt", b"z" * 1000)], origin="https://someone-playground.hf.space")
            evil = upload(http, app.url, [("set.txt", b"e" * 1000)], origin="http://evil.example")
            null = upload(http, app.url, [("set.txt", b"n" * 1000)], origin="null")
            other_port = upload(http, app.url, [("set.txt", b"p" * 1000)], origin=f"http://{host}:{port + 1}")
        assert sixty_small.status_code == 413 and "at most 1 file" in detail(sixty_small), sixty_small.text
        assert kept_after_sixty == 0, "a refused upload writes nothing"
        assert status_big == 413 and "at most 1 file" in detail(answer_big), answer_big[:300]
        assert sent_big < 10 * MAX_UPLOAD_BYTES, f"the server read {sent_big:,} of a {len(body):,}-byte refused body"
        assert kept_after_big == 0
        assert (one.status_code, own.status_code, space.status_code) == (200, 200, 200), (one.text, own.text, space.text)
        assert evil.status_code == 403 and "this app's own page" in detail(evil), evil.text
        assert null.status_code == 403 and other_port.status_code == 403
        assert "\n" not in detail(evil) and "Traceback" not in evil.text
        refusals = logged.lines("refused upload")
        assert len(refusals) == 5 and logged.tracebacks() == 0, [r.getMessage() for r in logged.records]
    set_figures("public: upload caps", sixty_files_status=sixty_small.status_code,
                sixty_mb_status=status_big, sixty_mb_bytes_sent=sent_big, sixty_mb_answer_s=round(seconds_big, 3),
                bytes_kept_after_refusals=kept_after_big, own_origin=own.status_code, no_origin=one.status_code,
                space_origin=space.status_code, foreign_origin=evil.status_code, null_origin=null.status_code)


def test_bytes_per_visitor_and_in_total_are_capped(registry, cache, cache_dir):
    size = 10_000  # each upload: one file of 10 kB (and its multipart framing)
    limits = IntakeLimits(bytes_per_visitor=35_000, bytes_total=60_000)
    with case("public: upload caps"):
        with running_app(registry, cache, intake=limits) as app, httpx.Client(timeout=60) as http:
            def until_refused(visitor: str, most: int = 10) -> tuple[int, httpx.Response]:
                for accepted in range(most):
                    answer = upload(http, app.url, [(f"{visitor}-{accepted}.txt", os.urandom(size))], visitor)
                    if answer.status_code != 200:
                        return accepted, answer
                pytest.fail(f"{visitor}: {most} uploads accepted")
            first, first_refusal = until_refused("10.9.1.1")
            second, second_refusal = until_refused("10.9.1.2")
            third, third_refusal = until_refused("10.9.1.3")
            kept = folder_bytes(cache_dir)
    assert (first, second, third) == (3, 2, 0), (first, second, third)
    assert first_refusal.status_code == 429 and "each visitor may upload 0.035 MB" in detail(first_refusal)
    assert second_refusal.status_code == 429 and "this server holds its most uploads" in detail(second_refusal)
    assert third_refusal.status_code == 429 and int(third_refusal.headers["retry-after"]) > 0
    assert kept <= limits.bytes_total, f"{kept:,} bytes on disk"
    set_figures("public: upload caps", bytes_per_visitor_cap=limits.bytes_per_visitor, bytes_total_cap=limits.bytes_total,
                upload_bytes=size, accepted_first_visitor=first, accepted_second_visitor=second,
                accepted_third_visitor=third, per_visitor_status=first_refusal.status_code,
                total_status=second_refusal.status_code, bytes_on_disk=kept)


def test_own_origin():
    assert own_origin("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert own_origin("https://Owner-App.hf.space", "0.0.0.0:7860")
    for foreign in ("http://evil.example", "null", "http://127.0.0.1:7861", "https://evil.hf.space.example.com",
                    "http://someone.hf.space:8080", "javascript:alert(1)", "http://[::1"):
        assert not own_origin(foreign, "127.0.0.1:7860"), foreign


def test_public_start_bounds_what_comes_in():
    public, _ = parse_args(["--public", "--offline"])
    local, _ = parse_args(["--offline"])
    assert public.intake == IntakeLimits() and local.intake is None
    with pytest.raises(ValueError, match="files_per_request: must be more than 0"):
        IntakeLimits(files_per_request=0)


# ----- request bodies -----

def test_a_body_over_the_limit_is_refused_before_it_is_read(registry, cache):
    limits = IntakeLimits()
    declared = 100_000_000
    with case("public: body and slow-header limits"):
        with running_app(registry, cache, intake=limits) as app, httpx.Client(timeout=60) as http, \
                Logged() as logged:
            host, port = address(app.url)
            before = rss_mib()
            chunk = b"[" + b" " * 65534 + b"]"
            status, answer, sent, seconds = raw_request(
                app.url, f"POST /gradio_api/call/generate HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n",
                (chunk for _ in range(declared // len(chunk))))
            chunked = 20 * limits.max_body_bytes  # no Content-Length: counted as it streams
            piece = b"x" * 65536
            chunked_status, chunked_answer, chunked_sent, chunked_seconds = raw_request(
                app.url, f"POST /gradio_api/call/generate HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                (f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(chunked // len(piece))))
            grown = rss_mib() - before
            payload = json.dumps({"data": generate_payload("tiny-gpt2", "Hello", max_new_tokens=2)}).encode()
            small_chunked = http.post(f"{app.url}gradio_api/call/generate", content=iter([payload[:10], payload[10:]]),
                                      headers={"Content-Type": "application/json", XFF: "10.9.2.1"})
            small = http.post(f"{app.url}gradio_api/call/generate", content=payload,
                              headers={"Content-Type": "application/json", XFF: "10.9.2.2"})
    assert status == 413 and "over 4 MB" in detail(answer), answer[:300]
    assert sent < declared // 10 and seconds < 5, (sent, seconds)
    assert chunked_status == 413 and chunked_sent < 3 * limits.max_body_bytes, (chunked_status, chunked_sent)
    assert grown < 50, f"the server grew by {grown:.0f} MiB"
    assert len(logged.lines("refused /gradio_api/call/generate")) == 2 and logged.tracebacks() == 0, \
        [record.getMessage() for record in logged.records]
    assert small_chunked.status_code == 200 and "event_id" in small_chunked.json(), small_chunked.text
    assert small.status_code == 200 and "event_id" in small.json(), small.text
    set_figures("public: body and slow-header limits", body_limit_bytes=limits.max_body_bytes,
                declared_body_bytes=declared, declared_status=status, declared_bytes_sent=sent,
                declared_answer_s=round(seconds, 3), chunked_status=chunked_status, chunked_bytes_sent=chunked_sent,
                chunked_answer_s=round(chunked_seconds, 3), memory_growth_mib=round(grown, 1))


# ----- connections -----

def test_slow_headers_and_idle_connections_are_closed(registry, cache):
    limits = IntakeLimits(header_timeout_s=2.0, keep_alive_s=1.0)
    count = 100
    with case("public: body and slow-header limits"):
        with running_app(registry, cache, intake=limits) as app, httpx.Client(timeout=60) as http:
            host, port = address(app.url)
            socks, closed_after = [], {}
            start = time.monotonic()
            for i in range(count):
                sock = socket.create_connection((host, port), timeout=5)
                if i % 2 == 0:
                    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())  # the headers trickle in
                socks.append(sock)
            while len(closed_after) < count and time.monotonic() - start < 15:
                for i, sock in enumerate(socks):
                    if i in closed_after:
                        continue
                    readable, _, _ = select.select([sock], [], [], 0)
                    gone = False
                    if readable:
                        try:
                            gone = sock.recv(1024) == b""
                        except OSError:
                            gone = True
                    elif i % 2 == 0:
                        try:
                            sock.sendall(b"X")  # one byte of a header at a time
                        except OSError:
                            gone = True
                    if gone:
                        closed_after[i] = time.monotonic() - start
                time.sleep(0.25)
            for sock in socks:
                sock.close()
            answered = http.get(app.url).status_code  # the server still serves
            # a finished request's connection, left idle, is closed after keep_alive_s
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            sock.recv(65536)
            idle_start = time.monotonic()
            sock.settimeout(10)
            while sock.recv(65536):
                pass
            idle_closed = time.monotonic() - idle_start
            sock.close()
    assert len(closed_after) == count, f"{count - len(closed_after)} of {count} connections still open after 15 s"
    slowest = max(closed_after.values())
    assert slowest < limits.header_timeout_s + 2, f"slowest closed after {slowest:.1f} s"
    assert answered == 200 and idle_closed < limits.keep_alive_s + 2, idle_closed
    set_figures("public: body and slow-header limits", slow_connections=count, header_timeout_s=limits.header_timeout_s,
                slow_closed=len(closed_after), slowest_closed_s=round(slowest, 2),
                keep_alive_s=limits.keep_alive_s, idle_closed_s=round(idle_closed, 2))


# ----- the page -----

@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Chromium at {CHROMIUM}")
def test_the_set_tab_still_uploads_in_chromium(registry, cache, cache_dir, tmp_path):
    """The page's own upload passes the origin check (Chromium sends ``Origin`` on its POST) and the one-file limit."""
    from playwright.sync_api import sync_playwright

    upload_file = tmp_path / "my-set.jsonl"
    upload_file.write_text('{"prompt": "Hello"}\n{"prompt": "Good morning"}\n{"prompt": "Name a fruit."}\n')
    with case("public: upload caps"):
        with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", intake=IntakeLimits()) as app, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.set_default_timeout(20_000)
                uploads: list = []
                page.on("request", lambda request: uploads.append(request)
                        if urlsplit(request.url).path.endswith("/gradio_api/upload") else None)
                page.goto(app.url)
                page.get_by_role("tab", name="Prompt set").click()
                page.locator("#set-upload input[type=file]").set_input_files(str(upload_file))
                deadline = time.monotonic() + 20
                while "3 rows" not in page.locator("#set-about").inner_text():
                    assert time.monotonic() < deadline, page.locator("#set-about").inner_text()
                    time.sleep(0.1)
                origins = [request.all_headers().get("origin") for request in uploads]
                statuses = [request.response().status for request in uploads]
            finally:
                browser.close()
    assert origins and all(origin == app.url.rstrip("/") for origin in origins), origins
    assert statuses == [200] * len(uploads), statuses
    set_figures("public: upload caps", chromium_upload_status=statuses[0], chromium_origin_sent=bool(origins[0]))
