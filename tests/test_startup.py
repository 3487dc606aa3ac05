"""Start-up: ``python app.py`` either serves and loads models, or exits with one clear line.

Gradio's ``launch`` checks its own URL with one ``HEAD`` (``gradio.networking.url_ok``, a 3-second
timeout, no retry after a timeout) and raises when that check fails. On a busy machine (a GGUF
conversion running on 2 cores) the check times out. The app used to start its preload first, so
the main thread died while the server thread kept serving a page on which every model load failed
(``cannot schedule new futures after interpreter shutdown``) until the conversion ended.

Each test runs the real ``app.py`` in a subprocess, offline, with the tiny models, through a small
wrapper (:data:`WRAPPER`) that can make the self-check's ``HEAD`` slow, make one model's load take
minutes (the conversion), and report whether the server already answered when the preload started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent

#: ``python -c WRAPPER ARGS``: app.py with ARGS, and these changes chosen by the environment:
#: ``TEST_SELF_CHECK`` "timeout" (the HEAD times out after 3.5 s, as httpx reports it) or "late" (it
#: answers after 2.5 s); ``TEST_SLOW_LOAD``: a model whose load takes minutes; ``TEST_URL``: the app's URL.
WRAPPER = r"""
import os, runpy, sys, time
import httpx

url, mode, slow = os.environ["TEST_URL"], os.environ.get("TEST_SELF_CHECK", ""), os.environ.get("TEST_SLOW_LOAD", "")
real_head = httpx.head

def head(target, *args, **kwargs):
    if not mode or not str(target).startswith(url):
        return real_head(target, *args, **kwargs)
    print("self-check HEAD: started", flush=True)
    if mode == "timeout":
        time.sleep(3.5)  # past url_ok's 3-second timeout
        print("self-check HEAD: timed out", flush=True)
        raise httpx.ReadTimeout("timed out")
    time.sleep(2.5)
    print("self-check HEAD: answered late", flush=True)
    return real_head(target, *args, **kwargs)

httpx.head = head  # gradio.networking.url_ok calls httpx.head

from models import ModelCache
from models.run import Runner

real_get, real_preload = ModelCache.get, Runner.preload

def get(self, source, *args, **kwargs):
    if source.name == slow:
        time.sleep(600)  # a GGUF conversion on a busy machine
    return real_get(self, source, *args, **kwargs)

def preload(self, names):
    try:
        answered = httpx.get(url, timeout=10).status_code == 200
    except httpx.TransportError:
        answered = False
    print(f"preload started: {','.join(names)}; server answered: {answered}", flush=True)
    return real_preload(self, names)

ModelCache.get, Runner.preload = get, preload
sys.argv[0] = "app.py"
runpy.run_path("app.py", run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """``app.py`` in a subprocess through :data:`WRAPPER`; its output is read as it comes."""

    def __init__(self, tiny_dir: Path, tmp_path: Path, *, self_check: str = "", slow_load: str = "",
                 preload: bool = True, start_port: int | None = None) -> None:
        """``start_port``: no ``--port``; Gradio starts looking at this port (``GRADIO_SERVER_PORT``)."""
        self.url = f"http://127.0.0.1:{start_port or free_port()}/"
        self.cache_dir = tmp_path / "gradio-cache"
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(self.cache_dir),
                   TEST_URL=self.url, TEST_SELF_CHECK=self_check, TEST_SLOW_LOAD=slow_load)
        if start_port:
            env["GRADIO_SERVER_PORT"] = str(start_port)
        port = [] if start_port else ["--port", self.url.rsplit(":", 1)[1].strip("/")]
        args = ["--offline", "--model-dir", str(tiny_dir), "--seq2seq", "tiny-t5", "--causal", "tiny-gpt2",
                *port, *([] if preload else ["--no-preload"])]
        self.process = subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "stdout:\n" + "\n".join(self.out[-40:]) + "\nstderr:\n" + "\n".join(self.err[-40:])

    def wait_for(self, *texts: str, timeout: float = 120) -> str | None:
        """The first stdout line holding one of ``texts``; ``None`` when the process exits first."""
        def found() -> str | None:
            return next((line for line in self.out if any(text in line for text in texts)), None)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found() is not None:
                return found()
            if self.process.poll() is not None:
                for reader in self._readers:
                    reader.join(5)
                return found()
            time.sleep(0.1)
        pytest.fail(f"none of {texts!r} in {timeout:g} s\n{self.output()}")

    def answers(self) -> bool:
        try:
            return httpx.get(self.url, timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    def exited(self, timeout: float) -> int | None:
        """The exit status, waiting up to ``timeout`` seconds; ``None`` while it still runs."""
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(5)
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def apps():
    started: list[App] = []
    yield started
    for app in started:
        app.stop()


def load_works(url: str, model: str = "tiny-gpt2") -> str | None:
    """``None`` when ``/generate`` loads ``model`` and answers, else why not."""
    try:
        text, stats = Client(url, verbose=False).predict(model=model, prompt="hello there", max_new_tokens=4,
                                                         api_name="/generate")
    except Exception as exc:  # noqa: BLE001 - the reason is the test's message
        return f"{type(exc).__name__}: {exc}"
    return None if stats.get("output_tokens") == 4 else f"unexpected answer {text!r} {stats!r}"


def serves_or_exits(app: App) -> str:
    """After the self-check: ``"served"`` when the page answers, a model loads and the process stays up;
    ``"exited"`` when the process ended with a non-zero status and one clear line. Anything else fails:
    above all a process that stays alive, serving a page on which models cannot load."""
    app.wait_for("self-check HEAD: started")
    app.wait_for(" HEAD: timed out", " HEAD: answered late")  # judged once Gradio has its answer, not before
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if app.process.poll() is None and app.answers():
            why = load_works(app.url)
            if why is None and app.process.poll() is None and app.answers():
                return "served"
            if app.exited(30) is None:  # a load that fails is only acceptable from a process on its way out
                pytest.fail(f"the process stays alive, serving a page that cannot load models ({why})\n{app.output()}")
        if app.process.poll() is not None:
            break
        time.sleep(0.2)
    status = app.exited(30)
    assert status is not None, f"neither serves nor exits\n{app.output()}"
    errors = [line for line in app.err if line.startswith("error:")]
    assert status != 0, app.output()
    assert len(errors) == 1 and errors[0].startswith("error: could not start the server: "), app.output()
    assert "Traceback" not in "\n".join(app.err), app.output()
    return "exited"


def test_a_self_check_that_times_out_while_a_model_converts_never_leaves_a_half_alive_server(tiny_dir, tmp_path, apps):
    """The issue's start: the self-check's HEAD times out, and the seq2seq default takes minutes to load."""
    app = App(tiny_dir, tmp_path, self_check="timeout", slow_load="tiny-t5")
    apps.append(app)
    outcome = serves_or_exits(app)
    if outcome == "exited":
        assert not app.answers(), "the server closed with the process"
        assert not any("preload started" in line for line in app.out), "no model loads for a server that never started"


def test_a_late_self_check_serves_and_loads_beside_a_slow_preload(tiny_dir, tmp_path, apps):
    app = App(tiny_dir, tmp_path, self_check="late", slow_load="tiny-t5")
    apps.append(app)
    assert serves_or_exits(app) == "served"
    line = app.wait_for("preload started")
    assert line == "preload started: tiny-t5,tiny-gpt2; server answered: True", app.output()


def test_a_normal_start_serves_the_page_before_preloading_and_stops_on_sigterm(tiny_dir, tmp_path, apps):
    app = App(tiny_dir, tmp_path)
    apps.append(app)
    line = app.wait_for("preload started")
    assert line == "preload started: tiny-t5,tiny-gpt2; server answered: True", \
        f"the preload starts only once the server answers\n{app.output()}"
    assert "left-output" in httpx.get(app.url, timeout=30).text
    assert load_works(app.url) is None, app.output()
    app.process.send_signal(signal.SIGTERM)
    assert app.exited(60) == 0, app.output()
    assert "Traceback" not in "\n".join(app.err), app.output()
    assert not any(app.cache_dir.glob("playground-exports-*")), "the exports were removed"


def test_without_preload_nothing_loads_at_start(tiny_dir, tmp_path, apps):
    app = App(tiny_dir, tmp_path, preload=False)
    apps.append(app)
    assert app.wait_for("Playground ready: open ") is not None, app.output()  # launch returned
    assert app.answers() and load_works(app.url) is None, app.output()
    assert not any("preload started" in line for line in app.out)


def test_a_taken_port_is_said_with_the_address_in_use_and_no_share_link_advice(tiny_dir, tmp_path, apps):
    """Port taken: Gradio moves to the next free one; the app prints the address it really uses and why it is
    not the usual one, and not Gradio's "set `share=True`" advice (this app never makes a share link)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(tiny_dir, tmp_path, preload=False, start_port=port)
        apps.append(app)
        line = app.wait_for("Playground ready: open ")
        assert line is not None, app.output()
        used = int(line.split("http://127.0.0.1:")[1].split(" ")[0].rstrip("."))
        assert used > port and f"(port {port} is taken, so this one is used)" in line, line
        assert httpx.get(f"http://127.0.0.1:{used}/", timeout=30).status_code == 200
        assert not any("share=True" in text for text in app.out + app.err), app.output()


def test_sigterm_stops_a_served_app_within_seconds(tiny_dir, tmp_path, apps):
    """A SIGTERM (a Space restart, ``docker stop``) ends the process promptly, also with a page open."""
    app = App(tiny_dir, tmp_path, preload=False)
    apps.append(app)
    assert app.wait_for("Playground ready: open ") is not None, app.output()
    assert load_works(app.url) is None, app.output()
    with httpx.stream("GET", f"{app.url}gradio_api/heartbeat/visitor-1", timeout=30):  # a page left open
        started = time.monotonic()
        app.process.send_signal(signal.SIGTERM)
        status = app.exited(60)
    took = time.monotonic() - started
    assert status == 0, app.output()
    assert took < 5, f"SIGTERM took {took:.1f} s"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_self_check_stops_the_process(tiny_dir, tmp_path, apps, signum):
    app = App(tiny_dir, tmp_path, self_check="timeout", slow_load="tiny-t5")
    apps.append(app)
    assert app.wait_for("self-check HEAD: started") is not None, app.output()
    app.process.send_signal(signum)
    status = app.exited(60)
    assert status == 0, f"status {status}\n{app.output()}"
    assert "Traceback" not in "\n".join(app.err), app.output()
    assert not app.answers()
    assert not any("preload started" in line for line in app.out)
    assert not any(app.cache_dir.glob("playground-exports-*")), "the exports were removed"
